/**
 * Vector-Jacobian products of ONNX models for training's reverse mode (src/train/tape.ts):
 * the denoiser's (u -> J_x^T u, J_sigma^T u) and the feature model's (u -> J^T u), each one
 * run of a graph that src/graph/gradient.ts derives from the model file and derived.ts caches
 * beside it (`<name>.vjp.onnx`, `<name>.vjp-<H>x<W>.onnx`).
 *
 * Why graphs and not finite differences: a VJP gives the gradient of a loss with respect to
 * every input at once, which forward differences can only give one direction at a time. Its
 * cost is about three forward rows (the forward pass it repeats, plus a backward pass of
 * about twice the forward's work); bench/vjp_cost.ts measures the ratio on a model.
 *
 * Only float32 models without guidance can be differentiated this way; `denoiserVjpSupport`
 * says why not otherwise, and training then stays in forward mode.
 */
import { firstLine, UsageError } from '../core/errors.js';
import type { Conditioning } from '../core/denoiser.js';
import { elementCount } from '../core/shape.js';
import { DECODER_VJP_IO, DENOISER_VJP_IO, FEATURE_VJP_IO, GRADIENT_TRANSFORM_VERSION, decoderVjpModel, denoiserVjpModel, featureVjpModel } from '../graph/gradient.js';
import { checkDecoderSignature } from './companions.js';
import { throwUsage } from './contract.js';
import { prepareDerivedGraph } from './derived.js';
import { checkDenoiserSignature, checkFeatureSignature, parseDenoiserMetadata, readFloatOutput } from './model.js';
import { gatherRows, inRuns, rowsOf, type Rows } from './rows.js';
import { openSession, readModelSignature, type HostTensor, type SessionOptions } from './session.js';

export interface VjpLoadOptions extends SessionOptions {
  /** Most rows per run (default 64; a fixed-batch model's batch). */
  maxBatch?: number;
}

export interface DenoiserVjpOptions extends VjpLoadOptions {
  /**
   * Classifier-free guidance weight w, as loadDenoiserModel's: a request whose conditioning
   * has `uncondition` differentiates D_u + w (D_c - D_u), i.e. w J_c^T u + (1 - w) J_u^T u.
   */
  guidanceRate?: number;
}

export interface DenoiserVjp {
  readonly path: string;
  /**
   * J_x^T u [rows * dim] and J_sigma^T u [rows] at (x, sigma); `rows` counts the rows sent (a
   * fixed batch's padding included) per conditioning, as the forward model's counts its samples
   * under guidance (the graph then gets two rows per sample).
   */
  vjp(x: Float64Array, sigma: Float64Array, rows: number, cotangent: Float64Array, cond?: Conditioning): Promise<{ gx: Float64Array; gs: Float64Array; rows: number }>;
  dispose(): Promise<void>;
}

/** The denoiser's contract, and why it has no VJP graph here (undefined: it has one). */
function denoiserContract(file: string) {
  const sig = readModelSignature(file);
  const meta = parseDenoiserMetadata(file, sig.metadata);
  const io = checkDenoiserSignature(file, sig, meta, throwUsage);
  const why =
    io.x !== 'float32' || io.sigma !== 'float32' || io.out !== 'float32' ? 'the model is not float32 at its boundary'
    : io.condition && io.condition.kind !== 'float32' ? "the model's 'condition' input is not float32"
    : undefined;
  return { meta, io, why };
}

/** Why `file`'s denoiser has no VJP graph here (undefined: it has one), without building it. */
export function denoiserVjpSupport(file: string): string | undefined {
  return denoiserContract(file).why;
}

/** Builds (or reuses) the denoiser's VJP graph file. Unsupported operators: UsageError naming the node. */
export function prepareDenoiserVjp(file: string): string {
  return prepareDerivedGraph(file, {
    suffix: 'vjp',
    stampPrefix: 'vjp',
    version: GRADIENT_TRANSFORM_VERSION,
    what: "denoiser's VJP graph",
    build: (model, stamp) => denoiserVjpModel(model, { file, metadata: stamp }),
  });
}

/** Opens the VJP graph of the denoiser in `file` (see the file comment). */
export async function loadDenoiserVjp(file: string, opts: DenoiserVjpOptions = {}): Promise<DenoiserVjp> {
  const { meta, io, why } = denoiserContract(file);
  if (why) throw new UsageError(`${file}: no reverse-mode gradient: ${why}`);
  const w = opts.guidanceRate;
  if (w !== undefined && !Number.isFinite(w)) throw new UsageError(`guidance rate must be a finite number, got ${w}`);
  const path = prepareDenoiserVjp(file);
  const session = await openSession(path, opts);
  const sample = [meta.imgChannels, meta.imgResolution, meta.imgResolution];
  const dim = elementCount(sample);
  const L = meta.labelDim;
  const cap = io.fixedBatch ?? opts.maxBatch ?? 64;
  const IO = DENOISER_VJP_IO;
  async function vjp(x: Float64Array, sigma: Float64Array, rows: number, cotangent: Float64Array, cond?: Conditioning) {
    if (x.length !== rows * dim || sigma.length !== rows || cotangent.length !== rows * dim) {
      throw new RangeError(`denoiser VJP inputs do not match ${rows} samples of [${sample.join(',')}]`);
    }
    const labels = cond?.classLabels;
    if (io.labels && (!labels || labels.length !== rows * L)) throw new UsageError(`${file}: input 'class_labels' needs ${L} label values per sample`);
    let text: { L: number; E: number } | undefined;
    if (io.condition) {
      if (!cond?.condition) throw new UsageError(`${file}: input 'condition' needs text-encoder states (none given)`);
      const [cl, ce] = cond.conditionShape ?? [io.condition.seqLen, io.condition.embedDim];
      if (cl === undefined || ce === undefined || cond.condition.length !== rows * cl * ce) throw new RangeError(`condition has ${cond.condition.length} values for ${rows} samples`);
      text = { L: cl, E: ce };
    }
    const guided = w !== undefined && cond?.uncondition !== undefined;
    if (guided && !io.condition && !io.labels) throw new UsageError(`${file}: classifier-free guidance needs a conditional model (no 'condition' or 'class_labels' input)`);
    // Under guidance the request becomes 2 * rows stacked rows, [conditional; unconditional],
    // with the weights folded into the cotangent (the VJP is linear in it): w u and (1 - w) u.
    // The stack then splits into runs as any request does, so both halves share a run where they fit.
    const R = guided ? 2 * rows : rows;
    const stack = (c: Rows | undefined, u: Rows | undefined, width: number): Rows | undefined =>
      guided && c ? gatherRows([{ src: c, from: 0, rows }, { src: u ?? c, from: 0, rows }], width, R) : c;
    const X = stack(x, x, dim)!;
    const S = stack(sigma, sigma, 1)!;
    const U = guided ? Float64Array.from({ length: R * dim }, (_, k) => (k < rows * dim ? w! : 1 - w!) * cotangent[k % (rows * dim)]!) : cotangent;
    // As the guided forward (model.ts): `uncondition` replaces the text states, or the labels.
    const lab = stack(labels, io.condition ? labels : cond?.uncondition, L);
    const txt = text && stack(cond?.condition, cond?.uncondition, text.L * text.E);
    const gx2 = new Float64Array(R * dim);
    const gs2 = new Float64Array(R);
    let sent = 0;
    const f32 = (src: Float64Array | Float32Array, s: number, b: number, padded: number, width: number) =>
      Float32Array.from(rowsOf(src instanceof Float64Array ? src : Float64Array.from(src), s, b, padded, width, (k) => new Float64Array(k)));
    await inRuns(R, cap, io.fixedBatch, async (s, b, padded) => {
      const feeds: Record<string, HostTensor> = {
        x: { type: 'float32', data: f32(X, s, b, padded, dim), dims: [padded, ...sample] },
        sigma: { type: 'float32', data: f32(S, s, b, padded, 1), dims: [padded] },
        // A fixed batch's padded rows get a zero cotangent, so they add nothing.
        [IO.cotangent]: { type: 'float32', data: (() => {
          const u = new Float32Array(padded * dim);
          u.set(U.subarray(s * dim, (s + b) * dim));
          return u;
        })(), dims: [padded, ...sample] },
      };
      if (io.labels && lab) feeds['class_labels'] = { type: 'float32', data: f32(lab, s, b, padded, L), dims: [padded, L] };
      if (text && txt) feeds['condition'] = { type: 'float32', data: f32(txt, s, b, padded, text.L * text.E), dims: [padded, text.L, text.E] };
      let res: Record<string, HostTensor>;
      try {
        res = await session.run(feeds, [IO.gradX, IO.gradSigma]);
      } catch (e) {
        throw new Error(`${path}: VJP run failed on ${padded} rows: ${firstLine(e)}`);
      }
      readFloatOutput(res[IO.gradX]!, gx2, b * dim, s * dim);
      readFloatOutput(res[IO.gradSigma]!, gs2, b, s);
      sent += padded;
    });
    if (!guided) return { gx: gx2, gs: gs2, rows: sent };
    const gx = Float64Array.from({ length: rows * dim }, (_, k) => gx2[k]! + gx2[rows * dim + k]!);
    const gs = Float64Array.from({ length: rows }, (_, k) => gs2[k]! + gs2[rows + k]!);
    return { gx, gs, rows: sent / 2 };
  }
  return { path, vjp, dispose: () => session.dispose() };
}

export interface DecoderVjp {
  readonly path: string;
  /** d/dz of sum(cotangent * decoder(z)), z [n, ...latent], cotangent [n, ...image] (the decoder's output [3, H, W]). */
  vjp(z: Float64Array, n: number, cotangent: Float64Array, image: readonly [number, number, number]): Promise<{ grad: Float64Array; rows: number }>;
  dispose(): Promise<void>;
}

/**
 * Opens the VJP graph of a latent model's decoder in `file` for latents of `latent` [C, h, w]
 * (the feature loss of latent models differentiates F(img(decoder(z))) back to z).
 */
export async function loadDecoderVjp(file: string, latent: readonly [number, number, number], opts: VjpLoadOptions = {}): Promise<DecoderVjp> {
  const io = checkDecoderSignature(file, readModelSignature(file), throwUsage, latent)!;
  if (io.inKind !== 'float32' || io.outKind !== 'float32') throw new UsageError(`${file}: no reverse-mode gradient: the decoder is not float32 at its boundary`);
  const [C, h, w] = latent;
  const path = prepareDerivedGraph(file, {
    suffix: `vjp-${C}x${h}x${w}`,
    stampPrefix: 'vjp',
    version: GRADIENT_TRANSFORM_VERSION,
    what: "decoder's VJP graph",
    build: (model, stamp) => decoderVjpModel(model, latent, { file, metadata: stamp }),
  });
  const session = await openSession(path, opts);
  const cap = io.fixedBatch ?? opts.maxBatch ?? 16;
  const dim = C * h * w;
  async function vjp(z: Float64Array, n: number, cotangent: Float64Array, image: readonly [number, number, number]) {
    if (z.length !== n * dim) throw new RangeError(`z has ${z.length} values; ${n} x [${latent.join(',')}] expected`);
    const per = elementCount(image);
    if (cotangent.length !== n * per) throw new RangeError(`cotangent has ${cotangent.length} values; ${n} x [${image.join(',')}] expected`);
    const grad = new Float64Array(n * dim);
    let sent = 0;
    await inRuns(n, cap, io.fixedBatch, async (s, b, padded) => {
      const u = new Float32Array(padded * per);
      u.set(cotangent.subarray(s * per, (s + b) * per));
      const zs = Float32Array.from(rowsOf(z, s, b, padded, dim, (k) => new Float64Array(k)));
      let res: Record<string, HostTensor>;
      try {
        res = await session.run({ [io.input.name]: { type: 'float32', data: zs, dims: [padded, C, h, w] }, [DECODER_VJP_IO.cotangent]: { type: 'float32', data: u, dims: [padded, ...image] } }, [DECODER_VJP_IO.grad]);
      } catch (e) {
        throw new Error(`${path}: VJP run failed on ${padded} latents of [${latent.join(',')}]: ${firstLine(e)}`);
      }
      readFloatOutput(res[DECODER_VJP_IO.grad]!, grad, b * dim, s * dim);
      sent += padded;
    });
    return { grad, rows: sent };
  }
  return { path, vjp, dispose: () => session.dispose() };
}

export interface FeatureVjp {
  readonly path: string;
  /** d/d images of sum(cotangent * F(images)), images [n, C, H, W] float pixels 0..255 (C = 1 or 3), cotangent [n, D]. */
  vjp(images: Float32Array, n: number, cotangent: Float64Array): Promise<{ grad: Float64Array; rows: number }>;
  dispose(): Promise<void>;
}

/**
 * Opens the VJP graph of the feature model in `file` for images of `shape` [C, H, W]. A uint8
 * input is differentiated through its cast to float (gradient.ts, floatPixels): the graph then
 * takes the student's float pixels unrounded.
 */
export async function loadFeatureVjp(file: string, shape: readonly [number, number, number], opts: VjpLoadOptions = {}): Promise<FeatureVjp> {
  const io = checkFeatureSignature(file, readModelSignature(file), throwUsage)!;
  const [c, h, w] = shape;
  if (c !== 1 && c !== 3) throw new UsageError(`${file}: images must have 1 or 3 channels, got ${c}`);
  if ((io.fixedH !== undefined && h !== io.fixedH) || (io.fixedW !== undefined && w !== io.fixedW)) throw new UsageError(`${file}: the feature model takes ${io.fixedH}x${io.fixedW} images; got ${h}x${w}`);
  const path = prepareDerivedGraph(file, {
    suffix: `vjp-${h}x${w}`,
    stampPrefix: 'vjp',
    version: GRADIENT_TRANSFORM_VERSION,
    what: "feature model's VJP graph",
    build: (model, stamp) => featureVjpModel(model, { height: h, width: w }, { file, metadata: stamp }),
  });
  const session = await openSession(path, opts);
  const cap = io.fixedBatch ?? opts.maxBatch ?? 64;
  const plane = h * w;
  async function vjp(images: Float32Array, n: number, cotangent: Float64Array) {
    if (images.length !== n * c * plane) throw new RangeError(`images has ${images.length} values; ${n} x [${c},${h},${w}] expected`);
    if (cotangent.length % Math.max(n, 1) !== 0) throw new RangeError(`cotangent has ${cotangent.length} values for ${n} images`);
    const D = cotangent.length / Math.max(n, 1);
    const grad = new Float64Array(n * c * plane);
    let sent = 0;
    await inRuns(n, cap, io.fixedBatch, async (s, b, padded) => {
      const buf = new Float32Array(padded * 3 * plane);
      for (let r = 0; r < padded; r++) {
        const src = (s + (r < b ? r : 0)) * c * plane;
        for (let ch = 0; ch < 3; ch++) buf.set(images.subarray(src + (c === 1 ? 0 : ch) * plane, src + ((c === 1 ? 0 : ch) + 1) * plane), (r * 3 + ch) * plane);
      }
      const u = new Float32Array(padded * D);
      u.set(cotangent.subarray(s * D, (s + b) * D));
      let res: Record<string, HostTensor>;
      try {
        res = await session.run({ [io.input.name]: { type: 'float32', data: buf, dims: [padded, 3, h, w] }, [FEATURE_VJP_IO.cotangent]: { type: 'float32', data: u, dims: [padded, D] } }, [FEATURE_VJP_IO.grad]);
      } catch (e) {
        throw new Error(`${path}: VJP run failed on ${padded} images of ${h}x${w}: ${firstLine(e)}`);
      }
      const g = new Float64Array(b * 3 * plane);
      readFloatOutput(res[FEATURE_VJP_IO.grad]!, g, b * 3 * plane);
      // Grey images were repeated to RGB: their gradient is the three channels' sum.
      for (let r = 0; r < b; r++) {
        for (let ch = 0; ch < 3; ch++) {
          const from = (r * 3 + ch) * plane;
          const to = (s + r) * c * plane + (c === 1 ? 0 : ch) * plane;
          for (let j = 0; j < plane; j++) grad[to + j]! += g[from + j]!;
        }
      }
      sent += padded;
    });
    return { grad, rows: sent };
  }
  return { path, vjp, dispose: () => session.dispose() };
}
