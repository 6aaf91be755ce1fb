/**
 * `adasde sample`: images for a seed range with AdaSDE or a baseline solver (the toolkit's
 * main job). Parse, resolve the plan (src/app/sample.ts), print it for `--dry-run`, run it,
 * print the summary line.
 */
import type { Command } from 'commander';
import { resolveSample, runSample, sampleInputs, describeSamplePlan, cfgRate } from '../app/sample.js';
import { describeFusedSamplePlan, resolveFusedSample, runFusedSample } from '../app/fused-sample.js';
import { solverFlagOptions } from '../config/common.js';
import { sampleOptionTable, type SampleOptions } from '../config/sample.js';
import type { OptionsOf } from '../config/options.js';
import { distEnv } from '../parallel/launcher.js';
import { loadDenoiserModel } from '../runtime/model.js';
import { defineCommand } from './command.js';
import { onInterrupt } from './interrupt.js';
import { Progress } from './progress.js';

/** `--fused FILE`: the sampler file replaces the model and the solver (src/app/fused-sample.ts). */
async function fusedCommand(flags: SampleOptions, given: ReadonlySet<string>): Promise<void> {
  const plan = resolveFusedSample(flags, given, Object.keys(solverFlagOptions()));
  if (flags.dryRun) {
    process.stdout.write(JSON.stringify(describeFusedSamplePlan(plan), null, 2) + '\n');
    process.stdout.write('Dry run; nothing written.\n');
    return;
  }
  const started = Date.now();
  const release = onInterrupt();
  try {
    const res = await runFusedSample(plan, { progress: (total) => new Progress(total, flags.quiet, 'images') });
    if (flags.quiet) return;
    const secs = (Date.now() - started) / 1000;
    process.stdout.write(
      `sampled ${res.images} images${res.skipped ? ` (${res.skipped} already present, skipped)` : ''} with the fused ${plan.info.solver} sampler at ${plan.info.nfe} NFE in ${secs.toFixed(1)} s -> ${res.dest}\n`,
    );
  } finally {
    release();
  }
}

async function sampleCommand(flags: SampleOptions, given: ReadonlySet<string>): Promise<void> {
  if (flags.fused !== undefined) return fusedCommand(flags, given);
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
  defineCommand(program, 'sample', 'write images for a seed range with AdaSDE or a baseline solver', sampleOptionTable, sampleCommand as (o: OptionsOf<typeof sampleOptionTable>, given: ReadonlySet<string>) => Promise<void>);
}
