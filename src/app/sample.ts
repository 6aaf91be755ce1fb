/**
 * `adasde sample` as an application: `resolveSample` turns the flags and what the model
 * declares into a `SamplePlan` (pure: it reads the predictor and companion signatures but
 * writes nothing and runs no network), `runSample` carries a plan out. The CLI
 * (src/cli/sample.ts) parses, resolves, prints the plan for `--dry-run`, runs and prints the
 * summary; `adasde table` and `adasde fuse` resolve through the same function.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { SampleOptions, SolverFlagValues } from '../config/sample.js';
import { snakeKey } from '../config/options.js';
import { coefficientsOf, loadPredictor, type PredictorFile } from '../config/predictor.js';
import { resolvePredictorPath } from '../io/runs.js';
import { firstLine, RunError, UsageError } from '../core/errors.js';
import { elementCount } from '../core/shape.js';
import type { Conditioning, Denoiser } from '../core/denoiser.js';
import { noteLine, resolveModelFile } from './models.js';
import { removeStaleTempFiles, writeFileAtomic } from '../io/atomic.js';
import { decodeImage, GRID_NAME, type DecodedImage } from '../io/images.js';
import { ImageWriter } from '../io/image-writer.js';
import { ndarray, readNpy, toFloat64, writeNpy } from '../io/npy.js';
import { prepareOutdir } from '../io/outdir.js';
import { fileSha256 } from '../io/sha256.js';
import { encodePng, imagePath, makeGrid, quantizeBatch } from '../io/png.js';
import { rankBatches, runWorkers, type DistEnv } from '../parallel/launcher.js';
import { seedLatents } from '../rng/streams.js';
import type { DecoderModel } from '../runtime/companions.js';
import { classifierGuided, loadClassifierGradient, prepareClassifierGradient, type ClassifierGradient } from '../runtime/guidance.js';
import { fromHalfArray, toHalfArray } from '../runtime/half.js';
import { isLatentFamily, type DenoiserMetadata, type DenoiserModel } from '../runtime/model.js';
import { classifierFor, needsDecoder, openDecoder, preflightCompanions, PromptEncoder } from '../sample/companions.js';
import { runBatches, type SolverPlan } from '../sample/pipeline.js';
import type { Coefficients } from '../solvers/coefficients.js';
import { SOLVER_REGISTRY, SOLVERS, solverOptions, type SolverName, type SolverOptions } from '../solvers/registry.js';
import type { ScheduleType } from '../solvers/schedule.js';
import { discreteTime, getSchedule, userSchedule } from '../solvers/schedule.js';
import type { StepCallback } from '../solvers/types.js';
import { checkPromptSeeds, promptOf, promptSource, type PromptSource } from '../text/prompts.js';

// ---------------------------------------------------------------------------
// Resolution.

/** What resolution needs from the model: its metadata and shapes, no session. */
export type SampleModelInfo = Pick<DenoiserModel, 'path' | 'meta' | 'sampleShape' | 'hasCondition'>;

/** The predictor a run uses, as found on disk. */
export interface PredictorRef {
  path: string;
  file: PredictorFile;
}

/** The flags that find the model and the predictor (shared by `sample` and `fuse`). */
export type ModelFlags = Pick<SampleOptions, 'model' | 'modelPath' | 'datasetName' | 'modelDir' | 'predictorPath' | 'expDir' | 'guidanceType' | 'guidanceRate' | 'quiet'>;

/** Flags with the predictor applied, and the model file they name: all `resolveSample` needs besides the model. */
export interface SampleInputs<F extends ModelFlags = SampleOptions> {
  flags: F;
  modelFile: string;
  predictor?: PredictorRef;
}

/**
 * Reads the predictor (if any) and finds the model file: --model (or the reference's
 * --model_path), else --dataset_name, else, as the reference's sample.py does, the dataset
 * the predictor was trained for. The predictor's CFG guidance applies unless flags set guidance.
 */
export function sampleInputs<F extends ModelFlags>(flags: F): SampleInputs<F> {
  const predictor = flags.predictorPath !== undefined ? predictorRef(flags.predictorPath, flags.expDir) : undefined;
  const o = withPredictorGuidance(flags, predictor?.file);
  if (o.model !== undefined && o.modelPath !== undefined && o.model !== o.modelPath) throw new UsageError(`--model_path ${o.modelPath} disagrees with --model ${o.model} (one flag, two spellings)`);
  const model = o.model ?? o.modelPath;
  const modelFile = resolveModelFile(model, o.datasetName ?? (model === undefined ? predictor?.file.options.dataset_name : undefined), o.modelDir, o.quiet ? undefined : noteLine);
  return { flags: o, modelFile, predictor };
}

export function predictorRef(given: string, expDir: string): PredictorRef {
  const path = resolvePredictorPath(given, expDir);
  return { path, file: loadPredictor(path) };
}

/**
 * The reference's sample.py takes the guidance of an AdaSDE run from its predictor (the
 * coefficients were distilled under it); flags given explicitly still win. Only CFG is taken
 * over (the reference's ms_coco case); classifier guidance stays an explicit choice.
 */
function withPredictorGuidance<F extends ModelFlags>(o: F, predictor: PredictorFile | undefined): F {
  if (!predictor || o.guidanceType !== undefined || o.guidanceRate !== undefined) return o;
  const g = predictor.options.guidance_type;
  return g === 'cfg' ? { ...o, guidanceType: g, guidanceRate: predictor.options.guidance_rate } : o;
}

/** Classifier-free guidance is on: type cfg with a positive rate (rate 0 is the conditional model alone). */
export function cfgRate(o: Pick<SampleOptions, 'guidanceType' | 'guidanceRate'>): number | undefined {
  return o.guidanceType === 'cfg' && o.guidanceRate !== undefined && o.guidanceRate > 0 ? o.guidanceRate : undefined;
}

/** How the denoiser is guided. */
export type Guidance = { type: 'none' } | { type: 'cfg'; rate: number } | { type: 'cg'; rate: number; classifier: string; classes: number };

/** The solver part of a run: what `SolverPlan` needs plus how it was chosen, for tables and commands. */
export interface SolverChoice {
  solver: SolverName;
  options: SolverOptions;
  tSteps: Float64Array;
  numSteps: number;
  /** Unset with --t_steps. */
  scheduleType?: ScheduleType;
  scheduleRho?: number;
  /** Denoiser evaluations per image of the solver alone (guidance not counted). */
  solverNfe: number;
  predictor?: string;
}

/** The flags that choose a solver, its options and its grid (a subset of `adasde sample`'s). */
export type SolverFlags = Partial<Pick<SampleOptions, 'solver' | 'numSteps' | 'scheduleType' | 'scheduleRho' | 'tSteps' | 'sigmaMin' | 'sigmaMax' | 'afs'>> &
  Pick<SampleOptions, 'denoiseToZero'> &
  SolverFlagValues;

/**
 * The solver, its options and its time grid from the flags, the model's metadata and the
 * predictor (AdaSDE). Shared by `adasde sample` and every cell of `adasde table`.
 */
export function resolveSolver(o: SolverFlags, meta: DenoiserMetadata, predictor: PredictorRef | undefined): SolverChoice {
  let solver: SolverName | undefined = o.solver;
  const predictorSolvers = SOLVERS.filter((n) => SOLVER_REGISTRY[n].usesPredictor);
  if (predictor) {
    if (solver !== undefined && !SOLVER_REGISTRY[solver].usesPredictor) throw new UsageError(`--predictor_path is for --solver ${predictorSolvers.join(' or ')}, not ${solver}`);
    solver ??= predictorSolvers[0]!;
  } else if (solver !== undefined && SOLVER_REGISTRY[solver].usesPredictor) {
    throw new UsageError(`--solver ${solver} needs --predictor_path (an experiment number under exp/ or a predictor file)`);
  }
  if (!solver) throw new UsageError(`--solver is required (${SOLVERS.filter((n) => !SOLVER_REGISTRY[n].usesPredictor).join(', ')}) unless --predictor_path names an AdaSDE predictor`);

  let numSteps: number;
  let scheduleType: ScheduleType = o.scheduleType ?? 'polynomial';
  let scheduleRho = o.scheduleRho ?? 7;
  let afs = o.afs ?? false;
  let options: SolverOptions;
  if (predictor) {
    const p = predictor.file.options;
    const check = <T>(flag: string, given: T | undefined, stored: T) => {
      if (given !== undefined && given !== stored) throw new UsageError(`--${flag}=${String(given)} disagrees with the predictor ${predictor.path} (${flag}=${String(stored)})`);
    };
    check('num_steps', o.numSteps, p.num_steps);
    check('schedule_type', o.scheduleType, p.schedule_type);
    check('schedule_rho', o.scheduleRho, p.schedule_rho);
    check('afs', o.afs, p.afs);
    if (o.tSteps) throw new UsageError('--t_steps cannot be combined with an AdaSDE predictor (its coefficients belong to its schedule)');
    if (p.dataset_name !== meta.datasetName && meta.family !== 'analytic') {
      process.stderr.write(`adasde: warning: predictor trained for ${p.dataset_name}, model is ${meta.datasetName}\n`);
    }
    numSteps = p.num_steps;
    scheduleType = p.schedule_type;
    scheduleRho = p.schedule_rho;
    afs = p.afs;
    options = { denoiseToZero: o.denoiseToZero, coeffs: coefficientsOf(predictor.file) };
  } else {
    numSteps = o.tSteps ? o.tSteps.length : (o.numSteps ?? 6);
    const r = solverOptions(solver, o as Readonly<Record<string, unknown>>, { latent: isLatentFamily(meta.family) });
    if ('error' in r) throw new UsageError(r.error.message);
    options = { denoiseToZero: o.denoiseToZero, ...r.options };
  }
  options.afs = afs;

  const sigmaMin = o.sigmaMin ?? meta.sigmaMin;
  const sigmaMax = o.sigmaMax ?? meta.sigmaMax;
  if (!(sigmaMin < sigmaMax)) throw new UsageError(`--sigma_min ${sigmaMin} must be below --sigma_max ${sigmaMax}`);
  let tSteps: Float64Array;
  if (o.tSteps) tSteps = userSchedule(o.tSteps);
  else {
    if (scheduleType === 'discrete' && !meta.alphasCumprod) throw new UsageError(`--schedule_type discrete needs a model with adasde.alphas_cumprod (family ${meta.family} has none)`);
    tSteps = getSchedule({ numSteps, sigmaMin, sigmaMax, type: scheduleType, rho: scheduleRho, discrete: meta.alphasCumprod ? discreteTime(meta.alphasCumprod) : undefined });
  }
  const solverNfe = SOLVER_REGISTRY[solver].nfe(tSteps.length, options);
  return { solver, options, tSteps, numSteps: tSteps.length, scheduleType: o.tSteps ? undefined : scheduleType, scheduleRho: o.tSteps ? undefined : scheduleRho, solverNfe, predictor: predictor?.path };
}

/** Everything `adasde sample` will do, resolved: printable (`describeSamplePlan`) and run by `runSample`. */
/** Where the images of a run go and in what batches: shared by `adasde sample` with and without --fused. */
export interface OutputPlan {
  seeds: number[];
  batch: number;
  outdir: string;
  subdirs: boolean;
  grid: boolean;
  outputFormat: 'png' | 'npy';
}

export interface SamplePlan extends OutputPlan {
  solver: SolverChoice;
  /** What the batches run (solver, options, grid, labels). */
  run: SolverPlan;
  /** Denoiser evaluations per image, CFG's doubled evaluations counted. */
  nfe: number;
  modelFile: string;
  dataset: string;
  guidance: Guidance;
  prompts?: PromptSource;
  latents?: string;
  /** Latent model writing PNGs: the first-stage decoder runs. */
  decode: boolean;
  useFp16: boolean;
  returnInters: boolean;
  resume: boolean;
  device: string;
  threads: number;
  nprocPerNode: number;
  quiet: boolean;
}

/**
 * The plan of one `adasde sample` run. `world` is the number of processes sharing the seeds
 * (from the launcher's environment); nothing is written, no network runs.
 */
export function resolveSample(inputs: SampleInputs, model: SampleModelInfo, world = 1): SamplePlan {
  const o = inputs.flags;
  const meta = model.meta;
  const choice = resolveSolver(o, meta, inputs.predictor);
  if (o.classIdx !== undefined && !(o.classIdx < meta.labelDim)) {
    throw new UsageError(meta.labelDim === 0 ? '--class: the model is unconditional' : `--class: expected 0 to ${meta.labelDim - 1}, got ${o.classIdx}`);
  }
  if (o.returnInters && (o.nprocPerNode > 1 || world > 1)) throw new UsageError('--return_inters: one process only (it gathers every seed\'s trajectory into one inters.npy)');
  if ((o.prompt !== undefined || o.promptFile !== undefined) && !model.hasCondition) throw new UsageError(`--prompt: ${model.path} is not text-conditional`);
  const prompts = promptSource(o.prompt, o.promptFile);
  if (model.hasCondition) {
    if (!prompts) throw new UsageError(`${model.path} is text-conditional: give --prompt TEXT or --prompt_file FILE (CSV with a text column, or one prompt per line)`);
    checkPromptSeeds(prompts, o.seeds);
  }
  if (o.latents !== undefined && !existsSync(o.latents)) throw new UsageError(`--latents: ${o.latents} does not exist`);
  const cfg = cfgRate(o);
  let guidance: Guidance = { type: 'none' };
  if (o.guidanceType === 'cg') {
    const cg = classifierFor(model, o.guidanceRate, false);
    guidance = { type: 'cg', rate: cg.rate, classifier: cg.file, classes: cg.classes };
  } else if (cfg !== undefined) guidance = { type: 'cfg', rate: cfg };
  // Unconditional denoisers guided by a classifier draw each seed's class over its classes.
  const labelDim = guidance.type === 'cg' && meta.labelDim === 0 ? guidance.classes : meta.labelDim;
  const decode = o.outputFormat === 'png' && needsDecoder(model);
  // PNG holds grey (C = 1) or RGB (C = 3) pixels; other pixel-space channel counts stay arrays.
  const C = model.sampleShape[0]!;
  if (o.outputFormat === 'png' && !decode && C !== 1 && C !== 3) {
    throw new UsageError(`--output_format png: ${model.path} has ${C} channels; PNG images need 1 (grey) or 3 (RGB); use --output_format npy`);
  }
  preflightCompanions(model, { text: model.hasCondition, decoder: decode });
  const nfe = choice.solverNfe * (guidance.type === 'cfg' ? 2 : 1);
  // The reference's folder names: AdaSDE runs also carry their number of parallel points.
  const points = SOLVER_REGISTRY[choice.solver].usesPredictor ? `_npoints_${choice.options.coeffs?.r[0]?.length ?? 1}` : '';
  const outdir = o.outdir ?? join('samples', meta.datasetName, `${choice.solver}_nfe${nfe}${points}`);
  return {
    solver: choice,
    run: { solver: choice.solver, options: choice.options, tSteps: choice.tSteps, sampleShape: model.sampleShape, labelDim, classIdx: o.classIdx },
    nfe,
    modelFile: inputs.modelFile,
    dataset: meta.datasetName,
    guidance,
    prompts,
    latents: o.latents,
    seeds: o.seeds,
    batch: o.batch,
    outdir,
    subdirs: o.subdirs,
    grid: o.grid,
    outputFormat: o.outputFormat,
    decode,
    useFp16: o.useFp16,
    returnInters: o.returnInters,
    resume: o.resume,
    device: o.device,
    threads: o.threads,
    nprocPerNode: o.nprocPerNode,
    quiet: o.quiet,
  };
}

// ---------------------------------------------------------------------------
// sample_options.json: what made the images of a folder.

export const SAMPLE_OPTIONS_FILE = 'sample_options.json';

/** sha256 of the effective coefficients (float64 values in a fixed order). */
export function coefficientsHash(c: Coefficients): string {
  const h = createHash('sha256');
  for (const part of [c.r, c.scaleDir, c.scaleTime, c.weight, c.gamma]) {
    h.update(JSON.stringify(part.map((row) => row.length)));
    h.update(new Uint8Array(Float64Array.from(part.flat()).buffer));
  }
  return h.digest('hex');
}


/** The solver options as recorded and printed: flag spellings, coefficients by hash. */
export function solverOptionRecord(options: SolverOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) {
    if (k === 'coeffs' || v === undefined) continue;
    out[snakeKey(k)] = v;
  }
  return out;
}

/**
 * Every option that changes pixels, in the order a difference is reported. Seeds are not
 * among them: a second run with more seeds into the same folder adds images.
 */
export function pixelOptions(plan: SamplePlan, hashes: { model: string; latents?: string }): Record<string, unknown> {
  const s = plan.solver;
  const g = plan.guidance;
  return {
    model: resolve(plan.modelFile),
    model_sha256: hashes.model,
    solver: s.solver,
    nfe: plan.nfe,
    t_steps: Array.from(s.tSteps),
    options: solverOptionRecord(s.options),
    coefficients_sha256: s.options.coeffs ? coefficientsHash(s.options.coeffs) : null,
    predictor: s.predictor ? resolve(s.predictor) : null,
    class: plan.run.classIdx ?? null,
    label_dim: plan.run.labelDim,
    guidance_type: g.type === 'none' ? null : g.type,
    guidance_rate: g.type === 'none' ? null : g.rate,
    classifier: g.type === 'cg' ? resolve(g.classifier) : null,
    prompt: plan.prompts?.kind === 'prompt' ? plan.prompts.prompt : null,
    prompt_file_sha256: plan.prompts?.kind === 'file' ? createHash('sha256').update(JSON.stringify(plan.prompts.prompts)).digest('hex') : null,
    latents_sha256: hashes.latents ?? null,
    use_fp16: plan.useFp16,
    output_format: plan.outputFormat,
    decoded: plan.decode,
  };
}

interface SampleRecord {
  version: 1;
  pixels: Record<string, unknown>;
  /** Seeds whose images the folder holds (the `--seeds` syntax). */
  seeds: string;
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

const shown = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));

/** The first key whose value differs between two records, as `key=a` vs `key=b`. */
export function firstDifference(stored: Record<string, unknown>, now: Record<string, unknown>): { key: string; stored: string; now: string } | undefined {
  for (const key of new Set([...Object.keys(now), ...Object.keys(stored)])) {
    const a = stored[key];
    const b = now[key];
    if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
      const d = firstDifference(a as Record<string, unknown>, b as Record<string, unknown>);
      if (d) return { ...d, key: `${key}.${d.key}` };
    } else if (JSON.stringify(a ?? null) !== JSON.stringify(b ?? null)) return { key, stored: shown(a ?? null), now: shown(b ?? null) };
  }
  return undefined;
}

/**
 * Writes `sample_options.json` for this run, or refuses the folder. When resuming into a
 * folder whose record differs in anything that changes pixels, the run stops naming the
 * first difference. Seeds combine: resuming adds this run's seeds to the recorded ones (in
 * the order first seen); `--resume=False` and `.npy` output, which rewrite, record this run's seeds.
 */
export async function recordSampleOptions(plan: SamplePlan): Promise<void> {
  const pixels = pixelOptions(plan, { model: await fileSha256(plan.modelFile), latents: plan.latents ? await fileSha256(plan.latents) : undefined });
  await writeSampleOptions(plan, pixels);
}

/**
 * The record-or-refuse of `recordSampleOptions` for any run that writes images into a folder
 * (`adasde sample` and `adasde sample --fused`): `pixels` is what decides the images.
 */
export async function writeSampleOptions(
  run: { outdir: string; resume: boolean; outputFormat: string; seeds: readonly number[] },
  pixels: Record<string, unknown>,
): Promise<void> {
  const path = join(run.outdir, SAMPLE_OPTIONS_FILE);
  let seeds = run.seeds;
  const accumulate = run.resume && run.outputFormat === 'png';
  if (accumulate && existsSync(path)) {
    let stored: SampleRecord;
    try {
      stored = JSON.parse(readFileSync(path, 'utf8')) as SampleRecord;
    } catch (e) {
      throw new UsageError(`--outdir ${run.outdir}: ${SAMPLE_OPTIONS_FILE} is not valid JSON (${firstLine(e)}); remove it or pass --resume=False`);
    }
    const d = firstDifference(stored.pixels ?? {}, pixels);
    if (d) throw new UsageError(`--outdir ${run.outdir} holds images made with ${d.key}=${d.stored} (${SAMPLE_OPTIONS_FILE}), this run has ${d.key}=${d.now}; use another --outdir, or --resume=False to replace them`);
    const before = typeof stored.seeds === 'string' ? parseSeeds(stored.seeds) : [];
    const have = new Set(before);
    seeds = [...before, ...run.seeds.filter((s) => !have.has(s))];
  }
  const record: SampleRecord = { version: 1, pixels, seeds: formatSeedList(seeds) };
  await writeFileAtomic(path, JSON.stringify(record, null, 2) + '\n');
}

export function parseSeeds(s: string): number[] {
  const out: number[] = [];
  for (const part of s.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return out;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    for (let k = a; k <= b; k++) out.push(k);
  }
  return out;
}

/**
 * A resolved solver as the `--dry-run` plans print it (sample, fuse): plain JSON, the grid in
 * full, coefficients by hash; `nfe` after the solver's name, as the plans list it.
 */
export function describeSolverChoice(s: SolverChoice, nfe: number): Record<string, unknown> {
  return {
    solver: s.solver,
    nfe,
    num_steps: s.numSteps,
    schedule_type: s.scheduleType ?? null,
    schedule_rho: s.scheduleRho ?? null,
    t_steps: Array.from(s.tSteps),
    options: solverOptionRecord(s.options),
    predictor: s.predictor ?? null,
    coefficients_sha256: s.options.coeffs ? coefficientsHash(s.options.coeffs) : null,
  };
}

/** The plan as printed by `--dry-run`: plain JSON, the grid in full, coefficients by hash. */
export function describeSamplePlan(plan: SamplePlan): Record<string, unknown> {
  return {
    model: plan.modelFile,
    dataset: plan.dataset,
    ...describeSolverChoice(plan.solver, plan.nfe),
    label_dim: plan.run.labelDim,
    class: plan.run.classIdx ?? null,
    guidance: plan.guidance,
    prompts: plan.prompts ? (plan.prompts.kind === 'prompt' ? plan.prompts.prompt : `${plan.prompts.path} (${plan.prompts.prompts.length} prompts)`) : null,
    latents: plan.latents ?? null,
    seeds: formatSeedList(plan.seeds),
    images: plan.seeds.length,
    batch: plan.batch,
    outdir: plan.outdir,
    output_format: plan.outputFormat,
    decode: plan.decode,
    grid: plan.grid,
    subdirs: plan.subdirs,
    use_fp16: plan.useFp16,
    return_inters: plan.returnInters,
    resume: plan.resume,
    device: plan.device,
    threads: plan.threads,
    nproc_per_node: plan.nprocPerNode,
  };
}

// ---------------------------------------------------------------------------
// Running a plan.

/** Progress of a run (src/cli/progress.ts draws it; tests may count). */
export interface ProgressSink {
  skip(n: number): void;
  advance(items: number, nfe: number): void;
  fromWorker(msg: unknown): void;
  stop(): void;
  readonly skipped: number;
}

export interface SampleSinks {
  /** A progress display for `total` images. */
  progress(total: number): ProgressSink;
}

export interface SampleResult {
  /** Images written now (skipped ones not counted). */
  images: number;
  skipped: number;
  /** Where the output went: the folder, or samples.npy. */
  dest: string;
  /** This process is a rank of a larger run; the launcher (or the user's merge) reports. */
  partial: boolean;
}

/** The seeds this rank produces, in batches, with finished images skipped when resuming. */
function pendingBatches(plan: SamplePlan, dist: DistEnv): { batches: number[][]; skipped: number } {
  const mine = rankBatches(plan.seeds, plan.batch, dist.rank, dist.world);
  // --return_inters needs every seed's trajectory, so nothing is skipped.
  if (!plan.resume || plan.outputFormat === 'npy' || plan.returnInters) return { batches: mine, skipped: 0 };
  let skipped = 0;
  const todo = mine.map((b) =>
    b.filter((s) => {
      const done = existsSync(imagePath(plan.outdir, s, plan.subdirs));
      if (done) skipped++;
      return !done;
    }),
  );
  return { batches: todo.filter((b) => b.length > 0), skipped };
}

function checkFinite(x: Float64Array | Float32Array, seeds: readonly number[], dim: number): void {
  for (let b = 0; b < seeds.length; b++) {
    for (let k = b * dim; k < (b + 1) * dim; k++) {
      if (!Number.isFinite(x[k]!)) throw new RunError(`seed ${seeds[b]} produced a non-finite value; stopping (images written so far are complete)`);
    }
  }
}

async function loadLatents(path: string, seeds: readonly number[], shape: readonly number[]): Promise<Map<number, Float64Array>> {
  if (!existsSync(path)) throw new UsageError(`--latents: ${path} does not exist`);
  const arr = await readNpy(path).catch((e: unknown) => {
    throw e instanceof UsageError ? new UsageError(`--latents: ${e.message}`) : e;
  });
  const want = [seeds.length, ...shape];
  if (arr.shape.length !== 4 || arr.shape.some((d, k) => d !== want[k])) {
    throw new UsageError(`--latents: ${path} has shape [${arr.shape.join(', ')}]; expected [${want.join(', ')}] (one row per seed)`);
  }
  const all = toFloat64(arr);
  const dim = elementCount(shape);
  return new Map(seeds.map((s, k) => [s, all.slice(k * dim, (k + 1) * dim)]));
}

/** Text and latent-decoding companions of one rank (README, "The model contract"). */
interface RankCompanions {
  /** Prompt states for text-conditional models, with the prompt of each seed. */
  text?: { encoder: PromptEncoder; prompts: PromptSource };
  /** Latent models: images come from the first-stage decoder (not for npy output). */
  decoder?: DecoderModel;
  /** Classifier guidance: the classifier's gradient graph and the guided denoiser. */
  classifier?: ClassifierGradient;
  denoise?: Denoiser;
}

/** One rank's share: returns the number of images written (and the states for npy output). */
async function runRank(plan: SamplePlan, dist: DistEnv, model: DenoiserModel, progress: ProgressSink, comp: RankCompanions, latents: Map<number, Float64Array> | undefined): Promise<{ images: number; npy?: Float32Array; inters?: Map<number, Float32Array[]> }> {
  const run = plan.run;
  const [C, H, W] = model.sampleShape;
  const dim = model.dim;
  const cfg = plan.guidance.type === 'cfg';
  const { batches, skipped } = pendingBatches(plan, dist);
  progress.skip(skipped);
  // A run killed outright (kill -9, power loss) leaves its temp files; writers that are gone
  // are recognised by their pid (io/atomic.ts) and their leftovers removed before we start.
  if (plan.outputFormat !== 'npy') {
    const mine = rankBatches(plan.seeds, plan.batch, dist.rank, dist.world).flat().map((s) => imagePath(plan.outdir, s, plan.subdirs));
    const names = new Set(mine.map((p) => basename(p)));
    for (const d of new Set(mine.map((p) => dirname(p)))) await removeStaleTempFiles(d, undefined, (n) => names.has(n));
  }
  const npyOut = plan.outputFormat === 'npy' ? new Map<number, Float32Array>() : undefined;
  let images = 0;
  // Class-conditional CFG: the unconditional branch sees all-zero labels.
  const cfgLabels = cfg && run.labelDim > 0;
  const writer = npyOut ? undefined : new ImageWriter();
  const paths = (seeds: readonly number[]) => seeds.map((s) => imagePath(plan.outdir, s, plan.subdirs));
  // --use_fp16 on a float32 model: the precision of a float16 boundary (an fp16 export has it already).
  const base = comp.denoise ?? model.denoise;
  const denoise = plan.useFp16 && model.dtype !== 'float16' ? halfBoundary(base) : base;
  // --return_inters: per seed, the state at t_0 and after every step (float32, as written).
  const inters = plan.returnInters ? new Map<number, Float32Array[]>() : undefined;
  const t0 = run.tSteps[0]!;
  try {
    await runBatches(run, denoise, batches, {
      callbackFor: inters
        ? (seeds): StepCallback => {
            const z = latents ? undefined : seedLatents(seeds, dim);
            seeds.forEach((s, b) => inters.set(s, [Float32Array.from(latents ? latents.get(s)! : z!.subarray(b * dim, (b + 1) * dim), (v) => v * t0)]));
            return (info) => seeds.forEach((s, b) => inters.get(s)!.push(Float32Array.from(info.x.subarray(b * dim, (b + 1) * dim))));
          }
        : undefined,
      latentsFor: latents
        ? (seeds) => {
            const z = new Float64Array(seeds.length * dim);
            seeds.forEach((s, b) => z.set(latents.get(s)!, b * dim));
            return z;
          }
        : undefined,
      condFor: async (seeds): Promise<Conditioning | undefined> => {
        if (comp.text) return comp.text.encoder.conditioning(seeds.map((s) => promptOf(comp.text!.prompts, s)), cfg);
        return cfgLabels ? { uncondition: new Float32Array(seeds.length * run.labelDim), labelDim: run.labelDim } : undefined;
      },
      // Called once the next batch has started: PNG compression and file writes overlap its
      // model run (src/sample/pipeline.ts runBatches).
      consume: async (x, seeds) => {
        checkFinite(x, seeds, dim);
        // With --denoise_to_zero the final D(x, t_{N-1}) is the trajectory's last state.
        if (inters && run.options.denoiseToZero) seeds.forEach((s, b) => inters.get(s)!.push(Float32Array.from(x.subarray(b * dim, (b + 1) * dim))));
        if (npyOut) {
          // Latent models keep the final latent x here (the decoder is not run).
          seeds.forEach((s, b) => npyOut.set(s, Float32Array.from(x.subarray(b * dim, (b + 1) * dim))));
        } else if (comp.decoder) {
          const img = await comp.decoder.decode(x, seeds.length, model.sampleShape);
          const [iC, iH, iW] = img.shape;
          const idim = iC * iH * iW;
          checkFinite(img.data, seeds, idim);
          await writer!.write(paths(seeds), quantizeBatch(img.data, seeds.length, iC, iH, iW), iC, iH, iW);
        } else {
          // Quantised here (x is recycled once consume settles), compressed and written on the
          // writer thread.
          await writer!.write(paths(seeds), quantizeBatch(x, seeds.length, C, H, W), C, H, W);
        }
        images += seeds.length;
        progress.advance(seeds.length, seeds.length * plan.nfe);
      },
    });
  } finally {
    await writer?.close();
  }
  if (npyOut) {
    const mine = rankBatches(plan.seeds, plan.batch, dist.rank, dist.world).flat();
    const out = new Float32Array(mine.length * dim);
    mine.forEach((s, k) => out.set(npyOut.get(s)!, k * dim));
    return { images, npy: out, inters };
  }
  return { images, inters };
}

/** inters.npy: float32 [states, n, C, H, W], seeds in --seeds order (as the reference stacks them). */
async function writeInters(plan: SamplePlan, inters: Map<number, Float32Array[]>, shape: readonly number[]): Promise<string> {
  const dim = elementCount(shape);
  const seeds = plan.seeds;
  const states = inters.get(seeds[0]!)!.length;
  const out = new Float32Array(states * seeds.length * dim);
  seeds.forEach((s, k) => inters.get(s)!.forEach((x, p) => out.set(x, (p * seeds.length + k) * dim)));
  const dest = join(plan.outdir, 'inters.npy');
  await writeNpy(dest, ndarray('float32', [states, seeds.length, ...shape], out));
  return dest;
}

const npyPartPath = (outdir: string, rank: number) => join(outdir, `.samples-rank${String(rank).padStart(5, '0')}.npy`);

/** Assemble per-rank .npy parts into samples.npy in seed order (the reference's order of --seeds). */
async function mergeNpy(plan: SamplePlan, world: number, shape: readonly number[]): Promise<string> {
  const dim = elementCount(shape);
  const bySeed = new Map<number, Float32Array>();
  for (let rank = 0; rank < world; rank++) {
    const arr = await readNpy(npyPartPath(plan.outdir, rank));
    const data = arr.data as Float32Array;
    rankBatches(plan.seeds, plan.batch, rank, world)
      .flat()
      .forEach((s, k) => bySeed.set(s, data.subarray(k * dim, (k + 1) * dim)));
  }
  const out = new Float32Array(plan.seeds.length * dim);
  plan.seeds.forEach((s, k) => out.set(bySeed.get(s)!, k * dim));
  const dest = join(plan.outdir, 'samples.npy');
  await writeNpy(dest, ndarray('float32', [plan.seeds.length, ...shape], out));
  for (let rank = 0; rank < world; rank++) await rm(npyPartPath(plan.outdir, rank), { force: true });
  return dest;
}

/** grid.png of every seed's image, read back from the written PNGs (in --seeds order). */
export async function writeGrid(plan: Pick<SamplePlan, 'seeds' | 'outdir' | 'subdirs'>): Promise<void> {
  const imgs: DecodedImage[] = [];
  for (const s of plan.seeds) {
    const path = imagePath(plan.outdir, s, plan.subdirs);
    imgs.push(await decodeImage(await readFile(path), path));
  }
  // decodeImage gives RGB CHW; the size is the written images' (the decoder's for latent models).
  const { width: W, height: H } = imgs[0]!;
  const g = makeGrid(imgs.map((i) => i.data), 3, H, W);
  await writeFileAtomic(join(plan.outdir, GRID_NAME), await encodePng(g.data, g.C, g.height, g.width));
}

/** D evaluated through a float16 boundary: inputs and output rounded to binary16 (--use_fp16). */
function halfBoundary(denoise: Denoiser): Denoiser {
  const round = (a: Float64Array): Float64Array => {
    const out = new Float64Array(a.length);
    fromHalfArray(toHalfArray(a), out);
    return out;
  };
  return async (req) => round(await denoise({ ...req, x: round(req.x), sigma: round(req.sigma), out: undefined }));
}

/**
 * Carries out a plan with an open model (which it disposes). With --nproc_per_node > 1 this
 * process is the launcher: it closes the model and starts the workers (`argv` re-runs the
 * command). Ranks of a larger run write their share and return `partial`.
 */
export async function runSample(plan: SamplePlan, model: DenoiserModel, dist: DistEnv, sinks: SampleSinks, argv: readonly string[] = process.argv): Promise<SampleResult> {
  const isWorkerRank = dist.world > 1;
  if (plan.guidance.type === 'cg') prepareClassifierGradient(plan.guidance.classifier);
  // Checked before anything is recorded: a bad --latents file leaves no sample_options.json claiming the folder.
  const latents = plan.latents ? await loadLatents(plan.latents, plan.seeds, model.sampleShape) : undefined;
  prepareOutdir(plan.outdir, '--outdir');
  // The launcher (or a single process) owns sample_options.json and the merged outputs.
  if (dist.rank === 0 && !isWorkerRank) await recordSampleOptions(plan);
  // grid.png and samples.npy are written by rank 0 (or the launcher) only.
  if (dist.rank === 0) await removeStaleTempFiles(plan.outdir, undefined, (n) => n === GRID_NAME || n === 'samples.npy');

  let skipped = 0;
  let images = 0;
  if (plan.nprocPerNode > 1) {
    await model.dispose();
    const progress = sinks.progress(plan.seeds.length);
    try {
      await runWorkers(plan.nprocPerNode, argv, dist, (msg) => progress.fromWorker(msg));
    } finally {
      progress.stop();
    }
    skipped = progress.skipped;
    images = plan.seeds.length - skipped;
  } else {
    const total = isWorkerRank ? rankBatches(plan.seeds, plan.batch, dist.rank, dist.world).flat().length : plan.seeds.length;
    const session = { device: model.device, threads: plan.threads || undefined, maxBatch: plan.batch };
    const comp: RankCompanions = {};
    try {
      if (model.hasCondition && plan.prompts) comp.text = { encoder: await PromptEncoder.open(model, session), prompts: plan.prompts };
      if (plan.decode) comp.decoder = await openDecoder(model, session);
      if (plan.guidance.type === 'cg') {
        comp.classifier = await loadClassifierGradient(plan.guidance.classifier, { ...session, sampleShape: model.sampleShape, labelDim: plan.run.labelDim });
        comp.denoise = classifierGuided(model.denoise, comp.classifier, { rate: plan.guidance.rate, clamp: model.meta.family === 'adm' });
      }
    } catch (e) {
      await comp.text?.encoder.dispose();
      await comp.decoder?.dispose();
      throw e;
    }
    const progress = sinks.progress(total);
    let res: Awaited<ReturnType<typeof runRank>>;
    try {
      res = await runRank(plan, dist, model, progress, comp, latents);
    } finally {
      progress.stop();
      await comp.text?.encoder.dispose();
      await comp.decoder?.dispose();
      await comp.classifier?.dispose();
    }
    skipped = progress.skipped;
    images = res.images;
    if (res.inters) await writeInters(plan, res.inters, model.sampleShape);
    if (res.npy) await writeNpy(npyPartPath(plan.outdir, dist.rank), ndarray('float32', [res.npy.length / model.dim, ...model.sampleShape], res.npy));
    await model.dispose();
    // The launcher (or the rank-0 user script) assembles.
    if (isWorkerRank) return { images, skipped, dest: plan.outdir, partial: true };
  }
  let dest = plan.outdir;
  if (plan.outputFormat === 'npy') {
    // With several machines each node's launcher only knows its own ranks: the parts stay
    // beside the output for the user's merge step (README, "Many processes").
    if (dist.world > 1) return { images, skipped, dest, partial: true };
    dest = await mergeNpy(plan, plan.nprocPerNode, model.sampleShape);
  } else if (plan.grid) await writeGrid(plan);
  return { images, skipped, dest: resolve(dest), partial: false };
}
