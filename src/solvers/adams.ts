/**
 * Variable-step Adams-Bashforth machinery shared by `ipndm` (fixed weights), `ipndm_v` and `deis` (ALGORITHM.md 3
 * style; README "Notes on the solvers"): the multistep loop over the ODE direction history and
 * the exact integrals of Lagrange basis polynomials that define the methods' weights.
 */
import type { BaseSolverOptions } from './common.js';
import { afsDirection, finalDenoise, odeDirection, type SolverOps } from './ops.js';

/**
 * Weights of step i at order k (1..4, using d_i, ..., d_{i-k+1}), in the form
 * x_{i+1} = x_i + scale * sum_j w_j d_{i-j}.
 */
export type AdamsWeights = (i: number, order: number) => { scale: number; w: readonly number[] };

/**
 * The multistep loop: one denoiser call per interval (AFS replaces the first), order
 * min(max_order, i + 1) as diff-sampler's samplers ramp it up (the first step is Euler).
 */
export async function adamsLoop<A>(o: SolverOps<A>, x0: A, t: Float64Array, maxOrder: number, afs: boolean | undefined, denoiseToZero: boolean | undefined, weights: AdamsWeights): Promise<A> {
  const n = t.length - 1;
  let x = x0;
  const history: A[] = []; // newest first
  for (let i = 0; i < n; i++) {
    const tCur = t[i]!;
    const tNext = t[i + 1]!;
    const dCur = afs && i === 0 ? afsDirection(o, x, tCur) : await odeDirection(o, x, tCur);
    history.unshift(dCur);
    if (history.length > maxOrder) o.release(history.pop());
    const order = Math.min(maxOrder, i + 1);
    const { scale, w } = weights(i, order);
    const xNext = o.combine(x, scale, w, history.slice(0, order));
    o.reportStep(i, tCur, tNext, xNext, n);
    if (x !== x0) o.release(x);
    x = xNext;
  }
  o.release(...history);
  return finalDenoise(o, x, t[n]!, denoiseToZero);
}

export interface AdamsOptions extends BaseSolverOptions {
  /** 1..4, default 4. */
  maxOrder?: number;
}

export function checkMaxOrder(name: string, maxOrder: number): void {
  if (!(Number.isInteger(maxOrder) && maxOrder >= 1 && maxOrder <= 4)) throw new RangeError(`${name} max_order must be 1..4, got ${maxOrder}`);
}

/** Product of (u - r) over the roots r, as polynomial coefficients in u (constant term first). */
function polyFromRoots(roots: readonly number[]): number[] {
  let p = [1];
  for (const r of roots) {
    const q = new Array<number>(p.length + 1).fill(0);
    for (let k = 0; k < p.length; k++) {
      q[k + 1]! += p[k]!;
      q[k]! -= r * p[k]!;
    }
    p = q;
  }
  return p;
}

/**
 * Exact integrals over [a, b] of the Lagrange basis polynomials of the nodes:
 * I_j = int_a^b prod_{m != j} (tau - n_m) / (n_j - n_m) dtau. Written in u = tau - a so that
 * the powers stay of the size of the step, not of tau itself.
 */
export function lagrangeIntegrals(nodes: readonly number[], a: number, b: number): number[] {
  const h = b - a;
  return nodes.map((nj, j) => {
    const others = nodes.filter((_, m) => m !== j);
    const p = polyFromRoots(others.map((nm) => nm - a));
    let integral = 0;
    for (let k = p.length - 1; k >= 0; k--) integral = integral * h + p[k]! / (k + 1);
    integral *= h;
    let den = 1;
    for (const nm of others) den *= nj - nm;
    return integral / den;
  });
}
