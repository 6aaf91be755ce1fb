/**
 * The AdaSDE student (ALGORITHM.md 4): per interval, an optional noise injection to
 * t_hat = (1 + gamma_i) t_i, one direction at (x_hat, t_hat), then K parallel points at
 * learned intermediate times whose directions are combined with learned weights and scales.
 * With K = 1 and AFS, num_steps = 3, 4, 5, 6 gives NFE 3, 5, 7, 9.
 */
import { afsDirection, axpy, Evaluator, finish, repeatConditioning, type BaseSolverOptions } from './common.js';
import { stepGamma, type Coefficients } from './coefficients.js';
import type { SolverContext } from './types.js';

export interface AdasdeOptions extends BaseSolverOptions {
  coeffs: Coefficients;
}

export interface AdasdeStepInput {
  i: number;
  x: Float64Array;
  tCur: number;
  tNext: number;
  coeffs: Coefficients;
  afs: boolean;
  /** Standard normal noise for this interval (only read when gamma_i > 0). */
  eps: Float64Array | undefined;
}

/** One student interval; the K intermediate evaluations share one batched model call. */
/** out = acc + f (x_mid - D) / t_mid: one point's share of the x_{i+1} update of ALGORITHM.md 4 (out may be acc). */
function addDirection(acc: Float64Array, f: number, xMid: Float64Array, den: Float64Array, tMid: number, out: Float64Array): void {
  for (let k = 0; k < acc.length; k++) out[k] = acc[k]! + (f * (xMid[k]! - den[k]!)) / tMid;
}

export async function adasdeStep(ev: Evaluator, ctx: SolverContext, s: AdasdeStepInput): Promise<Float64Array> {
  const { i, x, tCur, tNext, coeffs } = s;
  const gamma = stepGamma(coeffs, i);
  const tHat = (1 + gamma) * tCur;
  let xHat = x;
  if (gamma > 0) {
    if (!s.eps) throw new RangeError('AdaSDE with gamma > 0 needs a noise source');
    const std = Math.sqrt(tHat * tHat - tCur * tCur);
    xHat = axpy(x, std, s.eps, ev.take(x.length));
  }
  const dHat = s.afs && i === 0 ? afsDirection(xHat, tHat, ev.take(x.length)) : await ev.d(xHat, tHat);

  const r = coeffs.r[i]!;
  const K = r.length;
  const len = x.length;
  const B = ctx.batch;
  const tMid = r.map((rj) => tNext ** rj * tHat ** (1 - rj));
  // Stack the K intermediate states along the batch so the model runs once per interval.
  const xMid = ev.take(K * len);
  const sigma = new Float64Array(K * B);
  for (let j = 0; j < K; j++) {
    const step = tMid[j]! - tHat;
    axpy(xHat, step, dHat, xMid.subarray(j * len, (j + 1) * len));
    // The model sees a_ij * t_mid; the direction below divides by t_mid (reference behaviour).
    sigma.fill(coeffs.scaleTime[i]![j]! * tMid[j]!, j * B, (j + 1) * B);
  }
  ev.give(dHat);
  ev.nfe++;
  const den = await ev.run({ x: xMid, sigma, batch: K * B, cond: repeatConditioning(ctx.cond, K) });
  // x_{i+1} = x_hat + sum_j w_ij c_ij (t_{i+1} - t_hat) d_mid_j (ALGORITHM.md 4), the
  // first term written straight from x_hat, the others added in order.
  const xNext = ev.take(len);
  for (let j = 0; j < K; j++) {
    const f = coeffs.weight[i]![j]! * coeffs.scaleDir[i]![j]! * (tNext - tHat);
    const rows = (a: Float64Array) => a.subarray(j * len, (j + 1) * len);
    addDirection(j === 0 ? xHat : xNext, f, rows(xMid), rows(den), tMid[j]!, xNext);
  }
  ev.give(xMid, den);
  if (xHat !== x) ev.give(xHat);
  return xNext;
}

export async function sampleAdasde(x0: Float64Array, ctx: SolverContext, opts: AdasdeOptions): Promise<Float64Array> {
  const ev = new Evaluator(ctx);
  const t = ctx.tSteps;
  const n = t.length - 1;
  if (opts.coeffs.r.length !== n) throw new RangeError(`predictor has ${opts.coeffs.r.length} intervals but the schedule has ${n}`);
  let x = x0;
  for (let i = 0; i < n; i++) {
    const gamma = stepGamma(opts.coeffs, i);
    const eps = gamma > 0 ? requireNoise(ctx)(i, ctx.batch, ctx.dim, ev.take()) : undefined;
    const xNext = await adasdeStep(ev, ctx, { i, x, tCur: t[i]!, tNext: t[i + 1]!, coeffs: opts.coeffs, afs: opts.afs ?? false, eps });
    ev.give(eps);
    ev.step(i, t[i]!, t[i + 1]!, xNext, ctx.callback, n);
    if (x !== x0) ev.give(x);
    x = xNext;
  }
  return finish(ev, x, t[n]!, opts.denoiseToZero);
}

function requireNoise(ctx: SolverContext) {
  if (!ctx.noise) throw new RangeError('AdaSDE with gamma > 0 needs a per-seed noise source');
  return ctx.noise;
}
