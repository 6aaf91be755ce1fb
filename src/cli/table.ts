/**
 * `adasde table`: one resumable command for a whole FID-versus-NFE table. Every cell (row x
 * NFE) samples its seeds and streams the images into feature statistics; finished cells are
 * stored under <outdir>/cells/ by fingerprint, so an interrupted table resumes and a table
 * that grows by a row or a column computes only what is new.
 */
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { checkSeedList } from '../config/common.js';
import { tableSpecSchema, tableOptionTable, type TableOptions, type TableRow, type TableSpec } from '../config/table.js';
import { DEFAULT_DETECTOR } from '../config/common.js';
import { inspectDetector, metricOf, type Metric } from '../fid/detector.js';
import { checkCovariance, checkedDistance } from '../app/fid.js';
import type { FeatureStats } from '../fid/stats.js';
import { writeTableChart } from '../charts/table.js';
import { removeStaleTempFiles, writeFileAtomic } from '../io/atomic.js';
import { prepareOutdir } from '../io/outdir.js';
import { readStatsNpz } from '../io/npz.js';
import { distEnv, runWorkers } from '../parallel/launcher.js';
import { loadDenoiserModel, loadFeatureModel } from '../runtime/model.js';
import { cellFile, loadStats, rankFile, runCell, saveStats } from '../table/cell.js';
import { cellCommand, planCell, type Cell, type CellCommand } from '../table/plan.js';
import { isUrl } from '../io/download.js';
import { defineCommand } from './command.js';
import { localFile } from './download.js';
import { RunError, UsageError } from '../core/errors.js';
import { Progress } from './progress.js';
import { noteLine, resolveModelFile } from '../app/models.js';

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
    throw new UsageError(`--spec: ${path} is not valid ${extname(path).toLowerCase().startsWith('.y') ? 'YAML' : 'JSON'} (${(e as Error).message.split('\n')[0]})`);
  }
  const r = tableSpecSchema.safeParse(data);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new UsageError(`--spec: ${path}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return r.data;
}

interface Resolved {
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
}

function resolveOptions(o: TableOptions): Resolved {
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
  };
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

async function runTable(o: TableOptions): Promise<void> {
  const outer = distEnv();
  const r = resolveOptions(o);
  // URLs (EDM's published fid-refs) are read from their cached download (src/io/download.ts).
  r.ref = await localFile(r.ref, '--ref', o.quiet);
  r.detector = await localFile(r.detector, '--detector', o.quiet);
  const det = inspectDetector(r.detector);
  const refStats = await readStatsNpz(r.ref).catch((e: unknown) => {
    throw e instanceof UsageError ? new UsageError(`--ref: ${e.message}`) : e;
  });
  checkCovariance(refStats, `--ref: ${r.ref}`);
  const model = await loadDenoiserModel(r.modelFile, { device: o.device, threads: o.threads || undefined, maxBatch: r.batch });
  const outdir = r.outdir ?? join('tables', model.meta.datasetName);
  const cells: Cell[] = [];
  for (const row of r.rows) {
    for (const k of r.nfe) {
      cells.push(planCell(row, k, { meta: model.meta, sampleShape: model.sampleShape, modelFile: r.modelFile, detectorFile: r.detector, seeds: r.seeds, expDir: r.expDir }));
    }
  }
  prepareOutdir(outdir, '--outdir');
  prepareOutdir(join(outdir, 'cells'), '--outdir');
  // Leftovers of a run killed outright (kill -9): temp files of writers that are gone. Only on
  // one machine: the pids of ranks elsewhere sharing the folder cannot be checked from here.
  if (outer.world === 1) {
    await removeStaleTempFiles(outdir);
    await removeStaleTempFiles(join(outdir, 'cells'));
  }
  const finalDone = new Set<Cell>();
  for (const c of cells) if (c.plan && (await loadStats(cellFile(outdir, c), c.fingerprint!)) !== undefined) finalDone.add(c);
  const pending = cells.filter((c) => c.plan && !finalDone.has(c));

  const world = o.nprocPerNode > 1 ? outer.world * o.nprocPerNode : outer.world;
  const isLauncher = o.nprocPerNode > 1;
  const started = Date.now();
  if (pending.length > 0) {
    const progress = new Progress(pending.length * r.seeds.length, o.quiet || (outer.world > 1 && outer.rank > 0), 'images', '{bar} cell {cell}/{cells} {what} | {value}/{total} images | {rate} images/s | ETA {eta_formatted}', {
      cell: '1',
      cells: String(pending.length),
      what: '',
    });
    try {
      if (isLauncher) {
        await model.dispose();
        let done = 0;
        await runWorkers(o.nprocPerNode, process.argv, outer, (msg) => {
          progress.fromWorker(msg);
          const p = (msg as { adasdeProgress?: { items: number } }).adasdeProgress;
          if (p) done += p.items;
          progress.set(done, { cell: String(Math.min(pending.length, Math.floor(done / r.seeds.length) + 1)), cells: String(pending.length), what: '', rate: '' });
        });
      } else {
        const features = await loadFeatureModel(r.detector, { device: o.device, threads: o.threads || undefined, maxBatch: r.batch });
        let done = 0;
        for (const [k, c] of pending.entries()) {
          const path = cellFile(outdir, c);
          const mine = world > 1 ? rankFile(path, outer.rank, world) : path;
          if (world > 1 && (await loadStats(mine, c.fingerprint!)) !== undefined) {
            progress.skip(r.seeds.length);
            continue;
          }
          const stats = await runCell({
            cell: c,
            denoise: model.denoise,
            features,
            seeds: r.seeds,
            batch: r.batch,
            rank: outer.rank,
            world,
            imagesDir: r.keepImages ? join(outdir, 'images', `${c.label}-nfe${c.nfe}`) : undefined,
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
  if (outer.world > 1 && !isLauncher && outer.rank > 0) return;
  if (process.env.ADASDE_WORKER === '1') return;
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
  const published = r.compare ? loadPublished(r.compare) : undefined;
  const compareKey = r.compareDataset ?? model.meta.datasetName;
  let metric: Metric | undefined;
  const results: CellResult[] = [];
  for (const c of cells) {
    if (!c.plan) {
      results.push({ cell: c });
      continue;
    }
    const s = await loadStats(cellFile(outdir, c), c.fingerprint!);
    if (!s) throw new RunError(`table: the statistics of cell ${c.label} NFE ${c.nfe} are missing`);
    if (s.dim !== refStats.dim) throw new UsageError(`--ref ${r.ref}: statistics of dimension ${refStats.dim}; the detector gives ${s.dim}`);
    metric ??= metricOf(det.signature.metadata, s.dim, r.detector);
    const value = checkedDistance(s.mu(), s.sigma(), refStats.mu, refStats.sigma, s.dim, `--ref ${r.ref}`);
    const pubRow = published?.datasets[compareKey]?.[c.label];
    const idx = published?.nfe.indexOf(c.nfe) ?? -1;
    const pub = pubRow && idx >= 0 ? (pubRow[idx] ?? undefined) : undefined;
    const command = cellCommand(c, { modelFile: r.modelFile, detectorFile: r.detector, ref: r.ref, seeds: r.seeds, batch: r.batch, imagesDir: join(outdir, 'images') });
    results.push({ cell: c, value, n: s.n, published: pub, command });
  }
  if (!metric) throw new UsageError('table: no cell could be computed (see the n/a reasons with --nfe/--solvers)');
  if (published && !published.datasets[compareKey]) process.stderr.write(`adasde: warning: --compare file has no dataset "${compareKey}" (use --compare_dataset)\n`);
  const { md, csv } = render(results, r.rows, r.nfe, metric, published !== undefined && published.datasets[compareKey] !== undefined);
  const json = {
    metric: metric.key,
    metric_name: metric.name,
    model: r.modelFile,
    detector: r.detector,
    ref: r.ref,
    seeds: r.seeds.length,
    compare: r.compare ?? null,
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
  process.stdout.write(md);
  if (!o.quiet) {
    process.stderr.write(`table: ${cells.length} cells (${pending.length} computed, ${cells.length - pending.length - cells.filter((c) => !c.plan).length} reused, ${cells.filter((c) => !c.plan).length} n/a) in ${((Date.now() - started) / 1000).toFixed(1)} s -> ${resolve(outdir)}\n`);
  }
}

function loadPublished(path: string): z.infer<typeof publishedSchema> {
  if (!existsSync(path)) throw new UsageError(`--compare: ${path} does not exist`);
  const r = publishedSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!r.success) throw new UsageError(`--compare: ${path} is not a published-table file (expected nfe and datasets.<name>.<row>: values)`);
  return r.data;
}

export function registerTable(program: Command): void {
  defineCommand(program, 'table', 'compute a resumable FID-versus-NFE table (rows: solvers, columns: NFE)', tableOptionTable, runTable);
}
