/**
 * Companion models of a denoiser (README, "The model contract"), each with its own
 * contract, checked before anything runs:
 *
 * - text encoder (`adasde.text_encoder`): input `input_ids` int64 (or int32) [N, L] ->
 *   output `condition` (or `last_hidden_state`) float [N, L, E], the states the denoiser's
 *   `condition` input takes;
 * - first-stage decoder (`adasde.decoder`): input `z` float [N, C, h, w] (the sampler's
 *   latent, any `scale_factor` applied inside the graph) -> output `image` float
 *   [N, 3, H, W] in [-1, 1];
 * - noisy classifier (`adasde.classifier`, ADM): inputs `x` [N, C, H, W], `sigma` [N] ->
 *   output `log_probs` float [N, label_dim].
 *
 * `adasde.role` (when present) names the contract the file is meant for.
 */
import { firstLine, UsageError } from '../core/errors.js';
import { checkDims, commonBatch, findInput, findOutput, fixedDim, floatKind, throwUsage, type FloatKind, type ProblemSink } from './contract.js';
import { countRun, floatFeed, readFloatOutput, zeroStats, type RunStats } from './model.js';
import { formatDims, openSession, readModelSignature, type HostTensor, type ModelSignature, type OnnxSession, type SessionOptions, type TensorSignature } from './session.js';
import { elementCount } from '../core/shape.js';
import { inRuns, rowsOf } from './rows.js';

export const COMPANION_ROLES = ['decoder', 'text_encoder', 'classifier'] as const;
export type CompanionRole = (typeof COMPANION_ROLES)[number];

/** Reports an `adasde.role` that names another contract. */
function checkRole(file: string, sig: ModelSignature, role: CompanionRole, report: ProblemSink): void {
  const r = sig.metadata['adasde.role'];
  if (r !== undefined && r !== role) report(`${file}: metadata adasde.role='${r}'; a ${role.replace('_', ' ')} has adasde.role='${role}'`);
}

function runFailed(file: string, what: string, e: unknown): Error {
  const msg = firstLine(e);
  return new Error(`${file}: model run failed on ${what}: ${msg}`);
}

// ---------------------------------------------------------------------------------------
// Text encoder
// ---------------------------------------------------------------------------------------

export interface TextEncoderIO {
  idsType: 'int64' | 'int32';
  output: TensorSignature;
  outKind: FloatKind;
  /** Token sequence length L, when fixed in the graph. */
  seqLen?: number;
  /** State width E, when fixed in the graph. */
  embedDim?: number;
  fixedBatch?: number;
}

export function checkTextEncoderSignature(file: string, sig: ModelSignature, report: ProblemSink): TextEncoderIO | undefined {
  checkRole(file, sig, 'text_encoder', report);
  const ids = findInput(sig, 'input_ids');
  for (const s of sig.inputs) {
    if (s.name !== 'input_ids') report(`${file}: unexpected input '${s.name}' ${formatDims(s.dims)}; a text encoder takes only input_ids [N,L]`);
  }
  if (!ids) {
    report(`${file}: has no input 'input_ids'; a text encoder takes input_ids int64 [N,L] (model inputs: ${sig.inputs.map((s) => s.name).join(', ') || 'none'})`);
    return undefined;
  }
  let idsType: 'int64' | 'int32' = 'int64';
  if (ids.dtype === 'int64' || ids.dtype === 'int32') idsType = ids.dtype;
  else report(`${file}: input 'input_ids' has dtype ${ids.dtype}; expected int64 (or int32)`);
  const batches = [checkDims(file, 'input', ids, ['batch', { any: 'L' }], 'token ids', report)];
  const out = findOutput(sig, 'condition') ?? findOutput(sig, 'last_hidden_state');
  if (!out) {
    report(`${file}: has no output 'condition' (or 'last_hidden_state') [N,L,E] (model outputs: ${sig.outputs.map((s) => s.name).join(', ')})`);
    return undefined;
  }
  const io: TextEncoderIO = { idsType, output: out, outKind: floatKind(file, out, 'output', report) };
  const L = fixedDim(ids.dims, 1);
  batches.push(checkDims(file, 'output', out, ['batch', L ?? { any: 'L' }, { any: 'E' }], L ? 'one state per token' : '', report));
  const Lo = out.dims?.length === 3 ? fixedDim(out.dims, 1) : undefined;
  const E = out.dims?.length === 3 ? fixedDim(out.dims, 2) : undefined;
  if (L ?? Lo) io.seqLen = (L ?? Lo)!;
  if (E) io.embedDim = E;
  const fb = commonBatch(file, batches, 'input and output', report);
  if (fb !== undefined) io.fixedBatch = fb;
  return io;
}

export interface CompanionLoadOptions extends SessionOptions {
  /** Most rows per run (default 16). */
  maxBatch?: number;
}

export interface TextEncoderModel {
  readonly path: string;
  readonly io: TextEncoderIO;
  readonly signature: ModelSignature;
  /**
   * States of `n` token rows of length L ([n*L] ids, row-major). Returns [n, L', E] float32
   * (L' = the output's sequence length, normally L).
   */
  encode(ids: Int32Array, n: number, L: number): Promise<{ data: Float32Array; L: number; E: number }>;
  readonly stats: RunStats;
  dispose(): Promise<void>;
}

export async function loadTextEncoder(file: string, opts: CompanionLoadOptions = {}): Promise<TextEncoderModel> {
  const sig = readModelSignature(file);
  const io = checkTextEncoderSignature(file, sig, throwUsage)!;
  const session: OnnxSession = await openSession(file, opts, sig);
  const cap = opts.maxBatch ?? 16;
  const stats = zeroStats();
  async function encode(ids: Int32Array, n: number, L: number): Promise<{ data: Float32Array; L: number; E: number }> {
    if (ids.length !== n * L) throw new RangeError(`input_ids has ${ids.length} values; ${n} x ${L} expected`);
    if (io.seqLen !== undefined && L !== io.seqLen) throw new UsageError(`${file}: input 'input_ids' takes ${io.seqLen} tokens per row; got ${L}`);
    stats.calls++;
    stats.samples += n;
    const wide = io.idsType === 'int64' ? BigInt64Array.from(ids, (v) => BigInt(v)) : ids;
    const parts: Float32Array[] = [];
    let Lo = 0;
    let E = 0;
    await inRuns(n, cap, io.fixedBatch, async (from, rows, padded) => {
      const feed: HostTensor =
        wide instanceof BigInt64Array
          ? { type: 'int64', data: rowsOf(wide, from, rows, padded, L, (k) => new BigInt64Array(k)), dims: [padded, L] }
          : { type: 'int32', data: rowsOf(wide, from, rows, padded, L, (k) => new Int32Array(k)), dims: [padded, L] };
      const t0 = performance.now();
      let res: Record<string, HostTensor>;
      try {
        res = await session.run({ input_ids: feed }, [io.output.name]);
      } catch (e) {
        throw runFailed(file, `${padded} token rows of ${L}`, e);
      }
      countRun(stats, t0, rows, padded);
      const t = res[io.output.name]!;
      if (t.dims.length !== 3 || t.dims[0] !== padded) throw new Error(`${file}: output '${io.output.name}' has shape [${t.dims.join(',')}]; [${padded},L,E] expected`);
      Lo = t.dims[1]!;
      E = t.dims[2]!;
      const tmp = new Float64Array(rows * Lo * E);
      readFloatOutput(t, tmp, rows * Lo * E);
      parts.push(Float32Array.from(tmp));
    });
    const data = new Float32Array(n * Lo * E);
    let o = 0;
    for (const p of parts) {
      if (p.length !== 0 && p.length % (Lo * E) !== 0) throw new Error(`${file}: runs disagree on the output shape`);
      data.set(p, o);
      o += p.length;
    }
    return { data, L: Lo, E };
  }
  return {
    path: file,
    io,
    signature: sig,
    encode,
    get stats(): RunStats {
      return { ...stats };
    },
    dispose: () => session.dispose(),
  };
}

// ---------------------------------------------------------------------------------------
// First-stage decoder
// ---------------------------------------------------------------------------------------

export interface DecoderIO {
  input: TensorSignature;
  inKind: FloatKind;
  output: TensorSignature;
  outKind: FloatKind;
  /** [C, h, w] of `z` as far as the graph fixes them. */
  latentDims: (number | undefined)[];
  /** [3, H, W] of `image` as far as the graph fixes them. */
  imageDims: (number | undefined)[];
  fixedBatch?: number;
}

/**
 * Checks the decoder contract; `latent` is the denoiser's [C, h, w] when known (the decoder
 * must take exactly the sampler's state).
 */
export function checkDecoderSignature(file: string, sig: ModelSignature, report: ProblemSink, latent?: readonly number[]): DecoderIO | undefined {
  checkRole(file, sig, 'decoder', report);
  const z = findInput(sig, 'z') ?? findInput(sig, 'latents');
  for (const s of sig.inputs) {
    if (s !== z) report(`${file}: unexpected input '${s.name}' ${formatDims(s.dims)}; a decoder takes only z [N,C,h,w]`);
  }
  if (!z) {
    report(`${file}: has no input 'z'; a decoder takes z [N,C,h,w] (model inputs: ${sig.inputs.map((s) => s.name).join(', ') || 'none'})`);
    return undefined;
  }
  const inKind = floatKind(file, z, 'input', report);
  const why = latent ? `the denoiser's samples are [${latent.join(',')}]` : 'latents';
  const batches = [checkDims(file, 'input', z, ['batch', latent?.[0] ?? { any: 'C' }, latent?.[1] ?? { any: 'h' }, latent?.[2] ?? { any: 'w' }], why, report)];
  const out = findOutput(sig, 'image') ?? findOutput(sig, 'images');
  if (!out) {
    report(`${file}: has no output 'image' [N,3,H,W] (model outputs: ${sig.outputs.map((s) => s.name).join(', ')})`);
    return undefined;
  }
  const outKind = floatKind(file, out, 'output', report);
  batches.push(checkDims(file, 'output', out, ['batch', 3, { any: 'H' }, { any: 'W' }], 'RGB images in [-1,1]', report));
  const io: DecoderIO = {
    input: z,
    inKind,
    output: out,
    outKind,
    latentDims: [1, 2, 3].map((i) => (z.dims?.length === 4 ? fixedDim(z.dims, i) : undefined)),
    imageDims: [1, 2, 3].map((i) => (out.dims?.length === 4 ? fixedDim(out.dims, i) : undefined)),
  };
  const fb = commonBatch(file, batches, 'input and output', report);
  if (fb !== undefined) io.fixedBatch = fb;
  return io;
}

export interface DecoderModel {
  readonly path: string;
  readonly io: DecoderIO;
  readonly signature: ModelSignature;
  /**
   * Images of `n` latents [n, ...latentShape]: returns [n, 3, H, W] and the image shape, in
   * float32 (the decoder's own precision, which quantisation then follows).
   */
  decode(z: Float64Array, n: number, latentShape: readonly number[]): Promise<{ data: Float32Array; shape: [number, number, number] }>;
  readonly stats: RunStats;
  dispose(): Promise<void>;
}

export async function loadDecoder(file: string, opts: CompanionLoadOptions & { latentShape?: readonly number[] } = {}): Promise<DecoderModel> {
  const sig = readModelSignature(file);
  const io = checkDecoderSignature(file, sig, throwUsage, opts.latentShape)!;
  const session = await openSession(file, opts, sig);
  const cap = opts.maxBatch ?? 16;
  const stats = zeroStats();
  async function decode(z: Float64Array, n: number, latentShape: readonly number[]): Promise<{ data: Float32Array; shape: [number, number, number] }> {
    const dim = elementCount(latentShape);
    if (z.length !== n * dim) throw new RangeError(`z has ${z.length} values; ${n} x [${latentShape.join(',')}] expected`);
    stats.calls++;
    stats.samples += n;
    let shape: [number, number, number] | undefined;
    let out = new Float64Array(0);
    await inRuns(n, cap, io.fixedBatch, async (from, rows, padded) => {
      const feed = floatFeed(io.inKind, rowsOf(z, from, rows, padded, dim, (k) => new Float64Array(k)), [padded, ...latentShape]);
      const t0 = performance.now();
      let res: Record<string, HostTensor>;
      try {
        res = await session.run({ [io.input.name]: feed }, [io.output.name]);
      } catch (e) {
        throw runFailed(file, `${padded} latents of [${latentShape.join(',')}]`, e);
      }
      countRun(stats, t0, rows, padded);
      const t = res[io.output.name]!;
      if (t.dims.length !== 4 || t.dims[0] !== padded) throw new Error(`${file}: output '${io.output.name}' has shape [${t.dims.join(',')}]; [${padded},3,H,W] expected`);
      const s: [number, number, number] = [t.dims[1]!, t.dims[2]!, t.dims[3]!];
      if (!shape) {
        shape = s;
        out = new Float64Array(n * s[0] * s[1] * s[2]);
      }
      const per = shape[0] * shape[1] * shape[2];
      readFloatOutput(t, out, rows * per, from * per);
    });
    // float16 outputs widen exactly, so float32 holds every decoder's values unchanged.
    return { data: Float32Array.from(out), shape: shape ?? [3, 0, 0] };
  }
  return {
    path: file,
    io,
    signature: sig,
    decode,
    get stats(): RunStats {
      return { ...stats };
    },
    dispose: () => session.dispose(),
  };
}

// ---------------------------------------------------------------------------------------
// Noisy classifier (ADM)
// ---------------------------------------------------------------------------------------

export interface ClassifierIO {
  x: FloatKind;
  sigma: FloatKind;
  output: TensorSignature;
  numClasses?: number;
  fixedBatch?: number;
}

/** Checks the classifier contract; `sample` and `labelDim` come from the denoiser when known. */
export function checkClassifierSignature(file: string, sig: ModelSignature, report: ProblemSink, sample?: readonly number[], labelDim?: number): ClassifierIO | undefined {
  checkRole(file, sig, 'classifier', report);
  for (const s of sig.inputs) {
    if (s.name !== 'x' && s.name !== 'sigma') report(`${file}: unexpected input '${s.name}' ${formatDims(s.dims)}; a classifier takes x [N,C,H,W] and sigma [N]`);
  }
  const xs = findInput(sig, 'x');
  const ss = findInput(sig, 'sigma');
  if (!xs || !ss) {
    report(`${file}: a classifier takes x [N,C,H,W] and sigma [N] (model inputs: ${sig.inputs.map((s) => s.name).join(', ') || 'none'})`);
    return undefined;
  }
  const batches = [
    checkDims(file, 'input', xs, ['batch', sample?.[0] ?? { any: 'C' }, sample?.[1] ?? { any: 'H' }, sample?.[2] ?? { any: 'W' }], sample ? `the denoiser's samples are [${sample.join(',')}]` : '', report),
    checkDims(file, 'input', ss, ['batch'], 'one noise level per sample', report),
  ];
  const out = findOutput(sig, 'log_probs');
  if (!out) {
    report(`${file}: has no output 'log_probs' [N,classes] (model outputs: ${sig.outputs.map((s) => s.name).join(', ')})`);
    return undefined;
  }
  floatKind(file, out, 'output', report);
  const want = labelDim !== undefined && labelDim > 0 ? labelDim : { any: 'K' };
  batches.push(checkDims(file, 'output', out, ['batch', want], typeof want === 'number' ? `adasde.label_dim=${want}` : 'log-probabilities per class', report));
  const io: ClassifierIO = { x: floatKind(file, xs, 'input', report), sigma: floatKind(file, ss, 'input', report), output: out };
  const K = out.dims?.length === 2 ? fixedDim(out.dims, 1) : undefined;
  if (K !== undefined) io.numClasses = K;
  const fb = commonBatch(file, batches, 'inputs and output', report);
  if (fb !== undefined) io.fixedBatch = fb;
  return io;
}

export interface ClassifierModel {
  readonly path: string;
  readonly io: ClassifierIO;
  /** log p(y | x, sigma) of `n` samples: [n, K] float64 and K. */
  classify(x: Float64Array, sigma: Float64Array, n: number, sample: readonly number[]): Promise<{ data: Float64Array; classes: number }>;
  dispose(): Promise<void>;
}

export async function loadClassifier(file: string, opts: CompanionLoadOptions & { sampleShape?: readonly number[]; labelDim?: number } = {}): Promise<ClassifierModel> {
  const sig = readModelSignature(file);
  const io = checkClassifierSignature(file, sig, throwUsage, opts.sampleShape, opts.labelDim)!;
  const session = await openSession(file, opts, sig);
  const cap = opts.maxBatch ?? 16;
  async function classify(x: Float64Array, sigma: Float64Array, n: number, sample: readonly number[]): Promise<{ data: Float64Array; classes: number }> {
    const dim = elementCount(sample);
    if (x.length !== n * dim || sigma.length !== n) throw new RangeError(`classifier input sizes do not match ${n} samples of [${sample.join(',')}]`);
    let K = 0;
    let out = new Float64Array(0);
    await inRuns(n, cap, io.fixedBatch, async (from, rows, padded) => {
      let res: Record<string, HostTensor>;
      try {
        res = await session.run(
          {
            x: floatFeed(io.x, rowsOf(x, from, rows, padded, dim, (k) => new Float64Array(k)), [padded, ...sample]),
            sigma: floatFeed(io.sigma, rowsOf(sigma, from, rows, padded, 1, (k) => new Float64Array(k)), [padded]),
          },
          [io.output.name],
        );
      } catch (e) {
        throw runFailed(file, `${padded} samples`, e);
      }
      const t = res[io.output.name]!;
      if (t.dims.length !== 2 || t.dims[0] !== padded) throw new Error(`${file}: output '${io.output.name}' has shape [${t.dims.join(',')}]; [${padded},K] expected`);
      if (!K) {
        K = t.dims[1]!;
        out = new Float64Array(n * K);
      }
      readFloatOutput(t, out, rows * K, from * K);
    });
    return { data: out, classes: K };
  }
  return { path: file, io, classify, dispose: () => session.dispose() };
}
