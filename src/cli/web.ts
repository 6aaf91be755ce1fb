/**
 * `adasde web`: serves the browser page with a fused sampler on 127.0.0.1 and prints the
 * address; runs until interrupted (Ctrl-C or SIGTERM ends it with exit 0). src/app/web.ts
 * does the work.
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { describeSampler, resolveWeb, startWeb } from '../app/web.js';
import { webTable, type WebOptions } from '../config/web.js';
import { defineCommand } from './command.js';
import { bundledFusedSampler } from '../app/fuse.js';

async function web(flags: WebOptions): Promise<void> {
  // Without --sampler: the bundled model's fused AdaSDE 5-NFE sampler, built on first use.
  const sampler = flags.sampler !== undefined ? resolve(flags.sampler) : await bundledFusedSampler((line) => flags.quiet || process.stderr.write(line + '\n'));
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
