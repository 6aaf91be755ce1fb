/**
 * `adasde web`: serves the browser page with a fused sampler on 127.0.0.1 and prints the
 * address; runs until interrupted (Ctrl-C or SIGTERM ends it with exit 0). src/app/web.ts
 * does the work.
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { bundledFusedSampler } from '../app/fuse.js';
import { describeSampler, resolveWeb, startWeb } from '../app/web.js';
import { webTable, type WebOptions } from '../config/web.js';
import { defineCommand } from './command.js';
import { Progress } from './progress.js';

/** The bundled model's fused AdaSDE 5-NFE sampler (src/app/fuse.ts builds it once and caches it). */
async function defaultSampler(quiet: boolean): Promise<string> {
  let progress: Progress | undefined;
  let done = 0;
  try {
    const { path, built } = await bundledFusedSampler({
      onEvaluation: (k, total) => {
        progress ??= new Progress(total, quiet, 'evaluations', '{bar} {value}/{total} evaluations inlined (first use: fusing the bundled sampler)');
        progress.advance(k - done, 0);
        done = k;
      },
    });
    progress?.stop();
    if (built && !quiet) process.stderr.write(`adasde web: fused the bundled model's AdaSDE 5-NFE sampler into ${path}\n`);
    return path;
  } finally {
    progress?.stop();
  }
}

async function web(flags: WebOptions): Promise<void> {
  const sampler = flags.sampler !== undefined ? resolve(flags.sampler) : await defaultSampler(flags.quiet);
  const plan = resolveWeb({ sampler, host: flags.host, port: flags.port });
  const srv = await startWeb(plan);
  process.stdout.write(`adasde web: ${srv.url} (sampler ${describeSampler(plan.sampler)}; Ctrl-C stops)\n`);
  await new Promise<void>((done) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      done();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await srv.close();
  if (!flags.quiet) process.stderr.write('adasde web: stopped\n');
}

export function registerWeb(program: Command): void {
  defineCommand(program, 'web', 'serve the browser page with a fused sampler on 127.0.0.1 (onnxruntime-web, WASM or WebGPU)', webTable, web);
}
