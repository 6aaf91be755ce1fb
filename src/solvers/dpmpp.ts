/**
 * DPM-Solver++ multistep (Lu et al. 2022b), data prediction, orders 1-3, ALGORITHM.md 3.
 * lambda = -ln t; the stored D are dynamically thresholded when `thresholding` is on. NFE N-1.
 * With `predictX0: false` it is the noise-prediction multistep DPM-Solver (Lu et al. 2022a),
 * whose model output is eps = (x - D)/t, the ODE direction in the EDM parameterisation.
 */
import { afsDenoised, afsDirection, direction, Evaluator, finish, threshold, type BaseSolverOptions } from './common.js';
import type { SolverContext } from './types.js';

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

export async function sampleDpmpp(x0: Float64Array, ctx: SolverContext, opts: DpmppOptions = {}): Promise<Float64Array> {
  const maxOrder = opts.maxOrder ?? 3;
  if (!(maxOrder >= 1 && maxOrder <= 3)) throw new RangeError(`dpmpp max_order must be 1..3, got ${maxOrder}`);
  const lowerOrderFinal = opts.lowerOrderFinal ?? true;
  const predictX0 = opts.predictX0 ?? true;
  // Thresholding clips data predictions; it has no meaning for noise predictions.
  const useThreshold = predictX0 && (opts.thresholding ?? true);
  const ev = new Evaluator(ctx);
  const t = ctx.tSteps;
  const N = t.length;
  const n = N - 1;
  const lam = (s: number) => -Math.log(s);
  let x = x0;
  const Dh: Float64Array[] = []; // newest first
  const th: number[] = [];
  for (let i = 0; i < n; i++) {
    const tCur = t[i]!;
    const tNext = t[i + 1]!;
    let den: Float64Array;
    if (predictX0) den = opts.afs && i === 0 ? afsDenoised(x, tCur) : await ev.D(x, tCur);
    else den = opts.afs && i === 0 ? afsDirection(x, tCur) : direction(x, await ev.D(x, tCur), tCur);
    if (useThreshold) den = threshold(den, ctx.batch);
    Dh.unshift(den);
    th.unshift(tCur);
    if (Dh.length > 3) {
      Dh.pop();
      th.pop();
    }
    const order = dpmppOrder(i, N, maxOrder, lowerOrderFinal);
    const h = lam(tNext) - lam(tCur);
    // Data prediction: x_t = (t/s) x - phi_1 D0 + ...; noise prediction (alpha = 1, sigma = t):
    // x_t = x - t phi_1 eps0 - ..., with the phi functions of h instead of -h.
    const phi1 = predictX0 ? Math.expm1(-h) : Math.expm1(h);
    const ratio = predictX0 ? tNext / tCur : 1;
    const out = new Float64Array(x.length);
    const D0 = Dh[0]!;
    if (order === 1) {
      for (let k = 0; k < out.length; k++) out[k] = ratio * x[k]! - (predictX0 ? 1 : tNext) * phi1 * D0[k]!;
    } else if (order === 2) {
      const r0 = (lam(th[0]!) - lam(th[1]!)) / h;
      const D1p = Dh[1]!;
      for (let k = 0; k < out.length; k++) {
        const D1 = (D0[k]! - D1p[k]!) / r0;
        out[k] = ratio * x[k]! - (predictX0 ? 1 : tNext) * phi1 * (D0[k]! + 0.5 * D1);
      }
    } else {
      const h0 = lam(th[0]!) - lam(th[1]!);
      const h1 = lam(th[1]!) - lam(th[2]!);
      const r0 = h0 / h;
      const r1 = h1 / h;
      const phi2 = predictX0 ? phi1 / h + 1 : phi1 / h - 1;
      const phi3 = (phi2 / h - 0.5) * (opts.exactThirdOrder ? 2 : 1);
      const Dm1 = Dh[1]!;
      const Dm2 = Dh[2]!;
      for (let k = 0; k < out.length; k++) {
        const d10 = (D0[k]! - Dm1[k]!) / r0;
        const d11 = (Dm1[k]! - Dm2[k]!) / r1;
        const D1 = d10 + (r0 / (r0 + r1)) * (d10 - d11);
        const D2 = (d10 - d11) / (r0 + r1);
        // noise prediction: x - t (phi1 eps0 + phi2 D1 + phi3 D2), i.e. sc = -t on the D1 term
        out[k] = predictX0 ? ratio * x[k]! - phi1 * D0[k]! + phi2 * D1 - phi3 * D2 : x[k]! - tNext * (phi1 * D0[k]! + phi2 * D1 + phi3 * D2);
      }
    }
    x = out;
    ev.step(i, tCur, tNext, x, ctx.callback, n);
  }
  return finish(ev, x, t[n]!, opts.denoiseToZero);
}
