/**
 * DPM-Solver-2 (Lu et al. 2022) in the EDM form, ALGORITHM.md 3: one evaluation at the
 * geometric intermediate time t_m = t_{i+1}^r t_i^(1-r), r = 0.5. NFE 2(N-1), one fewer with AFS.
 */
import { axpy, axpyCombine, stepwise, type BaseSolverOptions, type Evaluator } from './common.js';
import type { SolverContext } from './types.js';

export interface DpmOptions extends BaseSolverOptions {
  /** Position of the intermediate time in log space (0.5: midpoint). */
  r?: number;
}

/** One DPM-Solver-2 step from (x, tCur) to tNext given the direction at x. */
export async function dpmStep(ev: Evaluator, x: Float64Array, tCur: number, tNext: number, dCur: Float64Array, r = 0.5): Promise<Float64Array> {
  const tMid = tNext ** r * tCur ** (1 - r);
  const xMid = axpy(x, tMid - tCur, dCur, ev.take());
  const dMid = await ev.d(xMid, tMid);
  ev.give(xMid);
  const xNext = axpyCombine(x, tNext - tCur, [1 / (2 * r), 1 - 1 / (2 * r)], [dMid, dCur], dMid);
  ev.give(dCur);
  return xNext;
}

export function sampleDpm(x0: Float64Array, ctx: SolverContext, opts: DpmOptions = {}): Promise<Float64Array> {
  return stepwise(x0, ctx, opts, (ev, x, tCur, tNext, dCur) => dpmStep(ev, x, tCur, tNext, dCur, opts.r));
}
