/**
 * The one interface every solver is written against and the runtime implements (k-diffusion
 * style): a batched, asynchronous denoiser D(x, sigma) returning the estimate of x0
 * (ALGORITHM.md section 1), with its per-sample conditioning.
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
