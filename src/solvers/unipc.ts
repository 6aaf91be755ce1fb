/**
 * UniPC, data prediction, variants bh1/bh2, ALGORITHM.md 3. The corrector's model output at
 * the new point is reused as the next step's D, so the corrector costs no extra evaluation
 * except where it is switched off (the last interval).
 *
 * Paper: Zhao et al. 2023 ("UniPC: A Unified Predictor-Corrector Framework for Fast Sampling
 * of Diffusion Models"): the multistep predictor UniP-p followed by the corrector UniC-p, with
 * B(h) = e^h - 1 (`bh2`, the default here; the paper's B_2) or B(h) = h (`bh1`, B_1).
 */
import type { BaseSolverOptions } from './common.js';
import { afsDenoised, afsDirection, finalDenoise, type SolverOps } from './ops.js';
import { solveSmall } from './linalg.js';
import { z } from 'zod';
import { defineSolver, eagerSampler, lowerOrderFinalFlag, maxOrderFlag, perIntervalNfe, predictX0Flag, thresholdingFlag } from './descriptor.js';

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

/** The whole UniPC sampler over any implementation of the array operations. */
export async function solveUnipc<A>(o: SolverOps<A>, x0: A, t: Float64Array, opts: UnipcOptions = {}): Promise<A> {
  const maxOrder = opts.maxOrder ?? 3;
  if (!(maxOrder >= 1 && maxOrder <= 3)) throw new RangeError(`unipc max_order must be 1..3, got ${maxOrder}`);
  const lowerOrderFinal = opts.lowerOrderFinal ?? true;
  const variant = opts.variant ?? 'bh2';
  const predictX0 = opts.predictX0 ?? true;
  const useThreshold = predictX0 && (opts.thresholding ?? true);
  /**
   * The model output UniPC works with: D, or eps = (x - D)/t, both written over the
   * denoiser's fresh output (and thresholded in place).
   */
  const modelOut = async (x: A, tt: number): Promise<A> => {
    const den = await o.denoise(x, [tt]);
    if (!predictX0) return o.diffOver(x, den, tt, den);
    return useThreshold ? o.threshold(den, den) : den;
  };
  const N = t.length;
  const n = N - 1;
  const lam = (s: number) => -Math.log(s);

  let x = x0;
  let M0: A;
  if (!opts.afs) M0 = await modelOut(x, t[0]!);
  else if (!predictX0) M0 = afsDirection(o, x, t[0]!);
  else {
    M0 = afsDenoised(o, x, t[0]!);
    if (useThreshold) M0 = o.threshold(M0, M0);
  }
  const Dh: A[] = [M0]; // oldest first, newest last
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
    const D1s: A[] = [];
    for (let k = 1; k <= p - 1; k++) {
      const rk = (lam(th[th.length - 1 - k]!) - lam(tPrev)) / h;
      rks.push(rk);
      const Dk = Dh[Dh.length - 1 - k]!;
      D1s.push(o.diffOver(Dk, m0, rk));
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
    const xBase = o.axmby(ratio, x, sig * hphi1, m0);
    // x_t = x_ - B sum_k rho_p[k] D1_k (predictor)
    let xt = p > 1 ? o.combine(xBase, -sig * B, rhoP, D1s) : xBase;

    let mt: A | undefined;
    if (useCorrector) {
      mt = await modelOut(xt, tNext);
      // x_t = x_ - B (sum_k rho_c[k] D1_k + rho_c[p] (m_t - m0)) (corrector), written over the
      // predictor's state (the model has read it) or, at first order, over x_ itself; the
      // difference m_t - m0 is exact as (m_t - m0) / 1.
      const dm = o.diffOver(mt, m0, 1);
      xt = o.combine(xBase, -sig * B, rhoC.slice(0, D1s.length + 1), [...D1s, dm], xt);
      o.release(dm);
    }
    if (xt !== xBase) o.release(xBase);
    o.release(...D1s);
    o.reportStep(i, t[i]!, tNext, xt, n);
    if (x !== x0) o.release(x);
    x = xt;

    if (warmup) {
      if (mt) Dh.push(mt);
      th.push(tNext);
    } else {
      th.shift();
      th.push(tNext);
      o.release(Dh.shift());
      if (mt) Dh.push(mt);
    }
  }
  o.release(...Dh);
  return finalDenoise(o, x, t[n]!, opts.denoiseToZero);
}

/** `solveUnipc` on Float64Array states (the eager array operations). */
export const sampleUnipc = eagerSampler(solveUnipc);

/** `--solver unipc`. */
export const unipcSolver = defineSolver<UnipcOptions, 'unipc'>({
  name: 'unipc',
  summary: 'UniPC predictor-corrector',
  flags: {
    maxOrder: maxOrderFlag(3),
    lowerOrderFinal: lowerOrderFinalFlag,
    predictX0: predictX0Flag,
    thresholding: thresholdingFlag,
    variant: { flag: 'variant', schema: z.enum(['bh1', 'bh2']).default('bh2'), help: 'UniPC variant', expect: 'bh1 or bh2' },
  },
  modelDefaults: (m) => ({ thresholding: !m.latent }),
  nfe: perIntervalNfe(1),
  solve: solveUnipc,
});
