/**
 * `adasde table` as an application: `tableInputs` reads the flags and the spec file,
 * `resolveTable` plans every cell through `adasde sample`'s resolution (src/app/sample.ts
 * resolveSolver, by way of src/app/table-plan.ts planCell) and says which are stored already,
 * `runTable` computes the missing cells and writes table.md/.csv/.json and the chart. Every
 * cell (row x NFE) samples its seeds and streams the images into feature statistics;
 * finished cells are stored under <outdir>/cells/ by fingerprint, so an interrupted table
 * resumes and a table that grows by a row or a column computes only what is new.
 */
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { writeTableChart } from '../charts/table.js';
import { firstLine, RunError, UsageError } from '../core/errors.js';
import { checkCovariance, checkedDistance } from './fid.js';
import { checkSeedList, DEFAULT_DETECTOR } from '../config/common.js';
import { tableSpecSchema, type TableOptions, type TableRow, type TableSpec } from '../config/table.js';
import { inspectDetector, metricOf, type Metric } from '../fid/detector.js';
import type { FeatureStats } from '../fid/stats.js';
import { removeStaleTempFiles, writeFileAtomic } from '../io/atomic.js';
import { cachePath, isUrl } from '../io/download.js';
import { readStatsNpz } from '../io/npz.js';
import { prepareOutdir } from '../io/outdir.js';
import { runWorkers, type DistEnv } from '../parallel/launcher.js';
import { loadFeatureModel, type DenoiserModel } from '../runtime/model.js';
import { cellFile, loadStats, rankFile, runCell, saveStats } from '../table/cell.js';
import { cellCommand, planCell, type Cell, type CellCommand } from './table-plan.js';
import { noteLine, resolveModelFile } from './models.js';
import type { SampleModelInfo } from './sample.js';

/** The paper's published table, shipped with the package (`--compare published`). */
export const PUBLISHED_FID = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bench', 'published-fid.json');

const publishedSchema = z.object({
  source: z.string().optional(),
  nfe: z.array(z.number()),
  datasets: z.record(z.string(), z.record(z.string(), z.array(z.number().nullable()))),
});

function loadSpec(path: string): TableSpec {
  if (!existsSync(path)) throw new UsageError(`--spec: ${path} does not exist`);
  const text = readFileSync(path, 'utf8');
  let data: unknown;
  try {
    data = ['.yaml', '.yml'].includes(extname(path).toLowerCase()) ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--spec: ${path} is not valid ${extname(path).toLowerCase().startsWith('.y') ? 'YAML' : 'JSON'} (${firstLine(e)})`);
  }
  const r = tableSpecSchema.safeParse(data);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new UsageError(`--spec: ${path}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return r.data;
}

/** The flags and the spec file, merged (flags win); detector and reference may still be URLs. */
export interface TableInputs {
  modelFile: string;
  detector: string;
  ref: string;
  seeds: number[];
  nfe: number[];
  rows: TableRow[];
  batch: number;
  keepImages: boolean;
  outdir?: string;
  expDir: string;
  compare?: string;
  compareDataset?: string;
  device: string;
  threads: number;
  nprocPerNode: number;
  quiet: boolean;
}

export function tableInputs(o: TableOptions): TableInputs {
  const spec: TableSpec = o.spec ? loadSpec(o.spec) : {};
  const modelFile = resolveModelFile(o.model ?? spec.model, o.datasetName ?? spec.dataset_name, o.modelDir ?? spec.model_dir ?? './models', noteLine);
  const seedSpec = o.seeds ?? spec.seeds ?? '0-49999';
  const seeds = typeof seedSpec === 'string' ? checkSeedList(seedSpec) : seedSpec;
  if (typeof seeds === 'string') throw new UsageError(`--seeds: ${seeds}`);
  const nfe = o.nfe ?? spec.nfe;
  if (!nfe) throw new UsageError('--nfe is required (e.g. 3,5,7,9), on the command line or in --spec');
  const rows: TableRow[] | undefined = o.solvers ? o.solvers.map((solver): TableRow => ({ solver })) : spec.rows;
  if (!rows) throw new UsageError('--solvers (or rows in --spec) is required');
  const labels = rows.map((r) => r.label ?? r.solver);
  const dup = labels.find((l, k) => labels.indexOf(l) !== k);
  if (dup) throw new UsageError(`rows: label "${dup}" is used twice; give the rows distinct labels`);
  const ref = o.ref ?? spec.ref;
  if (!ref) throw new UsageError('--ref is required (reference statistics .npz)');
  if (!isUrl(ref) && !existsSync(ref)) throw new UsageError(`--ref: ${ref} does not exist`);
  const compare = o.compare ?? spec.compare;
  return {
    modelFile,
    detector: o.detector ?? spec.detector ?? DEFAULT_DETECTOR,
    ref,
    seeds,
    nfe: [...new Set(nfe)].sort((a, b) => a - b),
    rows,
    batch: o.batch ?? spec.batch ?? 64,
    keepImages: o.keepImages ?? spec.keep_images ?? false,
    outdir: o.outdir,
    expDir: o.expDir ?? spec.exp_dir ?? './exp',
    compare: compare === 'published' ? PUBLISHED_FID : compare,
    compareDataset: o.compareDataset ?? spec.compare_dataset,
    device: o.device,
    threads: o.threads,
    nprocPerNode: o.nprocPerNode,
    quiet: o.quiet,
  };
}

/** Everything `adasde table` will do: its cells, planned, and which of them are stored already. */
export interface TablePlan extends TableInputs {
  outdir: string;
  dataset: string;
  cells: Cell[];
  /** Cells whose statistics are stored under <outdir>/cells/ (reused, not computed). */
  stored: Set<Cell>;
}

/**
 * Plans every cell. `local` gives the downloaded detector and reference when they are URLs;
 * without a local detector (a dry run before the download) the cells carry no fingerprint.
 */
export async function resolveTable(inputs: TableInputs, model: Pick<SampleModelInfo, 'meta' | 'sampleShape'>, local: { detector?: string; ref?: string } = {}): Promise<TablePlan> {
  const detector = local.detector ?? inputs.detector;
  const ref = local.ref ?? inputs.ref;
  const outdir = inputs.outdir ?? join('tables', model.meta.datasetName);
  const cells: Cell[] = [];
  for (const row of inputs.rows) {
    for (const k of inputs.nfe) cells.push(planCell(row, k, { meta: model.meta, sampleShape: model.sampleShape, modelFile: inputs.modelFile, detectorFile: detector, seeds: inputs.seeds, expDir: inputs.expDir }));
  }
  const stored = new Set<Cell>();
  for (const c of cells) if (c.plan && c.fingerprint && (await loadStats(cellFile(outdir, c), c.fingerprint)) !== undefined) stored.add(c);
  return { ...inputs, detector, ref, outdir, dataset: model.meta.datasetName, cells, stored };
}

/** The local file of a flag that may be an http(s) URL, when it has been downloaded already (dry runs download nothing). */
export function cachedFile(spec: string): string | undefined {
  if (!isUrl(spec)) return spec;
  const p = cachePath(spec);
  return existsSync(p) ? p : undefined;
}

/** The plan as `--dry-run` prints it: every cell with its resolution and whether it is stored or to compute. */
export function describeTablePlan(plan: TablePlan): Record<string, unknown> {
  return {
    model: plan.modelFile,
    dataset: plan.dataset,
    detector: plan.detector,
    ref: plan.ref,
    seeds: plan.seeds.length,
    nfe: plan.nfe,
    outdir: plan.outdir,
    batch: plan.batch,
    keep_images: plan.keepImages,
    compare: plan.compare ?? null,
    cells: plan.cells.map((c) => {
      const command = cellCommand(c, { modelFile: plan.modelFile, detectorFile: plan.detector, ref: plan.ref, seeds: plan.seeds, batch: plan.batch, imagesDir: join(plan.outdir, 'images') });
      return {
        label: c.label,
        nfe: c.nfe,
        status: c.missing !== undefined ? 'n/a' : c.fingerprint === undefined ? 'unknown (detector not downloaded yet)' : plan.stored.has(c) ? 'stored' : 'to compute',
        missing: c.missing ?? null,
        solver: c.choice?.solver ?? null,
        num_steps: c.numSteps ?? null,
        afs: c.afs ?? null,
        predictor: c.predictor ?? null,
        fingerprint: c.fingerprint ?? null,
        sample_args: command?.sample ?? null,
      };
    }),
  };
}

/** Progress of a table run (src/cli/progress.ts draws it). */
export interface TableProgressSink {
  skip(n: number): void;
  advance(items: number, nfe: number): void;
  fromWorker(msg: unknown): void;
  set(value: number, payload: Record<string, string>): void;
  stop(): void;
}

export interface TableSinks {
  /** A progress display for `total` images over `cells` cells. */
  progress(total: number, cells: number): TableProgressSink;
  warn(line: string): void;
}

export interface TableResult {
  md: string;
  cells: number;
  computed: number;
  reused: number;
  missing: number;
  /** This process is a worker or a rank other than 0: the launcher (or rank 0) reports. */
  partial: boolean;
}

/** The detector's description and the reference statistics, checked (before the model loads: a bad --ref fails first). */
export interface TableReferences {
  det: ReturnType<typeof inspectDetector>;
  refStats: Awaited<ReturnType<typeof readStatsNpz>>;
}

export async function openReferences(detector: string, ref: string): Promise<TableReferences> {
  const det = inspectDetector(detector);
  const refStats = await readStatsNpz(ref).catch((e: unknown) => {
    throw e instanceof UsageError ? new UsageError(`--ref: ${e.message}`) : e;
  });
  checkCovariance(refStats, `--ref: ${ref}`);
  return { det, refStats };
}

/** Computes the plan's missing cells with an open model (which it disposes) and writes the table. */
export async function runTable(plan: TablePlan, refs: TableReferences, model: DenoiserModel, outer: DistEnv, sinks: TableSinks, argv: readonly string[] = process.argv): Promise<TableResult> {
  const { outdir, cells } = plan;
  const { det, refStats } = refs;
  prepareOutdir(outdir, '--outdir');
  prepareOutdir(join(outdir, 'cells'), '--outdir');
  // Leftovers of a run killed outright (kill -9): temp files of writers that are gone. Only on
  // one machine: the pids of ranks elsewhere sharing the folder cannot be checked from here.
  if (outer.world === 1) {
    await removeStaleTempFiles(outdir);
    await removeStaleTempFiles(join(outdir, 'cells'));
  }
  const finalDone = plan.stored;
  const pending = cells.filter((c) => c.plan && !finalDone.has(c));

  const world = plan.nprocPerNode > 1 ? outer.world * plan.nprocPerNode : outer.world;
  const isLauncher = plan.nprocPerNode > 1;
  const started = Date.now();
  if (pending.length > 0) {
    const progress = sinks.progress(pending.length * plan.seeds.length, pending.length);
    try {
      if (isLauncher) {
        await model.dispose();
        let done = 0;
        await runWorkers(plan.nprocPerNode, argv, outer, (msg) => {
          progress.fromWorker(msg);
          const p = (msg as { adasdeProgress?: { items: number } }).adasdeProgress;
          if (p) done += p.items;
          progress.set(done, { cell: String(Math.min(pending.length, Math.floor(done / plan.seeds.length) + 1)), cells: String(pending.length), what: '', rate: '' });
        });
      } else {
        const features = await loadFeatureModel(plan.detector, { device: plan.device, threads: plan.threads || undefined, maxBatch: plan.batch });
        let done = 0;
        for (const [k, c] of pending.entries()) {
          const path = cellFile(outdir, c);
          const mine = world > 1 ? rankFile(path, outer.rank, world) : path;
          if (world > 1 && (await loadStats(mine, c.fingerprint!)) !== undefined) {
            progress.skip(plan.seeds.length);
            continue;
          }
          const stats = await runCell({
            cell: c,
            denoise: model.denoise,
            features,
            seeds: plan.seeds,
            batch: plan.batch,
            rank: outer.rank,
            world,
            imagesDir: plan.keepImages ? join(outdir, 'images', `${c.label}-nfe${c.nfe}`) : undefined,
            onImages: (n) => {
              done += n;
              progress.advance(n, n * c.nfe);
              progress.set(done, { cell: String(k + 1), cells: String(pending.length), what: `(${c.label}, NFE ${c.nfe})`, rate: ((done / (Date.now() - started)) * 1000).toFixed(1) });
            },
          });
          await saveStats(mine, stats, c.fingerprint!);
        }
        await features.dispose();
        await model.dispose();
      }
    } finally {
      progress.stop();
    }
  } else {
    await model.dispose();
  }
  // Workers and ranks other than 0 stop here; the launcher (or rank 0) merges in rank order.
  const partial = { md: '', cells: cells.length, computed: pending.length, reused: 0, missing: 0, partial: true };
  if (outer.world > 1 && !isLauncher && outer.rank > 0) return partial;
  if (process.env.ADASDE_WORKER === '1') return partial;
  if (world > 1) {
    for (const c of pending) {
      const path = cellFile(outdir, c);
      let merged: FeatureStats | undefined;
      for (let rank = 0; rank < world; rank++) {
        const rf = rankFile(path, rank, world);
        await waitFor(rf, 3600_000);
        const s = await loadStats(rf, c.fingerprint!);
        if (s === undefined) throw new RunError(`table: ${rf} belongs to another run`);
        if (s === null) continue;
        if (merged) merged.merge(s);
        else merged = s;
      }
      await saveStats(path, merged, c.fingerprint!);
      for (let rank = 0; rank < world; rank++) await rm(rankFile(path, rank, world), { force: true });
    }
  }

  // Distances, outputs.
  const published = plan.compare ? loadPublished(plan.compare) : undefined;
  const compareKey = plan.compareDataset ?? plan.dataset;
  let metric: Metric | undefined;
  const results: CellResult[] = [];
  for (const c of cells) {
    if (!c.plan) {
      results.push({ cell: c });
      continue;
    }
    const s = await loadStats(cellFile(outdir, c), c.fingerprint!);
    if (!s) throw new RunError(`table: the statistics of cell ${c.label} NFE ${c.nfe} are missing`);
    if (s.dim !== refStats.dim) throw new UsageError(`--ref ${plan.ref}: statistics of dimension ${refStats.dim}; the detector gives ${s.dim}`);
    metric ??= metricOf(det.signature.metadata, s.dim, plan.detector);
    const value = checkedDistance(s.mu(), s.sigma(), refStats.mu, refStats.sigma, s.dim, `--ref ${plan.ref}`);
    const pubRow = published?.datasets[compareKey]?.[c.label];
    const idx = published?.nfe.indexOf(c.nfe) ?? -1;
    const pub = pubRow && idx >= 0 ? (pubRow[idx] ?? undefined) : undefined;
    const command = cellCommand(c, { modelFile: plan.modelFile, detectorFile: plan.detector, ref: plan.ref, seeds: plan.seeds, batch: plan.batch, imagesDir: join(outdir, 'images') });
    results.push({ cell: c, value, n: s.n, published: pub, command });
  }
  if (!metric) throw new UsageError('table: no cell could be computed (see the n/a reasons with --nfe/--solvers)');
  if (published && !published.datasets[compareKey]) sinks.warn(`--compare file has no dataset "${compareKey}" (use --compare_dataset)`);
  const { md, csv } = render(results, plan.rows, plan.nfe, metric, published !== undefined && published.datasets[compareKey] !== undefined);
  const json = {
    metric: metric.key,
    metric_name: metric.name,
    model: plan.modelFile,
    detector: plan.detector,
    ref: plan.ref,
    seeds: plan.seeds.length,
    compare: plan.compare ?? null,
    cells: results.map((x) => ({
      label: x.cell.label,
      nfe: x.cell.nfe,
      num_steps: x.cell.numSteps ?? null,
      afs: x.cell.afs ?? null,
      predictor: x.cell.predictor ?? null,
      value: x.value ?? null,
      n: x.n ?? null,
      published: x.published ?? null,
      missing: x.cell.missing ?? null,
      fingerprint: x.cell.fingerprint ?? null,
      sample_args: x.command?.sample ?? null,
      fid_args: x.command?.fid ?? null,
    })),
  };
  await writeFileAtomic(join(outdir, 'table.md'), md);
  await writeFileAtomic(join(outdir, 'table.csv'), csv);
  await writeFileAtomic(join(outdir, 'table.json'), JSON.stringify(json, null, 2) + '\n');
  await writeTableChart(outdir, json);
  const missing = cells.filter((c) => !c.plan).length;
  return { md, cells: cells.length, computed: pending.length, reused: cells.length - pending.length - missing, missing, partial: false };
}

interface CellResult {
  cell: Cell;
  command?: CellCommand;
  value?: number;
  n?: number;
  published?: number;
}

function fmt(v: number | undefined, digits = 2): string {
  return v === undefined || !Number.isFinite(v) ? '' : v.toFixed(digits);
}

/** A command line for the Markdown: arguments with shell metacharacters quoted. */
const shellLine = (args: readonly string[]): string => args.map((a) => (/^[\w@%+=:,./\[\]-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');

function render(results: CellResult[], rows: TableRow[], nfe: number[], metric: Metric, withCompare: boolean): { md: string; csv: string } {
  const head = `| solver | ${nfe.map((k) => `NFE ${k}`).join(' | ')} |`;
  const lines = [`${metric.name} (lower is better)${withCompare ? '; in brackets: published, difference' : ''}`, '', head, `|---|${nfe.map(() => '---:').join('|')}|`];
  const csv = ['label,solver,nfe,num_steps,afs,metric,value,n,published,difference,note'];
  for (const row of rows) {
    const label = row.label ?? row.solver;
    const cells = nfe.map((k) => {
      const r = results.find((x) => x.cell.label === label && x.cell.nfe === k)!;
      if (r.cell.missing) return 'n/a';
      const v = fmt(r.value);
      if (!withCompare || r.published === undefined) return v;
      const d = r.value! - r.published;
      return `${v} (${fmt(r.published)}, ${d >= 0 ? '+' : ''}${fmt(d)})`;
    });
    lines.push(`| ${label} | ${cells.join(' | ')} |`);
    for (const k of nfe) {
      const r = results.find((x) => x.cell.label === label && x.cell.nfe === k)!;
      const diff = r.value !== undefined && r.published !== undefined ? r.value - r.published : undefined;
      csv.push([label, row.solver, k, r.cell.numSteps ?? '', r.cell.afs ?? '', metric.key, r.value ?? '', r.n ?? '', r.published ?? '', diff ?? '', JSON.stringify(r.cell.missing ?? '')].join(','));
    }
  }
  const commands = results.filter((r) => r.command);
  if (commands.length) {
    lines.push('', 'Each cell on its own (same images, same value):', '');
    for (const r of commands) {
      lines.push(`* ${r.cell.label}, NFE ${r.cell.nfe}: \`adasde sample ${shellLine(r.command!.sample)} && adasde fid calc ${shellLine(r.command!.fid)}\``);
    }
  }
  return { md: lines.join('\n') + '\n', csv: csv.join('\n') + '\n' };
}

async function waitFor(path: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > end) throw new RunError(`table: ${path} did not appear within ${timeoutMs / 1000} s (a rank failed?)`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

function loadPublished(path: string): z.infer<typeof publishedSchema> {
  if (!existsSync(path)) throw new UsageError(`--compare: ${path} does not exist`);
  const r = publishedSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!r.success) throw new UsageError(`--compare: ${path} is not a published-table file (expected nfe and datasets.<name>.<row>: values)`);
  return r.data;
}

