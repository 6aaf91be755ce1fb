/**
 * Denoiser and feature-extractor models behind the README model contract.
 *
 * `loadDenoiserModel` reads the file's metadata and signatures (session.ts), validates
 * them against the contract before anything runs, and wraps the session as a `Denoiser`
 * (float64 in and out; float32/float16 at the model boundary), with batch splitting,
 * fixed-batch padding, classifier-free guidance in one run and run counters.
 */
import * as path from 'node:path';
import { firstLine, UsageError } from '../core/errors.js';
import type { Conditioning, Denoiser, DenoiseRequest, SampleShape } from '../core/denoiser.js';
import { fromHalfArray, toHalfArray } from './half.js';
import { checkDims, commonBatch, findInput, floatKind, throwUsage, type FloatKind, type ProblemSink, type Want } from './contract.js';
import type { Dim } from '../onnx/proto.js';
import { gatherRows, inRuns, type Rows } from './rows.js';
import {
  formatDims,
  openSession,
  readModelSignature,
  type HostTensor,
  type ModelSignature,
  type OnnxSession,
  type SessionOptions,
  type TensorSignature,
} from './session.js';

export const MODEL_FAMILIES = ['edm', 'cm', 'adm', 'ldm', 'sd', 'ddpm', 'analytic'] as const;
export type ModelFamily = (typeof MODEL_FAMILIES)[number];

/** Families whose sigma <-> timestep map comes from `adasde.alphas_cumprod` (ALGORITHM.md 8). */
export const DISCRETE_FAMILIES: readonly ModelFamily[] = ['ldm', 'sd', 'ddpm'];

/** Families whose denoiser works on a first-stage latent (decoded to images afterwards). */
export const LATENT_FAMILIES: readonly ModelFamily[] = ['ldm', 'sd'];
export const isLatentFamily = (family: ModelFamily): boolean => LATENT_FAMILIES.includes(family);

export interface DenoiserMetadata {
  sigmaMin: number;
  sigmaMax: number;
  imgResolution: number;
  imgChannels: number;
  labelDim: number;
  family: ModelFamily;
  datasetName: string;
  alphasCumprod?: Float64Array;
  /** Companion files, resolved relative to the model file. */
  decoder?: string;
  textEncoder?: string;
  tokenizer?: string;
  classifier?: string;
  /** All metadata_props entries as stored. */
  raw: Record<string, string>;
}

/** What could be read of the metadata: fields with problems are left undefined. */
export type PartialDenoiserMetadata = Partial<DenoiserMetadata> & { raw: Record<string, string> };

export const REQUIRED_KEYS = [
  'adasde.sigma_min',
  'adasde.sigma_max',
  'adasde.img_resolution',
  'adasde.img_channels',
  'adasde.label_dim',
  'adasde.family',
  'adasde.dataset_name',
] as const;

/** The `adasde.*` companion keys and the metadata field each resolves to. */
export const COMPANION_KEYS = {
  decoder: 'adasde.decoder',
  textEncoder: 'adasde.text_encoder',
  tokenizer: 'adasde.tokenizer',
  classifier: 'adasde.classifier',
} as const;

/**
 * Checks the `adasde.*` metadata, reporting every problem as one line; returns what could
 * be read (companion paths resolved relative to the model file).
 */
export function checkDenoiserMetadata(file: string, raw: Record<string, string>, report: ProblemSink): PartialDenoiserMetadata {
  const meta: PartialDenoiserMetadata = { raw: { ...raw } };
  const missing = REQUIRED_KEYS.filter((k) => raw[k] === undefined);
  if (missing.length) {
    report(`${file}: missing metadata ${missing.join(', ')} (the model contract in README.md lists the required adasde.* keys)`);
  }
  const num = (k: (typeof REQUIRED_KEYS)[number], check: (v: number) => boolean, what: string): number | undefined => {
    const s = raw[k];
    if (s === undefined) return undefined;
    const v = Number(s.trim());
    if (s.trim() === '' || !Number.isFinite(v) || !check(v)) {
      report(`${file}: metadata ${k}='${s}' is not ${what}`);
      return undefined;
    }
    return v;
  };
  const posInt = (v: number): boolean => Number.isInteger(v) && v > 0;
  meta.sigmaMin = num('adasde.sigma_min', (v) => v > 0, 'a positive number');
  const lo = meta.sigmaMin;
  meta.sigmaMax = lo === undefined ? num('adasde.sigma_max', (v) => v > 0, 'a positive number') : num('adasde.sigma_max', (v) => v > lo, `a number above sigma_min=${lo}`);
  meta.imgResolution = num('adasde.img_resolution', posInt, 'a positive integer');
  meta.imgChannels = num('adasde.img_channels', posInt, 'a positive integer');
  meta.labelDim = num('adasde.label_dim', (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer');
  const fam = raw['adasde.family'];
  if (fam !== undefined) {
    if ((MODEL_FAMILIES as readonly string[]).includes(fam)) meta.family = fam as ModelFamily;
    else report(`${file}: metadata adasde.family='${fam}' is not one of ${MODEL_FAMILIES.join(', ')}`);
  }
  if (raw['adasde.dataset_name'] !== undefined) meta.datasetName = raw['adasde.dataset_name'];
  const ac = raw['adasde.alphas_cumprod'];
  if (ac !== undefined) {
    let arr: unknown;
    try {
      arr = JSON.parse(ac);
    } catch {
      arr = undefined;
    }
    if (!Array.isArray(arr) || arr.length < 2 || !arr.every((v): v is number => typeof v === 'number' && v > 0 && v <= 1)) {
      report(`${file}: metadata adasde.alphas_cumprod is not a JSON array of numbers in (0, 1]`);
    } else meta.alphasCumprod = Float64Array.from(arr);
  } else if (meta.family !== undefined && DISCRETE_FAMILIES.includes(meta.family)) {
    report(`${file}: missing metadata adasde.alphas_cumprod (required for family '${meta.family}')`);
  }
  const dir = path.dirname(path.resolve(file));
  for (const [field, key] of Object.entries(COMPANION_KEYS) as [keyof typeof COMPANION_KEYS, string][]) {
    const v = raw[key];
    if (v) meta[field] = path.resolve(dir, v);
  }
  return meta;
}

/** Parses and checks the `adasde.*` metadata; the first problem is a one-line UsageError. */
export function parseDenoiserMetadata(file: string, raw: Record<string, string>): DenoiserMetadata {
  const m = checkDenoiserMetadata(file, raw, throwUsage);
  const { sigmaMin, sigmaMax, imgResolution, imgChannels, labelDim, family, datasetName } = m;
  if (sigmaMin === undefined || sigmaMax === undefined || imgResolution === undefined || imgChannels === undefined || labelDim === undefined || family === undefined || datasetName === undefined) {
    throw new Error(`${file}: metadata check passed with fields missing`);
  }
  return { ...m, sigmaMin, sigmaMax, imgResolution, imgChannels, labelDim, family, datasetName };
}

// ---------------------------------------------------------------------------------------
// Signature validation
// ---------------------------------------------------------------------------------------

const CONTRACT_INPUTS = ['x', 'sigma', 'class_labels', 'condition'];

export interface DenoiserIO {
  x: FloatKind;
  sigma: FloatKind;
  out: FloatKind;
  labels?: FloatKind;
  condition?: { kind: FloatKind; seqLen?: number; embedDim?: number };
  /** Fixed batch size, when the model was exported without a dynamic batch dim. */
  fixedBatch?: number;
}

/**
 * Checks the denoiser's inputs and output against the contract and the (possibly partial)
 * metadata, reporting every problem; fixed sizes the metadata could not give are not checked.
 */
export function checkDenoiserSignature(file: string, sig: ModelSignature, meta: PartialDenoiserMetadata, report: ProblemSink): DenoiserIO {
  const C = meta.imgChannels;
  const R = meta.imgResolution;
  const names = sig.inputs.map((s) => s.name);
  for (const s of sig.inputs) {
    if (!CONTRACT_INPUTS.includes(s.name)) {
      report(`${file}: unexpected input '${s.name}' ${formatDims(s.dims)}; the contract allows x, sigma, class_labels, condition`);
    }
  }
  for (const req of ['x', 'sigma']) {
    if (!names.includes(req)) {
      report(`${file}: has no input '${req}'; the contract needs x [N,C,H,W] and sigma [N] (model inputs: ${names.join(', ') || 'none'})`);
    }
  }
  const xs = findInput(sig, 'x');
  const ss = findInput(sig, 'sigma');
  const io: DenoiserIO = {
    x: xs ? floatKind(file, xs, 'input', report) : 'float32',
    sigma: ss ? floatKind(file, ss, 'input', report) : 'float32',
    out: 'float32',
  };
  const batches: (number | undefined)[] = [];
  const sampleWant: Want[] = ['batch', C ?? { any: 'C' }, R ?? { any: 'H' }, R ?? { any: 'W' }];
  const why = `adasde.img_channels=${C ?? '?'}, adasde.img_resolution=${R ?? '?'}`;
  if (xs) batches.push(checkDims(file, 'input', xs, sampleWant, why, report));
  if (ss) batches.push(checkDims(file, 'input', ss, ['batch'], 'one noise level per sample', report));

  const ls = findInput(sig, 'class_labels');
  const L = meta.labelDim;
  if (L !== undefined && L > 0 && !ls) report(`${file}: adasde.label_dim=${L} but the model has no input 'class_labels'`);
  if (ls) {
    if (L === 0) report(`${file}: input 'class_labels' ${formatDims(ls.dims)} but adasde.label_dim=0`);
    io.labels = floatKind(file, ls, 'input', report);
    if (L !== undefined && L > 0) batches.push(checkDims(file, 'input', ls, ['batch', L], `adasde.label_dim=${L}`, report));
  }
  const cs = findInput(sig, 'condition');
  if (cs) {
    const c: NonNullable<DenoiserIO['condition']> = { kind: floatKind(file, cs, 'input', report) };
    batches.push(checkDims(file, 'input', cs, ['batch', { any: 'L' }, { any: 'E' }], 'text-encoder states', report));
    const Ld = cs.dims?.length === 3 ? cs.dims[1] : undefined;
    const Ed = cs.dims?.length === 3 ? cs.dims[2] : undefined;
    if (typeof Ld === 'number') c.seqLen = Ld;
    if (typeof Ed === 'number') c.embedDim = Ed;
    io.condition = c;
  }
  const os = sig.outputs.find((s) => s.name === 'denoised');
  if (!os) report(`${file}: has no output 'denoised' (model outputs: ${sig.outputs.map((s) => s.name).join(', ')})`);
  else {
    io.out = floatKind(file, os, 'output', report);
    batches.push(checkDims(file, 'output', os, sampleWant, why, report));
  }
  const fixed = commonBatch(file, batches, 'inputs and outputs', report);
  if (fixed !== undefined) io.fixedBatch = fixed;
  return io;
}

function validateDenoiserSignature(file: string, sig: ModelSignature, meta: DenoiserMetadata): DenoiserIO {
  return checkDenoiserSignature(file, sig, meta, throwUsage);
}

// ---------------------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------------------

export function floatFeed(kind: FloatKind, data: Float64Array | Float32Array, dims: readonly number[]): HostTensor {
  return kind === 'float16' ? { type: 'float16', data: toHalfArray(data), dims } : { type: 'float32', data: new Float32Array(data), dims };
}

export function readFloatOutput(t: HostTensor, out: Float64Array, count: number, offset = 0): void {
  if (t.data.length < count) throw new Error(`model output has ${t.data.length} values; ${count} expected`);
  if (t.type === 'float32') out.set(t.data.subarray(0, count), offset);
  else if (t.type === 'float16') fromHalfArray(t.data.subarray(0, count), out, offset);
  else throw new Error(`model output has type ${t.type}; float32 or float16 expected`);
}

// ---------------------------------------------------------------------------------------
// Denoiser models
// ---------------------------------------------------------------------------------------

export interface DenoiserLoadOptions extends SessionOptions {
  /** Most rows per model run (default 64); larger batches are split. */
  maxBatch?: number;
  /**
   * Classifier-free guidance weight w: when a request's conditioning has `uncondition`,
   * D = D_u + w (D_c - D_u), both halves evaluated in one run. For class-label models
   * `uncondition` holds the unconditional label rows [B, label_dim].
   */
  guidanceRate?: number;
  /** The sample shape the caller will use, [C,H,W]; checked at load. */
  sampleShape?: SampleShape;
}

/** Counters for NFE statistics and overhead measurements. */
export interface RunStats {
  /** Denoiser invocations. */
  calls: number;
  /** Samples denoised (sum of request batch sizes). */
  samples: number;
  /** session.run calls. */
  runs: number;
  /** Rows fed to the model, excluding padding (with CFG, 2 per sample). */
  rows: number;
  /** Padding rows added for fixed-batch models. */
  paddedRows: number;
  /** Wall time inside session.run, milliseconds. */
  runMs: number;
}

export function zeroStats(): RunStats {
  return { calls: 0, samples: 0, runs: 0, rows: 0, paddedRows: 0, runMs: 0 };
}

/** Counts one session.run that started at `t0` (performance.now()) and fed `rows` real rows padded to `fed`. */
export function countRun(stats: RunStats, t0: number, rows: number, fed: number): void {
  stats.runMs += performance.now() - t0;
  stats.runs++;
  stats.rows += rows;
  stats.paddedRows += fed - rows;
}

export interface DenoiserModel {
  readonly path: string;
  readonly meta: DenoiserMetadata;
  /** [C, H, W]. */
  readonly sampleShape: readonly [number, number, number];
  /** C * H * W. */
  readonly dim: number;
  /** Element type at the model boundary (of `x`). */
  readonly dtype: FloatKind;
  readonly hasClassLabels: boolean;
  readonly hasCondition: boolean;
  /** Fixed [L, E] of `condition` when the model declares them. */
  readonly conditionShape?: readonly [number | undefined, number | undefined];
  /** Rows per run. */
  readonly maxBatch: number;
  readonly fixedBatch?: number;
  readonly device: string;
  readonly signature: ModelSignature;
  readonly denoise: Denoiser;
  /** A snapshot of the counters. */
  readonly stats: RunStats;
  resetStats(): void;
  dispose(): Promise<void>;
}

/**
 * Loads a denoiser ONNX file: reads and validates the contract (metadata, input names,
 * ranks, fixed dims, dtypes) and returns the model with a `Denoiser`.
 */
export async function loadDenoiserModel(file: string, opts: DenoiserLoadOptions = {}): Promise<DenoiserModel> {
  const sig = readModelSignature(file);
  const meta = parseDenoiserMetadata(file, sig.metadata);
  const io = validateDenoiserSignature(file, sig, meta);
  const C = meta.imgChannels;
  const R = meta.imgResolution;
  const dim = C * R * R;
  if (opts.sampleShape) {
    const s = opts.sampleShape;
    if (s.length !== 3 || s[0] !== C || s[1] !== R || s[2] !== R) {
      throw new UsageError(`${file}: the model denoises [${C},${R},${R}] samples (adasde.img_channels=${C}, adasde.img_resolution=${R}); requested [${s.join(',')}]`);
    }
  }
  const maxBatch = opts.maxBatch ?? 64;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new UsageError(`max batch must be a positive integer, got ${maxBatch}`);
  const rowCap = io.fixedBatch ?? maxBatch;
  const w = opts.guidanceRate;
  if (w !== undefined && !Number.isFinite(w)) throw new UsageError(`guidance rate must be a finite number, got ${w}`);

  const session = await openSession(file, opts, sig);
  const stats = zeroStats();
  // Float32 buffers for the x feed and the output, reused across runs; concurrent runs each
  // take their own.
  const bufferPool: Float32Array[] = [];
  const takeBuffer = (length: number): Float32Array => {
    const k = bufferPool.findIndex((b) => b.length === length);
    return k >= 0 ? bufferPool.splice(k, 1)[0]! : new Float32Array(length);
  };
  const giveBuffer = (b: Float32Array) => {
    if (bufferPool.push(b) > 8) bufferPool.shift();
  };
  const takeFloat32 = (src: Float64Array): Float32Array => {
    const buf = takeBuffer(src.length);
    buf.set(src);
    return buf;
  };

  /**
   * Runs `rows` prepared rows (padded to the fixed batch if any); returns rows*dim values, or
   * writes them into `into.out` at `into.offset` (no intermediate copy).
   */
  async function runRows(
    rows: number,
    x: Float64Array,
    sigma: Float64Array,
    labels?: Float64Array | Float32Array,
    cond?: { data: Float64Array | Float32Array; L: number; E: number },
    into?: { out: Float64Array; offset: number },
  ): Promise<Float64Array> {
    const n = io.fixedBatch ?? rows;
    // The float32 copy of x is the one large feed: it comes from a pool and goes back once
    // the run is over (fresh multi-megabyte buffers cost page faults on every call).
    const xFeed = io.x === 'float32' ? takeFloat32(x) : undefined;
    const feeds: Record<string, HostTensor> = {
      x: xFeed ? { type: 'float32', data: xFeed, dims: [n, C, R, R] } : floatFeed(io.x, x, [n, C, R, R]),
      sigma: floatFeed(io.sigma, sigma, [n]),
    };
    if (io.labels && labels) feeds['class_labels'] = floatFeed(io.labels, labels, [n, meta.labelDim]);
    if (io.condition && cond) feeds['condition'] = floatFeed(io.condition.kind, cond.data, [n, cond.L, cond.E]);
    // The float32 output likewise: onnxruntime fills a pooled array instead of a new one.
    const outBuf = io.out === 'float32' ? takeBuffer(n * dim) : undefined;
    const t0 = performance.now();
    let res: Record<string, HostTensor>;
    try {
      res = await session.run(feeds, ['denoised'], outBuf ? { denoised: { type: 'float32', data: outBuf, dims: [n, C, R, R] } } : undefined);
    } catch (e) {
      if (outBuf) giveBuffer(outBuf);
      const msg = firstLine(e);
      throw new Error(`${file}: model run failed on ${n} rows: ${msg}`);
    } finally {
      if (xFeed) giveBuffer(xFeed);
    }
    countRun(stats, t0, rows, n);
    try {
      if (into) {
        readFloatOutput(res['denoised']!, into.out, rows * dim, into.offset);
        return into.out;
      }
      const out = new Float64Array(rows * dim);
      readFloatOutput(res['denoised']!, out, rows * dim);
      return out;
    } finally {
      if (outBuf) giveBuffer(outBuf);
    }
  }

  function conditionShape(c: Conditioning | undefined, B: number): { L: number; E: number } | undefined {
    if (!io.condition) return undefined;
    if (!c?.condition) throw new UsageError(`${file}: input 'condition' needs text-encoder states (none given)`);
    const [L, E] = c.conditionShape ?? [io.condition.seqLen, io.condition.embedDim];
    if (L === undefined || E === undefined) throw new Error(`${file}: conditioning without conditionShape for a model with dynamic condition dims`);
    if ((io.condition.seqLen !== undefined && L !== io.condition.seqLen) || (io.condition.embedDim !== undefined && E !== io.condition.embedDim)) {
      throw new UsageError(`${file}: input 'condition' has shape [N,${io.condition.seqLen ?? 'L'},${io.condition.embedDim ?? 'E'}]; got conditioning [${B},${L},${E}]`);
    }
    if (c.condition.length !== B * L * E) throw new Error(`condition has ${c.condition.length} values; batch ${B} x [${L},${E}] expected`);
    if (c.uncondition && c.uncondition.length !== B * L * E) throw new Error(`uncondition has ${c.uncondition.length} values; batch ${B} x [${L},${E}] expected`);
    return { L, E };
  }

  const denoise: Denoiser = async (req: DenoiseRequest): Promise<Float64Array> => {
    const B = req.batch;
    if (!Number.isInteger(B) || B < 0) throw new RangeError(`batch must be a non-negative integer, got ${B}`);
    if (req.x.length !== B * dim) throw new RangeError(`x has ${req.x.length} values; batch ${B} x [${C},${R},${R}] = ${B * dim} expected`);
    if (req.sigma.length !== B) throw new RangeError(`sigma has ${req.sigma.length} values; batch ${B} expected`);
    const c = req.cond;
    const L = meta.labelDim;
    if (io.labels) {
      if (!c?.classLabels) throw new UsageError(`${file}: input 'class_labels' [N,${L}] needs class labels (adasde.label_dim=${L})`);
      if (c.classLabels.length !== B * L) throw new RangeError(`classLabels has ${c.classLabels.length} values; batch ${B} x ${L} expected`);
    }
    const cs = conditionShape(c, B);
    const cfg = w !== undefined && c?.uncondition !== undefined;
    if (cfg && !io.condition && !io.labels) throw new UsageError(`${file}: classifier-free guidance needs a conditional model (no 'condition' or 'class_labels' input)`);
    if (cfg && !io.condition && c.uncondition!.length !== B * L) throw new RangeError(`uncondition has ${c.uncondition!.length} values; unconditional labels need batch ${B} x ${L}`);
    stats.calls++;
    stats.samples += B;
    // The solvers hand in a recycled array for the result (src/solvers/pool.ts).
    const out = req.out?.length === B * dim ? req.out : new Float64Array(B * dim);
    const per = cfg ? 2 : 1;
    const together = per <= rowCap;
    const chunk = together ? Math.floor(rowCap / per) : rowCap;
    const condW = cs ? cs.L * cs.E : 0;
    for (let s = 0; s < B; s += chunk) {
      const b = Math.min(chunk, B - s);
      const part = (src: Rows) => ({ src, from: s, rows: b });
      // Unconditional rows: `uncondition` replaces the condition (text models) or the labels.
      const uncondLabels = cfg && !io.condition ? c.uncondition! : c?.classLabels;
      const uncondCond = cfg && io.condition ? c.uncondition! : c?.condition;
      if (!cfg && io.fixedBatch === undefined) {
        // The common path: feed views of the caller's rows and read the output in place.
        // Every large temporary avoided matters: fresh multi-megabyte buffers cost page
        // faults (bench/sample_overhead.ts).
        await runRows(
          b,
          req.x.subarray(s * dim, (s + b) * dim),
          req.sigma.subarray(s, s + b),
          io.labels ? c!.classLabels!.subarray(s * L, (s + b) * L) : undefined,
          cs ? { data: c!.condition!.subarray(s * condW, (s + b) * condW), ...cs } : undefined,
          { out, offset: s * dim },
        );
        continue;
      }
      if (!cfg) {
        const n = io.fixedBatch ?? b;
        const res = await runRows(
          b,
          gatherRows([part(req.x)], dim, n),
          gatherRows([part(req.sigma)], 1, n),
          io.labels ? gatherRows([part(c!.classLabels!)], L, n) : undefined,
          cs ? { data: gatherRows([part(c!.condition!)], condW, n), ...cs } : undefined,
        );
        out.set(res, s * dim);
        continue;
      }
      let dc: Float64Array;
      let du: Float64Array;
      if (together) {
        const n = io.fixedBatch ?? 2 * b;
        const res = await runRows(
          2 * b,
          gatherRows([part(req.x), part(req.x)], dim, n),
          gatherRows([part(req.sigma), part(req.sigma)], 1, n),
          io.labels ? gatherRows([part(c.classLabels!), part(uncondLabels!)], L, n) : undefined,
          cs ? { data: gatherRows([part(c.condition!), part(uncondCond!)], condW, n), ...cs } : undefined,
        );
        dc = res.subarray(0, b * dim);
        du = res.subarray(b * dim);
      } else {
        // A fixed batch of 1 cannot hold both halves: two runs.
        const n = io.fixedBatch ?? b;
        const one = (labels: Rows | undefined, cond: Rows | undefined) =>
          runRows(
            b,
            gatherRows([part(req.x)], dim, n),
            gatherRows([part(req.sigma)], 1, n),
            io.labels ? gatherRows([part(labels!)], L, n) : undefined,
            cs ? { data: gatherRows([part(cond!)], condW, n), ...cs } : undefined,
          );
        dc = await one(c.classLabels, c.condition);
        du = await one(uncondLabels, uncondCond);
      }
      const o = s * dim;
      for (let j = 0; j < b * dim; j++) out[o + j] = du[j]! + w * (dc[j]! - du[j]!);
    }
    return out;
  };

  const model: DenoiserModel = {
    path: file,
    meta,
    sampleShape: [C, R, R],
    dim,
    dtype: io.x,
    hasClassLabels: io.labels !== undefined,
    hasCondition: io.condition !== undefined,
    conditionShape: io.condition ? [io.condition.seqLen, io.condition.embedDim] : undefined,
    maxBatch: rowCap,
    fixedBatch: io.fixedBatch,
    device: opts.device ?? 'cpu',
    signature: sig,
    denoise,
    get stats(): RunStats {
      return { ...stats };
    },
    resetStats() {
      Object.assign(stats, zeroStats());
    },
    dispose: () => session.dispose(),
  };
  return model;
}

// ---------------------------------------------------------------------------------------
// Feature models (FID detector contract)
// ---------------------------------------------------------------------------------------

export interface FeatureLoadOptions extends SessionOptions {
  /** Most images per model run (default 64). */
  maxBatch?: number;
}

export interface FeatureModel {
  readonly path: string;
  /** Name and element type of the image input. */
  readonly inputName: string;
  readonly inputDtype: 'uint8' | 'float32';
  /** Declared input dims ([N,3,H,W], symbolic or fixed). */
  readonly inputDims?: readonly Dim[];
  readonly outputName: string;
  /** Feature dimension D (known after load when fixed in the graph, else after the first run). */
  readonly featureDim: number | undefined;
  readonly maxBatch: number;
  readonly signature: ModelSignature;
  /**
   * Features of `n` images [n, C, H, W] (C = 3, or 1: repeated to RGB), pixel values 0..255.
   * Returns [n, D] float32.
   */
  extract(images: Uint8Array | Float32Array, n: number, shape: readonly [number, number, number]): Promise<Float32Array>;
  readonly stats: RunStats;
  resetStats(): void;
  dispose(): Promise<void>;
}

export interface FeatureIO {
  input: TensorSignature;
  inputDtype: 'uint8' | 'float32';
  output: TensorSignature;
  fixedBatch?: number;
  featureDim?: number;
  fixedH?: number;
  fixedW?: number;
}

/**
 * Checks the FID detector contract: one input `images` uint8/float32 [N,3,H,W], output
 * `features` (or the only output) float [N,D]. Returns undefined when no input/output to
 * describe is left.
 */
export function checkFeatureSignature(file: string, sig: ModelSignature, report: ProblemSink): FeatureIO | undefined {
  if (sig.inputs.length !== 1) {
    report(`${file}: a feature model takes one input 'images' [N,3,H,W]; the model has ${sig.inputs.length} (${sig.inputs.map((s) => s.name).join(', ')})`);
  }
  const is = sig.inputs.find((s) => s.name === 'images') ?? sig.inputs[0];
  if (!is) return undefined;
  if (is.name !== 'images') report(`${file}: input '${is.name}' ${formatDims(is.dims)}; expected 'images' [N,3,H,W]`);
  let inputDtype: 'uint8' | 'float32' = 'float32';
  if (is.dtype === 'uint8' || is.dtype === 'float32') inputDtype = is.dtype;
  else report(`${file}: input '${is.name}' has dtype ${is.dtype}; expected uint8 or float32`);
  const batches: (number | undefined)[] = [checkDims(file, 'input', is, ['batch', 3, { any: 'H' }, { any: 'W' }], 'RGB images', report)];
  const os = sig.outputs.find((s) => s.name === 'features') ?? (sig.outputs.length === 1 ? sig.outputs[0] : undefined);
  if (!os) {
    report(`${file}: has no output 'features' (model outputs: ${sig.outputs.map((s) => s.name).join(', ')})`);
    return undefined;
  }
  floatKind(file, os, 'output', report);
  batches.push(checkDims(file, 'output', os, ['batch', { any: 'D' }], 'one feature vector per image', report));
  const io: FeatureIO = { input: is, inputDtype, output: os };
  const fixed = commonBatch(file, batches, 'input and output', report);
  if (fixed !== undefined) io.fixedBatch = fixed;
  if (typeof os.dims?.[1] === 'number') io.featureDim = os.dims[1];
  if (typeof is.dims?.[2] === 'number') io.fixedH = is.dims[2];
  if (typeof is.dims?.[3] === 'number') io.fixedW = is.dims[3];
  return io;
}

/** Loads a feature extractor: input `images` uint8/float32 [N,3,H,W], output [N,D] float. */
export async function loadFeatureModel(file: string, opts: FeatureLoadOptions = {}): Promise<FeatureModel> {
  const sig = readModelSignature(file);
  const io = checkFeatureSignature(file, sig, throwUsage)!;
  const is = io.input;
  const os = io.output;
  const inputDtype = io.inputDtype;
  const fixedBatch = io.fixedBatch;
  let featureDim = io.featureDim;
  const fixedH = io.fixedH;
  const fixedW = io.fixedW;
  const maxBatch = fixedBatch ?? opts.maxBatch ?? 64;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new UsageError(`max batch must be a positive integer, got ${maxBatch}`);
  const session: OnnxSession = await openSession(file, opts, sig);
  const stats = zeroStats();

  async function extract(images: Uint8Array | Float32Array, n: number, shape: readonly [number, number, number]): Promise<Float32Array> {
    const [c, h, wd] = shape;
    if (c !== 1 && c !== 3) throw new UsageError(`${file}: images must have 1 or 3 channels, got ${c}`);
    if ((fixedH !== undefined && h !== fixedH) || (fixedW !== undefined && wd !== fixedW)) {
      throw new UsageError(`${file}: input 'images' has shape ${formatDims(is.dims)}; got images of ${c}x${h}x${wd}`);
    }
    if (images.length !== n * c * h * wd) throw new RangeError(`images has ${images.length} values; ${n} x [${c},${h},${wd}] expected`);
    stats.calls++;
    stats.samples += n;
    const plane = h * wd;
    const rowIn = c * plane;
    const rowOut = 3 * plane;
    const chunks: Float32Array[] = [];
    await inRuns(n, maxBatch, fixedBatch, async (s, b, rows) => {
      const buf = inputDtype === 'uint8' ? new Uint8Array(rows * rowOut) : new Float32Array(rows * rowOut);
      for (let r = 0; r < rows; r++) {
        const src = (s + (r < b ? r : 0)) * rowIn; // padding repeats the first image
        for (let ch = 0; ch < 3; ch++) {
          const so = src + (c === 1 ? 0 : ch) * plane;
          const dO = r * rowOut + ch * plane;
          if (buf instanceof Uint8Array && images instanceof Float32Array) {
            for (let j = 0; j < plane; j++) buf[dO + j] = Math.min(255, Math.max(0, Math.round(images[so + j]!)));
          } else {
            for (let j = 0; j < plane; j++) buf[dO + j] = images[so + j]!;
          }
        }
      }
      const feed: HostTensor = buf instanceof Uint8Array ? { type: 'uint8', data: buf, dims: [rows, 3, h, wd] } : { type: 'float32', data: buf, dims: [rows, 3, h, wd] };
      const t0 = performance.now();
      let res: Record<string, HostTensor>;
      try {
        res = await session.run({ images: feed }, [os.name]);
      } catch (e) {
        const msg = firstLine(e);
        throw new Error(`${file}: model run failed on ${rows} images of ${h}x${wd}: ${msg}`);
      }
      countRun(stats, t0, b, rows);
      const t = res[os.name]!;
      const D = t.dims.length === 2 ? t.dims[1]! : t.data.length / rows;
      if (featureDim === undefined) featureDim = D;
      else if (D !== featureDim) throw new Error(`${file}: output '${os.name}' has ${D} features per image; ${featureDim} expected`);
      const f = new Float32Array(b * D);
      const tmp = new Float64Array(b * D);
      readFloatOutput(t, tmp, b * D);
      f.set(tmp);
      chunks.push(f);
    });
    const total = new Float32Array(n * (featureDim ?? 0));
    let o = 0;
    for (const ch of chunks) {
      total.set(ch, o);
      o += ch.length;
    }
    return total;
  }

  const fm: FeatureModel = {
    path: file,
    inputName: 'images',
    inputDtype,
    inputDims: is.dims,
    outputName: os.name,
    get featureDim() {
      return featureDim;
    },
    maxBatch,
    signature: sig,
    extract,
    get stats(): RunStats {
      return { ...stats };
    },
    resetStats() {
      Object.assign(stats, zeroStats());
    },
    dispose: () => session.dispose(),
  };
  return fm;
}
