/**
 * A table's cells: one per (row, NFE). Each cell resolves to a complete sampling plan (solver,
 * options, schedule) and a fingerprint of everything that determines its images, so a stored
 * cell is reused only when nothing that matters changed.
 */
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { coefficientsOf, loadPredictor, type PredictorFile } from '../config/predictor.js';
import { latestSnapshot, listRuns, resolvePredictorPath } from '../io/runs.js';
import type { TableRow } from '../config/table.js';
import type { DenoiserMetadata } from '../runtime/model.js';
import { adasdeNfe } from '../solvers/adasde.js';
import { SOLVER_REGISTRY, type SolverOptions } from '../solvers/registry.js';
import { discreteTime, getSchedule } from '../solvers/schedule.js';
import type { SamplePlan } from '../sample/pipeline.js';

export interface Cell {
  /** Row label and NFE: the table coordinates. */
  label: string;
  nfe: number;
  /** Unresolvable cells carry the reason and no plan. */
  missing?: string;
  plan?: SamplePlan;
  numSteps?: number;
  afs?: boolean;
  predictor?: string;
  /** The baselines' schedule (AdaSDE cells take their predictor's). */
  scheduleType?: string;
  scheduleRho?: number;
  /** sha256 over model, detector, seeds, solver, options, schedule and coefficients. */
  fingerprint?: string;
}

export const rowLabel = (r: TableRow): string => r.label ?? r.solver;

/** num_steps giving exactly `nfe` for the solver, or undefined. */
function stepsFor(row: TableRow, opts: SolverOptions, nfe: number): number | undefined {
  for (let N = 2; N <= 1000; N++) {
    const k = SOLVER_REGISTRY[row.solver].nfe(N, opts);
    if (k === nfe) return N;
    if (k > nfe) return undefined;
  }
  return undefined;
}

/** AdaSDE runs in exp/ for a dataset and NFE, newest first. */
export function findPredictors(expDir: string, dataset: string, nfe: number, noise: boolean): string[] {
  const out: { id: number; path: string }[] = [];
  for (const run of listRuns(expDir)) {
    const snap = latestSnapshot(run.path);
    if (!snap) continue;
    let p: PredictorFile;
    try {
      p = loadPredictor(snap);
    } catch {
      continue;
    }
    const o = p.options;
    const k = adasdeNfe(o.num_steps, o.num_points, o.afs);
    if (o.dataset_name === dataset && k === nfe && (o.gamma > 0) === noise) out.push({ id: run.id, path: snap });
  }
  return out.sort((a, b) => b.id - a.id).map((e) => e.path);
}

export interface PlanContext {
  meta: DenoiserMetadata;
  sampleShape: readonly number[];
  modelFile: string;
  detectorFile: string;
  seeds: readonly number[];
  expDir: string;
}

function fileId(path: string): string {
  const st = statSync(path);
  return `${resolve(path)}|${st.size}|${Math.floor(st.mtimeMs)}`;
}

export function planCell(row: TableRow, nfe: number, ctx: PlanContext): Cell {
  const label = rowLabel(row);
  const meta = ctx.meta;
  const isLatent = meta.family === 'ldm' || meta.family === 'sd';
  const base: SolverOptions = { denoiseToZero: false };
  let scheduleType = row.schedule_type ?? 'polynomial';
  let rho = row.schedule_rho ?? (scheduleType === 'polynomial' ? 7 : 1);
  let numSteps: number | undefined;
  let predictorPath: string | undefined;
  if (row.solver === 'adasde') {
    // A row with its own predictors uses exactly those: an NFE it does not list stays n/a
    // rather than borrowing whatever exp/ holds.
    if (row.predictors) {
      const explicit = row.predictors[String(nfe)];
      if (explicit === undefined) return { label, nfe, missing: `the row's predictors have no entry for NFE ${nfe}` };
      predictorPath = resolvePredictorPath(explicit, ctx.expDir);
    } else predictorPath = findPredictors(ctx.expDir, meta.datasetName, nfe, row.noise ?? true)[0];
    if (!predictorPath) return { label, nfe, missing: `no AdaSDE predictor for ${meta.datasetName} at NFE ${nfe} in ${ctx.expDir}` };
    const p = loadPredictor(predictorPath);
    base.coeffs = coefficientsOf(p);
    base.afs = p.options.afs;
    scheduleType = p.options.schedule_type;
    rho = p.options.schedule_rho;
    numSteps = p.options.num_steps;
    if (SOLVER_REGISTRY.adasde.nfe(numSteps, base) !== nfe) return { label, nfe, missing: `predictor ${predictorPath} has NFE ${SOLVER_REGISTRY.adasde.nfe(numSteps, base)}, not ${nfe}` };
  } else {
    const entry = SOLVER_REGISTRY[row.solver];
    if (entry.defaultMaxOrder !== undefined) base.maxOrder = Math.min(row.max_order ?? entry.defaultMaxOrder, entry.defaultMaxOrder);
    if (row.solver === 'dpmpp' || row.solver === 'unipc') {
      base.lowerOrderFinal = row.lower_order_final ?? true;
      base.predictX0 = row.predict_x0 ?? true;
      base.thresholding = row.thresholding ?? !isLatent;
      base.variant = row.variant ?? 'bh2';
    }
    if (row.solver === 'deis') base.deisMode = row.deis_mode ?? 'tab';
    // AFS unset: off when the NFE is reachable without it, else on (heun and dpm need it
    // for odd NFE, as the paper's tables use).
    for (const afs of row.afs === undefined ? [false, true] : [row.afs]) {
      numSteps = stepsFor(row, { ...base, afs }, nfe);
      if (numSteps !== undefined) {
        base.afs = afs;
        break;
      }
    }
    if (numSteps === undefined) return { label, nfe, missing: `${row.solver} cannot take exactly ${nfe} NFE${row.afs === undefined ? '' : ` with afs=${row.afs}`}` };
  }
  if (scheduleType === 'discrete' && !meta.alphasCumprod) return { label, nfe, missing: 'the discrete schedule needs adasde.alphas_cumprod' };
  const tSteps = getSchedule({
    numSteps,
    sigmaMin: meta.sigmaMin,
    sigmaMax: meta.sigmaMax,
    type: scheduleType,
    rho,
    discrete: meta.alphasCumprod ? discreteTime(meta.alphasCumprod) : undefined,
  });
  const plan: SamplePlan = { solver: row.solver, options: base, tSteps, sampleShape: ctx.sampleShape, labelDim: meta.labelDim };
  const h = createHash('sha256');
  h.update(
    JSON.stringify({
      v: 1,
      model: fileId(ctx.modelFile),
      detector: fileId(ctx.detectorFile),
      solver: row.solver,
      options: { ...base, coeffs: base.coeffs ?? null },
      tSteps: Array.from(tSteps),
    }),
  );
  // Seeds last and streamed: 50k numbers are cheap to hash.
  h.update(Float64Array.from(ctx.seeds));
  return { label, nfe, plan, numSteps, afs: base.afs ?? false, predictor: predictorPath, scheduleType, scheduleRho: rho, fingerprint: h.digest('hex') };
}

/** Seed list in the `--seeds` syntax, consecutive runs folded into ranges: `0-999`, `1,3-5`. */
export function formatSeedList(seeds: readonly number[]): string {
  const parts: string[] = [];
  for (let k = 0; k < seeds.length; ) {
    let j = k;
    while (j + 1 < seeds.length && seeds[j + 1] === seeds[j]! + 1) j++;
    parts.push(j === k ? String(seeds[k]) : `${seeds[k]}-${seeds[j]}`);
    k = j + 1;
  }
  return parts.join(',');
}

export interface CellCommand {
  /** `adasde sample` arguments (after `sample`) writing the cell's images into `images`. */
  sample: string[];
  /** `adasde fid calc` arguments (after `fid calc`) giving the cell's value. */
  fid: string[];
  images: string;
}

/**
 * The two commands that reproduce one cell outside the table: `adasde sample` with every
 * option the cell's plan resolved to (nothing left to defaults that might change), then
 * `adasde fid calc` on the written PNGs against the same reference and detector.
 */
export function cellCommand(c: Cell, ctx: { modelFile: string; detectorFile: string; ref: string; seeds: readonly number[]; batch: number; imagesDir: string }): CellCommand | undefined {
  if (!c.plan) return undefined;
  const o = c.plan.options;
  const images = join(ctx.imagesDir, `${c.label.replace(/[^\w.-]+/g, '_')}-nfe${c.nfe}`);
  const args = ['--model', ctx.modelFile];
  if (c.plan.solver === 'adasde') args.push('--predictor_path', c.predictor!);
  else {
    args.push('--solver', c.plan.solver, '--num_steps', String(c.numSteps), '--schedule_type', c.scheduleType!, '--schedule_rho', String(c.scheduleRho), `--afs=${o.afs ?? false}`);
    if (o.maxOrder !== undefined) args.push('--max_order', String(o.maxOrder));
    if (c.plan.solver === 'dpmpp' || c.plan.solver === 'unipc') {
      args.push(`--lower_order_final=${o.lowerOrderFinal ?? true}`, `--predict_x0=${o.predictX0 ?? true}`, `--thresholding=${o.thresholding ?? false}`);
      if (c.plan.solver === 'unipc') args.push('--variant', o.variant ?? 'bh2');
    }
    if (c.plan.solver === 'deis') args.push('--deis_mode', o.deisMode ?? 'tab');
  }
  args.push('--denoise_to_zero=false', '--seeds', formatSeedList(ctx.seeds), '--batch', String(ctx.batch), '--outdir', images);
  return { sample: args, fid: ['--images', images, '--ref', ctx.ref, '--detector', ctx.detectorFile], images };
}
