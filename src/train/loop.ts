/**
 * One distillation batch (ALGORITHM.md 4.3): teacher targets without gradients, then the
 * student from its own trajectory with one Adam step per interval. Pure computation over a
 * denoiser; run folders, snapshots and progress live in the `train` command.
 *
 * Every trajectory g (global index batch * B + k) draws its latent, labels and SDE noise
 * from its own streams, and gradients are sums over samples divided by the global batch,
 * so any split of a batch over processes gives the same update up to float rounding.
 */
import { effectiveCoefficients, RAW_PARAM_NAMES, type CoefficientBounds, type RawParamName, type RawParams } from '../solvers/coefficients.js';
import { getSchedule, type ScheduleSpec } from '../solvers/schedule.js';
import { teacherSchedule, teacherTargets, type TeacherKind } from '../solvers/teacher.js';
import type { Conditioning, Denoiser } from '../core/denoiser.js';
import { performance } from 'node:perf_hooks';
import { shard } from '../parallel/launcher.js';
import { SeedStream, oneHot, seedClassIndices } from '../rng/streams.js';
import { adamInit, adamStep, cosineLr, sanitizeGrad, type AdamTensorState } from './adam.js';
import { finiteDifferenceJvp, type JvpFn, type JvpScheme } from './jvp.js';
import type { TeacherStore } from './teacher-cache.js';
import { dualCoefficients, studentStepJvp, type Tangent } from './student.js';
import { dot, TapeOps, type TapeArray, type VjpFn } from './tape.js';
import { adasdeStep } from '../solvers/adasde.js';
import { liveParams, type ParamRef } from '../solvers/coefficients.js';
import { elementCount } from '../core/shape.js';

/** Pool features of images given as float pixels [n, C, H, W] in 0..255 -> [n, D]. */
export type FeatureFn = (images: Float32Array, n: number, shape?: readonly [number, number, number]) => Promise<{ features: Float32Array; dim: number }>;

/**
 * The feature extractor's vector-Jacobian product: d/d images of sum(cotangent * F(images)),
 * images [n, C, H, W] float pixels, cotangent [n, D]. `rows` counts the rows sent to the detector.
 */
export type FeatureVjpFn = (images: Float32Array, n: number, cotangent: Float64Array, shape?: readonly [number, number, number]) => Promise<{ grad: Float64Array; rows: number }>;

/** Latent models: the first-stage decoder, latents [n, ...] -> images [n, 3, H, W] in [-1, 1]. */
export type DecodeFn = (z: Float64Array, n: number) => Promise<{ images: Float64Array; shape: [number, number, number] }>;

/** Latent models: the decoder's vector-Jacobian product d/dz sum(cotangent * decoder(z)), cotangent [n, ...image]. */
export type DecoderVjpFn = (z: Float64Array, n: number, cotangent: Float64Array, image: readonly [number, number, number]) => Promise<{ grad: Float64Array; rows: number }>;

/** Per-trajectory conditioning of a batch (text-conditional models), by global trajectory index. */
export type CondFn = (globalIdx: readonly number[]) => Promise<Conditioning>;

/** Sums a vector over all processes (identity for one process). */
export type Reducer = (v: Float64Array) => Promise<Float64Array>;

export interface TrainSetup {
  denoise: Denoiser;
  sampleShape: readonly number[];
  labelDim: number;
  schedule: ScheduleSpec;
  M: number;
  teacher: TeacherKind;
  afs: boolean;
  bounds: CoefficientBounds;
  numPoints: number;
  lr: number;
  coslr: boolean;
  totalKimg: number;
  batch: number;
  seed: number;
  alpha: number;
  /** Final-interval feature loss; undefined falls back to L2. */
  features?: FeatureFn;
  /** Latent models: decoder applied before the feature extractor. */
  decode?: DecodeFn;
  /** Text-conditional models: conditioning of each trajectory. */
  condFor?: CondFn;
  /**
   * Class-conditional classifier-free guidance: every row also carries all-zero labels as its
   * unconditional half (`uncondition`), as `adasde sample` gives them, so that teacher and
   * student are the guided D the predictor will sample with.
   */
  cfgLabels?: boolean;
  /** Relative finite-difference step of the JVPs (see jvp.ts). */
  jvpRelStep: number;
  /** Finite-difference scheme of the JVPs and the feature loss; default central. */
  jvpScheme?: JvpScheme;
  /** Relative step of the feature loss's differences; default 1e-3. */
  featureRelStep?: number;
  rank: number;
  worldSize: number;
  reduce: Reducer;
  /** Teacher targets kept across runs (src/train/teacher-cache.ts); undefined: always computed. */
  teacherStore?: TeacherStore;
  /** Student passes (each with its Adam steps) per teacher batch; default 1, the reference. */
  passes?: number;
  /**
   * Reverse mode (gradient-plan.ts): intervals from `reverseFrom` on are taped and
   * back-propagated through `vjp` (and the feature loss through `featureVjp`); earlier ones
   * carry forward tangents. Undefined or N - 1: forward mode throughout.
   */
  reverseFrom?: number;
  vjp?: VjpFn;
  /** The denoiser's JVP; default finite differences of `denoise` (jvp.ts). Closed forms for the analytic models. */
  jvp?: JvpFn;
  /**
   * The detector's VJP: the final-interval feature loss is then differentiated in reverse (its
   * gradient in x), in forward mode too, where it is dotted with the tangents; else by finite
   * differences (featureLoss).
   */
  featureVjp?: FeatureVjpFn;
  /** Latent models with `featureVjp`: the decoder's VJP, for the feature loss on decoded images. */
  decoderVjp?: DecoderVjpFn;
}

export interface TrainState {
  raw: RawParams;
  adam: Record<RawParamName, AdamTensorState>;
  /** Batches completed. */
  batchIndex: number;
}

export interface BatchStats {
  /** Global loss of every interval. */
  losses: number[];
  lr: number;
  /** Rows sent to the model by this process (teacher, student including JVP copies), counted at the model. */
  teacherRows: number;
  studentRows: number;
  /** Of the student's rows, those sent through VJPs (reverse mode). */
  studentVjpRows: number;
  /** Rows sent to the feature detector (final-interval feature loss), VJP rows included. */
  detectorRows: number;
  /** Whether this process's teacher targets came from the store. */
  teacherHit: boolean;
  /** Seconds spent inside the denoiser for the teacher and for the student. */
  teacherSec: number;
  studentSec: number;
}

export const ETA_MIN = 0.01;

/** Number of batches of a run: T_max - 1 of the reference's cosine schedule. */
export const totalBatches = (totalKimg: number, batch: number): number => Math.ceil((totalKimg * 1000) / batch);

export function initState(seed: number, numSteps: number, K: number): TrainState {
  // Every raw parameter ~ N(0, 1) from the training seed (ALGORITHM.md 4.1), table by table.
  const g = new SeedStream(seed, 'init');
  const tab = () => Array.from({ length: numSteps - 1 }, () => Array.from({ length: K }, () => g.normal()));
  return stateFromRaw({ r: tab(), scaleDir: tab(), scaleTime: tab(), weight: tab(), gamma: tab() });
}

/** A fresh training state (zero Adam moments, batch 0) starting from the given raw parameters. */
export function stateFromRaw(raw: RawParams): TrainState {
  const copy = structuredClone(raw);
  const adam = Object.fromEntries(RAW_PARAM_NAMES.map((t) => [t, adamInit(copy[t])])) as Record<RawParamName, AdamTensorState>;
  return { raw: copy, adam, batchIndex: 0 };
}

/**
 * Raw gamma of the neutral start: sigmoid((g + b) / 2) = 0.0100 at g = -10, so gamma sits 1%
 * of the way from gamma_min to gamma_max (ALGORITHM.md 4.1). Not lower: the sigmoid's slope
 * s (1 - s) is then still 1e-2, so the gradient can lift gamma if noise helps.
 */
export const NEUTRAL_RAW_GAMMA = -10;

/**
 * The neutral start: every interval a plain second-order midpoint step (DPM-Solver-2 with
 * r = 1/2: raw r = 0 -> r = 1/2, raw 0 -> c = a = 1 and equal softmax weights), with gamma
 * near its minimum, so training begins from a solver that already works instead of random
 * coefficients.
 */
export function neutralState(numSteps: number, K: number): TrainState {
  const tab = (v: number) => Array.from({ length: numSteps - 1 }, () => new Array<number>(K).fill(v));
  return stateFromRaw({ r: tab(0), scaleDir: tab(0), scaleTime: tab(0), weight: tab(0), gamma: tab(NEUTRAL_RAW_GAMMA) });
}

const streamKey = (seed: number, g: number) => `train${seed}/${g}`;

/**
 * The reference's final-interval loss: the per-element loss is filled with
 * alpha * mean((F(img(x)) - F(img(y)))^2), then summed over the batch and pixels and divided
 * by B, giving alpha * C*H*W * mean(...) with C*H*W the size of x. img(v) =
 * clip(127.5 v + 128, 0, 255) without rounding, after the decoder for latent models.
 * Derivatives are finite differences in x's own space (per row, as jvp.ts; forward: one
 * copy per tangent, reusing F(img(x)); central: two), so the decoder, the clipping and the
 * detector are all differentiated as one black box in ONE detector call (and one decoder
 * call). Returns this process's share of the loss and its gradient.
 */
export async function featureLoss(
  features: FeatureFn,
  x: Float64Array,
  y: Float64Array,
  tangents: Tangent[],
  n: number,
  dim: number,
  globalB: number,
  alpha: number,
  relStep: number,
  decode?: DecodeFn,
  scheme: JvpScheme = 'central',
): Promise<{ loss: number; grad: Float64Array; rows: number }> {
  const P = tangents.length;
  const per = scheme === 'central' ? 2 : 1;
  const rowRms = (v: Float64Array, b: number) => {
    let s = 0;
    for (let k = b * dim; k < (b + 1) * dim; k++) s += v[k]! * v[k]!;
    return Math.sqrt(s / dim);
  };
  const eps = tangents.map((t) =>
    Float64Array.from({ length: n }, (_, b) => {
      const r = rowRms(t.dx, b);
      return r > 0 ? (relStep * Math.max(rowRms(x, b), 1e-3)) / r : 0;
    }),
  );
  // Stack [x; y; x + e dx_p (; x - e dx_p)] and map them to float pixels in one pass.
  const rows = (2 + per * P) * n;
  const X = new Float64Array(rows * dim);
  X.set(x, 0);
  X.set(y, n * dim);
  tangents.forEach((t, p) => {
    const slots: (readonly [number, number])[] = per === 2 ? [[2 + 2 * p, 1], [3 + 2 * p, -1]] : [[2 + p, 1]];
    for (const [slot, sign] of slots) {
      const o = slot * n * dim;
      for (let k = 0; k < n * dim; k++) X[o + k] = x[k]! + sign * eps[p]![Math.floor(k / dim)]! * t.dx[k]!;
    }
  });
  const decoded = decode ? await decode(X, rows) : undefined;
  const images = decoded?.images ?? X;
  const pixels = new Float32Array(images.length);
  for (let k = 0; k < images.length; k++) pixels[k] = Math.min(Math.max(127.5 * images[k]! + 128, 0), 255);
  // The image shape is the decoder's for latent models, else the sample shape (undefined).
  const { features: f, dim: D } = await features(pixels, rows, decoded?.shape);
  const scale = (alpha * dim) / (globalB * D);
  let loss = 0;
  const diff = new Float64Array(n * D);
  for (let q = 0; q < n * D; q++) {
    diff[q] = f[q]! - f[n * D + q]!;
    loss += diff[q]! * diff[q]!;
  }
  const grad = new Float64Array(P);
  for (let p = 0; p < P; p++) {
    const po = (per === 2 ? 2 + 2 * p : 2 + p) * n * D;
    // forward differences subtract F(img(x)) itself, the first block.
    const mo = per === 2 ? (3 + 2 * p) * n * D : 0;
    let s = 0;
    for (let b = 0; b < n; b++) {
      const e = eps[p]![b]!;
      if (e === 0) continue;
      for (let q = b * D; q < (b + 1) * D; q++) s += diff[q]! * ((f[po + q]! - f[mo + q]!) / (per * e));
    }
    grad[p] = 2 * scale * s;
  }
  return { loss: loss * scale, grad, rows };
}

/**
 * The same final-interval loss as `featureLoss`, differentiated in reverse: its gradient with
 * respect to x itself (all pixels), for the tape. F is run on [x; y] once, then its VJP
 * carries d loss / d F(img(x)) = 2 scale (F(img(x)) - F(img(y))) back to the pixels, and
 * img's clip passes it where 0 <= 127.5 v + 128 <= 255 (PyTorch's clamp rule). Latent
 * models decode [x; y] first, and the decoder's VJP carries the image cotangent on to x.
 */
export async function featureLossReverse(
  features: FeatureFn,
  featureVjp: FeatureVjpFn,
  x: Float64Array,
  y: Float64Array,
  n: number,
  dim: number,
  globalB: number,
  alpha: number,
  decoder?: { decode: DecodeFn; vjp: DecoderVjpFn },
): Promise<{ loss: number; cot: Float64Array; rows: number }> {
  const X = new Float64Array(2 * n * dim);
  X.set(x, 0);
  X.set(y, n * dim);
  const decoded = decoder ? await decoder.decode(X, 2 * n) : undefined;
  const images = decoded?.images ?? X;
  const per = images.length / (2 * n || 1);
  const both = Float32Array.from(images, (u) => Math.min(Math.max(127.5 * u + 128, 0), 255));
  const { features: f, dim: D } = await features(both, 2 * n, decoded?.shape);
  const scale = (alpha * dim) / (globalB * D);
  let loss = 0;
  const cotF = new Float64Array(n * D);
  for (let q = 0; q < n * D; q++) {
    const d = f[q]! - f[n * D + q]!;
    loss += d * d;
    cotF[q] = 2 * scale * d;
  }
  const { grad, rows } = await featureVjp(both.subarray(0, n * per), n, cotF, decoded?.shape);
  const cotImg = new Float64Array(n * per);
  for (let k = 0; k < n * per; k++) {
    const pix = 127.5 * images[k]! + 128;
    cotImg[k] = pix >= 0 && pix <= 255 ? 127.5 * grad[k]! : 0;
  }
  const cot = decoder && decoded ? (await decoder.vjp(x, n, cotImg, decoded.shape)).grad : cotImg;
  return { loss: loss * scale, cot, rows: 2 * n + rows };
}

/** <cot, dx_p> for every tangent p: a gradient in x carried to the coefficients (0 where cot is undefined). */
function alongTangents(cot: Float64Array | undefined, tangents: readonly Tangent[]): Float64Array {
  return Float64Array.from(tangents, (t) => (cot ? dot(cot, t.dx) : 0));
}

/** The L2 loss of ALGORITHM.md 4.3 on this shard, sum |x - y|^2 / B (B the global batch), and x - y. */
function l2Loss(x: Float64Array, y: Float64Array, B: number): { loss: number; diff: Float64Array } {
  const diff = new Float64Array(x.length);
  let loss = 0;
  for (let k = 0; k < x.length; k++) {
    diff[k] = x[k]! - y[k]!;
    loss += diff[k]! * diff[k]!;
  }
  return { loss: loss / B, diff };
}

/** Run one batch and update `state` in place. */
export async function trainBatch(setup: TrainSetup, state: TrainState): Promise<BatchStats> {
  const { denoise, sampleShape, batch: B, seed } = setup;
  const dim = elementCount(sampleShape);
  const N = setup.schedule.numSteps;
  const tStudent = getSchedule(setup.schedule);
  const tTeacher = teacherSchedule(setup.schedule, setup.M);
  const [lo, hi] = shard(B, setup.rank, setup.worldSize);
  const n = hi - lo;
  const globalIdx = Array.from({ length: n }, (_, k) => state.batchIndex * B + lo + k);

  const tMax = totalBatches(setup.totalKimg, B) + 1;
  const lr = setup.coslr ? cosineLr(setup.lr, ETA_MIN, state.batchIndex, tMax) : setup.lr;

  // Class labels (class-conditional models) from each trajectory's own label stream.
  let cond: Conditioning | undefined;
  if (setup.labelDim > 0) {
    const labels = seedClassIndices(globalIdx.map((g) => streamKey(seed, g)), setup.labelDim);
    cond = { classLabels: oneHot(labels, setup.labelDim), labelDim: setup.labelDim, ...(setup.cfgLabels ? { uncondition: new Float32Array(n * setup.labelDim) } : {}) };
  } else if (setup.condFor) {
    cond = await setup.condFor(globalIdx);
  }

  const x0 = new Float64Array(n * dim);
  globalIdx.forEach((g, k) => new SeedStream(streamKey(seed, g), 'latent').fillNormal(x0, k * dim, dim));

  // 1. Teacher targets (no gradients).
  let teacherRows = 0;
  const secs = { teacher: 0, student: 0 };
  /** Runs one model call (the denoiser or its VJP), adding its time to the phase's. */
  const timed = async <T>(phase: 'teacher' | 'student', call: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await call();
    } finally {
      secs[phase] += (performance.now() - t0) / 1000;
    }
  };
  const countingTeacher: Denoiser = (req) => {
    teacherRows += req.batch;
    return timed('teacher', () => denoise(req));
  };
  const computeTargets = () => teacherTargets(setup.teacher, x0.map((v) => v * tTeacher[0]!), { denoise: countingTeacher, tSteps: tTeacher, batch: n, dim, cond }, setup.M);
  let targets: Float64Array[] = [];
  let teacherHit = false;
  if (n > 0 && setup.teacherStore) ({ targets, hit: teacherHit } = await setup.teacherStore.targets(globalIdx[0]!, n, computeTargets));
  else if (n > 0) targets = await computeTargets();

  // 2. The student from its own trajectory, one Adam step per interval; with passes > 1 the
  // same targets are used again, each pass drawing fresh injection noise (pass 0 draws the
  // reference's).
  let losses: number[] = [];
  const passes = setup.passes ?? 1;
  let studentRows = 0;
  let detectorRows = 0;
  const scheme = setup.jvpScheme ?? 'central';
  const countingStudent: Denoiser = (req) => {
    studentRows += req.batch;
    return timed('student', () => denoise(req));
  };
  const given = setup.jvp;
  const jvp: JvpFn = given
    ? async (...args) => {
        const r = await given(...args);
        studentRows += r.rows;
        return r;
      }
    : finiteDifferenceJvp(countingStudent, { relStep: setup.jvpRelStep, scheme });
  let studentVjpRows = 0;
  const reverseFrom = setup.reverseFrom ?? N - 1;
  if (reverseFrom < N - 1 && !setup.vjp) throw new RangeError('reverse mode needs the denoiser\'s VJP');
  if (reverseFrom < N - 1 && setup.features && !setup.featureVjp) throw new RangeError('reverse mode with the feature loss needs the detector\'s VJP');
  if (setup.featureVjp && setup.decode && !setup.decoderVjp) throw new RangeError("the feature loss on decoded images in reverse mode needs the decoder's VJP");
  const countingVjp: VjpFn = async (xv, sigma, rows, cot, c) => {
    const r = await timed('student', () => setup.vjp!(xv, sigma, rows, cot, c));
    studentRows += r.rows;
    studentVjpRows += r.rows;
    return r;
  };
  for (let pass = 0; pass < passes; pass++) {
    const noiseStreams = globalIdx.map((g) => new SeedStream(pass === 0 ? streamKey(seed, g) : `${streamKey(seed, g)}/pass${pass}`, 'sde'));
    let x: Float64Array = x0.map((v) => v * tStudent[0]!);
    let tangents: Tangent[] = [];
    // Reverse mode from interval k on: the tape, its input x_k with x_k's forward tangents,
    // and the coefficients the taped scalars are differentiated against.
    let tape: { ops: TapeOps; input: TapeArray; x: TapeArray; tangents: Tangent[]; refs: ParamRef[] } | undefined;
    losses = [];
    for (let i = 0; i < N - 1; i++) {
      const coeffs = effectiveCoefficients(state.raw, setup.bounds);
      let eps: Float64Array | undefined;
      if (i > 0 && setup.bounds.gamma > 0) {
        eps = new Float64Array(n * dim);
        noiseStreams.forEach((s, k) => s.fillNormal(eps!, k * dim, dim));
      }
      let localLoss = 0;
      let localGrad: Float64Array;
      // The parameters localGrad refers to, in its order.
      let gradRefs: ParamRef[] = [];
      if (n > 0 && i >= reverseFrom) {
        if (!tape) {
          const refs = Array.from({ length: N - 1 - i }, (_, q) => liveParams(i + q, setup.numPoints, N - 1, setup.bounds)).flat();
          const ops = new TapeOps({ denoise: countingStudent, vjp: countingVjp, batch: n, dim, params: refs.length, cond });
          const input = ops.leaf(x);
          tape = { ops, input, x: input, tangents, refs };
        }
        tape.ops.setNoise(eps);
        const c = dualCoefficients(tape.refs, i, state.raw, coeffs, setup.bounds);
        tape.x = await adasdeStep(tape.ops, tape.x, { i, tCur: tStudent[i]!, tNext: tStudent[i + 1]!, afs: setup.afs }, c);
        const xi = tape.x.v;
        const y = targets[i]!;
        let seed: Float64Array;
        if (i === N - 2 && setup.features) {
          const fl = await featureLossReverse(setup.features, setup.featureVjp!, xi, y, n, dim, B, setup.alpha, setup.decode && { decode: setup.decode, vjp: setup.decoderVjp! });
          detectorRows += fl.rows;
          localLoss = fl.loss;
          seed = fl.cot;
        } else {
          const l2 = l2Loss(xi, y, B);
          localLoss = l2.loss;
          seed = l2.diff.map((d) => (2 * d) / B);
        }
        const back = await tape.ops.backward([[tape.x, seed]], [tape.input]);
        const xCot = back.leaves[0];
        // Coefficients before k through x_k's tangents, the taped ones through their scalars.
        gradRefs = [...tape.tangents.map((t) => t.ref), ...tape.refs];
        localGrad = new Float64Array(gradRefs.length);
        localGrad.set(alongTangents(xCot, tape.tangents));
        localGrad.set(back.paramGrad, tape.tangents.length);
      } else if (n > 0) {
        const out = await studentStepJvp({ jvp, i, x, tangents, tCur: tStudent[i]!, tNext: tStudent[i + 1]!, raw: state.raw, coeffs, bounds: setup.bounds, afs: setup.afs, batch: n, eps, cond });
        x = out.x;
        tangents = out.tangents;
        gradRefs = tangents.map((t) => t.ref);
        const y = targets[i]!;
        if (i === N - 2 && setup.features && setup.featureVjp) {
          // The loss's gradient in x through the detector's (and decoder's) VJP, dotted with each
          // tangent: exact, and one VJP in place of a perturbed detector copy per tangent.
          const fl = await featureLossReverse(setup.features, setup.featureVjp, x, y, n, dim, B, setup.alpha, setup.decode && { decode: setup.decode, vjp: setup.decoderVjp! });
          detectorRows += fl.rows;
          localLoss = fl.loss;
          localGrad = alongTangents(fl.cot, tangents);
        } else if (i === N - 2 && setup.features) {
          const fl = await featureLoss(setup.features, x, y, tangents, n, dim, B, setup.alpha, setup.featureRelStep ?? 1e-3, setup.decode, scheme);
          detectorRows += fl.rows;
          localLoss = fl.loss;
          localGrad = fl.grad;
        } else {
          const l2 = l2Loss(x, y, B);
          localLoss = l2.loss;
          localGrad = alongTangents(l2.diff, tangents).map((s) => (2 * s) / B);
        }
      } else {
        // An empty shard still takes part in the reduction with zeros.
        tangents = [];
        localGrad = new Float64Array(0);
      }
      // Gradients keyed by parameter, in one flat vector over all tables for the reduction.
      const flat = new Float64Array(1 + 5 * (N - 1) * setup.numPoints);
      flat[0] = localLoss;
      const index = (name: RawParamName, ii: number, j: number) => 1 + (RAW_PARAM_NAMES.indexOf(name) * (N - 1) + ii) * setup.numPoints + j;
      gradRefs.forEach((ref, p) => (flat[index(ref.name, ref.i, ref.j)] = localGrad[p]!));
      const total = await setup.reduce(flat);
      losses.push(total[0]!);
      for (const table of RAW_PARAM_NAMES) {
        // gamma_0 is forced to 0, so on the first interval the gamma table is not part of the
        // loss graph and the reference's Adam skips it (its grad is None); all other tables take
        // a step, with zero gradient for rows not reached yet (momentum still moves them).
        if (table === 'gamma' && i === 0) continue;
        const grad = state.raw[table].map((row, ii) => row.map((_, j) => sanitizeGrad(total[index(table, ii, j)]!)));
        adamStep(state.raw[table], grad, state.adam[table], lr);
      }
    }
  }
  state.batchIndex += 1;
  return { losses, lr, teacherRows, studentRows, studentVjpRows, detectorRows, teacherHit, teacherSec: secs.teacher, studentSec: secs.student };
}
