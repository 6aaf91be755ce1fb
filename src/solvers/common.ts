/** Shared pieces of the solvers: counted denoiser calls, AFS, thresholding, vector ops. */
import type { Conditioning, SolverContext, StepCallback } from './types.js';

/** Options every solver understands. */
export interface BaseSolverOptions {
  /** Analytic first step: replace the first denoiser call by d_0 = x_0 / sqrt(1 + t_0^2). */
  afs?: boolean;
  /** Final x <- D(x, t_{N-1}) (+1 NFE). */
  denoiseToZero?: boolean;
}

/** Wraps the context's denoiser: a scalar t for the whole batch and an NFE counter. */
export class Evaluator {
  /** Denoiser evaluations per sample so far. */
  nfe = 0;
  constructor(private readonly ctx: SolverContext) {}

  /** D(x, t) for every sample of the batch at the same noise level t. */
  async D(x: Float64Array, t: number): Promise<Float64Array> {
    const sigma = new Float64Array(this.ctx.batch).fill(t);
    this.nfe++;
    return this.ctx.denoise({ x, sigma, batch: this.ctx.batch, cond: this.ctx.cond });
  }

  /** d = (x - D(x, t)) / t: the probability-flow ODE direction dx/dsigma. */
  async d(x: Float64Array, t: number): Promise<Float64Array> {
    const den = await this.D(x, t);
    // The denoiser's output is a fresh array nobody else holds, so the direction overwrites
    // it instead of taking a new one; a denoiser that hands back x itself is the one case
    // to leave alone.
    return direction(x, den, t, den === x ? undefined : den);
  }

  step(i: number, tCur: number, tNext: number, x: Float64Array, cb: StepCallback | undefined, total: number): void {
    cb?.({ i, total, tCur, tNext, x, nfe: this.nfe });
  }
}

/** (x - D) / t, into `out` (which may be `den` itself) or a new array. */
export function direction(x: Float64Array, den: Float64Array, t: number, out: Float64Array = new Float64Array(x.length)): Float64Array {
  for (let k = 0; k < x.length; k++) out[k] = (x[k]! - den[k]!) / t;
  return out;
}

/** AFS (ALGORITHM.md 3): at sigma = t the ODE direction of N(0, I) data is x / sqrt(1 + t^2). */
export function afsDirection(x: Float64Array, t: number): Float64Array {
  const f = 1 / Math.sqrt(1 + t * t);
  const out = new Float64Array(x.length);
  for (let k = 0; k < x.length; k++) out[k] = x[k]! * f;
  return out;
}

/** The denoised estimate implied by AFS: D = x - t d. */
export function afsDenoised(x: Float64Array, t: number): Float64Array {
  const f = 1 - t / Math.sqrt(1 + t * t);
  const out = new Float64Array(x.length);
  for (let k = 0; k < x.length; k++) out[k] = x[k]! * f;
  return out;
}

/** out = a + s * b */
export function axpy(a: Float64Array, s: number, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  for (let k = 0; k < a.length; k++) out[k] = a[k]! + s * b[k]!;
  return out;
}

/** sum_k c_k v_k */
export function combine(coeffs: readonly number[], vecs: readonly Float64Array[]): Float64Array {
  const out = new Float64Array(vecs[0]!.length);
  for (let j = 0; j < vecs.length; j++) {
    const c = coeffs[j]!;
    const v = vecs[j]!;
    for (let k = 0; k < out.length; k++) out[k] = out[k]! + c * v[k]!;
  }
  return out;
}

/**
 * The k-th smallest value (0-based) of `a[0..n)`, reordering `a` in place (Hoare quickselect
 * with a median-of-three pivot): O(n) on average where a full sort is O(n log n).
 */
export function selectKth(a: Float64Array, n: number, k: number): number {
  let lo = 0;
  let hi = n - 1;
  while (hi > lo) {
    const mid = (lo + hi) >> 1;
    // Median of three as pivot.
    let x = a[lo]!;
    let y = a[mid]!;
    let z = a[hi]!;
    if (x > y) [x, y] = [y, x];
    if (y > z) [y, z] = [z, y];
    if (x > y) [x, y] = [y, x];
    const pivot = y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[k]!;
}

/**
 * Dynamic thresholding of the data prediction (Saharia et al.; DPM-Solver++): per sample,
 * s = max(quantile_0.995(|D|), 1) with linear interpolation as torch.quantile, D <- clip(D, -s, s) / s.
 */
export function threshold(den: Float64Array, batch: number, ratio = 0.995, maxVal = 1): Float64Array {
  const dim = den.length / batch;
  const out = new Float64Array(den.length);
  const abs = new Float64Array(dim);
  const pos = ratio * (dim - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, dim - 1);
  for (let b = 0; b < batch; b++) {
    const o = b * dim;
    let maxAbs = 0;
    for (let k = 0; k < dim; k++) {
      const v = Math.abs(den[o + k]!);
      abs[k] = v;
      if (v > maxAbs) maxAbs = v;
    }
    if (maxAbs <= maxVal) {
      // The quantile cannot exceed the maximum, so s = maxVal and clipping changes nothing.
      out.set(den.subarray(o, o + dim), o);
      if (maxVal !== 1) for (let k = 0; k < dim; k++) out[o + k] = out[o + k]! / maxVal;
      continue;
    }
    const qLo = selectKth(abs, dim, lo);
    // After selection everything right of `lo` is >= qLo: the next order statistic is their minimum.
    let qHi = qLo;
    if (hi > lo) {
      qHi = Infinity;
      for (let k = lo + 1; k < dim; k++) if (abs[k]! < qHi) qHi = abs[k]!;
    }
    const s = Math.max(qLo + (qHi - qLo) * (pos - lo), maxVal);
    for (let k = 0; k < dim; k++) out[o + k] = Math.min(Math.max(den[o + k]!, -s), s) / s;
  }
  return out;
}

/** Optional final denoising step shared by all solvers. */
export async function finish(ev: Evaluator, x: Float64Array, tLast: number, denoiseToZero: boolean | undefined): Promise<Float64Array> {
  return denoiseToZero ? ev.D(x, tLast) : x;
}

/** Repeat per-sample conditioning `times` times along the batch (for stacked model calls). */
export function repeatConditioning(c: Conditioning | undefined, times: number): Conditioning | undefined {
  if (!c || times === 1) return c;
  const rep = (a: Float32Array | undefined): Float32Array | undefined => {
    if (!a) return undefined;
    const out = new Float32Array(a.length * times);
    for (let j = 0; j < times; j++) out.set(a, j * a.length);
    return out;
  };
  return { ...c, classLabels: rep(c.classLabels), condition: rep(c.condition), uncondition: rep(c.uncondition) };
}

/** One step from (x, tCur) to tNext, given the ODE direction at x. */
export type StepFn = (ev: Evaluator, x: Float64Array, tCur: number, tNext: number, dCur: Float64Array) => Promise<Float64Array>;

/**
 * The loop shared by the one-step-per-interval solvers (euler, heun, dpm): the direction at
 * t_i (AFS replaces it on the first interval), then the solver's step to t_{i+1}.
 */
export async function stepwise(x0: Float64Array, ctx: SolverContext, opts: BaseSolverOptions, step: StepFn): Promise<Float64Array> {
  const ev = new Evaluator(ctx);
  const t = ctx.tSteps;
  const n = t.length - 1;
  let x = x0;
  for (let i = 0; i < n; i++) {
    const tCur = t[i]!;
    const tNext = t[i + 1]!;
    const dCur = opts.afs && i === 0 ? afsDirection(x, tCur) : await ev.d(x, tCur);
    x = await step(ev, x, tCur, tNext, dCur);
    ev.step(i, tCur, tNext, x, ctx.callback, n);
  }
  return finish(ev, x, t[n]!, opts.denoiseToZero);
}
