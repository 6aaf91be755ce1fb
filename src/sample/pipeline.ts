/**
 * From seeds to final states: draws each seed's latent (and label, and SDE noise) from its own
 * streams, runs a registered solver over a denoiser, and returns float64 states. No I/O and
 * no onnxruntime here, so the CLI, the table command, training and the tests share it.
 */
import type { SolverName } from '../solvers/registry.js';
import { SOLVER_REGISTRY, type SolverOptions } from '../solvers/registry.js';
import { scale } from '../solvers/common.js';
import { ArrayPool } from '../solvers/pool.js';
import type { Conditioning, Denoiser } from '../core/denoiser.js';
import type { StepCallback } from '../solvers/types.js';
import { oneHot, SeedNoise, seedClassIndices, seedLatents } from '../rng/streams.js';
import { checkBatchLength, elementCount } from '../core/shape.js';

export interface SolverPlan {
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
  /** Recycles the solver's temporaries; pass the same pool to every batch of a run. */
  pool?: ArrayPool;
}

/** Run one batch of seeds through the plan's solver; returns [seeds.length, dim] float64. */
export async function sampleBatch(plan: SolverPlan, denoise: Denoiser, input: BatchInput): Promise<Float64Array> {
  const dim = elementCount(plan.sampleShape);
  const batch = input.seeds.length;
  const pool = input.pool ?? new ArrayPool();
  const z = input.latents ?? seedLatents(input.seeds, dim, pool.take(batch * dim));
  checkBatchLength('latents', z, batch, dim);
  // EDM: x_0 = t_0 * z, with t_0 the first point of the (possibly user-given) schedule.
  const t0 = plan.tSteps[0]!;
  const x0 = scale(z, t0, pool.take(z.length));
  if (z !== input.latents) pool.give(z);
  let cond = input.cond;
  if (plan.labelDim > 0) cond = { ...cond, classLabels: labelsFor(input.seeds, plan.labelDim, plan.classIdx), labelDim: plan.labelDim };
  const noise = new SeedNoise(input.seeds);
  const x = await SOLVER_REGISTRY[plan.solver].sample(x0, { denoise, tSteps: plan.tSteps, batch, dim, cond, noise: noise.source, callback: input.callback, pool }, plan.options);
  // The solver leaves x_0 alone and returns a state of its own.
  if (x !== x0) pool.give(x0);
  return x;
}

/** Split a seed list into consecutive chunks of at most `size`. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let k = 0; k < items.length; k += size) out.push(items.slice(k, k + size));
  return out;
}

export interface BatchLoop {
  /** Standard-normal latents of a batch when they do not come from the seeds (`--latents`). */
  latentsFor?: (seeds: readonly number[]) => Float64Array;
  /** Per-batch conditioning (prompts), made before the batch starts. */
  condFor?: (seeds: readonly number[]) => Promise<Conditioning | undefined> | Conditioning | undefined;
  /** A per-batch step callback (intermediate states, `--return_inters`). */
  callbackFor?: (seeds: readonly number[]) => StepCallback | undefined;
  /**
   * Takes a finished batch (check, quantise, encode, write); at most one is in flight. `x` is
   * recycled once the returned promise settles: copy what must outlive it.
   */
  consume: (x: Float64Array, seeds: readonly number[]) => Promise<void>;
}

/**
 * Runs batches in order. A finished batch goes to `consume` right after the next batch has
 * started, so its image work (PNG compression and file writes on the image-writer thread,
 * src/io/image-writer.ts) proceeds while the model evaluates the next batch. onnxruntime-node runs the model synchronously on
 * this thread, so the JavaScript parts (latents, quantisation, solver arithmetic) cannot
 * overlap it; moving the latents to a worker thread costs more than it saves (measured:
 * bench/RESULTS.md, section "Sampler overhead", "Tried and dropped"). Results do not depend
 * on the order:
 * every batch sees exactly its seeds' streams.
 */
export async function runBatches(plan: SolverPlan, denoise: Denoiser, batches: readonly (readonly number[])[], loop: BatchLoop): Promise<void> {
  // One pool for the whole run: after the first batch, the solver's working set and the
  // latents are recycled instead of allocated (src/solvers/pool.ts).
  const pool = new ArrayPool();
  let prev: { x: Float64Array; seeds: readonly number[] } | undefined;
  let writing: Promise<void> | undefined;
  for (const seeds of batches) {
    const cond = await loop.condFor?.(seeds);
    // sampleBatch returns at its first model call, which onnxruntime-node starts from
    // setImmediate: consume's synchronous part runs first, its compression in parallel.
    const running = sampleBatch(plan, denoise, { seeds, latents: loop.latentsFor?.(seeds), cond, pool, callback: loop.callbackFor?.(seeds) });
    try {
      if (prev) {
        await writing;
        const done = prev;
        // A consumed batch's state goes back to the pool once consume has settled.
        writing = loop.consume(done.x, done.seeds).then(() => pool.give(done.x));
        // Awaited at the next batch; until then a failure must not count as unhandled.
        writing.catch(() => undefined);
        prev = undefined;
      }
    } catch (e) {
      await running.catch(() => undefined);
      throw e;
    }
    prev = { x: await running, seeds };
  }
  await writing;
  if (prev) await loop.consume(prev.x, prev.seeds);
}
