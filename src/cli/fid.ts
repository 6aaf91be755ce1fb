/**
 * `adasde fid calc|ref`: feature statistics and the Frechet distance (ALGORITHM.md 6).
 * Reads like EDM's fid.py: pick the images, run the detector over them in batches while
 * the next batches decode, accumulate mean and covariance in float64 (FeatureStats), then
 * either write them (`ref`) or compare them with reference statistics (`calc`).
 *
 * Several processes (--nproc_per_node, or an external launcher's RANK/WORLD_SIZE) split
 * the images; their partial sums meet as described in src/fid/partial.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { Command } from 'commander';
import { fidCalcTable, fidRefTable, type FidCalcOptions, type FidCommonOptions, type FidRefOptions } from '../config/fid.js';
import { removePendingTempFilesSync } from '../io/atomic.js';
import { prepareOutputFile } from '../io/outdir.js';
import { readStatsNpz, writeStatsNpz, type FidStats } from '../io/npz.js';
import { distEnv, runWorkers, type DistEnv } from '../parallel/launcher.js';
import { loadFeatureModel } from '../runtime/model.js';
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
import { defineCommand } from './command.js';
import { RunError, UsageError } from './errors.js';
import { localFile } from './download.js';
import { isWorker, ITEMS_ONLY, Progress } from './progress.js';

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

/** Remove our temp files (and a temp folder) if the run is interrupted. */
function onInterrupt(cleanup: () => void): () => void {
  const handler = (): void => {
    removePendingTempFilesSync();
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

interface StatsRun {
  /** The merged statistics; undefined in a process that only contributes a partial. */
  stats: FeatureStats | undefined;
  /** Images selected (all ranks). */
  n: number;
}

/** One process's share: load the detector, extract, accumulate. */
async function runShare(o: FidCommonOptions, det: DetectorInfo, sel: SelectedImages, dist: DistEnv, progress: Progress): Promise<FeatureStats | undefined> {
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
async function imageStats(o: FidCommonOptions, det: DetectorInfo, path: string, flag: string, externalBase: (fp: string) => string): Promise<StatsRun> {
  const sel = await selectImages(path, flag, o.num, o.seed);
  const n = sel.indices.length;
  // Ctrl-C: no partial file under a final name, no temp folder left behind.
  let tempDir: string | undefined;
  const release = onInterrupt(() => {
    if (tempDir) rmSync(tempDir, { recursive: true, force: true });
  });
  try {
    const dist = distEnv();
    const workerDir = launcherPartialDir();
    if (workerDir) {
      // One of our --nproc_per_node workers: global rank and world from the launcher.
      const progress = new Progress(0, true, 'images');
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
        const progress = new Progress(total, o.quiet, 'images', ITEMS_ONLY('images'));
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
      const progress = new Progress(total, o.quiet, 'images', ITEMS_ONLY('images'));
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
      if (!o.quiet) process.stderr.write(`adasde: rank ${dist.rank} of ${dist.world}: partial statistics written to ${p}; rank 0 merges\n`);
      return { stats: undefined, n };
    }
    const merge = new OrderedMerge();
    merge.add(mine);
    await collectRankPartials(base, dist.world, fingerprint, merge, {
      timeoutMs: o.partialTimeout * 1000,
      onWait: (missing) => {
        if (!o.quiet) process.stderr.write(`adasde: rank 0: waiting for rank${missing.length === 1 ? '' : 's'} ${missing.join(', ')} (${rankPartialPath(base, missing[0]!)})\n`);
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

const secondsSince = (t0: number): number => Math.round(Date.now() - t0) / 1000;

function rateText(n: number, secs: number): string {
  return `${(n / Math.max(secs, 1e-3)).toFixed(1)} images/s`;
}

function formatValue(v: number): string {
  return String(v);
}

async function runCalc(flags: FidCalcOptions): Promise<void> {
  const started = Date.now();
  // The reference's --ref takes a URL (EDM's published fid-refs); so do --ref and --detector here.
  const o = { ...flags, ref: await localFile(flags.ref, '--ref', flags.quiet), detector: await localFile(flags.detector, '--detector', flags.quiet) };
  const dist = distEnv();
  const inWorker = launcherPartialDir() !== undefined;

  if (isNpz(o.images)) {
    // Two statistics files: nothing to extract, nothing to split.
    if (inWorker || dist.rank !== 0) return;
    if (o.num !== undefined) throw new UsageError(`--num picks images; --images ${o.images} is a statistics file`);
    const a = await readStats(o.images, 'images');
    const b = await readStats(o.ref, 'ref');
    checkDims({ dim: a.dim, what: `--images ${o.images}` }, { dim: b.dim, what: `--ref ${o.ref}` });
    const metric = metricOfDim(a.dim);
    const value = checkedDistance(a.mu, a.sigma, b.mu, b.sigma, a.dim, `--images ${o.images} or --ref ${o.ref}`);
    report(o, metric, value, { n: null, detector: null, secs: secondsSince(started) });
    return;
  }

  const ref = inWorker || dist.rank !== 0 ? undefined : await readStats(o.ref, 'ref');
  const det = inspectDetector(o.detector);
  const metric = metricOf(det.signature.metadata, det.dim, det.file);
  if (ref && det.dim !== undefined) checkDims({ dim: ref.dim, what: `--ref ${o.ref}` }, { dim: det.dim, what: `the detector ${det.file}` });
  const run = await imageStats(o, det, o.images, 'images', (fp) => calcPartialBase(o.partialDir ?? '.', fp));
  if (!ref || run.stats === undefined) return;
  const stats = finalStats(run.stats, run.n);
  checkDims({ dim: ref.dim, what: `--ref ${o.ref}` }, { dim: stats.dim, what: `the detector ${det.file}'s features` });
  if (metric.key === 'fid' && !REFERENCE_COUNTS.includes(run.n)) {
    process.stderr.write(
      `adasde: warning: FID of ${run.n} images; the reference fid.py expects 10000, 30000 or 50000 and published values are not comparable to other counts\n`,
    );
  }
  // The image statistics are a covariance by construction: a problem lies in the reference.
  const value = checkedDistance(stats.mu(), stats.sigma(), ref.mu, ref.sigma, ref.dim, `--ref ${o.ref}`);
  report(o, metric, value, { n: run.n, detector: det.file, secs: secondsSince(started) });
}

function report(o: FidCalcOptions, metric: Metric, value: number, r: { n: number | null; detector: string | null; secs: number }): void {
  if (!o.quiet) {
    const what = r.n === null ? `statistics ${o.images}` : `${r.n} images from ${o.images}`;
    const speed = r.n === null ? '' : `, ${rateText(r.n, r.secs)}`;
    const by = r.detector === null ? '' : ` with ${r.detector}`;
    process.stderr.write(`adasde: ${metric.name} ${(Math.abs(value) < 5e-5 ? 0 : value).toFixed(4)}: ${what} against ${o.ref}${by} in ${r.secs.toFixed(1)} s${speed}\n`);
  }
  if (o.json) {
    const rec = { [metric.key]: value, metric: metric.key, n: r.n, detector: r.detector, ref: o.ref, images: o.images, elapsed: r.secs };
    process.stdout.write(`${JSON.stringify(rec)}\n`);
  } else {
    process.stdout.write(`${formatValue(value)}\n`);
  }
}

async function runRef(flags: FidRefOptions): Promise<void> {
  const started = Date.now();
  const o = { ...flags, detector: await localFile(flags.detector, '--detector', flags.quiet) };
  // Before the long extraction: a destination that cannot be written is refused now.
  prepareOutputFile(o.dest, '--dest');
  const det = inspectDetector(o.detector);
  const metric = metricOf(det.signature.metadata, det.dim, det.file);
  const run = await imageStats(o, det, o.data, 'data', () => (o.partialDir === undefined ? o.dest : join(o.partialDir, basename(o.dest))));
  if (run.stats === undefined) return;
  const stats = finalStats(run.stats, run.n);
  await writeStatsNpz(o.dest, stats.mu(), stats.sigma());
  if (!o.quiet) {
    const secs = secondsSince(started);
    process.stderr.write(
      `adasde: ${metric.name} reference statistics (dim ${stats.dim}) of ${run.n} images from ${o.data} written to ${o.dest} in ${secs.toFixed(1)} s, ${rateText(run.n, secs)}\n`,
    );
  }
}

export function registerFid(program: Command): void {
  const fid = program.command('fid').description('feature statistics and Frechet distances');
  defineCommand(fid, 'calc', 'FID of an image set (or statistics .npz) against reference statistics', fidCalcTable, runCalc);
  defineCommand(fid, 'ref', 'write reference statistics (mu, sigma) of an image set', fidRefTable, runRef);
}
