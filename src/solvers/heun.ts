/**
 * Heun's second-order method (EDM, Karras et al. 2022, Algorithm 1 without churn),
 * ALGORITHM.md 3. NFE 2(N-1), one fewer with AFS.
 */
import { axpy, axpyCombine, stepwise, type BaseSolverOptions, type Evaluator } from './common.js';
import type { SolverContext } from './types.js';

/** One Heun step from (x, tCur) to tNext given the direction at x. */
export async function heunStep(ev: Evaluator, x: Float64Array, tCur: number, tNext: number, dCur: Float64Array): Promise<Float64Array> {
  const h = tNext - tCur;
  const xPrime = axpy(x, h, dCur, ev.take());
  const dPrime = await ev.d(xPrime, tNext);
  ev.give(xPrime);
  // x + h (d + d')/2, written over d'.
  const xNext = axpyCombine(x, h, [0.5, 0.5], [dCur, dPrime], dPrime);
  ev.give(dCur);
  return xNext;
}

export function sampleHeun(x0: Float64Array, ctx: SolverContext, opts: BaseSolverOptions = {}): Promise<Float64Array> {
  return stepwise(x0, ctx, opts, heunStep);
}
