/**
 * The one interface every solver is written against (k-diffusion style): a batched,
 * asynchronous denoiser D(x, sigma) returning the estimate of x0 (ALGORITHM.md section 1).
 *
 * State tensors are Float64Array in row-major [B, C, H, W] order; the ONNX runtime converts
 * to float32 at its boundary. `sigma` holds one noise level per sample.
 */

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
}

/**
 * D(x, sigma): returns [B, ...sampleShape] estimates of the clean sample, in a new array the
 * caller owns (solvers overwrite it in place).
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
  /** State after the step, x_{i+1} (do not mutate). */
  x: Float64Array;
  /** Denoiser evaluations (per sample) so far. */
  nfe: number;
}

export type StepCallback = (info: StepInfo) => void;

/**
 * Supplies the SDE noise for interval i, one standard normal vector per sample drawn
 * from that sample's own seed stream (so a sample never depends on its batch).
 */
export type NoiseSource = (i: number, batch: number, dim: number) => Float64Array;

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
}
