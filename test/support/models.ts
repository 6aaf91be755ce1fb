/**
 * The model definitions the tests and benchmarks build without PyTorch, on src/onnx/builder.ts:
 * the analytic denoisers of ALGORITHM.md section 9 as real ONNX graphs (so the whole runtime
 * path is tested against closed-form truth), a U-Net-sized convolutional denoiser with
 * deterministic weights (for the sampler-overhead benchmark), a tiny feature network with the
 * FID detector contract (for FID plumbing tests), a text encoder and a decoder for the latent
 * families.
 *
 * Every denoiser follows the README model contract: inputs `x` [N,C,H,W], `sigma` [N]
 * (+ `class_labels` / `condition` when conditional), output `denoised`, metadata keys
 * `adasde.*`.
 */
import { GraphBuilder } from '../../src/onnx/builder.js';
import { DataType, type Dim, type ModelProto } from '../../src/onnx/proto.js';
import type { GaussParams, MixtureParams } from '../../src/solvers/analytic.js';

// ---------------------------------------------------------------------------------------
// Contract metadata
// ---------------------------------------------------------------------------------------

/** The README metadata table as typed values. */
export interface ContractMetadata {
  sigmaMin: number;
  sigmaMax: number;
  imgResolution: number;
  imgChannels: number;
  labelDim: number;
  family: string;
  datasetName: string;
  alphasCumprod?: ArrayLike<number>;
  decoder?: string;
  textEncoder?: string;
  tokenizer?: string;
}

/** `metadata_props` entries for the contract (numbers as shortest round-trip decimals). */
export function contractMetadata(m: ContractMetadata): Record<string, string> {
  const out: Record<string, string> = {
    'adasde.sigma_min': String(m.sigmaMin),
    'adasde.sigma_max': String(m.sigmaMax),
    'adasde.img_resolution': String(m.imgResolution),
    'adasde.img_channels': String(m.imgChannels),
    'adasde.label_dim': String(m.labelDim),
    'adasde.family': m.family,
    'adasde.dataset_name': m.datasetName,
  };
  if (m.alphasCumprod) out['adasde.alphas_cumprod'] = JSON.stringify(Array.from(m.alphasCumprod));
  if (m.decoder !== undefined) out['adasde.decoder'] = m.decoder;
  if (m.textEncoder !== undefined) out['adasde.text_encoder'] = m.textEncoder;
  if (m.tokenizer !== undefined) out['adasde.tokenizer'] = m.tokenizer;
  return out;
}

/** Metadata and I/O options shared by the denoiser builders. */
export interface DenoiserBuildMeta {
  sigmaMin?: number;
  sigmaMax?: number;
  datasetName?: string;
  family?: string;
  /** Metadata entries added to or replacing the contract keys (applied after them). */
  metadata?: Record<string, string>;
  /** Metadata keys to leave out (to build contract-violating test models). */
  omit?: string[];
  /** Element type of inputs and output; float16 graphs cast to float32 inside. */
  dtype?: 'float32' | 'float16';
  /** A fixed batch size instead of the dynamic dimension `N`. */
  batch?: number;
}

function finishMetadata(base: ContractMetadata, meta: DenoiserBuildMeta): Record<string, string> {
  const md = { ...contractMetadata(base), ...(meta.metadata ?? {}) };
  for (const k of meta.omit ?? []) delete md[k];
  return md;
}

/** Declares the denoiser inputs; returns float32 value names for x and sigma. */
function denoiserInputs(b: GraphBuilder, shape: readonly number[], meta: DenoiserBuildMeta): { x: string; sigma: string; n: Dim } {
  const n: Dim = meta.batch ?? 'N';
  const et = meta.dtype === 'float16' ? DataType.FLOAT16 : DataType.FLOAT;
  let x = b.input('x', et, [n, ...shape]);
  let sigma = b.input('sigma', et, [n]);
  if (et === DataType.FLOAT16) {
    x = b.op('Cast', [x], { to: { i: DataType.FLOAT } });
    sigma = b.op('Cast', [sigma], { to: { i: DataType.FLOAT } });
  }
  return { x, sigma, n };
}

/** Declares an extra conditioning input, cast to float32 when needed. */
function extraInput(b: GraphBuilder, name: string, shape: Dim[], meta: DenoiserBuildMeta): string {
  const et = meta.dtype === 'float16' ? DataType.FLOAT16 : DataType.FLOAT;
  const v = b.input(name, et, shape);
  return et === DataType.FLOAT16 ? b.op('Cast', [v], { to: { i: DataType.FLOAT } }) : v;
}

function denoiserOutput(b: GraphBuilder, value: string, shape: readonly number[], n: Dim, meta: DenoiserBuildMeta): void {
  if (meta.dtype === 'float16') {
    b.output(b.op('Cast', [value], { to: { i: DataType.FLOAT16 } }), 'denoised', DataType.FLOAT16, [n, ...shape]);
  } else b.output(value, 'denoised', DataType.FLOAT, [n, ...shape]);
}

function checkShape(shape: readonly number[]): void {
  if (shape.length !== 3 || shape.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw new RangeError(`sample shape must be [C,H,W] with positive integers, got [${shape.join(',')}]`);
  }
}

/** [N] sigma -> [N,1,...,1] with `rank` dims in total. */
function sigmaColumn(b: GraphBuilder, sigma: string, rank: number): string {
  const dims = [-1, ...new Array<number>(rank - 1).fill(1)];
  return b.op('Reshape', [sigma, b.constantInt64(dims, [rank], 'shape')]);
}

// ---------------------------------------------------------------------------------------
// Analytic denoisers (ALGORITHM.md section 9)
// ---------------------------------------------------------------------------------------

/** Gaussian data N(mu, s^2 I): D = mu + s^2/(s^2+sigma^2) (x - mu). */
export function buildGaussModel(params: GaussParams, shape: readonly number[], meta: DenoiserBuildMeta = {}): ModelProto {
  checkShape(shape);
  const dim = shape[0]! * shape[1]! * shape[2]!;
  if (params.mu.length !== dim) throw new RangeError(`mu has ${params.mu.length} values; shape [${shape.join(',')}] needs ${dim}`);
  const b = new GraphBuilder('gauss');
  const { x, sigma, n } = denoiserInputs(b, shape, meta);
  const s2 = b.scalar(params.s * params.s);
  const sg = sigmaColumn(b, sigma, 4);
  const k = b.op('Div', [s2, b.op('Add', [b.op('Mul', [sg, sg]), s2])]);
  const mu = b.constant(params.mu, [...shape], 'mu');
  const out = b.op('Add', [mu, b.op('Mul', [k, b.op('Sub', [x, mu])])]);
  denoiserOutput(b, out, shape, n, meta);
  const md = finishMetadata(
    {
      sigmaMin: meta.sigmaMin ?? 0.002,
      sigmaMax: meta.sigmaMax ?? 80,
      imgResolution: shape[1]!,
      imgChannels: shape[0]!,
      labelDim: 0,
      family: meta.family ?? 'analytic',
      datasetName: meta.datasetName ?? 'gauss',
    },
    meta,
  );
  return b.model(md);
}

/**
 * Optional conditioning of a mixture: the component log-weights get `pooled . logits[:, k]`,
 * where `pooled` is the `class_labels` row or the mean of the `condition` rows over L.
 * All-zero conditioning gives the unconditional mixture, so zeros serve as the
 * unconditional input of classifier-free guidance.
 */
export type MixtureConditioning =
  | { input: 'class_labels'; labelDim: number; /** [labelDim, K] row-major */ logits: Float64Array }
  | { input: 'condition'; seqLen: number; embedDim: number; /** [embedDim, K] row-major */ logits: Float64Array };

export interface MixtureBuildMeta extends DenoiserBuildMeta {
  conditioning?: MixtureConditioning;
  /**
   * How |x - m_k|^2 is computed: `matmul` expands |x|^2 - 2 x.m_k + |m_k|^2 (memory N*K),
   * `direct` forms the [N,K,D] differences (memory N*K*D). Both run in float64, where the
   * expansion's cancellation is harmless, so the default is `matmul`.
   */
  distance?: 'direct' | 'matmul';
}

/**
 * Isotropic Gaussian mixture sum_k w_k N(m_k, s_k^2 I) (stds 0: the empirical data set).
 * Posterior weights through Softmax (which subtracts the row maximum, i.e. a stable
 * log-sum-exp) of  log w_k - D/2 log(v_k / v_ref) - |x - m_k|^2 / (2 v_k),
 * v_k = s_k^2 + sigma^2; then D(x) = sum_k p_k sigma^2/v_k m_k + (sum_k p_k s_k^2/v_k) x.
 *
 * The graph computes in float64 between the float32 input and output casts: the logits
 * are differences of terms of size up to D |x|^2 / sigma^2, and in float32 their rounding
 * alone shifts the posterior by ~1e-5 at mid-range sigma. In float64 the ONNX model is a
 * reference accurate to float32 output rounding, which is what tests compare against.
 */
export function buildMixtureModel(params: MixtureParams, shape: readonly number[], meta: MixtureBuildMeta = {}): ModelProto {
  checkShape(shape);
  const dim = shape[0]! * shape[1]! * shape[2]!;
  const K0 = params.weights.length;
  if (params.means.length !== K0 * dim) throw new RangeError(`means has ${params.means.length} values; K=${K0} x dim=${dim} expected`);
  if (params.stds.length !== K0) throw new RangeError(`stds has ${params.stds.length} values; K=${K0} expected`);
  // Components of weight 0 never contribute; dropping them keeps -inf out of the logits.
  const keep: number[] = [];
  for (let k = 0; k < K0; k++) if (params.weights[k]! > 0) keep.push(k);
  if (keep.length === 0) throw new RangeError('mixture has no component with positive weight');
  const cond = meta.conditioning;
  const condRows = cond ? (cond.input === 'class_labels' ? cond.labelDim : cond.embedDim) : 0;
  if (cond && cond.logits.length !== condRows * K0) throw new RangeError(`conditioning logits need ${condRows} x ${K0} values`);
  const K = keep.length;
  const means = new Float64Array(K * dim);
  const logw = new Float64Array(K);
  const s2 = new Float64Array(K);
  const condLogits = new Float64Array(condRows * K);
  keep.forEach((k, j) => {
    means.set(params.means.subarray(k * dim, (k + 1) * dim), j * dim);
    logw[j] = Math.log(params.weights[k]!);
    s2[j] = params.stds[k]! * params.stds[k]!;
    for (let r = 0; r < condRows; r++) condLogits[r * K + j] = cond!.logits[r * K0 + k]!;
  });
  const DOUBLE = { to: { i: DataType.DOUBLE } };

  const b = new GraphBuilder('mixture');
  const { x, sigma, n } = denoiserInputs(b, shape, meta);
  const xf = b.op('Cast', [b.op('Flatten', [x], { axis: { i: 1 } })], DOUBLE); // [N, D]
  const sg = b.op('Cast', [sigmaColumn(b, sigma, 2)], DOUBLE); // [N, 1]
  const sg2 = b.op('Mul', [sg, sg]);
  const S2 = b.constantDouble(s2, [1, K], 's2');
  const v = b.op('Add', [sg2, S2]); // [N, K]
  const M = b.constantDouble(means, [K, dim], 'means');

  let d2: string; // [N, K]
  if ((meta.distance ?? 'matmul') === 'direct') {
    const xu = b.op('Unsqueeze', [xf, b.constantInt64([1], [1], 'axes')]); // [N, 1, D]
    d2 = b.op('ReduceSumSquare', [b.op('Sub', [xu, M])], { axes: { ints: [2] }, keepdims: { i: 0 } });
  } else {
    const xx = b.op('ReduceSumSquare', [xf], { axes: { ints: [1] }, keepdims: { i: 1 } }); // [N,1]
    const mm = new Float64Array(K);
    for (let k = 0; k < K; k++) {
      let acc = 0;
      for (let j = 0; j < dim; j++) acc += means[k * dim + j]! * means[k * dim + j]!;
      mm[k] = acc;
    }
    const xm = b.op('Gemm', [xf, M], { transB: { i: 1 }, alpha: { f: -2 } }); // -2 x.m  [N,K]
    d2 = b.op('Relu', [b.op('Add', [b.op('Add', [xx, xm]), b.constantDouble(mm, [1, K], 'mnorm')])]);
  }
  // The per-row v_ref = sigma^2 + min s_k^2 cancels in the softmax; dividing by it keeps the
  // D/2 log(v) terms (up to ~1e5) from swamping the differences between components.
  const vRef = b.op('Add', [sg2, b.scalarDouble(s2.reduce((a, q) => Math.min(a, q), Infinity))]);
  let logits = b.op('Sub', [
    b.op('Sub', [b.constantDouble(logw, [1, K], 'logw'), b.op('Mul', [b.scalarDouble(dim / 2), b.op('Log', [b.op('Div', [v, vRef])])])]),
    b.op('Div', [d2, b.op('Mul', [b.scalarDouble(2), v])]),
  ]);
  let labelDim = 0;
  if (cond) {
    let pooled: string;
    if (cond.input === 'class_labels') {
      labelDim = cond.labelDim;
      pooled = extraInput(b, 'class_labels', [n, cond.labelDim], meta);
    } else {
      const c = extraInput(b, 'condition', [n, cond.seqLen, cond.embedDim], meta);
      pooled = b.op('ReduceMean', [c], { axes: { ints: [1] }, keepdims: { i: 0 } });
    }
    pooled = b.op('Cast', [pooled], DOUBLE);
    logits = b.op('Add', [logits, b.op('MatMul', [pooled, b.constantDouble(condLogits, [condRows, K], 'cond_logits')])]);
  }
  const p = b.op('Softmax', [logits], { axis: { i: 1 } }); // [N, K]
  const a = b.op('Mul', [p, b.op('Div', [sg2, v])]); // p_k sigma^2 / v_k
  const c = b.op('ReduceSum', [b.op('Mul', [p, b.op('Div', [S2, v])]), b.constantInt64([1], [1], 'axes')], { keepdims: { i: 1 } }); // [N,1]
  const outFlat = b.op('Add', [b.op('MatMul', [a, M]), b.op('Mul', [c, xf])]);
  const out = b.op('Reshape', [b.op('Cast', [outFlat], { to: { i: DataType.FLOAT } }), b.op('Shape', [x])]);
  denoiserOutput(b, out, shape, n, meta);
  const md = finishMetadata(
    {
      sigmaMin: meta.sigmaMin ?? 0.002,
      sigmaMax: meta.sigmaMax ?? 80,
      imgResolution: shape[1]!,
      imgChannels: shape[0]!,
      labelDim,
      family: meta.family ?? 'analytic',
      datasetName: meta.datasetName ?? 'mixture',
    },
    meta,
  );
  return b.model(md);
}

// ---------------------------------------------------------------------------------------
// Deterministic weights
// ---------------------------------------------------------------------------------------

/** mulberry32: a tiny, fast 32-bit generator; enough for reproducible dummy weights. */
export function seededUniform(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function uniformWeights(rand: () => number, n: number, bound: number): Float32Array {
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = (2 * rand() - 1) * bound;
  return w;
}

/** Conv with deterministic weights (He-uniform scaled by `gain`) and small biases. */
function conv(b: GraphBuilder, rand: () => number, input: string, cin: number, cout: number, opts: { k?: number; stride?: number; gain?: number } = {}): string {
  const k = opts.k ?? 3;
  const fanIn = cin * k * k;
  const bound = (opts.gain ?? 1) * Math.sqrt(6 / fanIn);
  const W = b.constant(uniformWeights(rand, cout * fanIn, bound), [cout, cin, k, k], 'conv_w');
  const B = b.constant(uniformWeights(rand, cout, 0.01), [cout], 'conv_b');
  const pad = (k - 1) >> 1;
  return b.op('Conv', [input, W, B], {
    kernel_shape: { ints: [k, k] },
    pads: { ints: [pad, pad, pad, pad] },
    strides: { ints: [opts.stride ?? 1, opts.stride ?? 1] },
  });
}

function silu(b: GraphBuilder, v: string): string {
  return b.op('Mul', [v, b.op('Sigmoid', [v])]);
}

// ---------------------------------------------------------------------------------------
// U-Net-sized convolutional denoiser (benchmarks)
// ---------------------------------------------------------------------------------------

export interface ConvDenoiserSpec {
  /** H = W (default 32). */
  resolution?: number;
  /** C (default 3). */
  channels?: number;
  /** Width of the inner layers (default 128); the outer layers use width/2. */
  width?: number;
  /** Number of width x width 3x3 layers (default 3). */
  depth?: number;
  seed?: number;
}

/** Multiply-adds x 2 of one image through `buildConvDenoiserModel(spec)`. */
export function convDenoiserFlops(spec: ConvDenoiserSpec = {}): number {
  const res = spec.resolution ?? 32;
  const c = spec.channels ?? 3;
  const w = spec.width ?? 128;
  const h = Math.max(1, w >> 1);
  const depth = spec.depth ?? 3;
  const macPerPixel = 9 * (c * h + h * w + depth * w * w + w * h + h * c);
  return 2 * macPerPixel * res * res;
}

/**
 * An EDM-preconditioned stack of 3x3 convolutions with deterministic pseudo-random weights:
 * D = c_skip x + c_out F(c_in x, c_noise), sigma_data = 0.5 (ALGORITHM.md 8). With the
 * defaults (32x32x3, width 128, depth 3) one image costs about 1.2 GFLOP, the order of a
 * small CIFAR-10 U-Net, so it measures the sampler's overhead around realistic model runs.
 * F's last layer is scaled down so D stays within a few units of the data range.
 */
export function buildConvDenoiserModel(spec: ConvDenoiserSpec = {}, meta: DenoiserBuildMeta = {}): ModelProto {
  const res = spec.resolution ?? 32;
  const C = spec.channels ?? 3;
  const w = spec.width ?? 128;
  const h = Math.max(1, w >> 1);
  const depth = spec.depth ?? 3;
  const rand = seededUniform(spec.seed ?? 1);
  const shape = [C, res, res];
  const b = new GraphBuilder('conv_denoiser');
  const { x, sigma, n } = denoiserInputs(b, shape, meta);
  const sd2 = b.scalar(0.25);
  const sg = sigmaColumn(b, sigma, 4);
  const s2 = b.op('Add', [b.op('Mul', [sg, sg]), sd2]); // sigma^2 + sd^2
  const rs = b.op('Sqrt', [s2]);
  const cSkip = b.op('Div', [sd2, s2]);
  const cOut = b.op('Div', [b.op('Mul', [sg, b.scalar(0.5)]), rs]);
  const cIn = b.op('Reciprocal', [rs]);
  const cNoise = b.op('Mul', [b.op('Log', [sg]), b.scalar(0.25)]);
  let hv = silu(b, conv(b, rand, b.op('Mul', [x, cIn]), C, h));
  const emb = b.constant(uniformWeights(rand, h, 1), [1, h, 1, 1], 'noise_emb');
  hv = b.op('Add', [hv, b.op('Mul', [cNoise, emb])]);
  hv = silu(b, conv(b, rand, hv, h, w));
  for (let i = 0; i < depth; i++) hv = silu(b, conv(b, rand, hv, w, w));
  hv = silu(b, conv(b, rand, hv, w, h));
  const F = conv(b, rand, hv, h, C, { gain: 0.1 });
  const out = b.op('Add', [b.op('Mul', [cSkip, x]), b.op('Mul', [cOut, F])]);
  denoiserOutput(b, out, shape, n, meta);
  const md = finishMetadata(
    {
      sigmaMin: meta.sigmaMin ?? 0.002,
      sigmaMax: meta.sigmaMax ?? 80,
      imgResolution: res,
      imgChannels: C,
      labelDim: 0,
      family: meta.family ?? 'analytic',
      datasetName: meta.datasetName ?? 'random',
    },
    meta,
  );
  return b.model(md);
}

// ---------------------------------------------------------------------------------------
// Feature network (FID detector contract)
// ---------------------------------------------------------------------------------------

export interface FeatureModelSpec {
  /** Feature dimension D (default 64). */
  dim?: number;
  /** Internal resize target (default 64). */
  size?: number;
  /** Element type of `images` (default float32; uint8 casts inside). */
  input?: 'float32' | 'uint8';
  seed?: number;
  /** Fixed input H, W instead of dynamic `H`, `W`. */
  inputSize?: number;
}

/**
 * A tiny deterministic CNN with the FID detector contract: `images` [N,3,H,W] pixel values
 * 0..255 -> `features` [N,D] float32. It resizes to `size` x `size` (bilinear), maps pixels
 * to [-1,1], runs three stride-2 3x3 convolutions with ReLU and global-average-pools.
 */
export function buildFeatureModel(spec: FeatureModelSpec = {}): ModelProto {
  const D = spec.dim ?? 64;
  const size = spec.size ?? 64;
  const rand = seededUniform(spec.seed ?? 7);
  const b = new GraphBuilder('features');
  const hw: Dim[] = spec.inputSize ? [spec.inputSize, spec.inputSize] : ['H', 'W'];
  const uint8 = spec.input === 'uint8';
  let img = b.input('images', uint8 ? DataType.UINT8 : DataType.FLOAT, ['N', 3, ...hw]);
  if (uint8) img = b.op('Cast', [img], { to: { i: DataType.FLOAT } });
  const nc = b.op('Slice', [b.op('Shape', [img]), b.constantInt64([0], [1], 'start'), b.constantInt64([2], [1], 'end')]);
  const sizes = b.op('Concat', [nc, b.constantInt64([size, size], [2], 'size')], { axis: { i: 0 } });
  const resized = b.op('Resize', [img, '', '', sizes], { mode: { s: 'linear' }, coordinate_transformation_mode: { s: 'half_pixel' } });
  let hv = b.op('Sub', [b.op('Mul', [resized, b.scalar(1 / 127.5)]), b.scalar(1)]);
  const w1 = Math.max(8, D >> 2);
  const w2 = Math.max(8, D >> 1);
  hv = b.op('Relu', [conv(b, rand, hv, 3, w1, { stride: 2 })]);
  hv = b.op('Relu', [conv(b, rand, hv, w1, w2, { stride: 2 })]);
  hv = b.op('Relu', [conv(b, rand, hv, w2, D, { stride: 2 })]);
  const pooled = b.op('Flatten', [b.op('GlobalAveragePool', [hv])], { axis: { i: 1 } });
  b.output(pooled, 'features', DataType.FLOAT, ['N', D]);
  return b.model({ 'adasde.detector': 'test-features', 'adasde.feature_dim': String(D) });
}

// ---------------------------------------------------------------------------------------
// Companions (text encoder, first-stage decoder) for tests
// ---------------------------------------------------------------------------------------

export interface TextEncoderSpec {
  vocabSize: number;
  embedDim: number;
  seqLen: number;
  /** [vocabSize, embedDim] token embeddings. */
  embedding: ArrayLike<number>;
  /** [seqLen, embedDim] position embeddings. */
  position: ArrayLike<number>;
  idsType?: 'int64' | 'int32';
  /** Output name (default `condition`; `last_hidden_state` is the accepted alternative). */
  outputName?: string;
  /** Declare the sequence length as symbolic `L` instead of fixed. */
  dynamicSeq?: boolean;
  /** Fixed batch size instead of `N`. */
  batch?: number;
  metadata?: Record<string, string>;
}

/**
 * A text encoder with the companion contract: `input_ids` [N, L] -> states [N, L, E] with
 * states[n, l] = emb[ids[n, l]] + pos[l] + mean_l' emb[ids[n, l']] (Gather, ReduceMean):
 * every token's state depends on its own token, its position and the whole prompt.
 */
export function buildTextEncoderModel(spec: TextEncoderSpec): ModelProto {
  const { vocabSize: V, embedDim: E, seqLen: L } = spec;
  if (spec.embedding.length !== V * E || spec.position.length !== L * E) throw new RangeError('text encoder weights do not match vocabSize/seqLen x embedDim');
  const b = new GraphBuilder('text_encoder');
  const n: Dim = spec.batch ?? 'N';
  const Ld: Dim = spec.dynamicSeq ? 'L' : L;
  const ids = b.input('input_ids', spec.idsType === 'int32' ? DataType.INT32 : DataType.INT64, [n, Ld]);
  const tok = b.op('Gather', [b.constant(spec.embedding, [V, E], 'embedding'), ids], { axis: { i: 0 } }); // [N, L, E]
  const mean = b.op('ReduceMean', [tok], { axes: { ints: [1] }, keepdims: { i: 1 } }); // [N, 1, E]
  const out = b.op('Add', [b.op('Add', [tok, b.constant(spec.position, [L, E], 'position')]), mean]);
  b.output(out, spec.outputName ?? 'condition', DataType.FLOAT, [n, Ld, E]);
  return b.model({ 'adasde.role': 'text_encoder', ...(spec.metadata ?? {}) });
}

export interface DecoderSpec {
  /** [C, h, w] of the latent `z`. */
  latent: readonly [number, number, number];
  /** [3, C] 1x1-convolution weights and [3] biases. */
  weight: ArrayLike<number>;
  bias: ArrayLike<number>;
  /** Integer upsampling factor (default 2). */
  scale?: number;
  inputName?: string;
  outputName?: string;
  batch?: number;
  metadata?: Record<string, string>;
  /** Element type of `z` and `image`; float16 graphs cast to float32 inside. */
  dtype?: 'float32' | 'float16';
}

/**
 * A first-stage decoder with the companion contract: `z` [N, C, h, w] -> `image`
 * [N, 3, s h, s w] with image[c, y, x] = tanh(bias[c] + sum_k W[c, k] z[k, floor(y/s), floor(x/s)])
 * (1x1 Conv, nearest Resize, Tanh), so images lie in [-1, 1].
 */
export function buildDecoderModel(spec: DecoderSpec): ModelProto {
  const [C, h, w] = spec.latent;
  const s = spec.scale ?? 2;
  if (spec.weight.length !== 3 * C || spec.bias.length !== 3) throw new RangeError('decoder weights must be [3, C] and [3]');
  const b = new GraphBuilder('decoder');
  const n: Dim = spec.batch ?? 'N';
  const half = spec.dtype === 'float16';
  const zIn = b.input(spec.inputName ?? 'z', half ? DataType.FLOAT16 : DataType.FLOAT, [n, C, h, w]);
  const z = half ? b.op('Cast', [zIn], { to: { i: DataType.FLOAT } }) : zIn;
  const conv1 = b.op('Conv', [z, b.constant(spec.weight, [3, C, 1, 1], 'dec_w'), b.constant(spec.bias, [3], 'dec_b')], { kernel_shape: { ints: [1, 1] } });
  const up = b.op('Resize', [conv1, '', b.constant([1, 1, s, s], [4], 'scales')], {
    mode: { s: 'nearest' },
    coordinate_transformation_mode: { s: 'asymmetric' },
    nearest_mode: { s: 'floor' },
  });
  const image = b.op('Tanh', [up]);
  const dims = [n, 3, s * h, s * w];
  if (half) b.output(b.op('Cast', [image], { to: { i: DataType.FLOAT16 } }), spec.outputName ?? 'image', DataType.FLOAT16, dims);
  else b.output(image, spec.outputName ?? 'image', DataType.FLOAT, dims);
  return b.model({ 'adasde.role': 'decoder', ...(spec.metadata ?? {}) });
}
