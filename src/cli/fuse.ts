/**
 * `adasde fuse`: one ONNX graph that runs a whole sampler (noise in, images out). Parse,
 * resolve through `adasde sample`'s resolution (src/app/fuse.ts), print the plan for
 * `--dry-run`, emit and write, print the summary line.
 */
import type { Command } from 'commander';
import { describeFusePlan, resolveFuse, runFuse } from '../app/fuse.js';
import { fuseOptionTable, type FuseOptions } from '../config/fuse.js';
import type { OptionsOf } from '../config/options.js';
import { defineCommand } from './command.js';

async function fuseCommand(flags: FuseOptions): Promise<void> {
  const plan = resolveFuse(flags);
  if (flags.dryRun) {
    process.stdout.write(JSON.stringify(describeFusePlan(plan), null, 2) + '\n');
    process.stdout.write('Dry run; nothing written.\n');
    return;
  }
  const started = Date.now();
  const res = await runFuse(plan);
  if (flags.quiet) return;
  const secs = (Date.now() - started) / 1000;
  const mb = (n: number) => (n / 2 ** 20).toFixed(2);
  const extra = ((res.bytes / res.modelBytes - 1) * 100).toFixed(1);
  process.stdout.write(
    `fused ${plan.solver.solver} at ${res.nfe} NFE (inputs ${res.inputs.join(', ')}) in ${secs.toFixed(1)} s: ${mb(res.bytes)} MiB (model ${mb(res.modelBytes)} MiB, ${extra}%) -> ${res.out}\n`,
  );
}

export function registerFuse(program: Command): void {
  defineCommand(program, 'fuse', 'write one ONNX graph that runs a whole sampler (latents and noise in, images out)', fuseOptionTable, fuseCommand as (o: OptionsOf<typeof fuseOptionTable>) => Promise<void>);
}
