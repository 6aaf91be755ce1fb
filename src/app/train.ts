/**
 * `adasde train` below the CLI: distill AdaSDE coefficients from the teacher (ALGORITHM.md
 * 4.2-4.3) in the shape of EDM's train.py, a self-describing numbered run folder with
 * training_options.json, log.txt, stats.jsonl and predictor snapshots
 * network-snapshot-<kimg>.json that `adasde sample --predictor_path N` reads directly.
 *
 * `resolveResume` and `resolveTrain` turn the flags (and, for a resumed run, its folder) and
 * the model's metadata into a `TrainPlan`: every option, the run folder, the start, the
 * record written as training_options.json (what `--dry-run` prints). `runTrain` carries a
 * plan out, reporting through `TrainSinks`; src/cli/train.ts wires the two together.
 */
import { randomInt } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { writeTrainChart } from '../charts/train.js';
import { commanderKey, parseOptions, toFlagRecord } from '../config/options.js';
import { loadPredictor, PREDICTOR_FORMAT, PREDICTOR_VERSION, rawParamsOf, type PredictorFile } from '../config/predictor.js';
import { trainTable, type TrainOptions } from '../config/train.js';
import { DEFAULT_DETECTOR } from '../config/common.js';
import { inspectDetector } from '../fid/detector.js';
import { appendLog, removeStaleTempFiles, writeFileAtomic } from '../io/atomic.js';
import { prepareOutdir } from '../io/outdir.js';
import { claimRunDir, nextRunDir, resolvePredictorPath, resolveRunDir, runDescOf, snapshotName } from '../io/runs.js';
import { createReducer } from '../parallel/allreduce.js';
import type { DistEnv } from '../parallel/launcher.js';
import { classifierGuided, loadClassifierGradient, type ClassifierGradient } from '../runtime/guidance.js';
import { loadFeatureModel, type DenoiserModel } from '../runtime/model.js';
import { classifierFor, needsDecoder, openDecoder, openDecoderVjp, preflightCompanions, PromptEncoder } from '../sample/companions.js';
import { adasdeNfe } from '../solvers/adasde.js';
import { effectiveCoefficients, RAW_PARAM_NAMES, type CoefficientBounds } from '../solvers/coefficients.js';
import { discreteTime } from '../solvers/schedule.js';
import type { Denoiser } from '../core/denoiser.js';
import { readPromptFile } from '../text/prompts.js';
import { initState, neutralState, stateFromRaw, totalBatches, trainBatch, type CondFn, type DecodeFn, type DecoderVjpFn, type FeatureFn, type FeatureVjpFn, type TrainSetup, type TrainState } from '../train/loop.js';
import { bestReverseFrom, hybridCost, VJP_ROW_COST } from '../train/gradient-plan.js';
import type { VjpFn } from '../train/tape.js';
import { denoiserVjpSupport, loadDenoiserVjp, loadFeatureVjp } from '../runtime/vjp.js';
import { fileSha256 } from '../io/sha256.js';
import { TeacherCache } from '../train/teacher-cache.js';
import { firstLine, RunError, UsageError } from '../core/errors.js';

const STATE_FILE = 'training-state.json';

/** gamma_min of ALGORITHM.md 4.1. */
export const GAMMA_MIN = 2e-4;

/** The coefficient bounds of ALGORITHM.md 4.1 that the options set. */
function boundsOf(o: TrainOptions): CoefficientBounds {
  return { scaleDir: o.scaleDir, scaleTime: o.scaleTime, gamma: o.gamma, gammaMin: GAMMA_MIN, fcn: o.fcn };
}

/** `uni1.0`, `poly7.0`, `logsnr`, `discrete` (rho printed as a Python float). */
export function scheduleTag(type: string, rho: number): string {
  const r = Number.isInteger(rho) ? rho.toFixed(1) : String(rho);
  return { polynomial: `poly${r}`, logsnr: 'logsnr', time_uniform: `uni${r}`, discrete: 'discrete' }[type] ?? type;
}

export function studentNfe(o: Pick<TrainOptions, 'numSteps' | 'numPoints' | 'afs'>): number {
  return adasdeNfe(o.numSteps, o.numPoints, o.afs);
}

/** The reference's run name: <dataset>-<num_steps>-<nfe>-adasde-<teacher>-<M>-<schedule tag>[-afs][-desc]. */
export function runDescription(o: TrainOptions, dataset: string): string {
  // As the reference, the name counts model evaluations: with CFG each step evaluates the
  // conditional and unconditional halves (ms_coco-4-10-...: 5 solver NFE, 10 evaluations).
  const cfg = o.guidanceType === 'cfg' && o.guidanceRate > 0 ? 2 : 1;
  const parts = [dataset, o.numSteps, cfg * studentNfe(o), o.samplerStu, o.samplerTea, o.M, scheduleTag(o.scheduleType, o.scheduleRho)];
  let d = parts.join('-');
  if (o.afs) d += '-afs';
  if (o.desc) d += `-${o.desc}`;
  return d;
}

// ---------------------------------------------------------------------------------------
// Resolution: flags (and a resumed run's folder) -> options; options + model -> plan
// ---------------------------------------------------------------------------------------

const stateSchema = z.object({
  batchIndex: z.number().int().min(0),
  raw: z.record(z.string(), z.array(z.array(z.number()))),
  adam: z.record(z.string(), z.object({ m: z.array(z.array(z.number())), v: z.array(z.array(z.number())), step: z.number().int() })),
  elapsedSec: z.number(),
});

/** A run taken up again by --resume: its folder, its recorded options and its saved state. */
export interface ResumedRun {
  dir: string;
  options: Record<string, unknown>;
  /** What the run resolved when it began (training_options.json's "resolved"). */
  resolved: Record<string, unknown>;
  state: TrainState;
  elapsedSec: number;
}

/** The parsed JSON of a file, or undefined when it is not JSON (a corrupt or truncated file). */
function readJsonOr(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function loadResumeState(dir: string): ResumedRun {
  const optPath = join(dir, 'training_options.json');
  const statePath = join(dir, STATE_FILE);
  if (!existsSync(optPath)) throw new UsageError(`--resume: ${dir} has no training_options.json`);
  if (!existsSync(statePath)) throw new UsageError(`--resume: ${dir} has no ${STATE_FILE} (no snapshot was written yet)`);
  const parsed = stateSchema.safeParse(readJsonOr(statePath));
  if (!parsed.success) throw new UsageError(`--resume: ${statePath} is not a valid training state (not the JSON adasde train writes)`);
  const s = parsed.data;
  const raw = { r: s.raw.r!, scaleDir: s.raw.scaleDir!, scaleTime: s.raw.scaleTime!, weight: s.raw.weight!, gamma: s.raw.gamma! };
  const adam = Object.fromEntries(RAW_PARAM_NAMES.map((t) => [t, s.adam[t]!])) as TrainState['adam'];
  const record = readJsonOr(optPath) as { options?: unknown; resolved?: unknown } | undefined;
  const options = record?.options;
  if (typeof options !== 'object' || options === null) throw new UsageError(`--resume: ${optPath} is not a valid training_options.json (no "options" record)`);
  const resolved = typeof record?.resolved === 'object' && record.resolved !== null ? (record.resolved as Record<string, unknown>) : {};
  return { dir, options: options as Record<string, unknown>, resolved, state: { raw, adam, batchIndex: s.batchIndex }, elapsedSec: s.elapsedSec };
}

/** Flags a resumed run takes from the command line; every other one is the run's own. */
const RESUME_FLAGS = new Set<string>(['resume', 'quiet', 'device', 'threads', 'nprocPerNode', 'dryRun', 'totalKimg', 'outdir', 'teacherCache', 'teacherCacheGb']);

/**
 * The options a run trains with: the flags, or with --resume the run's recorded options
 * with only how it runs (and --total_kimg, which may extend it) taken from the flags.
 */
export function resolveResume(cli: TrainOptions, given: ReadonlySet<string>): { opts: TrainOptions; resumed?: ResumedRun; extended: boolean } {
  if (cli.resume === undefined) return { opts: cli, extended: false };
  const resumeDir = resolveRunDir(cli.resume, cli.outdir);
  const resumed = loadResumeState(resumeDir);
  // The run continues with its own options; only how it runs may change.
  const parsed = parseOptions(trainTable, Object.fromEntries(Object.entries(trainTable).map(([, spec]) => [commanderKey(spec.flag), resumed.options[spec.flag] ?? undefined])));
  // A run begun before reverse mode existed recorded no --gradient: it continues in forward mode.
  const stored: TrainOptions = resumed.options['gradient'] === undefined ? { ...parsed, gradient: 'forward' } : parsed;
  // A flag that would change the run is refused, not silently dropped.
  for (const key of given) {
    if (RESUME_FLAGS.has(key)) continue;
    const k = key as keyof TrainOptions;
    if (JSON.stringify(cli[k]) !== JSON.stringify(stored[k])) {
      throw new UsageError(`--${trainTable[k].flag} ${String(cli[k])} disagrees with the resumed run ${resumeDir} (${trainTable[k].flag}=${String(stored[k])}); a resumed run keeps its options`);
    }
  }
  // --total_kimg may extend a run (the learning-rate schedule follows the new length).
  const extended = given.has('totalKimg');
  const totalKimg = extended ? cli.totalKimg : stored.totalKimg;
  const done = resumed.state.batchIndex;
  if (totalBatches(totalKimg, stored.batch) <= done) {
    const doneKimg = (done * stored.batch) / 1000;
    throw new UsageError(
      extended
        ? `--total_kimg ${totalKimg}: the run ${resumeDir} has already trained ${doneKimg} kimg; give a larger value to continue it`
        : `--resume: the run ${resumeDir} is complete (${doneKimg} of ${stored.totalKimg} kimg); give --total_kimg above ${doneKimg} to continue it`,
    );
  }
  const opts = { ...stored, totalKimg, resume: cli.resume, quiet: cli.quiet, device: cli.device, threads: cli.threads, nprocPerNode: cli.nprocPerNode, dryRun: cli.dryRun, teacherCache: cli.teacherCache ?? stored.teacherCache, teacherCacheGb: cli.teacherCacheGb };
  return { opts, resumed, extended };
}

interface InitChoice {
  state: TrainState;
  /** What training_options.json records under resolved.init. */
  record: { kind: 'random' | 'neutral' | 'predictor'; file: string | null; note: string | null };
}

/**
 * --init: the reference's random start, the neutral start, or a predictor's raw parameters
 * (a warm start). A predictor trained under other bounds (scale_dir, scale_time, gamma) gives
 * other effective coefficients from the same raw values; that is allowed and noted.
 */
function initialState(o: TrainOptions, seed: number): InitChoice {
  if (o.init === undefined) return { state: initState(seed, o.numSteps, o.numPoints), record: { kind: 'random', file: null, note: null } };
  if (o.init === 'neutral') return { state: neutralState(o.numSteps, o.numPoints), record: { kind: 'neutral', file: null, note: null } };
  const file = resolvePredictorPath(o.init, o.outdir, '--init', 'neutral');
  const p = loadPredictor(file);
  const differs: string[] = [];
  if (p.options.num_steps !== o.numSteps) differs.push(`num_steps ${p.options.num_steps} (this run ${o.numSteps})`);
  if (p.options.num_points !== o.numPoints) differs.push(`num_points ${p.options.num_points} (this run ${o.numPoints})`);
  if (differs.length) throw new UsageError(`--init: ${file} has ${differs.join(' and ')}; expected a predictor with the same num_steps and num_points`);
  const bounds: [string, number, number][] = [
    ['scale_dir', p.options.scale_dir, o.scaleDir],
    ['scale_time', p.options.scale_time, o.scaleTime],
    ['gamma', p.options.gamma, o.gamma],
    ['gamma_min', p.options.gamma_min, GAMMA_MIN],
  ];
  const other = bounds.filter(([, a, b]) => a !== b).map(([k, a, b]) => `${k} ${a} -> ${b}`);
  const note = other.length ? `raw parameters taken as they are under other bounds (${other.join(', ')}), so the starting coefficients differ from the predictor's` : null;
  return { state: stateFromRaw(rawParamsOf(p)), record: { kind: 'predictor', file, note } };
}

/** What of the loaded denoiser the plan depends on. */
export type TrainModelInfo = Pick<DenoiserModel, 'path' | 'meta' | 'sampleShape' | 'hasCondition'>;

/** Where and how this process runs: the model file, the detector's local file, its rank. */
export interface TrainContext {
  modelFile: string;
  /** `--detector` itself, or for an http(s) URL its cached download. */
  detectorFile: string | undefined;
  resumed: ResumedRun | undefined;
  /** --resume with --total_kimg: the run's record takes the new length. */
  extended: boolean;
  dist: DistEnv;
  device: string;
}

/** Everything a run needs, decided before anything is written. */
export interface TrainPlan {
  opts: TrainOptions;
  /** The run folder (for a new numbered run a preview: the number is claimed by runTrain). */
  runDir: string;
  modelFile: string;
  dataset: string;
  seed: number;
  detector: string | undefined;
  featureLossNote: string;
  resumed: ResumedRun | undefined;
  extended: boolean;
  /** The start of a new run (a resumed run continues from its saved state). */
  init: InitChoice | undefined;
  /** --guidance_type cg: the classifier companion. */
  cg: { file: string; rate: number; classes: number } | undefined;
  dist: DistEnv;
  device: string;
  /** training_options.json: the options in the reference's spelling and what was resolved. */
  record: { options: Record<string, unknown>; resolved: Record<string, unknown> & { run_dir: string } };
}

/** The plan of a run: options, folder, detector, start. Refuses what cannot train, before any file is written. */
export function resolveTrain(o: TrainOptions, model: TrainModelInfo, ctx: TrainContext): TrainPlan {
  const dataset = o.datasetName ?? model.meta.datasetName;
  const seed = o.seed ?? randomInt(0, 2 ** 31 - 1);
  let detector: string | undefined;
  let featureLossNote: string;
  if (o.detector !== undefined && ctx.detectorFile !== undefined) {
    if (!existsSync(ctx.detectorFile)) throw new UsageError(`--detector: ${o.detector} does not exist (expected a feature-extractor ONNX file; see tools/export_inception.py)`);
    // Also refuses a file that is not a feature extractor (a denoiser, a companion) by name.
    inspectDetector(ctx.detectorFile);
    detector = ctx.detectorFile;
    featureLossNote = `final interval: feature loss through ${o.detector}, alpha ${o.alpha}`;
  } else if (existsSync(DEFAULT_DETECTOR)) {
    detector = DEFAULT_DETECTOR;
    featureLossNote = `final interval: Inception feature loss (${DEFAULT_DETECTOR}), alpha ${o.alpha}`;
  } else {
    featureLossNote = `warning: no detector (${DEFAULT_DETECTOR} not found, --detector not given): the final interval uses the L2 loss instead of the Inception feature loss`;
  }
  const runDir = ctx.resumed?.dir ?? (o.nosubdir ? o.outdir : nextRunDir(o.outdir, runDescription(o, dataset)));
  if (o.scheduleType === 'discrete' && !model.meta.alphasCumprod) throw new UsageError('--schedule_type discrete needs a model with adasde.alphas_cumprod');
  if (o.batch < ctx.dist.world) throw new UsageError(`--batch ${o.batch} is smaller than the number of processes (${ctx.dist.world})`);
  if (o.reverseFrom !== undefined) {
    if (o.gradient === 'forward') throw new UsageError('--reverse_from applies to hybrid gradients; give --gradient hybrid or auto');
    if (o.reverseFrom > o.numSteps - 2) throw new UsageError(`--reverse_from ${o.reverseFrom}: num_steps ${o.numSteps} has intervals 0 to ${o.numSteps - 2}`);
  }
  if (o.guidanceType === 'cfg' && o.guidanceRate > 0 && model.meta.labelDim === 0 && !model.hasCondition) {
    throw new UsageError(`--guidance_type cfg: ${ctx.modelFile} is unconditional (no class_labels or condition input); classifier-free guidance needs a conditional model`);
  }
  // Classifier guidance wraps the denoiser (teacher and student alike), as sample does.
  const cg = o.guidanceType === 'cg' ? classifierFor(model, o.guidanceRate, !o.dryRun) : undefined;
  // A resumed run continues from its saved state; its start was recorded when it began.
  const init = ctx.resumed ? undefined : initialState(o, seed);
  const opts = { ...o, seed };
  const record = {
    options: toFlagRecord(trainTable, { ...opts, model: ctx.modelFile }),
    resolved: {
      run_dir: runDir,
      model: ctx.modelFile,
      dataset,
      seed,
      detector: detector ?? null,
      feature_loss: featureLossNote,
      world_size: ctx.dist.world,
      student_nfe: studentNfe(o),
      total_batches: totalBatches(o.totalKimg, o.batch),
      init: init?.record ?? null,
    },
  };
  return { opts, runDir, modelFile: ctx.modelFile, dataset, seed, detector, featureLossNote, resumed: ctx.resumed, extended: ctx.extended, init, cg, dist: ctx.dist, device: ctx.device, record };
}

// ---------------------------------------------------------------------------------------
// Running a plan
// ---------------------------------------------------------------------------------------

/** A progress bar the run moves (the CLI's cli-progress bar, or nothing). */
export interface ProgressSink {
  set(value: number, payload: Record<string, string>): void;
  stop(): void;
}

/** Where a run reports besides its folder; called in the main process only. */
export interface TrainSinks {
  /** The bar over the run's batches, with the fields of the CLI's training format. */
  progress(total: number, initial: Record<string, string>): ProgressSink;
  /** A one-line notice for the user (the CLI prints it on stderr unless --quiet). */
  notice(line: string): void;
}

export interface TrainSummary {
  runDir: string;
  totalKimg: number;
  batches: number;
  seconds: number;
  finalLoss: number;
}

const NO_PROGRESS: ProgressSink = { set: () => {}, stop: () => {} };

/** $ADASDE_CACHE_DIR/teacher, else $XDG_CACHE_HOME/adasde/teacher, else ~/.cache/adasde/teacher. */
export function defaultTeacherCacheDir(): string {
  if (process.env.ADASDE_CACHE_DIR) return join(process.env.ADASDE_CACHE_DIR, 'teacher');
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'adasde', 'teacher');
}

/**
 * The teacher cache of this run, keyed by everything the targets depend on: the model's
 * bytes (and its text encoder's and guiding classifier's), the teacher grid (schedule, rho, num_steps, sigma range, M),
 * the teacher solver, the trajectories' streams (training seed, generator, label stream),
 * prompts and guidance, and what changes float rounding (dtype, device, --batch-gpu).
 */
async function openTeacherCache(o: TrainOptions, seed: number, modelFile: string, model: DenoiserModel, device: string, labelDim: number, classifierFile: string | undefined): Promise<TeacherCache | undefined> {
  if (o.teacherCache === 'none') return undefined;
  const root = o.teacherCache ?? defaultTeacherCacheDir();
  const textEncoder = model.meta.textEncoder ? join(dirname(modelFile), model.meta.textEncoder) : undefined;
  const key = {
    model_sha256: await fileSha256(modelFile),
    text_encoder_sha256: textEncoder && existsSync(textEncoder) ? await fileSha256(textEncoder) : null,
    prompts_sha256: o.promptPath ? await fileSha256(o.promptPath) : null,
    // Classifier guidance (--guidance_type cg) steers the teacher through the classifier.
    classifier_sha256: classifierFile ? await fileSha256(classifierFile) : null,
    schedule: { type: o.scheduleType, rho: o.scheduleRho, num_steps: o.numSteps, sigma_min: model.meta.sigmaMin, sigma_max: model.meta.sigmaMax },
    M: o.M,
    teacher: o.samplerTea,
    seed,
    // src/train/loop.ts: trajectory g's latent and label from Alea streams `train<seed>/<g>`, Box-Muller normals.
    generator: 'alea:train<seed>/<g>:latent,label;box-muller',
    label_dim: labelDim,
    // Class-conditional CFG's unconditional rows see zero labels (before that, such runs trained unguided).
    guidance: { type: o.guidanceType ?? null, rate: o.guidanceRate, ...(cfgLabelsOf(o, model) ? { unconditional: 'zero labels' } : {}) },
    dtype: model.dtype,
    device: device.replace(/:\d+$/, ''),
    batch_gpu: o.batchGpu ?? null,
  };
  return new TeacherCache(root, key, { maxBytes: o.teacherCacheGb * 1e9 });
}

/** Class-conditional classifier-free guidance (loop.ts TrainSetup.cfgLabels). */
function cfgLabelsOf(o: TrainOptions, model: DenoiserModel): boolean {
  return o.guidanceType === 'cfg' && o.guidanceRate > 0 && model.meta.labelDim > 0 && !model.hasCondition;
}

function predictorOf(p: TrainPlan, runDir: string, state: TrainState, kimg: number, sigmaMin: number, sigmaMax: number): PredictorFile {
  const o = p.opts;
  return {
    format: PREDICTOR_FORMAT,
    version: PREDICTOR_VERSION,
    options: {
      dataset_name: p.dataset,
      num_steps: o.numSteps,
      num_points: o.numPoints,
      M: o.M,
      afs: o.afs,
      schedule_type: o.scheduleType,
      schedule_rho: o.scheduleRho,
      sigma_min: sigmaMin,
      sigma_max: sigmaMax,
      scale_dir: o.scaleDir,
      scale_time: o.scaleTime,
      gamma: o.gamma,
      gamma_min: GAMMA_MIN,
      fcn: o.fcn,
      sampler_stu: 'adasde',
      sampler_tea: o.samplerTea,
      guidance_type: o.guidanceType ?? null,
      guidance_rate: o.guidanceRate,
      max_order: o.maxOrder ?? null,
      predict_x0: o.predictX0,
      lower_order_final: o.lowerOrderFinal,
      alpha: o.alpha,
    },
    params: {
      r: state.raw.r,
      scale_dir: state.raw.scaleDir,
      scale_time: state.raw.scaleTime,
      weight: state.raw.weight,
      gamma: state.raw.gamma,
    },
    provenance: { run: basename(runDir), kimg, batches: state.batchIndex, seed: p.seed, model: p.modelFile },
  };
}

/** The model's companions and the detector as the training loop calls them. */
interface Pieces {
  decode: DecodeFn | undefined;
  features: FeatureFn | undefined;
  condFor: CondFn | undefined;
  guidance: { grad: ClassifierGradient; denoise: Denoiser } | undefined;
  gradient: GradientChoice;
}

/** How the run differentiates its coefficients (--gradient). */
interface GradientChoice {
  mode: 'forward' | 'hybrid';
  /** Hybrid: the first interval in reverse mode. */
  reverseFrom?: number;
  vjp?: VjpFn;
  featureVjp?: FeatureVjpFn;
  decoderVjp?: DecoderVjpFn;
  /** The log line saying what was chosen and why. */
  note: string;
  /** training_options.json's "gradient" entry. */
  record: Record<string, unknown>;
  dispose(): Promise<void>;
}

/**
 * The final-interval feature loss in reverse mode: the detector's VJP graph (at the decoded
 * size for latent models) and the decoder's, each given one trial row, so that a graph
 * onnxruntime cannot run fails here rather than in the middle of training.
 */
async function openFeatureReverse(plan: TrainPlan, model: DenoiserModel, pieces: { decode?: DecodeFn; features?: FeatureFn }, session: { device: string; threads: number | undefined }) {
  const { decode, features } = pieces;
  const opened: { dispose(): Promise<void> }[] = [];
  const dispose = async () => {
    for (const d of opened) await d.dispose();
  };
  try {
    const [C, H, W] = model.sampleShape;
    const dim = C * H * W;
    const dec = decode ? await openDecoderVjp(model, session) : undefined;
    if (dec) opened.push(dec);
    const image = decode ? (await decode(new Float64Array(dim), 1)).shape : ([C, H, W] as [number, number, number]);
    const fv = await loadFeatureVjp(plan.detector!, image, session);
    opened.push(fv);
    const imageDim = image[0] * image[1] * image[2];
    if (dec) {
      const g = await dec.vjp(Float64Array.from({ length: dim }, (_, q) => Math.sin(q)), 1, Float64Array.from({ length: imageDim }, (_, q) => Math.cos(q)), image);
      if (!g.grad.every(Number.isFinite)) throw new RunError(`${dec.path}: the VJP graph's trial run is not finite`);
    }
    const img = Float32Array.from({ length: imageDim }, (_, q) => 128 + 100 * Math.sin(q));
    const D = features ? (await features(img, 1, image)).dim : 0;
    const g = await fv.vjp(img, 1, new Float64Array(D).fill(1));
    if (!g.grad.every(Number.isFinite)) throw new RunError(`${fv.path}: the VJP graph's trial run is not finite`);
    return {
      featureVjp: ((images, n, u) => fv.vjp(images, n, u)) as FeatureVjpFn,
      decoderVjp: dec ? ((z, n, u, im) => dec.vjp(z, n, u, im)) as DecoderVjpFn : undefined,
      paths: { detector_vjp_graph: fv.path, decoder_vjp_graph: dec?.path ?? null },
      dispose,
    };
  } catch (e) {
    await dispose();
    throw e;
  }
}

/**
 * --gradient: hybrid (reverse mode from the cheapest interval on, gradient-plan.ts) where the
 * model and the detector have VJP graphs; auto falls back to forward mode, saying why, and
 * hybrid refuses. In auto's forward mode the final-interval feature loss still goes through the
 * detector's (and decoder's) VJP where those build: its gradient in x, dotted with each
 * tangent, is exact (finite differences smooth over the detector's kinks and see a VQ decoder's
 * steps) and costs one detector VJP instead of a perturbed copy per tangent. A resumed run keeps
 * the choice it began with.
 */
async function openGradient(plan: TrainPlan, model: DenoiserModel, pieces: { decode?: DecodeFn; features?: FeatureFn; condFor?: CondFn }, session: { device: string; threads: number | undefined }): Promise<GradientChoice> {
  const { condFor } = pieces;
  const o = plan.opts;
  const plain = (why: string): GradientChoice => ({ mode: 'forward', note: `gradient: forward mode (${why})`, record: { mode: 'forward', why }, dispose: async () => {} });
  if (plan.resumed && plan.resumed.options['gradient'] === undefined) return plain('the run began before reverse mode existed');
  if (o.gradient === 'forward') return plain('--gradient forward');
  const recorded = plan.resumed?.resolved['gradient'] as { mode?: string; reverse_from?: number; feature_loss?: string; why?: string } | undefined;
  // Auto's forward mode: the feature loss in reverse where its graphs build.
  const forward = async (why: string): Promise<GradientChoice> => {
    if (!plan.detector || (recorded && recorded.feature_loss !== 'reverse')) return plain(why);
    try {
      const fr = await openFeatureReverse(plan, model, pieces, session);
      return {
        mode: 'forward',
        featureVjp: fr.featureVjp,
        decoderVjp: fr.decoderVjp,
        note: `gradient: forward mode (${why}); the final-interval feature loss in reverse mode through ${fr.paths.detector_vjp_graph}${fr.paths.decoder_vjp_graph ? ` and ${fr.paths.decoder_vjp_graph}` : ''}`,
        record: { mode: 'forward', why, feature_loss: 'reverse', ...fr.paths },
        dispose: fr.dispose,
      };
    } catch (e) {
      if (recorded) throw new RunError(`--resume: the run's feature loss went through the detector's VJP graph, which no longer opens: ${firstLine(e)}`);
      return plain(`${why}; feature loss by finite differences: ${firstLine(e)}`);
    }
  };
  if (recorded?.mode === 'forward') return forward('as the run began');
  const bounds = boundsOf(o);
  const shape = { intervals: o.numSteps - 1, numPoints: o.numPoints, afs: o.afs, bounds };
  const k = recorded?.reverse_from ?? o.reverseFrom ?? bestReverseFrom(shape, VJP_ROW_COST);
  // Classifier guidance adds the classifier's input gradient to D: its VJP would need the
  // classifier's second derivatives, which the gradient graph does not have.
  const why = plan.cg ? 'classifier-guided training is differentiated in forward mode' : denoiserVjpSupport(plan.modelFile);
  if (why) {
    if (o.gradient === 'hybrid') throw new UsageError(`--gradient hybrid: ${why}`);
    return forward(`auto: ${why}`);
  }
  if (k >= o.numSteps - 1) return forward(`auto: reverse mode saves nothing at num_steps ${o.numSteps}, num_points ${o.numPoints}`);
  const opened: { dispose(): Promise<void> }[] = [];
  try {
    const guidanceRate = o.guidanceType === 'cfg' && o.guidanceRate > 0 ? o.guidanceRate : undefined;
    const dv = await loadDenoiserVjp(plan.modelFile, { ...session, maxBatch: model.maxBatch, guidanceRate });
    opened.push(dv);
    const [C, H, W] = model.sampleShape;
    const dim = C * H * W;
    // One trial row, so that a graph onnxruntime cannot run fails here (and auto falls back)
    // rather than in the middle of training.
    const xs = Float64Array.from({ length: dim }, (_, q) => Math.sin(q));
    const L = model.meta.labelDim;
    const cond = condFor ? await condFor([0]) : L > 0 ? { classLabels: Float32Array.from({ length: L }, (_, q) => (q === 0 ? 1 : 0)), labelDim: L, ...(cfgLabelsOf(o, model) ? { uncondition: new Float32Array(L) } : {}) } : undefined;
    const trial = await dv.vjp(xs, Float64Array.of(1), 1, xs, cond);
    if (![...trial.gx, ...trial.gs].every(Number.isFinite)) throw new RunError(`${dv.path}: the VJP graph's trial run is not finite`);
    const fr = plan.detector ? await openFeatureReverse(plan, model, pieces, session) : undefined;
    if (fr) opened.push(fr);
    const cost = hybridCost(shape, k, VJP_ROW_COST);
    const fwd = hybridCost(shape, shape.intervals, VJP_ROW_COST);
    return {
      mode: 'hybrid',
      reverseFrom: k,
      vjp: (x, sigma, rows, u, c) => dv.vjp(x, sigma, rows, u, c),
      featureVjp: fr?.featureVjp,
      decoderVjp: fr?.decoderVjp,
      note: `gradient: hybrid, forward tangents before interval ${k}, reverse mode from it (per trajectory ${cost.forwardRows} forward + ${cost.vjpRows} VJP rows, ${cost.total} at ${VJP_ROW_COST} rows a VJP, against ${fwd.total} in forward mode); VJP graph ${dv.path}${fr?.paths.decoder_vjp_graph ? `; decoder VJP graph ${fr.paths.decoder_vjp_graph}` : ''}`,
      record: { mode: 'hybrid', reverse_from: k, vjp_row_cost: VJP_ROW_COST, rows_per_trajectory: { forward: cost.forwardRows, vjp: cost.vjpRows }, vjp_graph: dv.path, detector_vjp_graph: fr?.paths.detector_vjp_graph ?? null, decoder_vjp_graph: fr?.paths.decoder_vjp_graph ?? null },
      dispose: async () => {
        for (const d of opened) await d.dispose();
      },
    };
  } catch (e) {
    for (const d of opened) await d.dispose();
    const why = firstLine(e);
    if (o.gradient === 'hybrid' || recorded?.mode === 'hybrid') {
      // An operator without a rule is the user's input; a graph that does not run is ours.
      if (e instanceof UsageError) throw new UsageError(`--gradient hybrid: ${why}`);
      throw new RunError(`--gradient hybrid: ${why}`);
    }
    return forward(`auto: ${why}`);
  }
}

async function openPieces(plan: TrainPlan, model: DenoiserModel): Promise<Pieces> {
  const o = plan.opts;
  const session = { device: plan.device, threads: o.threads || undefined };
  // Latent models: the feature loss sees decoded images.
  let decode: DecodeFn | undefined;
  if (plan.detector && needsDecoder(model)) {
    preflightCompanions(model, { text: false, decoder: true });
    const decoder = await openDecoder(model, session);
    decode = async (z, n) => {
      const img = await decoder.decode(z, n, model.sampleShape);
      return { images: Float64Array.from(img.data), shape: img.shape };
    };
  }
  let features: FeatureFn | undefined;
  if (plan.detector) {
    const det = await loadFeatureModel(plan.detector, session);
    const [C, H, W] = model.sampleShape;
    if (!decode && C !== 3 && C !== 1) throw new UsageError(`--detector: images of ${C} channels cannot be fed to a feature extractor`);
    features = async (images, n, shape) => {
      const f = await det.extract(images, n, shape ?? [C, H, W]);
      return { features: f, dim: f.length / n };
    };
  }
  // Text-conditional models: trajectory g takes prompt g (modulo the number of prompts).
  let condFor: CondFn | undefined;
  if (model.hasCondition) {
    if (!o.promptPath) throw new UsageError(`--prompt_path: ${plan.modelFile} is text-conditional; give a prompt file (CSV with a text column, or one prompt per line)`);
    if (!existsSync(o.promptPath)) throw new UsageError(`--prompt_path: ${o.promptPath} does not exist`);
    const prompts = readPromptFile(o.promptPath);
    preflightCompanions(model, { text: true, decoder: false });
    const encoder = await PromptEncoder.open(model, session);
    const guidance = o.guidanceType === 'cfg' && o.guidanceRate > 0;
    condFor = (idx) => encoder.conditioning(idx.map((g) => prompts[g % prompts.length]!), guidance);
  } else if (o.promptPath) {
    throw new UsageError(`--prompt_path: ${plan.modelFile} is not text-conditional`);
  }
  let guidance: Pieces['guidance'];
  if (plan.cg) {
    const grad = await loadClassifierGradient(plan.cg.file, { ...session, sampleShape: model.sampleShape, labelDim: plan.cg.classes });
    guidance = { grad, denoise: classifierGuided(model.denoise, grad, { rate: plan.cg.rate, clamp: model.meta.family === 'adm' }) };
  }
  const gradient = await openGradient(plan, model, { decode, features, condFor }, session);
  return { decode, features, condFor, guidance, gradient };
}

/**
 * The run folder of a plan, made now: a new numbered run claims its number (the dry run's
 * folder name was a preview), a resumed run extended by --total_kimg records the new length.
 */
async function openRunDir(plan: TrainPlan, gradient: Record<string, unknown>): Promise<string> {
  const o = plan.opts;
  const resumed = plan.resumed !== undefined;
  prepareOutdir(resumed || o.nosubdir ? plan.runDir : o.outdir, resumed ? '--resume' : '--outdir');
  const runDir = !resumed && !o.nosubdir ? claimRunDir(o.outdir, runDescOf(plan.runDir)) : plan.runDir;
  if (resumed || o.nosubdir) mkdirSync(runDir, { recursive: true });
  // Leftovers of a run killed outright (kill -9): temp files of writers that are gone.
  await removeStaleTempFiles(runDir);
  if (!resumed) {
    const record = { ...plan.record, resolved: { ...plan.record.resolved, run_dir: runDir, gradient } };
    await writeFileAtomic(join(runDir, 'training_options.json'), JSON.stringify(record, null, 2) + '\n');
  } else if (plan.extended) {
    // An extended run: its record keeps everything it began with, but the new length.
    const optPath = join(runDir, 'training_options.json');
    const rec = readJsonOr(optPath) as { options: Record<string, unknown>; resolved?: Record<string, unknown> };
    rec.options.total_kimg = o.totalKimg;
    if (rec.resolved) rec.resolved.total_batches = totalBatches(o.totalKimg, o.batch);
    await writeFileAtomic(optPath, JSON.stringify(rec, null, 2) + '\n');
  }
  return runDir;
}

/** Trains the plan's run to its end; `model` is the denoiser the plan was resolved against. */
export async function runTrain(plan: TrainPlan, model: DenoiserModel, sinks: TrainSinks): Promise<TrainSummary> {
  const o = plan.opts;
  const pieces = await openPieces(plan, model);
  const isMain = plan.dist.rank === 0;
  // Claimed only now that the detector, the prompts and the companions are known to load:
  // a flag mistake must not leave an empty numbered folder behind.
  const runDir = isMain ? await openRunDir(plan, pieces.gradient.record) : plan.runDir;
  const log = (line: string) => {
    if (isMain) appendLog(join(runDir, 'log.txt'), line + '\n');
  };
  const init = plan.init;
  if (init && isMain) log(`init: ${init.record.kind}${init.record.file ? ` ${init.record.file}` : ''}${init.record.note ? `; ${init.record.note}` : ''}`);
  if (!plan.detector && isMain) {
    log(plan.featureLossNote);
    sinks.notice(plan.featureLossNote);
  }
  if (isMain) log(pieces.gradient.note);

  const bounds = boundsOf(o);
  const labelDim = model.meta.labelDim || (plan.cg?.classes ?? 0);
  const teacherStore = await openTeacherCache(o, plan.seed, plan.modelFile, model, plan.device, labelDim, plan.cg?.file);
  if (teacherStore && isMain) log(`teacher cache: ${teacherStore.dir}`);
  const reducer = await createReducer(plan.dist);
  const setup: TrainSetup = {
    denoise: pieces.guidance?.denoise ?? model.denoise,
    sampleShape: model.sampleShape,
    labelDim,
    cfgLabels: cfgLabelsOf(o, model),
    schedule: {
      numSteps: o.numSteps,
      sigmaMin: model.meta.sigmaMin,
      sigmaMax: model.meta.sigmaMax,
      type: o.scheduleType,
      rho: o.scheduleRho,
      discrete: model.meta.alphasCumprod ? discreteTime(model.meta.alphasCumprod) : undefined,
    },
    M: o.M,
    teacher: o.samplerTea,
    afs: o.afs,
    bounds,
    numPoints: o.numPoints,
    lr: o.lr,
    coslr: o.coslr,
    totalKimg: o.totalKimg,
    batch: o.batch,
    seed: plan.seed,
    alpha: o.alpha,
    features: pieces.features,
    decode: pieces.decode,
    condFor: pieces.condFor,
    // Rounding limits the finite-difference step (jvp.ts): float16 needs central differences
    // with a large step; for float32, forward differences at 1e-3 agree with central ones to
    // ~2e-3 of the gradient on the bundled U-Net (bench/jvp_bundled.ts) at half the rows.
    jvpRelStep: model.dtype === 'float16' ? 3e-2 : 1e-3,
    jvpScheme: o.jvp === 'auto' ? (model.dtype === 'float16' ? 'central' : 'forward') : o.jvp,
    featureRelStep: 1e-3,
    rank: plan.dist.rank,
    worldSize: plan.dist.world,
    reduce: (v) => reducer.reduce(v),
    teacherStore,
    passes: o.passes,
    reverseFrom: pieces.gradient.reverseFrom,
    vjp: pieces.gradient.vjp,
    featureVjp: pieces.gradient.featureVjp,
    decoderVjp: pieces.gradient.decoderVjp,
  };
  const state = plan.resumed?.state ?? init!.state;
  let cacheHits = 0;
  const nBatches = totalBatches(o.totalKimg, o.batch);
  const kimgOf = (b: number) => Math.min((b * o.batch) / 1000, o.totalKimg);
  const started = Date.now() - (plan.resumed?.elapsedSec ?? 0) * 1000;
  const progress = isMain
    ? sinks.progress(nBatches, { kimg: kimgOf(state.batchIndex).toFixed(2), total_kimg: String(o.totalKimg), spk: '-', loss: '-' })
    : NO_PROGRESS;
  if (plan.resumed) log(`resumed at batch ${state.batchIndex} (${kimgOf(state.batchIndex)} kimg)`);

  const writeState = async () => {
    const st = { batchIndex: state.batchIndex, raw: state.raw, adam: state.adam, elapsedSec: (Date.now() - started) / 1000 };
    await writeFileAtomic(join(runDir, STATE_FILE), JSON.stringify(st) + '\n', { fsync: true });
  };
  const writeSnapshot = async (kimg: number) => {
    if (!isMain) return;
    const snap = predictorOf(plan, runDir, state, kimg, model.meta.sigmaMin, model.meta.sigmaMax);
    // Snapshot first, then the resumable state: a crash between them resumes from the
    // previous state and rewrites the same snapshot, never a half-written file.
    await writeFileAtomic(join(runDir, snapshotName(kimg)), JSON.stringify(snap, null, 1) + '\n', { fsync: true });
    await writeState();
  };
  let chartWarned = false;
  /** loss.svg / loss.png of the run; a chart that cannot be drawn warns once and never stops training. */
  const drawLossChart = async () => {
    try {
      await writeTrainChart(runDir, `adasde train: ${basename(runDir)}`);
    } catch (e) {
      if (!chartWarned) sinks.notice(`warning: loss chart not written (${firstLine(e)})`);
      chartWarned = true;
    }
  };

  let tickStart = Date.now();
  let tickBatches = 0;
  let tickLoss: number[] = [];
  let ticks = Math.floor(kimgOf(state.batchIndex) / o.tick);
  let lastLoss = NaN;
  // Rows and model seconds of this session (a resumed run starts counting again).
  let modelRows = { teacher: 0, student: 0, student_vjp: 0, detector: 0 };
  let modelSec = { teacher: 0, student: 0 };
  try {
    while (state.batchIndex < nBatches) {
      const st = await trainBatch(setup, state);
      modelRows = { teacher: modelRows.teacher + st.teacherRows, student: modelRows.student + st.studentRows, student_vjp: modelRows.student_vjp + st.studentVjpRows, detector: modelRows.detector + st.detectorRows };
      modelSec = { teacher: modelSec.teacher + st.teacherSec, student: modelSec.student + st.studentSec };
      if (st.teacherHit) cacheHits++;
      const c = effectiveCoefficients(state.raw, bounds);
      st.losses.forEach((loss, i) => {
        const fmt = (v: number[] | undefined) => (v ?? []).map((x) => x.toFixed(6)).join(',');
        log(`batch ${state.batchIndex} step ${i} loss ${loss.toPrecision(6)} r ${fmt(c.r[i])} scale_time ${fmt(c.scaleTime[i])} scale_dir ${fmt(c.scaleDir[i])} gamma ${fmt(c.gamma[i])} lr ${st.lr.toPrecision(6)}`);
      });
      // A model that returns NaN (or a step that diverged) must not end in a snapshot and exit 0:
      // stop before anything of this batch is stored; the last snapshot stays the latest good one.
      if (!st.losses.every(Number.isFinite) || !RAW_PARAM_NAMES.every((t) => state.raw[t].every((row) => row.every(Number.isFinite)))) {
        throw new RunError(`training diverged at batch ${state.batchIndex}: the loss or a coefficient is not finite (the model may return NaN or Inf); stopping, snapshots written so far are kept`);
      }
      lastLoss = st.losses[st.losses.length - 1]!;
      tickLoss = tickLoss.length ? tickLoss.map((v, i) => v + st.losses[i]!) : [...st.losses];
      tickBatches++;
      const kimg = kimgOf(state.batchIndex);
      const secs = (Date.now() - started) / 1000;
      progress.set(state.batchIndex, {
        kimg: kimg.toFixed(2),
        total_kimg: String(o.totalKimg),
        spk: kimg > 0 ? (secs / kimg).toFixed(1) : '-',
        loss: lastLoss.toPrecision(4),
      });
      const done = state.batchIndex >= nBatches;
      if (Math.floor(kimg / o.tick) > ticks || done) {
        ticks = Math.floor(kimg / o.tick);
        const tickSecs = (Date.now() - tickStart) / 1000;
        if (isMain) {
          const stats = {
            kimg,
            batches: state.batchIndex,
            loss: tickLoss.map((v) => v / tickBatches),
            lr: st.lr,
            sec_per_kimg: tickSecs / ((tickBatches * o.batch) / 1000),
            total_sec: secs,
            model_rows: modelRows,
            model_sec: { teacher: Number(modelSec.teacher.toFixed(3)), student: Number(modelSec.student.toFixed(3)) },
            teacher_cache_hits: cacheHits,
            timestamp: Date.now() / 1000,
            // The effective coefficients at the tick, for loss.png (src/charts/train.ts).
            coefficients: { r: c.r, scale_dir: c.scaleDir, scale_time: c.scaleTime, gamma: c.gamma },
          };
          appendLog(join(runDir, 'stats.jsonl'), JSON.stringify(stats) + '\n');
          await drawLossChart();
        }
        if (ticks % o.snap === 0 || done) await writeSnapshot(kimg);
        // The resumable state at every tick (a few hundred numbers), so a run stopped between
        // snapshots resumes from its last tick; the reference's --dump interval is not needed.
        else if (isMain) await writeState();
        tickStart = Date.now();
        tickBatches = 0;
        tickLoss = [];
      }
    }
  } finally {
    progress.stop();
    reducer.close();
  }
  await pieces.guidance?.grad.dispose();
  await pieces.gradient.dispose();
  return { runDir, totalKimg: o.totalKimg, batches: nBatches, seconds: (Date.now() - started) / 1000, finalLoss: lastLoss };
}
