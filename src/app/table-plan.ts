/**
 * A table's cells: one per (row, NFE). Each cell resolves to a complete sampling plan (solver,
 * options, schedule) and a fingerprint of everything that determines its images, so a stored
 * cell is reused only when nothing that matters changed.
 */
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { formatSeedList, resolveSolver, type SolverChoice } from './sample.js';
import { UsageError } from '../core/errors.js';
import { coefficientsOf, loadPredictor, type PredictorFile } from '../config/predictor.js';
import { latestSnapshot, listRuns, resolvePredictorPath } from '../io/runs.js';
import type { TableRow } from '../config/table.js';
import { isLatentFamily, type DenoiserMetadata } from '../runtime/model.js';
import type { SolverFlag } from '../solvers/descriptor.js';
import { SOLVER_REGISTRY, solverFlags, solverOptions, type SolverName, type SolverOptions } from '../solvers/registry.js';
import type { SolverPlan } from '../sample/pipeline.js';

export interface Cell {
  /** Row label and NFE: the table coordinates. */
  label: string;
  nfe: number;
  /** Unresolvable cells carry the reason and no plan. */
  missing?: string;
  plan?: SolverPlan;
  /** How sample's resolution chose the solver (options, grid, predictor). */
  choice?: SolverChoice;
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

/** num_steps giving exactly `nfe` for the solver with these options, or undefined. */
function stepsFor(solver: SolverName, opts: SolverOptions, nfe: number): number | undefined {
  for (let N = 2; N <= 1000; N++) {
    const k = SOLVER_REGISTRY[solver].nfe(N, opts);
    if (k === nfe) return N;
    if (k > nfe) return undefined;
  }
  return undefined;
}

/** AdaSDE runs in exp/ for a dataset and NFE, newest first. */
export function findPredictors(solver: SolverName, expDir: string, dataset: string, nfe: number, noise: boolean): string[] {
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
    const k = SOLVER_REGISTRY[solver].nfe(o.num_steps, { afs: o.afs, coeffs: coefficientsOf(p) });
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

/**
 * A cell through `adasde sample`'s own resolution (src/app/sample.ts resolveSolver): the row's
 * fields are that command's flags, with num_steps (and afs, when the row leaves it open)
 * chosen to give exactly the column's NFE.
 */
export function planCell(row: TableRow, nfe: number, ctx: PlanContext): Cell {
  const label = rowLabel(row);
  const meta = ctx.meta;
  const d = SOLVER_REGISTRY[row.solver];
  // The row's solver options under sample's camelCase keys.
  const given: Record<string, unknown> = {};
  for (const f of solverFlags()) if (row[f.flag] !== undefined) given[f.key] = row[f.flag];
  let choice: SolverChoice;
  if (d.usesPredictor) {
    // A row with its own predictors uses exactly those: an NFE it does not list stays n/a
    // rather than borrowing whatever exp/ holds.
    let predictorPath: string | undefined;
    if (row.predictors) {
      const explicit = row.predictors[String(nfe)];
      if (explicit === undefined) return { label, nfe, missing: `the row's predictors have no entry for NFE ${nfe}` };
      predictorPath = resolvePredictorPath(explicit, ctx.expDir);
    } else predictorPath = findPredictors(row.solver, ctx.expDir, meta.datasetName, nfe, row.noise ?? true)[0];
    if (!predictorPath) return { label, nfe, missing: `no AdaSDE predictor for ${meta.datasetName} at NFE ${nfe} in ${ctx.expDir}` };
    const predictor = { path: predictorPath, file: loadPredictor(predictorPath) };
    if (predictor.file.options.schedule_type === 'discrete' && !meta.alphasCumprod) return { label, nfe, missing: 'the discrete schedule needs adasde.alphas_cumprod' };
    choice = resolveSolver({ solver: row.solver, denoiseToZero: false, ...given }, meta, predictor);
    if (choice.solverNfe !== nfe) return { label, nfe, missing: `predictor ${predictorPath} has NFE ${choice.solverNfe}, not ${nfe}` };
  } else {
    const scheduleType = row.schedule_type ?? 'polynomial';
    if (scheduleType === 'discrete' && !meta.alphasCumprod) return { label, nfe, missing: 'the discrete schedule needs adasde.alphas_cumprod' };
    const r = solverOptions(row.solver, given, { latent: isLatentFamily(meta.family) });
    if ('error' in r) throw new UsageError(`rows: ${label}: ${r.error.message.replace(/^--/, '')}`);
    // AFS unset: off when the NFE is reachable without it, else on (heun and dpm need it
    // for odd NFE, as the paper's tables use).
    let numSteps: number | undefined;
    let afs = false;
    for (const a of row.afs === undefined ? [false, true] : [row.afs]) {
      numSteps = stepsFor(row.solver, { ...r.options, denoiseToZero: false, afs: a }, nfe);
      if (numSteps !== undefined) {
        afs = a;
        break;
      }
    }
    if (numSteps === undefined) return { label, nfe, missing: `${row.solver} cannot take exactly ${nfe} NFE${row.afs === undefined ? '' : ` with afs=${row.afs}`}` };
    // The table's schedule default: rho 7 for EDM's polynomial schedule, 1 for the others.
    const scheduleRho = row.schedule_rho ?? (scheduleType === 'polynomial' ? 7 : 1);
    choice = resolveSolver({ solver: row.solver, denoiseToZero: false, numSteps, afs, scheduleType, scheduleRho, ...given }, meta, undefined);
  }
  const plan: SolverPlan = { solver: choice.solver, options: choice.options, tSteps: choice.tSteps, sampleShape: ctx.sampleShape, labelDim: meta.labelDim };
  const h = createHash('sha256');
  h.update(
    JSON.stringify({
      v: 2,
      model: fileId(ctx.modelFile),
      detector: fileId(ctx.detectorFile),
      solver: choice.solver,
      options: { ...choice.options, coeffs: choice.options.coeffs ?? null },
      tSteps: Array.from(choice.tSteps),
    }),
  );
  // Seeds last and streamed: 50k numbers are cheap to hash.
  h.update(Float64Array.from(ctx.seeds));
  return { label, nfe, plan, choice, numSteps: choice.numSteps, afs: choice.options.afs ?? false, predictor: choice.predictor, scheduleType: choice.scheduleType, scheduleRho: choice.scheduleRho, fingerprint: h.digest('hex') };
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
  if (!c.plan || !c.choice) return undefined;
  const choice = c.choice;
  const images = join(ctx.imagesDir, `${c.label.replace(/[^\w.-]+/g, '_')}-nfe${c.nfe}`);
  const args = ['--model', ctx.modelFile];
  if (choice.predictor !== undefined) args.push('--predictor_path', choice.predictor);
  else {
    args.push('--solver', choice.solver, '--num_steps', String(choice.numSteps), '--schedule_type', choice.scheduleType!, '--schedule_rho', String(choice.scheduleRho), `--afs=${choice.options.afs ?? false}`);
    // Every option of the solver, as resolved: nothing left to defaults that might change.
    const o = choice.options as Record<string, unknown>;
    for (const [key, spec] of Object.entries(SOLVER_REGISTRY[choice.solver].flags) as [string, SolverFlag][]) args.push(`--${spec.flag}=${String(o[key])}`);
  }
  args.push('--denoise_to_zero=false', '--seeds', formatSeedList(ctx.seeds), '--batch', String(ctx.batch), '--outdir', images);
  return { sample: args, fid: ['--images', images, '--ref', ctx.ref, '--detector', ctx.detectorFile], images };
}
