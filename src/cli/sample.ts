/**
 * `adasde sample`: images for a seed range with AdaSDE or a baseline solver (the toolkit's
 * main job). Parse, resolve the plan (src/app/sample.ts), print it for `--dry-run`, run it,
 * print the summary line.
 */
import type { Command } from 'commander';
import { resolveSample, runSample, sampleInputs, describeSamplePlan, cfgRate } from '../app/sample.js';
import { sampleOptionTable, type SampleOptions } from '../config/sample.js';
import type { OptionsOf } from '../config/options.js';
import { distEnv } from '../parallel/launcher.js';
import { loadDenoiserModel } from '../runtime/model.js';
import { defineCommand } from './command.js';
import { onInterrupt } from './interrupt.js';
import { Progress } from './progress.js';

async function sampleCommand(flags: SampleOptions): Promise<void> {
  const outer = distEnv();
  const inputs = sampleInputs(flags);
  const o = inputs.flags;
  const device = o.device === 'cuda' && outer.world > 1 ? `cuda:${outer.localRank}` : o.device;
  const model = await loadDenoiserModel(inputs.modelFile, { device, threads: o.threads || undefined, maxBatch: o.batch, guidanceRate: cfgRate(o) });
  let plan;
  try {
    plan = resolveSample(inputs, model, outer.world);
  } catch (e) {
    await model.dispose();
    throw e;
  }
  if (o.dryRun) {
    await model.dispose();
    process.stdout.write(JSON.stringify(describeSamplePlan(plan), null, 2) + '\n');
    process.stdout.write('Dry run; nothing written.\n');
    return;
  }
  const started = Date.now();
  // Nothing partial is ever under a final name; remove the temp files in flight and stop.
  const release = onInterrupt();
  try {
    const res = await runSample(plan, model, outer, { progress: (total) => new Progress(total, o.quiet, 'images') });
    if (res.partial || o.quiet) return;
    const secs = (Date.now() - started) / 1000;
    process.stdout.write(
      `sampled ${o.seeds.length - res.skipped} images${res.skipped ? ` (${res.skipped} already present, skipped)` : ''} with ${plan.solver.solver} at ${plan.nfe} NFE in ${secs.toFixed(1)} s -> ${res.dest}\n`,
    );
  } finally {
    release();
  }
}

export function registerSample(program: Command): void {
  // The table's solver flags are typed by the solvers' own options (SampleOptions).
  defineCommand(program, 'sample', 'write images for a seed range with AdaSDE or a baseline solver', sampleOptionTable, sampleCommand as (o: OptionsOf<typeof sampleOptionTable>) => Promise<void>);
}
