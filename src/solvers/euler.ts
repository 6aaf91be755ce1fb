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
import { EagerOps, stepwise, type SolverOps } from './ops.js';
import type { SolverContext } from './types.js';
import { defineSolver, endpointNfe } from './descriptor.js';

/** The whole Euler sampler over any implementation of the array operations. */
export function solveEuler<A>(o: SolverOps<A>, x0: A, t: Float64Array, opts: BaseSolverOptions = {}): Promise<A> {
  // x + h d, written over d.
  return stepwise(o, x0, t, opts, async (o, x, tCur, tNext, dCur) => o.axpy(x, tNext - tCur, dCur, dCur));
}

export function sampleEuler(x0: Float64Array, ctx: SolverContext, opts: BaseSolverOptions = {}): Promise<Float64Array> {
  return solveEuler(new EagerOps(ctx), x0, ctx.tSteps, opts);
}

/** `--solver euler`. */
export const eulerSolver = defineSolver({
  name: 'euler',
  summary: 'Euler (DDIM), first order',
  flags: {},
  nfe: (N, o) => N - 1 + endpointNfe(o),
  sample: sampleEuler,
});
