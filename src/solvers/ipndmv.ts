/**
 * iPNDM (Zhang & Chen 2023, the DEIS paper's improved PNDM; see ipndm.ts) with variable
 * steps (`ipndm_v`, diff-sampler): Adams-Bashforth on the ODE direction
 * whose weights follow the actual step sizes h_i = t_{i+1} - t_i instead of iPNDM's fixed
 * uniform-step weights (README "Notes on the solvers"). NFE N-1.
 *
 * By default the weights are diff-sampler's closed-form expressions as written there. Order 2
 * is the exact variable-step AB2; at orders 3 and 4 the expressions reduce to AB3's weights
 * on uniform steps (order 4 not even there), but differ from the exact variable-step method
 * elsewhere, so `exact: true` offers the Adams-Bashforth weights by definition: the integrals
 * over [t_i, t_{i+1}] of the Lagrange polynomials through the last k times (adams.ts).
 */
import { adamsLoop, checkMaxOrder, lagrangeIntegrals, type AdamsOptions } from './adams.js';
import type { SolverOps } from './ops.js';
import { defineSolver, eagerSampler, maxOrderFlag, perIntervalNfe } from './descriptor.js';

export interface IpndmVOptions extends AdamsOptions {
  /** Exact variable-step Adams-Bashforth weights instead of the reference's expressions. */
  exact?: boolean;
}

/** Weights for d_i, d_{i-1}, ... at order k, to multiply by h_i (x_{i+1} = x_i + h_i sum w_j d_{i-j}). */
export function ipndmVWeights(t: Float64Array, i: number, order: number, exact = false): number[] {
  if (order === 1) return [1];
  const h = t[i + 1]! - t[i]!;
  if (exact) {
    const nodes = Array.from({ length: order }, (_, j) => t[i - j]!);
    return lagrangeIntegrals(nodes, t[i]!, t[i + 1]!).map((c) => c / h);
  }
  // h, h1, h2, h3: the current and the three previous steps (all negative: t decreases).
  const h1 = t[i]! - t[i - 1]!;
  const r = h / h1;
  if (order === 2) return [(2 + r) / 2, -r / 2];
  const h2 = t[i - 1]! - t[i - 2]!;
  // The reference's bracket, evaluated with its operator precedence: 1 - [h/(3(h+h1))] [h(h+h1)] / [h1(h1+h2)].
  const temp1 = (1 - ((h / (3 * (h + h1))) * (h * (h + h1))) / (h1 * (h1 + h2))) / 2;
  if (order === 3) return [(2 + r) / 2 + temp1, -r / 2 - (1 + h1 / h2) * temp1, (temp1 * h1) / h2];
  const h3 = t[i - 2]! - t[i - 3]!;
  const temp2 =
    ((1 - h / (3 * (h + h1))) / 2 + ((1 - h / (2 * (h + h1))) * h) / (6 * (h + h1 + h2))) *
    ((h * (h + h1) * (h + h1 + h2)) / (h1 * (h1 + h2) * (h1 + h2 + h3)));
  const q = (h1 * (h1 + h2)) / (h2 * (h2 + h3));
  return [
    (2 + r) / 2 + temp1 + temp2,
    -r / 2 - (1 + h1 / h2) * temp1 - (1 + h1 / h2 + q) * temp2,
    (temp1 * h1) / h2 + (h1 / h2 + q * (1 + h2 / h3)) * temp2,
    (-temp2 * q * h1) / h2,
  ];
}

/** The whole ipndm_v sampler over any implementation of the array operations. */
export function solveIpndmV<A>(o: SolverOps<A>, x0: A, t: Float64Array, opts: IpndmVOptions = {}): Promise<A> {
  const maxOrder = opts.maxOrder ?? 4;
  checkMaxOrder('ipndm_v', maxOrder);
  return adamsLoop(o, x0, t, maxOrder, opts.afs, opts.denoiseToZero, (i, order) => ({ scale: t[i + 1]! - t[i]!, w: ipndmVWeights(t, i, order, opts.exact) }));
}

/** `solveIpndmV` on Float64Array states (the eager array operations). */
export const sampleIpndmV = eagerSampler(solveIpndmV);

/** `--solver ipndm_v`. */
export const ipndmVSolver = defineSolver<IpndmVOptions, 'ipndm_v'>({
  name: 'ipndm_v',
  summary: 'iPNDM with variable-step weights',
  flags: { maxOrder: maxOrderFlag(4) },
  nfe: perIntervalNfe(1),
  solve: solveIpndmV,
});
