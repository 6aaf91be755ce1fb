/**
 * The one interface every solver is written against (k-diffusion style): a batched,
 * asynchronous denoiser D(x, sigma) returning the estimate of x0 (ALGORITHM.md section 1).
 *
 * State tensors are Float64Array in row-major [B, C, H, W] order; the ONNX runtime converts
 * to float32 at its boundary. `sigma` holds one noise level per sample.
 */
import type { ArrayPool } from './pool.js';

/** Per-sample conditioning, row-aligned with the batch. */
export interface Conditioning {
  /** One-hot (or soft) class labels, [B, labelDim]. */
  classLabels?: Float32Array;
  labelDim?: number;
  /** Text-encoder states, [B, L, E] (Stable Diffusion). */
  condition?: Float32Array;
  conditionShape?: readonly [number, number];
  /** Matching unconditional states for classifier-free guidance, [B, L, E]. */
  uncondition?: Float32Array;
}

export interface DenoiseRequest {
  /** [B, ...sampleShape] flattened. */
  x: Float64Array;
  /** [B] noise levels. */
  sigma: Float64Array;
  /** Number of samples B. */
  batch: number;
  cond?: Conditioning;
  /**
   * Where to put the result ([B, ...sampleShape], contents unspecified on entry). A denoiser
   * may write into it and return it, or ignore it and return a new array.
   */
  out?: Float64Array;
}

/**
 * D(x, sigma): returns [B, ...sampleShape] estimates of the clean sample, in `req.out` or a
 * new array; either way the caller owns it (solvers overwrite it in place and recycle it).
 */
export type Denoiser = (req: DenoiseRequest) => Promise<Float64Array>;

/** Shape of one sample, e.g. [3, 32, 32]. */
export type SampleShape = readonly number[];

export interface StepInfo {
  /** Interval index i (from t_i to t_{i+1}). */
  i: number;
  /** Number of intervals. */
  total: number;
  tCur: number;
  tNext: number;
  /**
   * State after the step, x_{i+1}: read-only, and valid until the callback returns (the
   * solver recycles the array later; copy what must be kept).
   */
  x: Float64Array;
  /** Denoiser evaluations (per sample) so far. */
  nfe: number;
}

export type StepCallback = (info: StepInfo) => void;

/**
 * Supplies the SDE noise for interval i, one standard normal vector per sample drawn
 * from that sample's own seed stream (so a sample never depends on its batch); into `out`
 * when given ([batch * dim]), else into a new array.
 */
export type NoiseSource = (i: number, batch: number, dim: number, out?: Float64Array) => Float64Array;

/** Everything a solver needs besides its own options. */
export interface SolverContext {
  denoise: Denoiser;
  /** The time grid t_0 > ... > t_{N-1}, float64. */
  tSteps: Float64Array;
  batch: number;
  /** Elements per sample (C*H*W). */
  dim: number;
  cond?: Conditioning;
  noise?: NoiseSource;
  callback?: StepCallback;
  /**
   * Recycles [B * dim] float64 temporaries between steps (src/solvers/pool.ts); the caller
   * passes one to share it across runs. The solver never gives back x_0 or its result.
   */
  pool?: ArrayPool;
}
