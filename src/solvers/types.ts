/**
 * What a solver receives besides its own options: the denoiser (src/core/denoiser.ts), the time
 * grid, the SDE noise source and the per-step callback.
 */
import type { Conditioning, Denoiser } from '../core/denoiser.js';
import type { ArrayPool } from './pool.js';

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
