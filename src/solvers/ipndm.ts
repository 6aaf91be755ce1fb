/**
 * Improved PNDM: Adams-Bashforth multistep on the ODE direction with fixed weights, order
 * min(max_order, i+1), ALGORITHM.md 3. NFE N-1.
 *
 * Paper: Zhang & Chen 2023 ("Fast Sampling of Diffusion Models with Exponential Integrator",
 * the DEIS paper), its improved PNDM (iPNDM): the pseudo linear multistep method of PNDM
 * (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models on Manifolds") with the
 * lower-order Adams-Bashforth steps for the warm-up instead of Runge-Kutta ones, so every
 * step costs one evaluation.
 */
import { adamsLoop, checkMaxOrder } from './adams.js';
import type { BaseSolverOptions } from './common.js';
import type { SolverOps } from './ops.js';
import { defineSolver, eagerSampler, maxOrderFlag, perIntervalNfe } from './descriptor.js';

export interface IpndmOptions extends BaseSolverOptions {
  /** 1..4, default 4. */
  maxOrder?: number;
}

/** Adams-Bashforth weights for d_i, d_{i-1}, d_{i-2}, d_{i-3}. */
const AB_WEIGHTS: readonly (readonly number[])[] = [
  [1],
  [3 / 2, -1 / 2],
  [23 / 12, -16 / 12, 5 / 12],
  [55 / 24, -59 / 24, 37 / 24, -9 / 24],
];

/** The whole iPNDM sampler over any implementation of the array operations. */
export function solveIpndm<A>(o: SolverOps<A>, x0: A, t: Float64Array, opts: IpndmOptions = {}): Promise<A> {
  const maxOrder = opts.maxOrder ?? 4;
  checkMaxOrder('ipndm', maxOrder);
  // Fixed weights on the step h = t_{i+1} - t_i: the shared multistep loop of src/solvers/adams.ts.
  return adamsLoop(o, x0, t, maxOrder, opts.afs, opts.denoiseToZero, (i, order) => ({ scale: t[i + 1]! - t[i]!, w: AB_WEIGHTS[order - 1]! }));
}

/** `solveIpndm` on Float64Array states (the eager array operations). */
export const sampleIpndm = eagerSampler(solveIpndm);

/** `--solver ipndm`. */
export const ipndmSolver = defineSolver<IpndmOptions, 'ipndm'>({
  name: 'ipndm',
  summary: 'improved PNDM, fixed Adams-Bashforth weights',
  flags: { maxOrder: maxOrderFlag(4) },
  nfe: perIntervalNfe(1),
  solve: solveIpndm,
});
