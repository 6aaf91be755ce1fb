/**
 * DPM-Solver-2 in the EDM form, ALGORITHM.md 3: one evaluation at the geometric
 * intermediate time t_m = t_{i+1}^r t_i^(1-r), r = 0.5. NFE 2(N-1), one fewer with AFS.
 *
 * Paper: Lu et al. 2022 ("DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic Model
 * Sampling in Around 10 Steps"), Algorithm 1 (DPM-Solver-2). With alpha = 1, sigma = t its
 * exponential-integrator weights reduce to the step h and lambda = -ln t, so the midpoint in
 * lambda is the geometric mean of t_i and t_{i+1} and the update is x_i + h d_m; for r != 0.5
 * the update is the general-r form d_i + (d_m - d_i) / (2r) of the reference implementation.
 */
import type { BaseSolverOptions } from './common.js';
import { odeDirection, type SolverOps, stepwise } from './ops.js';
import { defineSolver, eagerSampler, perIntervalNfe } from './descriptor.js';

export interface DpmOptions extends BaseSolverOptions {
  /** Position of the intermediate time in log space (0.5: midpoint). */
  r?: number;
}

/** One DPM-Solver-2 step from (x, tCur) to tNext given the direction at x. */
export async function dpmStep<A>(o: SolverOps<A>, x: A, tCur: number, tNext: number, dCur: A, r = 0.5): Promise<A> {
  const tMid = tNext ** r * tCur ** (1 - r);
  const xMid = o.axpy(x, tMid - tCur, dCur);
  const dMid = await odeDirection(o, xMid, tMid);
  o.release(xMid);
  const xNext = o.combine(x, tNext - tCur, [1 / (2 * r), 1 - 1 / (2 * r)], [dMid, dCur], dMid);
  o.release(dCur);
  return xNext;
}

/** The whole DPM-Solver-2 sampler over any implementation of the array operations. */
export function solveDpm<A>(o: SolverOps<A>, x0: A, t: Float64Array, opts: DpmOptions = {}): Promise<A> {
  return stepwise(o, x0, t, opts, (o, x, tCur, tNext, dCur) => dpmStep(o, x, tCur, tNext, dCur, opts.r));
}

/** `solveDpm` on Float64Array states (the eager array operations). */
export const sampleDpm = eagerSampler(solveDpm);

/** `--solver dpm`. */
export const dpmSolver = defineSolver<DpmOptions, 'dpm'>({
  name: 'dpm',
  summary: 'DPM-Solver-2, second order',
  flags: {},
  nfe: perIntervalNfe(2),
  solve: solveDpm,
});
