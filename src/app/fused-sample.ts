/**
 * `adasde sample --fused FILE`: images from a fused sampler (src/fuse/). The sampler fixes
 * the model, the solver, its grid and coefficients; the run supplies seeds. Every seed's
 * latent, SDE noise and class label are drawn from its own streams exactly as the host loop
 * draws them (src/fuse/info.ts), so the same seeds give the same images as `adasde sample`
 * with the flags the sampler was fused from. Writes what `adasde sample` writes: one PNG per
 * seed (or samples.npy of the final states), grid.png, sample_options.json; resumes by
 * skipping finished images.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { SampleOptions } from '../config/sample.js';
import { snakeKey } from '../config/options.js';
import { firstLine, RunError, UsageError } from '../core/errors.js';
import { fusedFeeds, fusedInfo, type FusedInfo } from '../fuse/info.js';
import { removeStaleTempFiles } from '../io/atomic.js';
import { GRID_NAME } from '../io/images.js';
import { ImageWriter } from '../io/image-writer.js';
import { ndarray, writeNpy } from '../io/npy.js';
import { prepareOutdir } from '../io/outdir.js';
import { imagePath } from '../io/png.js';
import { chunk } from '../sample/pipeline.js';
import { checkDims, findInput, findOutput, throwUsage, type Want } from '../runtime/contract.js';
import { openSession, readModelSignature, type HostTensor, type OnnxSession } from '../runtime/session.js';
import { fileSha256 } from '../io/sha256.js';
import { formatSeedList, writeGrid, writeSampleOptions, type OutputPlan, type SampleResult, type SampleSinks } from './sample.js';

/** `adasde sample` flags the fused sampler fixes (giving one with --fused is refused, naming it). */
const FIXED_BY_SAMPLER = [
  'model', 'modelPath', 'datasetName', 'predictorPath', 'solver', 'numSteps', 'scheduleType', 'scheduleRho', 'tSteps', 'sigmaMin', 'sigmaMax', 'afs',
  'denoiseToZero', 'guidanceType', 'guidanceRate', 'prompt', 'promptFile', 'latents', 'useFp16', 'returnInters', 'nprocPerNode',
] as const;

export interface FusedSamplePlan extends OutputPlan {
  sampler: string;
  info: FusedInfo;
  /** [C, H, W] of the images output (a latent model's decoder decides it). */
  imageShape: [number, number, number];
  classIdx?: number;
  resume: boolean;
  device: string;
  threads: number;
}

/** The plan of a fused run: checks the file's contract and the flags; writes nothing. */
export function resolveFusedSample(flags: SampleOptions, given: ReadonlySet<string>, solverFlagKeys: readonly string[]): FusedSamplePlan {
  const file = flags.fused!;
  for (const k of [...FIXED_BY_SAMPLER, ...solverFlagKeys]) {
    if (given.has(k)) throw new UsageError(`--${snakeKey(k)}: not with --fused (the fused sampler ${file} fixes the model, the solver, its grid and guidance); drop the flag or sample without --fused`);
  }
  const sig = readModelSignature(file);
  let info: FusedInfo;
  try {
    info = fusedInfo(file, new Map(Object.entries(sig.metadata)), sig.inputs.map((s) => s.name), sig.outputs.map((s) => s.name));
  } catch (e) {
    throw new UsageError(`--fused ${firstLine(e)}`);
  }
  if (info.inputs.includes('condition')) throw new UsageError(`--fused ${file}: a text-conditional sampler (input condition); adasde sample --fused feeds seeds only`);
  const [C, H, W] = info.sampleShape;
  const why = `adasde.fused.sample_shape=[${C},${H},${W}]`;
  const want = (name: string, dtype: string, dims: Want[], out = false) => {
    const s = out ? findOutput(sig, name) : findInput(sig, name);
    if (!s) throw new UsageError(`${file}: has no ${out ? 'output' : 'input'} '${name}'`);
    if (s.dtype !== dtype) throw new UsageError(`${file}: ${out ? 'output' : 'input'} '${name}' has dtype ${s.dtype}; expected ${dtype}`);
    checkDims(file, out ? 'output' : 'input', s, dims, why, throwUsage);
    return s;
  };
  want('z', 'float32', ['batch', C, H, W]);
  if (info.inputs.includes('noise')) {
    const s = findInput(sig, 'noise')!;
    if (s.dtype !== 'float32') throw new UsageError(`${file}: input 'noise' has dtype ${s.dtype}; expected float32`);
    const S = info.noiseIntervals.length;
    if (s.dims && (s.dims.length !== 5 || (typeof s.dims[0] === 'number' && s.dims[0] !== S))) throw new UsageError(`${file}: input 'noise' has ${s.dims.length === 5 ? `${s.dims[0]} intervals` : `rank ${s.dims.length}`}; expected [${S},N,${C},${H},${W}] (adasde.fused.noise_intervals)`);
  }
  if (info.labelDim > 0) want('class_labels', 'float32', ['batch', info.labelDim]);
  for (const s of sig.inputs) if (!['z', 'noise', 'class_labels'].includes(s.name)) throw new UsageError(`${file}: unexpected input '${s.name}'; a fused sampler takes z, noise, class_labels`);
  want('x', 'float32', ['batch', C, H, W], true);
  const images = want('images', 'uint8', ['batch', { any: 'H' }, { any: 'W' }, { any: 'C' }], true);
  const dims = images.dims;
  const imageShape: [number, number, number] = [typeof dims?.[3] === 'number' ? dims[3] : C, typeof dims?.[1] === 'number' ? dims[1] : H, typeof dims?.[2] === 'number' ? dims[2] : W];
  if (flags.outputFormat === 'png' && imageShape[0] !== 1 && imageShape[0] !== 3) throw new UsageError(`--fused ${file}: images have ${imageShape[0]} channels; PNG needs 1 or 3 (use --output_format npy)`);
  if (flags.classIdx !== undefined && !(flags.classIdx < info.labelDim)) {
    throw new UsageError(info.labelDim === 0 ? '--class: the fused sampler is unconditional' : `--class: expected 0 to ${info.labelDim - 1}, got ${flags.classIdx}`);
  }
  return {
    sampler: file,
    info,
    imageShape,
    seeds: flags.seeds,
    batch: flags.batch,
    outdir: flags.outdir ?? join('samples', info.datasetName, `fused_${basename(file).replace(/\.onnx$/i, '')}`),
    subdirs: flags.subdirs,
    grid: flags.grid,
    outputFormat: flags.outputFormat,
    classIdx: flags.classIdx,
    resume: flags.resume,
    device: flags.device,
    threads: flags.threads,
  };
}

/** The plan as `--dry-run` prints it. */
export function describeFusedSamplePlan(plan: FusedSamplePlan): Record<string, unknown> {
  return {
    fused: plan.sampler,
    solver: plan.info.solver,
    nfe: plan.info.nfe,
    t_steps: plan.info.tSteps ?? null,
    source_model: plan.info.sourceModel,
    dataset: plan.info.datasetName,
    noise_intervals: plan.info.noiseIntervals,
    layout: plan.info.layout,
    label_dim: plan.info.labelDim,
    class: plan.classIdx ?? null,
    seeds: formatSeedList(plan.seeds),
    images: plan.seeds.length,
    batch: plan.batch,
    outdir: plan.outdir,
    output_format: plan.outputFormat,
    grid: plan.grid,
    subdirs: plan.subdirs,
    resume: plan.resume,
    device: plan.device,
    threads: plan.threads,
  };
}

/** sample_options.json of a fused run: the sampler file and its hash decide the pixels. */
async function recordFusedOptions(plan: FusedSamplePlan): Promise<void> {
  const pixels: Record<string, unknown> = {
    fused: resolve(plan.sampler),
    fused_sha256: await fileSha256(plan.sampler),
    solver: plan.info.solver,
    nfe: plan.info.nfe,
    class: plan.classIdx ?? null,
    output_format: plan.outputFormat,
  };
  await writeSampleOptions(plan, pixels);
}

/** NHWC bytes of `n` images to the CHW layout the image writer takes. */
function toChw(hwc: Uint8Array, n: number, C: number, H: number, W: number): Uint8Array {
  const out = new Uint8Array(n * C * H * W);
  const plane = H * W;
  for (let b = 0; b < n; b++) {
    const o = b * C * plane;
    for (let p = 0; p < plane; p++) for (let c = 0; c < C; c++) out[o + c * plane + p] = hwc[o + p * C + c]!;
  }
  return out;
}

function runFailed(file: string, n: number, e: unknown): Error {
  return new RunError(`${file}: the fused sampler failed on ${n} seeds: ${firstLine(e)}`);
}

/**
 * A session for a fused sampler. The subgraph layout loads ~10x faster with onnxruntime's
 * graph optimisations off (its optimisers are slow on many subgraphs; bench/RESULTS.md,
 * "Fused samplers"), the inline layout runs fastest with all of them.
 */
export function openFused(file: string, info: FusedInfo, opts: { device?: string; threads?: number } = {}): Promise<OnnxSession> {
  return openSession(file, { ...opts, optimization: info.layout === 'subgraphs' ? 'disabled' : 'all' });
}

/** Runs one batch of seeds through the sampler: the final states and the images. */
export async function runFusedBatch(session: OnnxSession, info: FusedInfo, seeds: readonly number[], classIdx?: number): Promise<{ x: Float32Array; images: Uint8Array }> {
  const feeds: Record<string, HostTensor> = {};
  for (const [k, f] of Object.entries(fusedFeeds(info, seeds, classIdx))) feeds[k] = { type: 'float32', data: f.data, dims: f.dims };
  let res: Record<string, HostTensor>;
  try {
    res = await session.run(feeds, ['x', 'images']);
  } catch (e) {
    throw runFailed(session.path, seeds.length, e);
  }
  const x = res['x'];
  const images = res['images'];
  if (x?.type !== 'float32' || images?.type !== 'uint8') throw new RunError(`${session.path}: outputs x float32 and images uint8 expected`);
  return { x: x.data, images: images.data };
}

/** Carries out a fused plan. */
export async function runFusedSample(plan: FusedSamplePlan, sinks: SampleSinks): Promise<SampleResult> {
  prepareOutdir(plan.outdir, '--outdir');
  await recordFusedOptions(plan);
  await removeStaleTempFiles(plan.outdir, undefined, (n) => n === GRID_NAME || n === 'samples.npy');
  const [C, H, W] = plan.info.sampleShape;
  const dim = C * H * W;
  const [iC, iH, iW] = plan.imageShape;
  const npy = plan.outputFormat === 'npy';
  let skipped = 0;
  const paths = (seeds: readonly number[]) => seeds.map((s) => imagePath(plan.outdir, s, plan.subdirs));
  let todo = plan.seeds;
  if (!npy) {
    const mine = paths(plan.seeds);
    const names = new Set(mine.map((p) => basename(p)));
    for (const d of new Set(mine.map((p) => dirname(p)))) await removeStaleTempFiles(d, undefined, (n) => names.has(n));
    if (plan.resume) {
      todo = plan.seeds.filter((s) => !existsSync(imagePath(plan.outdir, s, plan.subdirs)));
      skipped = plan.seeds.length - todo.length;
    }
  }
  const session = await openFused(plan.sampler, plan.info, { device: plan.device, threads: plan.threads || undefined });
  const progress = sinks.progress(plan.seeds.length);
  progress.skip(skipped);
  const writer = npy ? undefined : new ImageWriter();
  const states = npy ? new Float32Array(plan.seeds.length * dim) : undefined;
  let images = 0;
  try {
    let at = 0;
    for (const seeds of chunk(todo, plan.batch)) {
      const out = await runFusedBatch(session, plan.info, seeds, plan.classIdx);
      for (let k = 0; k < seeds.length * dim; k++) {
        if (!Number.isFinite(out.x[k]!)) throw new RunError(`seed ${seeds[Math.floor(k / dim)]} produced a non-finite value; stopping (images written so far are complete)`);
      }
      if (states) states.set(out.x.subarray(0, seeds.length * dim), at * dim);
      else await writer!.write(paths(seeds), toChw(out.images, seeds.length, iC, iH, iW), iC, iH, iW);
      at += seeds.length;
      images += seeds.length;
      progress.advance(seeds.length, seeds.length * plan.info.nfe);
    }
  } finally {
    progress.stop();
    await writer?.close();
    await session.dispose();
  }
  let dest = plan.outdir;
  if (states) {
    dest = join(plan.outdir, 'samples.npy');
    await writeNpy(dest, ndarray('float32', [plan.seeds.length, C, H, W], states));
  } else if (plan.grid) await writeGrid(plan);
  return { images, skipped, dest: resolve(dest), partial: false };
}
