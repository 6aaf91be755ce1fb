/**
 * DPM-Solver++ multistep (Lu et al. 2022b), data prediction, orders 1-3, ALGORITHM.md 3.
 * lambda = -ln t; the stored D are dynamically thresholded when `thresholding` is on. NFE N-1.
 * With `predictX0: false` it is the noise-prediction multistep DPM-Solver (Lu et al. 2022a),
 * whose model output is eps = (x - D)/t, the ODE direction in the EDM parameterisation.
 */
import { afsDenoised, afsDirection, axmby, direction, Evaluator, finish, threshold, type BaseSolverOptions } from './common.js';
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

/** Order 2: x_t = ratio x - c (D0 + D1/2), D1 = (D0 - D_-1) / r0, with c = phi_1 (times t for noise prediction). */
function secondOrder(x: Float64Array, ratio: number, c: number, D0: Float64Array, D1p: Float64Array, r0: number, out: Float64Array): void {
  for (let k = 0; k < x.length; k++) {
    const D1 = (D0[k]! - D1p[k]!) / r0;
    out[k] = ratio * x[k]! - c * (D0[k]! + 0.5 * D1);
  }
}

type ThirdOrderCoeffs = { ratio: number; phi1: number; phi2: number; phi3: number } | { tNext: number; phi1: number; phi2: number; phi3: number };

/**
 * Order 3 (ALGORITHM.md 3): data prediction x_t = ratio x - phi_1 D0 + phi_2 D1 - phi_3 D2; noise
 * prediction x - t (phi_1 eps0 + phi_2 D1 + phi_3 D2).
 */
function thirdOrder(x: Float64Array, co: ThirdOrderCoeffs, D0: Float64Array, Dm1: Float64Array, Dm2: Float64Array, r0: number, r1: number, out: Float64Array): void {
  const { phi1, phi2, phi3 } = co;
  const w = r0 / (r0 + r1);
  const rs = r0 + r1;
  if ('ratio' in co) {
    const ratio = co.ratio;
    for (let k = 0; k < x.length; k++) {
      const d10 = (D0[k]! - Dm1[k]!) / r0;
      const d11 = (Dm1[k]! - Dm2[k]!) / r1;
      const D1 = d10 + w * (d10 - d11);
      const D2 = (d10 - d11) / rs;
      out[k] = ratio * x[k]! - phi1 * D0[k]! + phi2 * D1 - phi3 * D2;
    }
  } else {
    const tNext = co.tNext;
    for (let k = 0; k < x.length; k++) {
      const d10 = (D0[k]! - Dm1[k]!) / r0;
      const d11 = (Dm1[k]! - Dm2[k]!) / r1;
      const D1 = d10 + w * (d10 - d11);
      const D2 = (d10 - d11) / rs;
      out[k] = x[k]! - tNext * (phi1 * D0[k]! + phi2 * D1 + phi3 * D2);
    }
  }
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
    // The model output (or its AFS stand-in) is a fresh array of the loop's own, so the
    // noise-prediction conversion and the thresholding overwrite it.
    let den: Float64Array;
    if (opts.afs && i === 0) den = predictX0 ? afsDenoised(x, tCur, ev.take()) : afsDirection(x, tCur, ev.take());
    else {
      den = await ev.D(x, tCur);
      if (!predictX0) direction(x, den, tCur, den);
    }
    if (useThreshold) threshold(den, ctx.batch, undefined, undefined, den);
    Dh.unshift(den);
    th.unshift(tCur);
    if (Dh.length > 3) {
      ev.give(Dh.pop());
      th.pop();
    }
    const order = dpmppOrder(i, N, maxOrder, lowerOrderFinal);
    const h = lam(tNext) - lam(tCur);
    // Data prediction: x_t = (t/s) x - phi_1 D0 + ...; noise prediction (alpha = 1, sigma = t):
    // x_t = x - t phi_1 eps0 - ..., with the phi functions of h instead of -h.
    const phi1 = predictX0 ? Math.expm1(-h) : Math.expm1(h);
    const ratio = predictX0 ? tNext / tCur : 1;
    const out = ev.take();
    const D0 = Dh[0]!;
    if (order === 1) {
      axmby(ratio, x, (predictX0 ? 1 : tNext) * phi1, D0, out);
    } else if (order === 2) {
      const r0 = (lam(th[0]!) - lam(th[1]!)) / h;
      secondOrder(x, ratio, (predictX0 ? 1 : tNext) * phi1, D0, Dh[1]!, r0, out);
    } else {
      const h0 = lam(th[0]!) - lam(th[1]!);
      const h1 = lam(th[1]!) - lam(th[2]!);
      const r0 = h0 / h;
      const r1 = h1 / h;
      const phi2 = predictX0 ? phi1 / h + 1 : phi1 / h - 1;
      const phi3 = (phi2 / h - 0.5) * (opts.exactThirdOrder ? 2 : 1);
      thirdOrder(x, predictX0 ? { ratio, phi1, phi2, phi3 } : { tNext, phi1, phi2, phi3 }, D0, Dh[1]!, Dh[2]!, r0, r1, out);
    }
    ev.step(i, tCur, tNext, out, ctx.callback, n);
    if (x !== x0) ev.give(x);
    x = out;
  }
  ev.give(...Dh);
  return finish(ev, x, t[n]!, opts.denoiseToZero);
}
