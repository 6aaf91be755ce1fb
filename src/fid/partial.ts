/**
 * Partial feature statistics of one rank, on disk, and the protocol that combines them.
 *
 * A partial file is an `.npz` written atomically (never visible half-written) with the
 * accumulator state of `FeatureStats.toPartial()` — `n`, `shift`, `sum`, `sum_outer`,
 * float64 — and `meta`, UTF-8 JSON bytes: `{format, version, rank, world, fingerprint}`.
 * The fingerprint identifies the run (selected image names, --num/--seed, batch, detector
 * file and size, world size, and the launcher's job id when there is one), so a leftover
 * file of another run is never merged.
 *
 * Merging always goes in rank order 0, 1, ..., W-1 into rank 0's accumulator, so a run
 * with a given world size is deterministic; against a single process the statistics agree
 * to ~1e-15 relative (the sums are grouped differently).
 *
 * Two ways ranks meet (README, "## FID"):
 *  * `--nproc_per_node N` (our launcher): the launcher makes a temporary folder, passes it
 *    to its workers in ADASDE_FID_PARTIAL_DIR, each worker writes `rank<g>.partial` there
 *    and exits; the launcher merges them once all workers succeeded, and removes the folder.
 *  * External launchers (torchrun, srun, ... : WORLD_SIZE > 1 without ours): every rank r > 0
 *    writes `<base>.rank<r>.partial` and exits; rank 0 does its share, then waits (polling,
 *    up to --partial_timeout seconds) for all of them, merges, removes them and writes the
 *    result. `<base>` is `--dest` for `fid ref` and `<partial_dir>/fid-calc-<fingerprint>`
 *    for `fid calc`; the folder must be shared by all ranks (a network file system).
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { RunError } from '../core/errors.js';
import { ndarray, type NdArray } from '../io/npy.js';
import { readNpz, writeNpz } from '../io/npz.js';
import { FeatureStats } from './stats.js';

export const PARTIAL_FORMAT = 'adasde-fid-partial';
const PARTIAL_VERSION = 1;

/** Set by `--nproc_per_node` for its workers: where they leave their partial sums. */
export const PARTIAL_DIR_ENV = 'ADASDE_FID_PARTIAL_DIR';

export interface PartialMeta {
  format: string;
  version: number;
  rank: number;
  world: number;
  fingerprint: string;
}

/** Identity of a run: same images, subset, split and detector on every rank. */
export function runFingerprint(parts: {
  names: readonly string[];
  indices: readonly number[];
  batch: number;
  world: number;
  detector: string;
}): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ n: parts.indices.length, batch: parts.batch, world: parts.world }));
  for (const i of parts.indices) h.update(`${parts.names[i]}\n`);
  let size = -1;
  try {
    size = statSync(parts.detector).size;
  } catch {
    // the caller has already checked the detector; keep going without its size
  }
  h.update(`${basename(parts.detector)}:${size}\n`);
  // The launcher's job identity, when it has one, separates consecutive identical runs.
  for (const v of ['TORCHELASTIC_RUN_ID', 'SLURM_JOB_ID', 'SLURM_STEP_ID', 'MASTER_ADDR', 'MASTER_PORT']) {
    h.update(`${v}=${process.env[v] ?? ''}\n`);
  }
  return h.digest('hex').slice(0, 16);
}

/** Write this rank's state; `stats` undefined means the rank had no images. */
export async function writePartial(path: string, stats: FeatureStats | undefined, meta: Omit<PartialMeta, 'format' | 'version'>): Promise<void> {
  const full: PartialMeta = { format: PARTIAL_FORMAT, version: PARTIAL_VERSION, ...meta };
  const metaBytes = new Uint8Array(Buffer.from(JSON.stringify(full), 'utf8'));
  const arrays: Record<string, NdArray> = { meta: ndarray('uint8', [metaBytes.length], metaBytes) };
  if (stats && stats.n > 0) {
    const p = stats.toPartial();
    arrays.n = ndarray('float64', [], Float64Array.of(p.n));
    arrays.shift = ndarray('float64', [p.dim], p.shift);
    arrays.sum = ndarray('float64', [p.dim], p.sum);
    arrays.sum_outer = ndarray('float64', [p.dim, p.dim], p.sumOuter);
  } else {
    arrays.n = ndarray('float64', [], Float64Array.of(0));
  }
  await writeNpz(path, arrays);
}

export interface LoadedPartial {
  meta: PartialMeta;
  /** Undefined for a rank without images. */
  stats: FeatureStats | undefined;
}

function f64(a: NdArray | undefined, what: string, path: string): Float64Array {
  if (!a || a.dtype !== 'float64') throw new RunError(`${path}: not a partial statistics file (member '${what}' missing or not float64)`);
  return a.data;
}

/** Read the metadata only (cheap check before the big arrays). */
export async function readPartialMeta(path: string): Promise<PartialMeta | undefined> {
  try {
    const m = (await readNpz(path, { names: ['meta'] })).get('meta');
    if (!m || m.dtype !== 'uint8') return undefined;
    const doc = JSON.parse(Buffer.from(m.data).toString('utf8')) as Partial<PartialMeta>;
    if (doc.format !== PARTIAL_FORMAT || doc.version !== PARTIAL_VERSION) return undefined;
    if (typeof doc.rank !== 'number' || typeof doc.world !== 'number' || typeof doc.fingerprint !== 'string') return undefined;
    return doc as PartialMeta;
  } catch {
    return undefined;
  }
}

export async function readPartial(path: string): Promise<LoadedPartial> {
  const meta = await readPartialMeta(path);
  if (!meta) throw new RunError(`${path}: not a partial statistics file of this version`);
  const arrays = await readNpz(path);
  const n = f64(arrays.get('n'), 'n', path)[0]!;
  if (n === 0) return { meta, stats: undefined };
  const shift = f64(arrays.get('shift'), 'shift', path);
  const dim = shift.length;
  const stats = FeatureStats.fromPartial({
    dim,
    n,
    shift,
    sum: f64(arrays.get('sum'), 'sum', path),
    sumOuter: f64(arrays.get('sum_outer'), 'sum_outer', path),
  });
  return { meta, stats };
}

/**
 * Merges accumulators in the order they are added (rank order), into the first non-empty
 * one, so at most two are in memory at a time; undefined stands for a rank without images.
 */
export class OrderedMerge {
  private acc: FeatureStats | undefined;
  add(p: FeatureStats | undefined): void {
    if (!p || p.n === 0) return;
    if (!this.acc) this.acc = p;
    else {
      if (p.dim !== this.acc.dim) throw new RunError(`partial statistics disagree on the feature dimension (${this.acc.dim} vs ${p.dim})`);
      this.acc.merge(p);
    }
  }
  get total(): FeatureStats | undefined {
    return this.acc;
  }
}

/** Where `--nproc_per_node` worker `rank` leaves its partial. */
export const workerPartialPath = (dir: string, rank: number): string => join(dir, `rank${rank}.partial`);

/** Where rank `rank` of an external launcher leaves its partial. */
export const rankPartialPath = (base: string, rank: number): string => `${base}.rank${rank}.partial`;

/** `fid calc`'s base name for external-launcher partials. */
export const calcPartialBase = (dir: string, fingerprint: string): string => join(dir, `fid-calc-${fingerprint}`);

export interface WaitOptions {
  timeoutMs: number;
  pollMs?: number;
  /** Called while waiting, with the ranks still missing. */
  onWait?: (missing: number[]) => void;
}

/**
 * Rank 0 of an external launcher: wait for the partials of ranks 1..world-1 (files whose
 * meta matches this run; others are left alone, as the right rank may still overwrite
 * them), merge each into `merge` in rank order as soon as it and its predecessors are
 * there, and remove the files at the end.
 */
export async function collectRankPartials(base: string, world: number, fingerprint: string, merge: OrderedMerge, opts: WaitOptions): Promise<void> {
  const poll = opts.pollMs ?? 200;
  const deadline = Date.now() + opts.timeoutMs;
  const stale = new Set<number>();
  let next = 1;
  let lastReport = Date.now();
  while (next < world) {
    const p = rankPartialPath(base, next);
    if (existsSync(p)) {
      const meta = await readPartialMeta(p);
      if (meta && meta.fingerprint === fingerprint && meta.world === world && meta.rank === next) {
        stale.delete(next);
        merge.add((await readPartial(p)).stats);
        next++;
        continue;
      }
      stale.add(next);
    }
    const missing: number[] = [];
    for (let r = next; r < world; r++) {
      const q = rankPartialPath(base, r);
      if (r === next || !existsSync(q)) missing.push(r);
    }
    if (Date.now() >= deadline) {
      const staleNote = stale.size ? `; ${[...stale].map((r) => rankPartialPath(base, r)).join(', ')} belong${stale.size === 1 ? 's' : ''} to another run` : '';
      throw new RunError(
        `rank 0 waited ${(opts.timeoutMs / 1000).toFixed(opts.timeoutMs < 10_000 ? 1 : 0)} s for the partial statistics of rank${missing.length === 1 ? '' : 's'} ${missing.join(', ')} (${rankPartialPath(base, missing[0]!)}${missing.length > 1 ? ', ...' : ''})${staleNote}; did they fail, or do the ranks not share ${resolve(dirname(base))}?`,
      );
    }
    if (opts.onWait && Date.now() - lastReport >= 30_000) {
      lastReport = Date.now();
      opts.onWait(missing);
    }
    await new Promise((res) => setTimeout(res, poll));
  }
  for (let r = 1; r < world; r++) await rm(rankPartialPath(base, r), { force: true });
}
