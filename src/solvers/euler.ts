/**
 * Euler's method on the probability-flow ODE, ALGORITHM.md 3: x_{i+1} = x_i + h d_i. NFE N-1.
 *
 * Paper: DDIM (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models"): its
 * deterministic sampler (eta = 0) is this Euler step in the EDM parameterisation sigma = t,
 * as Karras et al. 2022 ("Elucidating the Design Space of Diffusion-Based Generative Models",
 * EDM) point out; it is their Algorithm 1 (deterministic sampling) without the second-order
 * correction.
 */
import type { BaseSolverOptions } from './common.js';
import { type SolverOps, stepwise } from './ops.js';
import { defineSolver, eagerSampler, perIntervalNfe } from './descriptor.js';

/** The whole Euler sampler over any implementation of the array operations. */
export function solveEuler<A>(o: SolverOps<A>, x0: A, t: Float64Array, opts: BaseSolverOptions = {}): Promise<A> {
  // x + h d, written over d.
  return stepwise(o, x0, t, opts, async (o, x, tCur, tNext, dCur) => o.axpy(x, tNext - tCur, dCur, dCur));
}

/** `solveEuler` on Float64Array states (the eager array operations). */
export const sampleEuler = eagerSampler(solveEuler);

/** `--solver euler`. */
export const eulerSolver = defineSolver({
  name: 'euler',
  summary: 'Euler (DDIM), first order',
  flags: {},
  nfe: perIntervalNfe(1),
  solve: solveEuler,
});
