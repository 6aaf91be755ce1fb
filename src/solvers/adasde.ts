/**
 * The AdaSDE student (ALGORITHM.md 4): per interval, an optional noise injection to
 * t_hat = (1 + gamma_i) t_i, one direction at (x_hat, t_hat), then K parallel points at
 * learned intermediate times whose directions are combined with learned weights and scales.
 * With K = 1 and AFS, num_steps = 3, 4, 5, 6 gives NFE 3, 5, 7, 9.
 *
 * Paper: Wang, Zhu, Li, Yuan & Zhang 2025 ("Adaptive Stochastic Coefficients for Accelerating
 * Diffusion Sampling", NeurIPS 2025, arXiv 2510.23285), its sampling step with the learned
 * per-step stochastic coefficient gamma_i. The injection is the churn of Karras et al. 2022,
 * Algorithm 2 (t_hat = t_i + gamma_i t_i, x_hat = x_i + sqrt(t_hat^2 - t_i^2) eps) with gamma_i
 * learned instead of fixed; the first interval's direction is AFS (ops.ts). The formulas
 * follow ALGORITHM.md 4, which is written from the paper and its reference implementation.
 *
 * The step is written once, against the array operations of ops.ts: `sampleAdasde` runs it
 * on Float64Array states, training (src/train/student.ts) on states that carry their
 * derivatives with respect to the raw coefficients, and the fused sampler emits it as graph.
 */
import type { BaseSolverOptions } from './common.js';
import { intervalCoefficients, type Coefficients, type IntervalCoefficients } from './coefficients.js';
import { afsDirection, type ArrayOps, finalDenoise, odeDirection, type ScalarOps } from './ops.js';
import { defineSolver, eagerSampler } from './descriptor.js';

export interface AdasdeOptions extends BaseSolverOptions {
  coeffs: Coefficients;
}

/** Where a step sits on the grid: interval i from tCur to tNext. */
export interface AdasdeInterval {
  i: number;
  tCur: number;
  tNext: number;
  /** AFS replaces the direction at t_hat on the first interval. */
  afs: boolean;
}

/** Denoiser evaluations per sample: 1 + K per interval, one fewer with AFS, one more with the final denoising. */
export function adasdeNfe(numSteps: number, numPoints: number, afs: boolean | undefined, denoiseToZero?: boolean): number {
  return (1 + numPoints) * (numSteps - 1) - (afs ? 1 : 0) + (denoiseToZero ? 1 : 0);
}

/** gamma_i = sum_j w_ij gamma_ij, forced to 0 on the first interval (ALGORITHM.md 4). */
export function stepGammaOf<S>(s: ScalarOps<S>, c: IntervalCoefficients<S>, i: number): S {
  let g = s.of(0);
  if (i === 0) return g;
  c.gamma.forEach((v, j) => (g = s.add(g, s.mul(c.weight[j]!, v))));
  return g;
}

/**
 * One student interval (ALGORITHM.md 4), the K intermediate evaluations in one model call:
 *   t_hat = (1 + gamma_i) t_i,  x_hat = x_i + sqrt(t_hat^2 - t_i^2) eps  (gamma_i > 0),
 *   d_hat = (x_hat - D(x_hat, t_hat)) / t_hat  (AFS on the first interval),
 *   t_mid_j = t_{i+1}^r_j t_hat^(1 - r_j),  x_mid_j = x_hat + (t_mid_j - t_hat) d_hat,
 *   D_j = D(x_mid_j, a_j t_mid_j)  (the model sees the scaled time; the direction divides by t_mid_j),
 *   x_{i+1} = x_hat + sum_j w_j c_j (t_{i+1} - t_hat) (x_mid_j - D_j) / t_mid_j.
 * Leaves x alone and returns x_{i+1}.
 */
export async function adasdeStep<A, S>(o: ArrayOps<A, S>, x: A, at: AdasdeInterval, c: IntervalCoefficients<S>): Promise<A> {
  const s = o.scalar;
  const { i } = at;
  const tCur = s.of(at.tCur);
  const tNext = s.of(at.tNext);
  const gamma = stepGammaOf(s, c, i);
  const tHat = s.mul(s.add(s.of(1), gamma), tCur);
  let xHat = x;
  if (s.value(gamma) > 0) {
    const eps = o.noise(i);
    const std = s.sqrt(s.sub(s.mul(tHat, tHat), s.of(at.tCur * at.tCur)));
    xHat = o.axpy(x, std, eps);
    o.release(eps);
  }
  const dHat = at.afs && i === 0 ? afsDirection(o, xHat, tHat) : await odeDirection(o, xHat, tHat);

  const tMid = c.r.map((rj) => s.mul(s.pow(tNext, rj), s.pow(tHat, s.sub(s.of(1), rj))));
  const xMid = o.stackPoints(
    xHat,
    tMid.map((tm) => s.sub(tm, tHat)),
    dHat,
  );
  o.release(dHat);
  const den = await o.denoise(
    xMid,
    tMid.map((tm, j) => s.mul(c.scaleTime[j]!, tm)),
  );
  const h = s.sub(tNext, tHat);
  const f = c.weight.map((w, j) => s.mul(s.mul(w, c.scaleDir[j]!), h));
  const xNext = o.addStackedDirections(xHat, f, xMid, den, tMid);
  o.release(xMid, den);
  if (xHat !== x) o.release(xHat);
  return xNext;
}

/** The whole AdaSDE sampler over any implementation of the array operations. */
export async function solveAdasde<A>(o: ArrayOps<A>, x0: A, t: Float64Array, opts: AdasdeOptions): Promise<A> {
  const n = t.length - 1;
  if (opts.coeffs.r.length !== n) throw new RangeError(`predictor has ${opts.coeffs.r.length} intervals but the schedule has ${n}`);
  let x = x0;
  for (let i = 0; i < n; i++) {
    const xNext = await adasdeStep(o, x, { i, tCur: t[i]!, tNext: t[i + 1]!, afs: opts.afs ?? false }, intervalCoefficients(opts.coeffs, i));
    o.reportStep(i, t[i]!, t[i + 1]!, xNext, n);
    if (x !== x0) o.release(x);
    x = xNext;
  }
  return finalDenoise(o, x, t[n]!, opts.denoiseToZero);
}

/** `solveAdasde` on Float64Array states (the eager array operations). */
export const sampleAdasde = eagerSampler(solveAdasde);

/** `--solver adasde`: the coefficients come from a predictor file, which also fixes the grid. */
export const adasdeSolver = defineSolver<Partial<AdasdeOptions>, 'adasde'>({
  name: 'adasde',
  summary: 'AdaSDE student (needs --predictor_path)',
  flags: {},
  usesPredictor: true,
  // 1 + K evaluations per interval (ALGORITHM.md 4).
  nfe: (N, o) => adasdeNfe(N, o.coeffs?.r[0]?.length ?? 1, o.afs, o.denoiseToZero),
  solve: (o, x0, t, opts) => {
    if (!opts.coeffs) throw new RangeError('adasde needs coefficients (a predictor)');
    return solveAdasde(o, x0, t, { ...opts, coeffs: opts.coeffs });
  },
});
