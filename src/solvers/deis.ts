/**
 * DEIS (Zhang & Chen 2023, "Fast Sampling of Diffusion Models with Exponential Integrator":
 * its tAB-DEIS and rhoAB-DEIS) as diff-sampler runs it on EDM's sigma = t parametrisation
 * (README "Notes on the solvers"). Both modes are multistep exponential integrators whose
 * weights integrate a Lagrange polynomial through the last k directions d = dx/dsigma:
 *
 * * `tab`: the polynomial is in the VP-SDE time tau of DEIS (sigma(tau)^2 = 1/alpha(tau) - 1,
 *   alpha(tau) = exp(-beta_d tau^2 / 2 - beta_min tau), fitted so that sigma(eps_s) = 0.002
 *   and sigma(1) = 80), and x_{i+1} = x_i + sum_j C_ij d_{i-j} with
 *   C_ij = int_{tau_i}^{tau_{i+1}} sigma'(tau) l_j(tau) dtau = int_{t_i}^{t_{i+1}} l_j(tau(sigma)) dsigma.
 * * `rhoab`: the polynomial is in rho = sigma itself, so C_ij = int l_j(sigma) dsigma in closed
 *   form: Adams-Bashforth with the exact variable-step weights.
 *
 * Order min(max_order, i + 1), the first step being Euler. NFE N-1.
 */
import { adamsLoop, checkMaxOrder, lagrangeIntegrals, type AdamsOptions } from './adams.js';
import type { SolverOps } from './ops.js';
import { z } from 'zod';
import { defineSolver, eagerSampler, maxOrderFlag, perIntervalNfe } from './descriptor.js';

export type DeisMode = 'tab' | 'rhoab';

export interface DeisOptions extends AdamsOptions {
  /** Default `tab`, as diff-sampler. */
  deisMode?: DeisMode;
}

/** DEIS's VP time mapping (diff-sampler's edm2t): fixed to the EDM range, not the model's. */
const EPS_S = 1e-3;
const VP_SIGMA_MIN = 0.002;
const VP_SIGMA_MAX = 80;
const BETA_D = (2 * (Math.log1p(VP_SIGMA_MIN ** 2) / EPS_S - Math.log1p(VP_SIGMA_MAX ** 2))) / (EPS_S - 1);
const BETA_MIN = Math.log1p(VP_SIGMA_MAX ** 2) - 0.5 * BETA_D;

/** tau(sigma): the VP time whose noise level is sigma, inverting log(1 + sigma^2) = beta_d tau^2/2 + beta_min tau. */
export function vpTime(sigma: number): number {
  return (Math.sqrt(BETA_MIN * BETA_MIN + 2 * BETA_D * Math.log1p(sigma * sigma)) - BETA_MIN) / BETA_D;
}

/** 20-point Gauss-Legendre nodes and weights on [-1, 1], computed once. */
const GAUSS = gaussLegendre(20);

function gaussLegendre(n: number): { x: number[]; w: number[] } {
  // Newton iteration on P_n from Chebyshev starting points; exact to rounding for n = 20.
  const x: number[] = [];
  const w: number[] = [];
  for (let k = 0; k < n; k++) {
    let z = Math.cos((Math.PI * (k + 0.75)) / (n + 0.5));
    let dp = 0;
    for (let it = 0; it < 100; it++) {
      let p0 = 1;
      let p1 = z;
      for (let m = 2; m <= n; m++) {
        const p2 = ((2 * m - 1) * z * p1 - (m - 1) * p0) / m;
        p0 = p1;
        p1 = p2;
      }
      dp = (n * (z * p1 - p0)) / (z * z - 1);
      const dz = p1 / dp;
      z -= dz;
      if (Math.abs(dz) < 1e-16) break;
    }
    x.push(z);
    w.push(2 / ((1 - z * z) * dp * dp));
  }
  return { x, w };
}

/**
 * C_ij of tAB: int over sigma in [b, a] of l_j(tau(sigma)), with the Lagrange basis l_j on the
 * VP times of `sigmaNodes`. In u = log(sigma) the integrand l_j(tau(e^u)) e^u is smooth (tau
 * bends sharply near sigma ~ 1e-3, which log spacing resolves), so composite Gauss-Legendre
 * (8 panels of 20 points in u) is exact to rounding.
 */
export function tabCoefficients(sigmaNodes: readonly number[], a: number, b: number): number[] {
  const tauNodes = sigmaNodes.map(vpTime);
  const out = new Array<number>(sigmaNodes.length).fill(0);
  const panels = 8;
  const ua = Math.log(a);
  const ph = (Math.log(b) - ua) / panels;
  for (let p = 0; p < panels; p++) {
    const lo = ua + p * ph;
    for (let q = 0; q < GAUSS.x.length; q++) {
      const s = Math.exp(lo + (ph * (GAUSS.x[q]! + 1)) / 2);
      const wq = ((ph * GAUSS.w[q]!) / 2) * s;
      const tau = vpTime(s);
      for (let j = 0; j < tauNodes.length; j++) {
        let l = 1;
        for (let m = 0; m < tauNodes.length; m++) if (m !== j) l *= (tau - tauNodes[m]!) / (tauNodes[j]! - tauNodes[m]!);
        out[j]! += wq * l;
      }
    }
  }
  return out;
}

/** C_i for step i at order k (k = 1: Euler, [t_{i+1} - t_i]). */
export function deisCoefficients(t: Float64Array, i: number, order: number, mode: DeisMode): number[] {
  if (order === 1) return [t[i + 1]! - t[i]!];
  const nodes = Array.from({ length: order }, (_, j) => t[i - j]!);
  return mode === 'tab' ? tabCoefficients(nodes, t[i]!, t[i + 1]!) : lagrangeIntegrals(nodes, t[i]!, t[i + 1]!);
}

/** The whole DEIS sampler over any implementation of the array operations. */
export function solveDeis<A>(o: SolverOps<A>, x0: A, t: Float64Array, opts: DeisOptions = {}): Promise<A> {
  const maxOrder = opts.maxOrder ?? 4;
  checkMaxOrder('deis', maxOrder);
  const mode = opts.deisMode ?? 'tab';
  // The coefficients depend on the grid only: computed once per run, not per batch element.
  const table = Array.from({ length: t.length - 1 }, (_, i) => deisCoefficients(t, i, Math.min(maxOrder, i + 1), mode));
  return adamsLoop(o, x0, t, maxOrder, opts.afs, opts.denoiseToZero, (i) => ({ scale: 1, w: table[i]! }));
}

/** `solveDeis` on Float64Array states (the eager array operations). */
export const sampleDeis = eagerSampler(solveDeis);

/** `--solver deis`. */
export const deisSolver = defineSolver<DeisOptions, 'deis'>({
  name: 'deis',
  summary: 'DEIS, Lagrange-polynomial exponential integrator',
  flags: {
    maxOrder: maxOrderFlag(4),
    deisMode: { flag: 'deis_mode', schema: z.enum(['tab', 'rhoab']).default('tab'), help: 'Lagrange polynomial in VP time (tab) or in sigma (rhoab)', expect: 'tab or rhoab' },
  },
  nfe: perIntervalNfe(1),
  solve: solveDeis,
});
