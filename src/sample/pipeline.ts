/**
 * From seeds to final states: draws each seed's latent (and label, and SDE noise) from its own
 * streams, runs a registered solver over a denoiser, and returns float64 states. No I/O and
 * no onnxruntime here, so the CLI, the table command, training and the tests share it.
 */
import type { SolverName } from '../config/common.js';
import { SOLVER_REGISTRY, type SolverOptions } from '../solvers/registry.js';
import type { Conditioning, Denoiser, StepCallback } from '../solvers/types.js';
import { oneHot, SeedNoise, seedClassIndices, seedLatents } from '../rng/streams.js';

export interface SamplePlan {
  solver: SolverName;
  options: SolverOptions;
  tSteps: Float64Array;
  /** [C, H, W] of one sample. */
  sampleShape: readonly number[];
  /** Class-conditional models: number of classes (0 for unconditional). */
  labelDim: number;
  /** Fixed class for every image (`--class`), else drawn per seed. */
  classIdx?: number;
}

export const sampleDim = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** One-hot labels of a list of seeds (fixed class or the seed's own draw). */
export function labelsFor(seeds: readonly number[], labelDim: number, classIdx?: number): Float32Array {
  const idx = classIdx === undefined ? seedClassIndices(seeds, labelDim) : seeds.map(() => classIdx);
  return oneHot(idx, labelDim);
}

export interface BatchInput {
  seeds: readonly number[];
  /** Standard-normal latents replacing the seed-drawn ones ([seeds.length, dim]); scaled by t_0 here. */
  latents?: Float64Array;
  /** Extra conditioning (text states for prompts), row-aligned with the seeds. */
  cond?: Conditioning;
  callback?: StepCallback;
}

/** Run one batch of seeds through the plan's solver; returns [seeds.length, dim] float64. */
export async function sampleBatch(plan: SamplePlan, denoise: Denoiser, input: BatchInput): Promise<Float64Array> {
  const dim = sampleDim(plan.sampleShape);
  const batch = input.seeds.length;
  const z = input.latents ?? seedLatents(input.seeds, dim);
  if (z.length !== batch * dim) throw new RangeError(`latents hold ${z.length} values, expected ${batch * dim}`);
  // EDM: x_0 = t_0 * z, with t_0 the first point of the (possibly user-given) schedule.
  const t0 = plan.tSteps[0]!;
  const x0 = new Float64Array(z.length);
  for (let k = 0; k < z.length; k++) x0[k] = z[k]! * t0;
  let cond = input.cond;
  if (plan.labelDim > 0) cond = { ...cond, classLabels: labelsFor(input.seeds, plan.labelDim, plan.classIdx), labelDim: plan.labelDim };
  const noise = new SeedNoise(input.seeds);
  return SOLVER_REGISTRY[plan.solver].run(x0, { denoise, tSteps: plan.tSteps, batch, dim, cond, noise: noise.source, callback: input.callback }, plan.options);
}

/** Split a seed list into consecutive chunks of at most `size`. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let k = 0; k < items.length; k += size) out.push(items.slice(k, k + size));
  return out;
}
