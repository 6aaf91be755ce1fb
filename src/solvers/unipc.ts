/**
 * UniPC (Zhao et al. 2023), data prediction, variants bh1/bh2, ALGORITHM.md 3. The
 * corrector's model output at the new point is reused as the next step's D, so the
 * corrector costs no extra evaluation except where it is switched off (the last interval).
 */
import { afsDenoised, afsDirection, axmby, axpyCombine, diffOver, direction, Evaluator, finish, threshold, type BaseSolverOptions } from './common.js';
import { solveSmall } from './linalg.js';
import type { SolverContext } from './types.js';

export interface UnipcOptions extends BaseSolverOptions {
  /** 1..3, default 3. */
  maxOrder?: number;
  lowerOrderFinal?: boolean;
  variant?: 'bh1' | 'bh2';
  thresholding?: boolean;
  /** Data prediction (default) or noise prediction eps = (x - D)/t (UniPC's predict_x0 = False). */
  predictX0?: boolean;
}

function factorial(k: number): number {
  let f = 1;
  for (let j = 2; j <= k; j++) f *= j;
  return f;
}

/**
 * The corrector x_t = x_ + s (sum_k c[k] D1_k + c[p-1] (m_t - m0)) with s = -B (times t for
 * noise prediction), into `out` (which may be x_ itself: each element is read first).
 */
function corrector(xBase: Float64Array, s: number, c: readonly number[], D1s: readonly Float64Array[], mt: Float64Array, m0: Float64Array, out: Float64Array): void {
  const n = xBase.length;
  const cLast = c[D1s.length]!;
  if (D1s.length === 0) for (let e = 0; e < n; e++) out[e] = xBase[e]! + s * (cLast * (mt[e]! - m0[e]!));
  else if (D1s.length === 1) {
    const [c0] = c as [number];
    const [v0] = D1s as [Float64Array];
    for (let e = 0; e < n; e++) out[e] = xBase[e]! + s * (c0 * v0[e]! + cLast * (mt[e]! - m0[e]!));
  } else if (D1s.length === 2) {
    const [c0, c1] = c as [number, number];
    const [v0, v1] = D1s as [Float64Array, Float64Array];
    for (let e = 0; e < n; e++) out[e] = xBase[e]! + s * (c0 * v0[e]! + c1 * v1[e]! + cLast * (mt[e]! - m0[e]!));
  } else throw new RangeError(`unipc corrector with ${D1s.length} differences`);
}

export async function sampleUnipc(x0: Float64Array, ctx: SolverContext, opts: UnipcOptions = {}): Promise<Float64Array> {
  const maxOrder = opts.maxOrder ?? 3;
  if (!(maxOrder >= 1 && maxOrder <= 3)) throw new RangeError(`unipc max_order must be 1..3, got ${maxOrder}`);
  const lowerOrderFinal = opts.lowerOrderFinal ?? true;
  const variant = opts.variant ?? 'bh2';
  const predictX0 = opts.predictX0 ?? true;
  const useThreshold = predictX0 && (opts.thresholding ?? true);
  const ev = new Evaluator(ctx);
  /**
   * The model output UniPC works with: D, or eps = (x - D)/t, both written over the
   * denoiser's fresh output (and thresholded in place).
   */
  const modelOut = async (x: Float64Array, tt: number): Promise<Float64Array> => {
    const den = await ev.D(x, tt);
    if (!predictX0) return direction(x, den, tt, den);
    return useThreshold ? threshold(den, ctx.batch, undefined, undefined, den) : den;
  };
  const t = ctx.tSteps;
  const N = t.length;
  const n = N - 1;
  const lam = (s: number) => -Math.log(s);

  let x = x0;
  let M0: Float64Array;
  if (!opts.afs) M0 = await modelOut(x, t[0]!);
  else if (!predictX0) M0 = afsDirection(x, t[0]!, ev.take());
  else {
    M0 = afsDenoised(x, t[0]!, ev.take());
    if (useThreshold) threshold(M0, ctx.batch, undefined, undefined, M0);
  }
  const Dh: Float64Array[] = [M0]; // oldest first, newest last
  const th: number[] = [t[0]!];

  for (let i = 0; i < n; i++) {
    const tNext = t[i + 1]!;
    const warmup = i + 1 < maxOrder;
    const last = i === n - 1;
    // The corrector would evaluate the model at the final point only to improve x_N by one
    // order, at one extra NFE; like the reference's main loop it is off on the last interval
    // (also when that interval is still in the warm-up, which keeps NFE = N - 1 for every N).
    const p = warmup ? i + 1 : lowerOrderFinal ? Math.min(maxOrder, N - 1 - i) : maxOrder;
    const useCorrector = !last;

    const tPrev = th[th.length - 1]!;
    const h = lam(tNext) - lam(tPrev);
    const hh = predictX0 ? -h : h;
    const m0 = Dh[Dh.length - 1]!;
    const rks: number[] = [];
    const D1s: Float64Array[] = [];
    for (let k = 1; k <= p - 1; k++) {
      const rk = (lam(th[th.length - 1 - k]!) - lam(tPrev)) / h;
      rks.push(rk);
      const Dk = Dh[Dh.length - 1 - k]!;
      D1s.push(diffOver(Dk, m0, rk, ev.take()));
    }
    rks.push(1);

    const B = variant === 'bh1' ? hh : Math.expm1(hh);
    const hphi1 = Math.expm1(hh);
    let g = hphi1 / hh - 1;
    const R: number[][] = [];
    const b: number[] = [];
    for (let k = 1; k <= p; k++) {
      R.push(rks.map((r) => r ** (k - 1)));
      b.push((g * factorial(k)) / B);
      g = g / hh - 1 / factorial(k + 1);
    }
    const rhoP = p === 2 ? [0.5] : p > 2 ? solveSmall(R.slice(0, p - 1).map((row) => row.slice(0, p - 1)), b.slice(0, p - 1)) : [];
    const rhoC = p === 1 ? [0.5] : solveSmall(R, b);

    // Data prediction: x_ = (t/s) x - hphi_1 m0 and corrections -B (...); noise prediction
    // (alpha = 1, sigma = t): x_ = x - t hphi_1 m0 and corrections -t B (...).
    const ratio = predictX0 ? tNext / tPrev : 1;
    const sig = predictX0 ? 1 : tNext;
    const xBase = axmby(ratio, x, sig * hphi1, m0, ev.take());
    // x_t = x_ - B sum_k rho_p[k] D1_k (predictor)
    const xt = p > 1 ? axpyCombine(xBase, -sig * B, rhoP, D1s, ev.take()) : xBase;

    let mt: Float64Array | undefined;
    if (useCorrector) {
      mt = await modelOut(xt, tNext);
      // x_t = x_ - B (sum_k rho_c[k] D1_k + rho_c[p] (m_t - m0)) (corrector), written over the
      // predictor's state (the model has read it) or, at first order, over x_ itself.
      corrector(xBase, -sig * B, rhoC, D1s, mt, m0, xt);
    }
    if (xt !== xBase) ev.give(xBase);
    ev.give(...D1s);
    ev.step(i, t[i]!, tNext, xt, ctx.callback, n);
    if (x !== x0) ev.give(x);
    x = xt;

    if (warmup) {
      if (mt) Dh.push(mt);
      th.push(tNext);
    } else {
      th.shift();
      th.push(tNext);
      ev.give(Dh.shift());
      if (mt) Dh.push(mt);
    }
  }
  ev.give(...Dh);
  return finish(ev, x, t[n]!, opts.denoiseToZero);
}
