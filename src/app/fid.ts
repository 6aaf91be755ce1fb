/**
 * `adasde fid calc|ref` below the CLI: feature statistics and the Frechet distance
 * (ALGORITHM.md 6). Reads like EDM's fid.py: pick the images, run the detector over them in
 * batches while the next batches decode, accumulate mean and covariance in float64
 * (FeatureStats), then either write them (`ref`) or compare them with reference statistics
 * (`calc`).
 *
 * Several processes (--nproc_per_node, or an external launcher's RANK/WORLD_SIZE) split
 * the images; their partial sums meet as described in src/fid/partial.ts. `resolveFidCalc`
 * / `resolveFidRef` give the plan, `runFidCalc` / `runFidRef` carry it out and return what
 * src/cli/fid.ts reports; progress, notices and Ctrl-C go through `FidSinks`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { FidCalcOptions, FidCommonOptions, FidRefOptions } from '../config/fid.js';
import { inspectDetector, metricOf, metricOfDim, type DetectorInfo, type Metric } from '../fid/detector.js';
import { extractStats, REFERENCE_COUNTS, selectImages, shareOf, type SelectedImages } from '../fid/extract.js';
import { distanceProblem, frechetDetails, negativeEigenvalueRatio, NOT_PSD_RATIO } from '../fid/frechet.js';
import {
  calcPartialBase,
  collectRankPartials,
  OrderedMerge,
  PARTIAL_DIR_ENV,
  readPartial,
  rankPartialPath,
  runFingerprint,
  workerPartialPath,
  writePartial,
} from '../fid/partial.js';
import { FeatureStats } from '../fid/stats.js';
import { prepareOutputFile } from '../io/outdir.js';
import { readStatsNpz, writeStatsNpz, type FidStats } from '../io/npz.js';
import { distEnv, isWorker, runWorkers, type DistEnv } from '../parallel/launcher.js';
import { loadFeatureModel } from '../runtime/model.js';
import { RunError, UsageError } from '../core/errors.js';

/** Progress over images; inside a --nproc_per_node worker it reports to the launcher. */
export interface FidProgress {
  advance(items: number, nfe: number): void;
  /** Launcher side: a worker's progress message. */
  fromWorker(msg: unknown): void;
  stop(): void;
}

export interface FidSinks {
  progress(total: number): FidProgress;
  /** A one-line status for the user (the CLI drops it under --quiet). */
  notice(line: string): void;
  /** A one-line warning printed even under --quiet. */
  warn(line: string): void;
  /** Runs `cleanup` if the process is interrupted (Ctrl-C, SIGTERM); returns the release. */
  onInterrupt(cleanup: () => void): () => void;
}

const isNpz = (p: string): boolean => /\.npz$/i.test(p);

/** A worker started by our own `--nproc_per_node` launcher (its partial goes to a temp folder). */
function launcherPartialDir(): string | undefined {
  const d = process.env[PARTIAL_DIR_ENV];
  return d && isWorker() ? d : undefined;
}

async function readStats(path: string, flag: string): Promise<FidStats> {
  let s: FidStats;
  try {
    s = await readStatsNpz(path);
  } catch (e) {
    if (e instanceof UsageError) throw new UsageError(`--${flag}: ${e.message}`);
    throw e;
  }
  checkCovariance(s, `--${flag}: ${path}`);
  return s;
}

/**
 * Refuses a statistics file whose `sigma` has a clearly negative eigenvalue (hand-made or
 * corrupted: a FID against it can come out negative, or plausible and wrong).
 */
export function checkCovariance(s: FidStats, what: string): void {
  const ratio = negativeEigenvalueRatio(s.sigma, s.dim);
  if (ratio > NOT_PSD_RATIO) {
    throw new UsageError(`${what}: member 'sigma' is not positive semi-definite (an eigenvalue of relative size -${ratio.toPrecision(3)}); expected a covariance`);
  }
}

/** The Frechet distance, refused (one line naming `what`) when the statistics cannot be covariances. */
export function checkedDistance(mu1: Float64Array, s1: Float64Array, mu2: Float64Array, s2: Float64Array, dim: number, what: string): number {
  const d = frechetDetails(mu1, s1, mu2, s2, dim);
  const bad = distanceProblem(d);
  if (bad) throw new UsageError(`${what}: ${bad}`);
  return d.fid;
}

function checkDims(a: { dim: number; what: string }, b: { dim: number; what: string }): void {
  if (a.dim !== b.dim) throw new UsageError(`${a.what} has dimension ${a.dim} but ${b.what} has ${b.dim}; they must come from the same detector`);
}

interface StatsRun {
  /** The merged statistics; undefined in a process that only contributes a partial. */
  stats: FeatureStats | undefined;
  /** Images selected (all ranks). */
  n: number;
}

/** One process's share: load the detector, extract, accumulate. */
async function runShare(o: FidCommonOptions, det: DetectorInfo, sel: SelectedImages, dist: DistEnv, progress: FidProgress): Promise<FeatureStats | undefined> {
  const batches = shareOf(sel.indices, o.batch, dist.rank, dist.world);
  if (batches.length === 0) return undefined;
  const device = o.device === 'cuda' && dist.world > 1 ? `cuda:${dist.localRank}` : o.device;
  const model = await loadFeatureModel(det.file, { device, threads: o.threads || undefined, maxBatch: o.batch });
  try {
    const first = sel.indices[0]!;
    const size = await sel.set.size(first);
    const r = await extractStats(model, sel.set, batches, size, sel.set.names[first]!, (d) => new FeatureStats(d), {
      threads: o.decoders,
      onBatch: (n) => progress.advance(n, n),
    });
    return r.stats;
  } finally {
    await model.dispose();
  }
}

/**
 * Statistics of the images at `path` over all ranks. In rank 0 (or a lone process) returns
 * them merged; in other ranks and in `--nproc_per_node` workers writes this process's
 * partial and returns `stats: undefined`.
 */
async function imageStats(o: FidCommonOptions, det: DetectorInfo, path: string, flag: string, externalBase: (fp: string) => string, sinks: FidSinks): Promise<StatsRun> {
  const sel = await selectImages(path, flag, o.num, o.seed);
  const n = sel.indices.length;
  // Ctrl-C: no partial file under a final name, no temp folder left behind.
  let tempDir: string | undefined;
  const release = sinks.onInterrupt(() => {
    if (tempDir) rmSync(tempDir, { recursive: true, force: true });
  });
  try {
    const dist = distEnv();
    const workerDir = launcherPartialDir();
    if (workerDir) {
      // One of our --nproc_per_node workers: global rank and world from the launcher.
      const progress = sinks.progress(0);
      const stats = await runShare(o, det, sel, dist, progress);
      const fingerprint = runFingerprint({ names: sel.set.names, indices: sel.indices, batch: o.batch, world: dist.world, detector: det.file });
      await writePartial(workerPartialPath(workerDir, dist.rank), stats, { rank: dist.rank, world: dist.world, fingerprint });
      return { stats: undefined, n };
    }

    let mine: FeatureStats | undefined;
    if (o.nprocPerNode > 1) {
      const N = o.nprocPerNode;
      const world = dist.world * N;
      const ranks = Array.from({ length: N }, (_, l) => dist.rank * N + l);
      const total = ranks.reduce((s, g) => s + shareOf(sel.indices, o.batch, g, world).flat().length, 0);
      const dir = mkdtempSync(join(tmpdir(), 'adasde-fid-'));
      tempDir = dir;
      process.env[PARTIAL_DIR_ENV] = dir;
      try {
        const progress = sinks.progress(total);
        try {
          await runWorkers(N, process.argv, dist, (msg) => progress.fromWorker(msg));
        } finally {
          progress.stop();
        }
        const merge = new OrderedMerge();
        for (const g of ranks) merge.add((await readPartial(workerPartialPath(dir, g))).stats);
        mine = merge.total;
      } finally {
        delete process.env[PARTIAL_DIR_ENV];
        await rm(dir, { recursive: true, force: true });
        tempDir = undefined;
      }
    } else {
      const total = shareOf(sel.indices, o.batch, dist.rank, dist.world).flat().length;
      const progress = sinks.progress(total);
      try {
        mine = await runShare(o, det, sel, dist, progress);
      } finally {
        progress.stop();
      }
    }
    if (dist.world === 1) return { stats: mine, n };

    // External launcher: ranks meet through files beside the output (src/fid/partial.ts).
    const fingerprint = runFingerprint({ names: sel.set.names, indices: sel.indices, batch: o.batch, world: dist.world, detector: det.file });
    const base = externalBase(fingerprint);
    if (dist.rank !== 0) {
      const p = rankPartialPath(base, dist.rank);
      await writePartial(p, mine, { rank: dist.rank, world: dist.world, fingerprint });
      sinks.notice(`rank ${dist.rank} of ${dist.world}: partial statistics written to ${p}; rank 0 merges`);
      return { stats: undefined, n };
    }
    const merge = new OrderedMerge();
    merge.add(mine);
    await collectRankPartials(base, dist.world, fingerprint, merge, {
      timeoutMs: o.partialTimeout * 1000,
      onWait: (missing) => {
        sinks.notice(`rank 0: waiting for rank${missing.length === 1 ? '' : 's'} ${missing.join(', ')} (${rankPartialPath(base, missing[0]!)})`);
      },
    });
    return { stats: merge.total, n };
  } finally {
    release();
    await sel.set.close();
  }
}

function finalStats(stats: FeatureStats | undefined, n: number): FeatureStats {
  if (!stats || stats.n !== n) throw new RunError(`internal: accumulated ${stats?.n ?? 0} of ${n} images`);
  return stats;
}

/** `fid calc`: the options with --ref and --detector as local files, and what --images is. */
export interface FidCalcPlan {
  opts: FidCalcOptions;
  /** --images is a statistics .npz: two statistics files, nothing to extract. */
  statsOnly: boolean;
}

/** `local`: --ref and --detector themselves, or for URLs their cached downloads. */
export function resolveFidCalc(flags: FidCalcOptions, local: { ref: string; detector: string }): FidCalcPlan {
  return { opts: { ...flags, ref: local.ref, detector: local.detector }, statsOnly: isNpz(flags.images) };
}

/** A distance and what it was computed from (`n` and `detector` null for two statistics files). */
export interface FidCalcResult {
  metric: Metric;
  value: number;
  n: number | null;
  detector: string | null;
}

/** The distance in the main process; undefined in a process that only contributed a partial. */
export async function runFidCalc(plan: FidCalcPlan, sinks: FidSinks): Promise<FidCalcResult | undefined> {
  const o = plan.opts;
  const dist = distEnv();
  const inWorker = launcherPartialDir() !== undefined;

  if (plan.statsOnly) {
    // Two statistics files: nothing to extract, nothing to split.
    if (inWorker || dist.rank !== 0) return undefined;
    if (o.num !== undefined) throw new UsageError(`--num picks images; --images ${o.images} is a statistics file`);
    const a = await readStats(o.images, 'images');
    const b = await readStats(o.ref, 'ref');
    checkDims({ dim: a.dim, what: `--images ${o.images}` }, { dim: b.dim, what: `--ref ${o.ref}` });
    const metric = metricOfDim(a.dim);
    const value = checkedDistance(a.mu, a.sigma, b.mu, b.sigma, a.dim, `--images ${o.images} or --ref ${o.ref}`);
    return { metric, value, n: null, detector: null };
  }

  const ref = inWorker || dist.rank !== 0 ? undefined : await readStats(o.ref, 'ref');
  const det = inspectDetector(o.detector);
  const metric = metricOf(det.signature.metadata, det.dim, det.file);
  if (ref && det.dim !== undefined) checkDims({ dim: ref.dim, what: `--ref ${o.ref}` }, { dim: det.dim, what: `the detector ${det.file}` });
  const run = await imageStats(o, det, o.images, 'images', (fp) => calcPartialBase(o.partialDir ?? '.', fp), sinks);
  if (!ref || run.stats === undefined) return undefined;
  const stats = finalStats(run.stats, run.n);
  checkDims({ dim: ref.dim, what: `--ref ${o.ref}` }, { dim: stats.dim, what: `the detector ${det.file}'s features` });
  if (metric.key === 'fid' && !REFERENCE_COUNTS.includes(run.n)) {
    sinks.warn(`warning: FID of ${run.n} images; the reference fid.py expects 10000, 30000 or 50000 and published values are not comparable to other counts`);
  }
  // The image statistics are a covariance by construction: a problem lies in the reference.
  const value = checkedDistance(stats.mu(), stats.sigma(), ref.mu, ref.sigma, ref.dim, `--ref ${o.ref}`);
  return { metric, value, n: run.n, detector: det.file };
}

/** `fid ref`: the options with --detector as a local file. */
export interface FidRefPlan {
  opts: FidRefOptions;
}

export function resolveFidRef(flags: FidRefOptions, local: { detector: string }): FidRefPlan {
  return { opts: { ...flags, detector: local.detector } };
}

export interface FidRefResult {
  metric: Metric;
  dim: number;
  n: number;
  dest: string;
}

/** Writes the reference statistics in the main process; undefined in a process that only contributed a partial. */
export async function runFidRef(plan: FidRefPlan, sinks: FidSinks): Promise<FidRefResult | undefined> {
  const o = plan.opts;
  // Before the long extraction: a destination that cannot be written is refused now.
  prepareOutputFile(o.dest, '--dest');
  const det = inspectDetector(o.detector);
  const metric = metricOf(det.signature.metadata, det.dim, det.file);
  const run = await imageStats(o, det, o.data, 'data', () => (o.partialDir === undefined ? o.dest : join(o.partialDir, basename(o.dest))), sinks);
  if (run.stats === undefined) return undefined;
  const stats = finalStats(run.stats, run.n);
  await writeStatsNpz(o.dest, stats.mu(), stats.sigma());
  return { metric, dim: stats.dim, n: run.n, dest: o.dest };
}
