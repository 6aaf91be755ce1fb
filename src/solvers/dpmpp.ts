/**
 * DPM-Solver++ multistep, data prediction, orders 1-3, ALGORITHM.md 3. lambda = -ln t; the
 * stored D are dynamically thresholded when `thresholding` is on. NFE N-1.
 *
 * Paper: Lu et al. 2022b ("DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
 * Probabilistic Models"), Algorithm 2 (DPM-Solver++(2M)) at order 2; order 3 (3M) is the
 * third-order multistep update of the authors' implementation, which ALGORITHM.md 3 writes
 * out. With `predictX0: false` it is the noise-prediction multistep DPM-Solver (Lu et al.
 * 2022a), whose model output is eps = (x - D)/t, the ODE direction in the EDM
 * parameterisation.
 */
import type { BaseSolverOptions } from './common.js';
import { afsDenoised, afsDirection, finalDenoise, type SolverOps } from './ops.js';
import { defineSolver, eagerSampler, lowerOrderFinalFlag, maxOrderFlag, perIntervalNfe, predictX0Flag, thresholdingFlag } from './descriptor.js';

export interface DpmppOptions extends BaseSolverOptions {
  /** 1..3, default 3. */
  maxOrder?: number;
  /** Lower the order on the final steps (default true). */
  lowerOrderFinal?: boolean;
  /** Dynamic thresholding of D (default true, as the reference does for pixel models). */
  thresholding?: boolean;
  /**
   * Use the exact third-order coefficient. The reference (and ALGORITHM.md 3) takes
   * `- phi_3 D2` with D2 = (D1_0 - D1_1)/(r0 + r1) ~ h^2 D''/2, while the exponential
   * integrator's D'' term is `- phi_3 h^2 D''` = `- 2 phi_3 D2`; the reference form leaves
   * a local error O(h^3), so its global order is 2, not 3 (test/solvers/order.test.ts
   * measures both). Off by default to reproduce the reference's numbers.
   */
  exactThirdOrder?: boolean;
  /** Data prediction (DPM-Solver++, default) or noise prediction (DPM-Solver). */
  predictX0?: boolean;
}

/** The multistep order at interval i of n = N-1 intervals. */
export function dpmppOrder(i: number, numSteps: number, maxOrder: number, lowerOrderFinal: boolean): number {
  if (i + 1 < maxOrder) return i + 1;
  return lowerOrderFinal ? Math.min(maxOrder, numSteps - (i + 1)) : Math.min(maxOrder, i + 1);
}

/** Order 2: x_t = ratio x - c (D0 + D1/2), D1 = (D0 - D_-1) / r0, with c = phi_1 (times t for noise prediction). */
function secondOrder<A>(o: SolverOps<A>, x: A, ratio: number, c: number, D0: A, D1p: A, r0: number): A {
  const D1 = o.diffOver(D0, D1p, r0);
  const inner = o.axpy(D0, 0.5, D1, D1);
  return o.axmby(ratio, x, c, inner, inner);
}

type ThirdOrderCoeffs = { ratio: number; phi1: number; phi2: number; phi3: number } | { tNext: number; phi1: number; phi2: number; phi3: number };

/**
 * Order 3 (ALGORITHM.md 3): data prediction x_t = ratio x - phi_1 D0 + phi_2 D1 - phi_3 D2; noise
 * prediction x - t (phi_1 eps0 + phi_2 D1 + phi_3 D2), where
 * D1 = d10 + r0/(r0 + r1) (d10 - d11), D2 = (d10 - d11) / (r0 + r1), d10 = (D0 - D_-1)/r0, d11 = (D_-1 - D_-2)/r1.
 */
function thirdOrder<A>(o: SolverOps<A>, x: A, co: ThirdOrderCoeffs, D0: A, Dm1: A, Dm2: A, r0: number, r1: number): A {
  const { phi1, phi2, phi3 } = co;
  const d10 = o.diffOver(D0, Dm1, r0);
  const d11 = o.diffOver(Dm1, Dm2, r1);
  // (d10 - d11) / 1 is the difference itself, exactly.
  const delta = o.diffOver(d10, d11, 1);
  const D2 = o.diffOver(d10, d11, r0 + r1, d11);
  const D1 = o.axpy(d10, r0 / (r0 + r1), delta, delta);
  o.release(d10);
  let out: A;
  if ('ratio' in co) {
    // ((ratio x - phi_1 D0) + phi_2 D1) - phi_3 D2, left to right.
    const first = o.axmby(co.ratio, x, phi1, D0);
    const second = o.axpy(first, phi2, D1, first);
    out = o.axpy(second, -phi3, D2, second);
  } else out = o.combine(x, -co.tNext, [phi1, phi2, phi3], [D0, D1, D2]);
  o.release(D1, D2);
  return out;
}

/** The whole DPM-Solver++ (or DPM-Solver) multistep sampler over any implementation of the array operations. */
export async function solveDpmpp<A>(o: SolverOps<A>, x0: A, t: Float64Array, opts: DpmppOptions = {}): Promise<A> {
  const maxOrder = opts.maxOrder ?? 3;
  if (!(maxOrder >= 1 && maxOrder <= 3)) throw new RangeError(`dpmpp max_order must be 1..3, got ${maxOrder}`);
  const lowerOrderFinal = opts.lowerOrderFinal ?? true;
  const predictX0 = opts.predictX0 ?? true;
  // Thresholding clips data predictions; it has no meaning for noise predictions.
  const useThreshold = predictX0 && (opts.thresholding ?? true);
  const N = t.length;
  const n = N - 1;
  const lam = (s: number) => -Math.log(s);
  let x = x0;
  const Dh: A[] = []; // newest first
  const th: number[] = [];
  for (let i = 0; i < n; i++) {
    const tCur = t[i]!;
    const tNext = t[i + 1]!;
    // The model output (or its AFS stand-in) is a fresh array of the loop's own, so the
    // noise-prediction conversion and the thresholding overwrite it.
    let den: A;
    if (opts.afs && i === 0) den = predictX0 ? afsDenoised(o, x, tCur) : afsDirection(o, x, tCur);
    else {
      den = await o.denoise(x, [tCur]);
      if (!predictX0) den = o.diffOver(x, den, tCur, den);
    }
    if (useThreshold) den = o.threshold(den, den);
    Dh.unshift(den);
    th.unshift(tCur);
    if (Dh.length > 3) {
      o.release(Dh.pop());
      th.pop();
    }
    const order = dpmppOrder(i, N, maxOrder, lowerOrderFinal);
    const h = lam(tNext) - lam(tCur);
    // Data prediction: x_t = (t/s) x - phi_1 D0 + ...; noise prediction (alpha = 1, sigma = t):
    // x_t = x - t phi_1 eps0 - ..., with the phi functions of h instead of -h.
    const phi1 = predictX0 ? Math.expm1(-h) : Math.expm1(h);
    const ratio = predictX0 ? tNext / tCur : 1;
    const D0 = Dh[0]!;
    let out: A;
    if (order === 1) {
      out = o.axmby(ratio, x, (predictX0 ? 1 : tNext) * phi1, D0);
    } else if (order === 2) {
      const r0 = (lam(th[0]!) - lam(th[1]!)) / h;
      out = secondOrder(o, x, ratio, (predictX0 ? 1 : tNext) * phi1, D0, Dh[1]!, r0);
    } else {
      const h0 = lam(th[0]!) - lam(th[1]!);
      const h1 = lam(th[1]!) - lam(th[2]!);
      const r0 = h0 / h;
      const r1 = h1 / h;
      const phi2 = predictX0 ? phi1 / h + 1 : phi1 / h - 1;
      const phi3 = (phi2 / h - 0.5) * (opts.exactThirdOrder ? 2 : 1);
      out = thirdOrder(o, x, predictX0 ? { ratio, phi1, phi2, phi3 } : { tNext, phi1, phi2, phi3 }, D0, Dh[1]!, Dh[2]!, r0, r1);
    }
    o.reportStep(i, tCur, tNext, out, n);
    if (x !== x0) o.release(x);
    x = out;
  }
  o.release(...Dh);
  return finalDenoise(o, x, t[n]!, opts.denoiseToZero);
}

/** `solveDpmpp` on Float64Array states (the eager array operations). */
export const sampleDpmpp = eagerSampler(solveDpmpp);

/** `--solver dpmpp`. */
export const dpmppSolver = defineSolver<DpmppOptions, 'dpmpp'>({
  name: 'dpmpp',
  summary: 'DPM-Solver++ multistep (DPM-Solver with --predict_x0=False)',
  flags: { maxOrder: maxOrderFlag(3), lowerOrderFinal: lowerOrderFinalFlag, predictX0: predictX0Flag, thresholding: thresholdingFlag },
  // The reference thresholds pixel-space data predictions only.
  modelDefaults: (m) => ({ thresholding: !m.latent }),
  nfe: perIntervalNfe(1),
  solve: solveDpmpp,
});
