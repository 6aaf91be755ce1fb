/**
 * One table cell on one rank: sample this rank's share of the seeds and stream the images
 * (quantised exactly as PNGs are) into feature statistics, never writing them unless asked.
 * Finished cells are stored as .npz accumulator states named by their fingerprint.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { RunError } from '../core/errors.js';
import { FeatureStats, type FeatureStatsPartial } from '../fid/stats.js';
import { ndarray, type NdArray } from '../io/npy.js';
import { readNpz, writeNpz } from '../io/npz.js';
import { imagePath, quantizeBatch, writePng } from '../io/png.js';
import { rankBatches } from '../parallel/launcher.js';
import type { FeatureModel } from '../runtime/model.js';
import { sampleBatch } from '../sample/pipeline.js';
import type { Denoiser } from '../core/denoiser.js';
import type { SolverPlan } from '../sample/pipeline.js';
import { elementCount } from '../core/shape.js';

/** What running a cell needs of it (src/app/table-plan.ts's Cell has these and more). */
export interface CellToRun {
  label: string;
  nfe: number;
  plan?: SolverPlan;
}

export interface CellRun {
  cell: CellToRun;
  denoise: Denoiser;
  features: FeatureModel;
  seeds: readonly number[];
  batch: number;
  rank: number;
  world: number;
  /** Write the PNGs here too (--keep_images). */
  imagesDir?: string;
  onImages?: (n: number) => void;
}

/** This rank's accumulated statistics of a cell (undefined when its share is empty). */
export async function runCell(r: CellRun): Promise<FeatureStats | undefined> {
  const plan = r.cell.plan!;
  const [C, H, W] = plan.sampleShape as [number, number, number];
  const dim = elementCount(plan.sampleShape);
  let stats: FeatureStats | undefined;
  let pendingWrites: Promise<unknown> | undefined;
  for (const seeds of rankBatches(r.seeds, r.batch, r.rank, r.world)) {
    const x = await sampleBatch(plan, r.denoise, { seeds });
    // As `adasde sample`: a non-finite state would quantise to some image and give a distance
    // for a model that cannot sample.
    for (let k = 0; k < x.length; k++) {
      if (!Number.isFinite(x[k]!)) throw new RunError(`table: cell ${r.cell.label} NFE ${r.cell.nfe}: seed ${seeds[Math.floor(k / dim)]} produced a non-finite value; stopping (finished cells are kept)`);
    }
    const images = quantizeBatch(x, seeds.length, C, H, W);
    const f = await r.features.extract(images, seeds.length, [C, H, W]);
    for (let k = 0; k < f.length; k++) {
      if (!Number.isFinite(f[k]!)) throw new RunError(`table: the detector gave a non-finite feature for seed ${seeds[Math.floor(k / (f.length / seeds.length))]} (cell ${r.cell.label} NFE ${r.cell.nfe})`);
    }
    stats ??= new FeatureStats(f.length / seeds.length);
    stats.add(f, seeds.length);
    if (r.imagesDir) {
      const dir = r.imagesDir;
      const writes = Promise.all(seeds.map((s, b) => writePng(imagePath(dir, s), images.subarray(b * dim, (b + 1) * dim), C, H, W)));
      await pendingWrites;
      pendingWrites = writes;
    }
    r.onImages?.(seeds.length);
  }
  await pendingWrites;
  return stats;
}

export const cellFile = (dir: string, c: CellToRun & { fingerprint?: string }): string => join(dir, 'cells', `${c.label.replace(/[^\w.-]+/g, '_')}-nfe${c.nfe}-${c.fingerprint!.slice(0, 16)}.npz`);
export const rankFile = (cellPath: string, rank: number, world: number): string => `${cellPath}.rank${rank}of${world}.npz`;

/** Store an accumulator (possibly empty) atomically with its fingerprint. */
export async function saveStats(path: string, stats: FeatureStats | undefined, fingerprint: string): Promise<void> {
  const p = stats?.toPartial();
  const meta = new TextEncoder().encode(JSON.stringify({ format: 'adasde-table-cell', version: 1, fingerprint, n: p?.n ?? 0 }));
  const arrays: Record<string, NdArray> = { meta: ndarray('uint8', [meta.length], meta) };
  if (p) {
    arrays.shift = ndarray('float64', [p.dim], p.shift);
    arrays.sum = ndarray('float64', [p.dim], p.sum);
    arrays.sum_outer = ndarray('float64', [p.dim, p.dim], p.sumOuter);
  }
  await writeNpz(path, arrays, { compressed: false });
}

/** A stored accumulator if it exists and carries this fingerprint; null for an empty share. */
export async function loadStats(path: string, fingerprint: string): Promise<FeatureStats | null | undefined> {
  if (!existsSync(path)) return undefined;
  // A cell file is a cache: one that cannot be read is computed again (and replaced atomically).
  const m = await readNpz(path).catch(() => undefined);
  if (!m) return undefined;
  const metaArr = m.get('meta');
  if (!metaArr || metaArr.dtype !== 'uint8') return undefined;
  let meta: { fingerprint?: string; n?: number };
  try {
    meta = JSON.parse(new TextDecoder().decode(metaArr.data)) as { fingerprint?: string; n?: number };
  } catch {
    return undefined;
  }
  if (meta.fingerprint !== fingerprint) return undefined;
  const shift = m.get('shift');
  const sum = m.get('sum');
  const outer = m.get('sum_outer');
  if (!shift || !sum || !outer) return null;
  const partial: FeatureStatsPartial = {
    dim: shift.shape[0]!,
    n: meta.n ?? 0,
    shift: shift.data as Float64Array,
    sum: sum.data as Float64Array,
    sumOuter: outer.data as Float64Array,
  };
  return FeatureStats.fromPartial(partial);
}
