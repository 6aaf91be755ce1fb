/**
 * Heun's second-order method, ALGORITHM.md 3. NFE 2(N-1), one fewer with AFS.
 *
 * Paper: Karras et al. 2022 ("Elucidating the Design Space of Diffusion-Based Generative
 * Models", EDM), Algorithm 1 (deterministic sampling with Heun's 2nd order method) for
 * sigma(t) = t, s(t) = 1; the grid ends at sigma_min > 0, so every step takes the correction.
 * Their Algorithm 2 (the stochastic sampler) adds "churn" noise before each step; that noise
 * injection, with a learned gamma_i, is how an AdaSDE step begins (adasde.ts).
 */
import type { BaseSolverOptions } from './common.js';
import { odeDirection, type SolverOps, stepwise } from './ops.js';
import { defineSolver, eagerSampler, perIntervalNfe } from './descriptor.js';

/** One Heun step from (x, tCur) to tNext given the direction at x. */
export async function heunStep<A>(o: SolverOps<A>, x: A, tCur: number, tNext: number, dCur: A): Promise<A> {
  const h = tNext - tCur;
  const xPrime = o.axpy(x, h, dCur);
  const dPrime = await odeDirection(o, xPrime, tNext);
  o.release(xPrime);
  // x + h (d + d')/2, written over d'.
  const xNext = o.combine(x, h, [0.5, 0.5], [dCur, dPrime], dPrime);
  o.release(dCur);
  return xNext;
}

/** The whole Heun sampler over any implementation of the array operations. */
export function solveHeun<A>(o: SolverOps<A>, x0: A, t: Float64Array, opts: BaseSolverOptions = {}): Promise<A> {
  return stepwise(o, x0, t, opts, heunStep);
}

/** `solveHeun` on Float64Array states (the eager array operations). */
export const sampleHeun = eagerSampler(solveHeun);

/** `--solver heun`. */
export const heunSolver = defineSolver({
  name: 'heun',
  summary: "Heun's second-order method (EDM)",
  flags: {},
  nfe: perIntervalNfe(2),
  solve: solveHeun,
});
