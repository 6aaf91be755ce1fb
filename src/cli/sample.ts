/**
 * `adasde sample`: images for a seed range with AdaSDE or a baseline solver (the toolkit's
 * main job). Reads like EDM's generate.py: resolve the model, the predictor and the
 * schedule, split the seeds over ranks, then per batch: latents -> solver -> images.
 */
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { SolverName } from '../config/common.js';
import { coefficientsOf, loadPredictor, type PredictorFile } from '../config/predictor.js';
import { resolvePredictorPath } from '../io/runs.js';
import { noteLine, resolveModelFile } from '../app/models.js';
import { sampleTable, type SampleOptions } from '../config/sample.js';
import { removeStaleTempFiles, writeFileAtomic } from '../io/atomic.js';
import { prepareOutdir } from '../io/outdir.js';
import { ndarray, readNpy, toFloat64, writeNpy } from '../io/npy.js';
import { decodeImage, GRID_NAME, type DecodedImage } from '../io/images.js';
import { ImageWriter } from '../io/image-writer.js';
import { encodePng, imagePath, makeGrid, quantizeBatch } from '../io/png.js';
import { distEnv, rankBatches, runWorkers, type DistEnv } from '../parallel/launcher.js';
import type { DecoderModel } from '../runtime/companions.js';
import { classifierGuided, loadClassifierGradient, type ClassifierGradient } from '../runtime/guidance.js';
import { loadDenoiserModel, type DenoiserModel } from '../runtime/model.js';
import { classifierFor, needsDecoder, openDecoder, preflightCompanions, PromptEncoder } from '../sample/companions.js';
import { runBatches, type SamplePlan } from '../sample/pipeline.js';
import { elementCount } from '../core/shape.js';
import type { Conditioning, Denoiser } from '../core/denoiser.js';
import type { StepCallback } from '../solvers/types.js';
import { fromHalfArray, toHalfArray } from '../runtime/half.js';
import { seedLatents } from '../rng/streams.js';
import { checkPromptSeeds, promptOf, promptSource, type PromptSource } from '../text/prompts.js';
import { SOLVER_REGISTRY, type SolverOptions } from '../solvers/registry.js';
import { discreteTime, getSchedule, userSchedule } from '../solvers/schedule.js';
import { defineCommand } from './command.js';
import { RunError, UsageError } from '../core/errors.js';
import { onInterrupt } from './interrupt.js';
import { Progress } from './progress.js';

interface Resolved {
  plan: SamplePlan;
  predictor?: PredictorFile;
  predictorPath?: string;
  nfe: number;
  outdir: string;
  dataset: string;
}

/** Everything derived from the flags, the model metadata and the predictor. */
export function resolvePlan(o: SampleOptions, model: Pick<DenoiserModel, 'meta' | 'sampleShape'>): Resolved {
  let solver: SolverName | undefined = o.solver;
  let predictor: PredictorFile | undefined;
  let predictorPath: string | undefined;
  if (o.predictorPath !== undefined) {
    if (solver !== undefined && solver !== 'adasde') throw new UsageError(`--predictor_path is for --solver adasde, not ${solver}`);
    solver = 'adasde';
    predictorPath = resolvePredictorPath(o.predictorPath, o.expDir);
    predictor = loadPredictor(predictorPath);
  } else if (solver === 'adasde') {
    throw new UsageError('--solver adasde needs --predictor_path (an experiment number under exp/ or a predictor file)');
  }
  if (!solver) throw new UsageError('--solver is required (euler, heun, dpm, ipndm, ipndm_v, deis, dpmpp, unipc) unless --predictor_path names an AdaSDE predictor');
  const meta = model.meta;
  const isLatent = meta.family === 'ldm' || meta.family === 'sd';

  let numSteps: number;
  let scheduleType = o.scheduleType ?? 'polynomial';
  let scheduleRho = o.scheduleRho ?? 7;
  let afs = o.afs ?? false;
  const opts: SolverOptions = { denoiseToZero: o.denoiseToZero };
  if (predictor) {
    const p = predictor.options;
    const check = <T>(flag: string, given: T | undefined, stored: T) => {
      if (given !== undefined && given !== stored) throw new UsageError(`--${flag}=${String(given)} disagrees with the predictor ${predictorPath} (${flag}=${String(stored)})`);
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
    opts.coeffs = coefficientsOf(predictor);
  } else {
    numSteps = o.tSteps ? o.tSteps.length : (o.numSteps ?? 6);
    const entry = SOLVER_REGISTRY[solver];
    if (o.maxOrder !== undefined && entry.defaultMaxOrder === undefined) {
      const multistep = Object.entries(SOLVER_REGISTRY).filter(([, e]) => e.defaultMaxOrder !== undefined).map(([n]) => n);
      throw new UsageError(`--max_order is for the multistep solvers (${multistep.join(', ')}), not ${solver}`);
    }
    if (entry.defaultMaxOrder !== undefined) {
      const maxOrder = o.maxOrder ?? entry.defaultMaxOrder;
      if (maxOrder > entry.defaultMaxOrder) throw new UsageError(`--max_order: ${solver} supports orders 1 to ${entry.defaultMaxOrder}, got ${maxOrder}`);
      opts.maxOrder = maxOrder;
    }
    if (solver === 'dpmpp' || solver === 'unipc') {
      opts.predictX0 = o.predictX0;
      opts.lowerOrderFinal = o.lowerOrderFinal;
      opts.thresholding = o.thresholding ?? !isLatent;
      opts.variant = o.variant;
    }
    if (solver === 'deis') opts.deisMode = o.deisMode;
  }
  opts.afs = afs;

  const sigmaMin = o.sigmaMin ?? meta.sigmaMin;
  const sigmaMax = o.sigmaMax ?? meta.sigmaMax;
  if (!(sigmaMin < sigmaMax)) throw new UsageError(`--sigma_min ${sigmaMin} must be below --sigma_max ${sigmaMax}`);
  let tSteps: Float64Array;
  if (o.tSteps) tSteps = userSchedule(o.tSteps);
  else {
    if (scheduleType === 'discrete' && !meta.alphasCumprod) throw new UsageError(`--schedule_type discrete needs a model with adasde.alphas_cumprod (family ${meta.family} has none)`);
    tSteps = getSchedule({
      numSteps,
      sigmaMin,
      sigmaMax,
      type: scheduleType,
      rho: scheduleRho,
      discrete: meta.alphasCumprod ? discreteTime(meta.alphasCumprod) : undefined,
    });
  }
  if (o.classIdx !== undefined && !(o.classIdx < meta.labelDim)) {
    throw new UsageError(meta.labelDim === 0 ? '--class: the model is unconditional' : `--class: expected 0 to ${meta.labelDim - 1}, got ${o.classIdx}`);
  }
  const nfe = SOLVER_REGISTRY[solver].nfe(tSteps.length, opts) * (o.guidanceRate && o.guidanceType === 'cfg' ? 2 : 1);
  const dataset = meta.datasetName;
  // The reference's folder names: AdaSDE runs also carry their number of parallel points.
  const points = solver === 'adasde' ? `_npoints_${opts.coeffs?.r[0]?.length ?? 1}` : '';
  const outdir = o.outdir ?? join('samples', dataset, `${solver}_nfe${nfe}${points}`);
  return {
    plan: { solver, options: opts, tSteps, sampleShape: model.sampleShape, labelDim: meta.labelDim, classIdx: o.classIdx },
    predictor,
    predictorPath,
    nfe,
    outdir,
    dataset,
  };
}

/** The seeds this rank produces, in batches, with finished images skipped when resuming. */
function pendingBatches(o: SampleOptions, dist: DistEnv, outdir: string): { batches: number[][]; skipped: number } {
  const mine = rankBatches(o.seeds, o.batch, dist.rank, dist.world);
  // --return_inters needs every seed's trajectory, so nothing is skipped.
  if (!o.resume || o.outputFormat === 'npy' || o.returnInters) return { batches: mine, skipped: 0 };
  let skipped = 0;
  const todo = mine.map((b) =>
    b.filter((s) => {
      const done = existsSync(imagePath(outdir, s, o.subdirs));
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

/** Worker-side run for one rank: returns the number of images written and NFE spent. */
async function runRank(o: SampleOptions, dist: DistEnv, model: DenoiserModel, r: Resolved, progress: Progress, comp: RankCompanions = {}): Promise<{ images: number; npy?: Float32Array; inters?: Map<number, Float32Array[]> }> {
  const { plan } = r;
  const [C, H, W] = model.sampleShape;
  const dim = model.dim;
  const cfg = o.guidanceType === 'cfg' && o.guidanceRate !== undefined && o.guidanceRate > 0;
  const latents = o.latents ? await loadLatents(o.latents, o.seeds, model.sampleShape) : undefined;
  const { batches, skipped } = pendingBatches(o, dist, r.outdir);
  progress.skip(skipped);
  // A run killed outright (kill -9, power loss) leaves its temp files; writers that are gone
  // are recognised by their pid (io/atomic.ts) and their leftovers removed before we start.
  if (o.outputFormat !== 'npy') {
    const mine = rankBatches(o.seeds, o.batch, dist.rank, dist.world).flat().map((s) => imagePath(r.outdir, s, o.subdirs));
    const names = new Set(mine.map((p) => basename(p)));
    for (const d of new Set(mine.map((p) => dirname(p)))) await removeStaleTempFiles(d, undefined, (n) => names.has(n));
  }
  const npyOut = o.outputFormat === 'npy' ? new Map<number, Float32Array>() : undefined;
  let images = 0;
  const cfgLabels = o.guidanceRate && o.guidanceType === 'cfg' && plan.labelDim > 0;
  const writer = npyOut ? undefined : new ImageWriter();
  const paths = (seeds: readonly number[]) => seeds.map((s) => imagePath(r.outdir, s, o.subdirs));
  // --use_fp16 on a float32 model: the precision of a float16 boundary (an fp16 export has it already).
  const base = comp.denoise ?? model.denoise;
  const denoise = o.useFp16 && model.dtype !== 'float16' ? halfBoundary(base) : base;
  // --return_inters: per seed, the state at t_0 and after every step (float32, as written).
  const inters = o.returnInters ? new Map<number, Float32Array[]>() : undefined;
  const t0 = plan.tSteps[0]!;
  try {
    await runBatches(plan, denoise, batches, {
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
        return cfgLabels ? { uncondition: new Float32Array(seeds.length * plan.labelDim), labelDim: plan.labelDim } : undefined;
      },
      // Called once the next batch has started: PNG compression and file writes overlap its
      // model run (src/sample/pipeline.ts runBatches).
      consume: async (x, seeds) => {
        checkFinite(x, seeds, dim);
        // With --denoise_to_zero the final D(x, t_{N-1}) is the trajectory's last state.
        if (inters && o.denoiseToZero) seeds.forEach((s, b) => inters.get(s)!.push(Float32Array.from(x.subarray(b * dim, (b + 1) * dim))));
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
        progress.advance(seeds.length, seeds.length * r.nfe);
      },
    });
  } finally {
    await writer?.close();
  }
  if (npyOut) {
    const mine = rankBatches(o.seeds, o.batch, dist.rank, dist.world).flat();
    const out = new Float32Array(mine.length * dim);
    mine.forEach((s, k) => out.set(npyOut.get(s)!, k * dim));
    return { images, npy: out, inters };
  }
  return { images, inters };
}

/** inters.npy: float32 [states, n, C, H, W], seeds in --seeds order (as the reference stacks them). */
async function writeInters(o: SampleOptions, outdir: string, inters: Map<number, Float32Array[]>, shape: readonly number[]): Promise<string> {
  const dim = elementCount(shape);
  const states = inters.get(o.seeds[0]!)!.length;
  const out = new Float32Array(states * o.seeds.length * dim);
  o.seeds.forEach((s, k) => inters.get(s)!.forEach((x, p) => out.set(x, (p * o.seeds.length + k) * dim)));
  const dest = join(outdir, 'inters.npy');
  await writeNpy(dest, ndarray('float32', [states, o.seeds.length, ...shape], out));
  return dest;
}

const npyPartPath = (outdir: string, rank: number) => join(outdir, `.samples-rank${String(rank).padStart(5, '0')}.npy`);

/** Assemble per-rank .npy parts into samples.npy in seed order (the reference's order of --seeds). */
async function mergeNpy(o: SampleOptions, outdir: string, world: number, shape: readonly number[]): Promise<string> {
  const dim = elementCount(shape);
  const bySeed = new Map<number, Float32Array>();
  for (let rank = 0; rank < world; rank++) {
    const part = npyPartPath(outdir, rank);
    const arr = await readNpy(part);
    const data = arr.data as Float32Array;
    rankBatches(o.seeds, o.batch, rank, world)
      .flat()
      .forEach((s, k) => bySeed.set(s, data.subarray(k * dim, (k + 1) * dim)));
  }
  const out = new Float32Array(o.seeds.length * dim);
  o.seeds.forEach((s, k) => out.set(bySeed.get(s)!, k * dim));
  const dest = join(outdir, 'samples.npy');
  await writeNpy(dest, ndarray('float32', [o.seeds.length, ...shape], out));
  for (let rank = 0; rank < world; rank++) await rm(npyPartPath(outdir, rank), { force: true });
  return dest;
}

/** grid.png of every seed's image, read back from the written PNGs (in --seeds order). */
async function writeGrid(o: SampleOptions, outdir: string): Promise<void> {
  const imgs: DecodedImage[] = [];
  for (const s of o.seeds) {
    const path = imagePath(outdir, s, o.subdirs);
    imgs.push(await decodeImage(await readFile(path), path));
  }
  // decodeImage gives RGB CHW; the size is the written images' (the decoder's for latent models).
  const { width: W, height: H } = imgs[0]!;
  const g = makeGrid(imgs.map((i) => i.data), 3, H, W);
  await writeFileAtomic(join(outdir, GRID_NAME), await encodePng(g.data, g.C, g.height, g.width));
}

/**
 * The model file: --model (or the reference's --model_path), else --dataset_name, else, as
 * the reference's sample.py does, the dataset the predictor was trained for.
 */
function modelFileOf(o: SampleOptions, predictor: PredictorFile | undefined): string {
  if (o.model !== undefined && o.modelPath !== undefined && o.model !== o.modelPath) throw new UsageError(`--model_path ${o.modelPath} disagrees with --model ${o.model} (one flag, two spellings)`);
  const model = o.model ?? o.modelPath;
  return resolveModelFile(model, o.datasetName ?? (model === undefined ? predictor?.options.dataset_name : undefined), o.modelDir, o.quiet ? undefined : noteLine);
}

/**
 * The reference's sample.py takes the guidance of an AdaSDE run from its predictor (the
 * coefficients were distilled under it); flags given explicitly still win. Only CFG is taken
 * over (the reference's ms_coco case); classifier guidance stays an explicit choice.
 */
function withPredictorGuidance(o: SampleOptions, predictor: PredictorFile | undefined): SampleOptions {
  if (!predictor || o.guidanceType !== undefined || o.guidanceRate !== undefined) return o;
  const g = predictor.options.guidance_type;
  return g === 'cfg' ? { ...o, guidanceType: g, guidanceRate: predictor.options.guidance_rate } : o;
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

async function runSample(flags: SampleOptions): Promise<void> {
  const outer = distEnv();
  const predictor = flags.predictorPath !== undefined ? loadPredictor(resolvePredictorPath(flags.predictorPath, flags.expDir)) : undefined;
  const o = withPredictorGuidance(flags, predictor);
  const file = modelFileOf(o, predictor);
  const device = o.device === 'cuda' && outer.world > 1 ? `cuda:${outer.localRank}` : o.device;
  const model = await loadDenoiserModel(file, {
    device,
    threads: o.threads || undefined,
    maxBatch: o.batch,
    guidanceRate: o.guidanceType === 'cfg' ? o.guidanceRate : undefined,
  });
  const r = resolvePlan(o, model);
  if (o.returnInters && (o.nprocPerNode > 1 || outer.world > 1)) throw new UsageError('--return_inters: one process only (it gathers every seed\'s trajectory into one inters.npy)');
  if ((o.prompt !== undefined || o.promptFile !== undefined) && !model.hasCondition) throw new UsageError(`--prompt: ${file} is not text-conditional`);
  const prompts = promptSource(o.prompt, o.promptFile);
  if (model.hasCondition) {
    if (!prompts) throw new UsageError(`${file} is text-conditional: give --prompt TEXT or --prompt_file FILE (CSV with a text column, or one prompt per line)`);
    checkPromptSeeds(prompts, o.seeds);
  }
  const cg = o.guidanceType === 'cg' ? classifierFor(model, o.guidanceRate) : undefined;
  // Unconditional denoisers guided by a classifier draw each seed's class over its classes.
  if (cg && r.plan.labelDim === 0) r.plan.labelDim = cg.classes;
  const decode = o.outputFormat === 'png' && needsDecoder(model);
  // PNG holds grey (C = 1) or RGB (C = 3) pixels; other pixel-space channel counts stay arrays.
  const C = model.sampleShape[0]!;
  if (o.outputFormat === 'png' && !decode && C !== 1 && C !== 3) {
    throw new UsageError(`--output_format png: ${file} has ${C} channels; PNG images need 1 (grey) or 3 (RGB); use --output_format npy`);
  }
  preflightCompanions(model, { text: model.hasCondition, decoder: decode });
  prepareOutdir(r.outdir, '--outdir');
  // grid.png and samples.npy are written by rank 0 (or the launcher) only.
  if (outer.rank === 0) await removeStaleTempFiles(r.outdir, undefined, (n) => n === GRID_NAME || n === 'samples.npy');

  const started = Date.now();
  let skipped = 0;
  // Nothing partial is ever under a final name; remove the temp files in flight and stop.
  const release = onInterrupt();
  try {
    if (o.nprocPerNode > 1) {
      await model.dispose();
      const progress = new Progress(o.seeds.length, o.quiet, 'images');
      try {
        await runWorkers(o.nprocPerNode, process.argv, outer, (msg) => progress.fromWorker(msg));
      } finally {
        progress.stop();
      }
      skipped = progress.skipped;
    } else {
      const total = outer.world > 1 ? rankBatches(o.seeds, o.batch, outer.rank, outer.world).flat().length : o.seeds.length;
      const session = { device, threads: o.threads || undefined, maxBatch: o.batch };
      const comp: RankCompanions = {};
      try {
        if (model.hasCondition && prompts) comp.text = { encoder: await PromptEncoder.open(model, session), prompts };
        if (decode) comp.decoder = await openDecoder(model, session);
        if (cg) {
          comp.classifier = await loadClassifierGradient(cg.file, { ...session, sampleShape: model.sampleShape, labelDim: r.plan.labelDim });
          comp.denoise = classifierGuided(model.denoise, comp.classifier, { rate: cg.rate, clamp: model.meta.family === 'adm' });
        }
      } catch (e) {
        await comp.text?.encoder.dispose();
        await comp.decoder?.dispose();
        throw e;
      }
      const progress = new Progress(total, o.quiet, 'images');
      let res: Awaited<ReturnType<typeof runRank>>;
      try {
        res = await runRank(o, outer, model, r, progress, comp);
      } finally {
        progress.stop();
        await comp.text?.encoder.dispose();
        await comp.decoder?.dispose();
        await comp.classifier?.dispose();
      }
      skipped = progress.skipped;
      if (res.inters) await writeInters(o, r.outdir, res.inters, model.sampleShape);
      if (res.npy) {
        await writeNpy(npyPartPath(r.outdir, outer.rank), ndarray('float32', [res.npy.length / model.dim, ...model.sampleShape], res.npy));
      }
      await model.dispose();
      if (outer.world > 1) return; // the launcher (or rank-0 user script) assembles
    }
    let npyDest: string | undefined;
    if (o.outputFormat === 'npy') {
      // With several machines each node's launcher only knows its own ranks: the parts stay
      // beside the output for the user's merge step (README, "Many processes").
      if (outer.world > 1) return;
      npyDest = await mergeNpy(o, r.outdir, o.nprocPerNode, model.sampleShape);
    }
    else if (o.grid) await writeGrid(o, r.outdir);
    const secs = (Date.now() - started) / 1000;
    if (!o.quiet) {
      process.stdout.write(
        `sampled ${o.seeds.length - skipped} images${skipped ? ` (${skipped} already present, skipped)` : ''} with ${r.plan.solver} at ${r.nfe} NFE in ${secs.toFixed(1)} s -> ${resolve(npyDest ?? r.outdir)}\n`,
      );
    }
  } finally {
    release();
  }
}

export function registerSample(program: Command): void {
  defineCommand(program, 'sample', 'write images for a seed range with AdaSDE or a baseline solver', sampleTable, runSample);
}
