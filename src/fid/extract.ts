/**
 * Image sets -> feature statistics for `adasde fid` (ALGORITHM.md 6): choose the images,
 * split them over ranks, decode them with some concurrency while the detector runs on the
 * previous batch, and feed the features to a `FeatureStats` accumulator.
 *
 * Overlap: onnxruntime-node runs a session synchronously on the main thread, so the
 * decoding runs in worker threads (decode.ts) that keep going while the detector works;
 * the next `prefetch` batches are requested before batch k goes to the model.
 */
import { UsageError } from '../core/errors.js';
import { openImageSet, pickSubset, type ImageSet, type ImageSize } from '../io/images.js';
import { rankBatches } from '../parallel/launcher.js';
import type { FeatureModel } from '../runtime/model.js';
import { DecodePool } from './decode.js';
import type { FeatureStats } from './stats.js';

/** Image counts the reference's FID numbers are published for (EDM fid.py, ALGORITHM.md 6). */
export const REFERENCE_COUNTS: readonly number[] = [10000, 30000, 50000];

export interface SelectedImages {
  set: ImageSet;
  /** Indices into `set.names`, ascending. */
  indices: number[];
}

/**
 * Open a folder or zip and pick the images to use: all of them, or `num` chosen from
 * `seed` exactly as the reference's fid.py does (`pickSubset`). Fewer than 2 images is a
 * UsageError (a covariance needs two samples).
 */
export async function selectImages(path: string, flag: string, num: number | undefined, seed: number): Promise<SelectedImages> {
  const set = await openImageSet(path).catch((e: unknown) => {
    if (e instanceof UsageError) throw new UsageError(`--${flag}: ${e.message}`);
    throw e;
  });
  try {
    if (num !== undefined && num > set.count) {
      throw new UsageError(`--num ${num}: ${path} has only ${set.count} image${set.count === 1 ? '' : 's'}`);
    }
    const indices = num === undefined ? Array.from({ length: set.count }, (_, i) => i) : pickSubset(set.count, num, seed);
    if (indices.length < 2) {
      throw new UsageError(`--${flag}: ${path} has ${indices.length} image; statistics need at least 2 (a covariance)`);
    }
    return { set, indices };
  } catch (e) {
    await set.close();
    throw e;
  }
}

/** This rank's share of the selected images, in batches (the reference's split of a list). */
export function shareOf(indices: readonly number[], batch: number, rank: number, world: number): number[][] {
  return rankBatches(indices, batch, rank, world);
}

export interface ExtractOptions {
  /** Decoding threads (default 1; 0: on the main thread, without overlap). */
  threads?: number;
  /** Images decoding at the same time per thread (default 8). */
  concurrency?: number;
  /** Batches decoded ahead of the one the model is working on (default 2). */
  prefetch?: number;
  /** After each batch: its image count. */
  onBatch?: (images: number) => void;
}

export interface ExtractResult {
  images: number;
  /** Milliseconds the detector ran (main thread blocked). */
  modelMs: number;
  /** Milliseconds spent waiting for decoded images (decoding not hidden behind the model). */
  waitMs: number;
  /** Milliseconds in FeatureStats.add. */
  statsMs: number;
}

/**
 * Decode `batches` of `set`, run `model` on them and accumulate the features into `stats`
 * (created by `makeStats(D)` once the feature dimension D is known, i.e. after the first
 * batch if the graph does not fix it). Every image must have the size `size` of the first
 * selected image `firstName`; the first one that differs is a UsageError naming both files.
 */
export async function extractStats(
  model: FeatureModel,
  set: ImageSet,
  batches: readonly (readonly number[])[],
  size: ImageSize,
  firstName: string,
  makeStats: (dim: number) => FeatureStats,
  opts: ExtractOptions = {},
): Promise<{ stats: FeatureStats | undefined } & ExtractResult> {
  const { width: W, height: H } = size;
  const prefetch = Math.max(1, opts.prefetch ?? 2);
  // A thread takes a few hundred ms to start (it loads sharp and opens the set); for one or
  // two batches decoding here is quicker.
  const threads = batches.length >= 3 ? (opts.threads ?? 1) : 0;
  const pool = DecodePool.create(set, size, firstName, { threads, concurrency: opts.concurrency ?? 8 });
  const pending: Array<Promise<Uint8Array>> = [];
  const ensure = (upTo: number): void => {
    for (let k = pending.length; k <= Math.min(upTo, batches.length - 1); k++) {
      const p = pool.decode(batches[k]!);
      p.catch(() => undefined); // observed when awaited; no unhandled rejection meanwhile
      pending.push(p);
    }
  };

  let stats: FeatureStats | undefined;
  const res: ExtractResult = { images: 0, modelMs: 0, waitMs: 0, statsMs: 0 };
  try {
    for (let k = 0; k < batches.length; k++) {
      ensure(k + prefetch);
      const t0 = performance.now();
      const pixels = await pending[k]!;
      pending[k] = Promise.resolve(new Uint8Array(0)); // let the batch's pixels go
      const t1 = performance.now();
      const n = batches[k]!.length;
      const features = await model.extract(pixels, n, [3, H, W]);
      const t2 = performance.now();
      stats ??= makeStats(features.length / n);
      stats.add(features, n);
      const t3 = performance.now();
      res.waitMs += t1 - t0;
      res.modelMs += t2 - t1;
      res.statsMs += t3 - t2;
      res.images += n;
      opts.onBatch?.(n);
    }
  } finally {
    await pool.close();
  }
  return { stats, ...res };
}
