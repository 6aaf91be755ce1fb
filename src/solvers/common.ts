/** Shared pieces of the solvers: the element-wise kernels of the eager array operations (ops.ts), thresholding, options. */
import type { Conditioning } from '../core/denoiser.js';

/** Options every solver understands. */
export interface BaseSolverOptions {
  /** Analytic first step: replace the first denoiser call by d_0 = x_0 / sqrt(1 + t_0^2). */
  afs?: boolean;
  /** Final x <- D(x, t_{N-1}) (+1 NFE). */
  denoiseToZero?: boolean;
}

/** out = a + s * b (out may be a or b). */
export function axpy(a: Float64Array, s: number, b: Float64Array, out: Float64Array = new Float64Array(a.length)): Float64Array {
  for (let k = 0; k < a.length; k++) out[k] = a[k]! + s * b[k]!;
  return out;
}

/**
 * out = a + s * (sum_j c_j v_j) in one pass, the sum taken left to right (the result equals
 * forming the sum in a temporary and then axpy, up to the sign of a zero). `out` may be a or
 * any v_j: each element is read before it is written.
 */
export function axpyCombine(a: Float64Array, s: number, c: readonly number[], v: readonly Float64Array[], out: Float64Array): Float64Array {
  const n = a.length;
  // Unrolled for the usual 1-4 terms: one loop without an inner loop over j is several
  // times faster in V8 than accumulating term by term through a temporary.
  switch (v.length) {
    case 1: {
      const [c0] = c as [number];
      const [v0] = v as [Float64Array];
      for (let k = 0; k < n; k++) out[k] = a[k]! + s * (c0 * v0[k]!);
      return out;
    }
    case 2: {
      const [c0, c1] = c as [number, number];
      const [v0, v1] = v as [Float64Array, Float64Array];
      for (let k = 0; k < n; k++) out[k] = a[k]! + s * (c0 * v0[k]! + c1 * v1[k]!);
      return out;
    }
    case 3: {
      const [c0, c1, c2] = c as [number, number, number];
      const [v0, v1, v2] = v as [Float64Array, Float64Array, Float64Array];
      for (let k = 0; k < n; k++) out[k] = a[k]! + s * (c0 * v0[k]! + c1 * v1[k]! + c2 * v2[k]!);
      return out;
    }
    case 4: {
      const [c0, c1, c2, c3] = c as [number, number, number, number];
      const [v0, v1, v2, v3] = v as [Float64Array, Float64Array, Float64Array, Float64Array];
      for (let k = 0; k < n; k++) out[k] = a[k]! + s * (c0 * v0[k]! + c1 * v1[k]! + c2 * v2[k]! + c3 * v3[k]!);
      return out;
    }
    default: {
      for (let k = 0; k < n; k++) {
        let acc = 0;
        for (let j = 0; j < v.length; j++) acc += c[j]! * v[j]![k]!;
        out[k] = a[k]! + s * acc;
      }
      return out;
    }
  }
}

/*
 * Element-wise kernels. Every loop over a state lives in a small function of its own: V8
 * optimises such a function after a few calls and keeps it optimised, whereas a loop inside a
 * large async solver body runs in the interpreter until the whole body is compiled (and again
 * after each deoptimisation), boxing every intermediate double (bench/RESULTS.md, "Sampler
 * overhead"). Each kernel keeps the arithmetic, and its order, of the formula it replaces.
 */

/** out = a x - c y */
export function axmby(a: number, x: Float64Array, c: number, y: Float64Array, out: Float64Array): Float64Array {
  for (let k = 0; k < x.length; k++) out[k] = a * x[k]! - c * y[k]!;
  return out;
}

/** out = (u - v) / r */
export function diffOver(u: Float64Array, v: Float64Array, r: number, out: Float64Array): Float64Array {
  for (let k = 0; k < u.length; k++) out[k] = (u[k]! - v[k]!) / r;
  return out;
}

/** out = x * s */
export function scale(x: Float64Array, s: number, out: Float64Array): Float64Array {
  for (let k = 0; k < x.length; k++) out[k] = x[k]! * s;
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
 * Into `out`, which may be `den` itself (solvers threshold the denoiser's fresh output in place).
 */
export function threshold(den: Float64Array, batch: number, ratio = 0.995, maxVal = 1, out: Float64Array = new Float64Array(den.length)): Float64Array {
  const dim = den.length / batch;
  const pos = ratio * (dim - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, dim - 1);
  // The quantile needs the order statistics lo and hi of |D|, i.e. the m-th and (m-1)-th
  // largest values. For the usual ratio (0.995: m = 17 of 3072 values) keeping the m largest
  // in a small sorted array is one comparison per value; otherwise quickselect.
  const m = dim - lo;
  const top = m <= 64 ? new Float64Array(m) : undefined;
  const abs = top ? undefined : new Float64Array(dim);
  for (let b = 0; b < batch; b++) {
    const o = b * dim;
    let maxAbs: number;
    if (top) {
      largest(den, o, dim, top);
      maxAbs = top[m - 1]!;
    } else maxAbs = absInto(den, o, dim, abs!);
    if (maxAbs <= maxVal) {
      // The quantile cannot exceed the maximum, so s = maxVal and clipping changes nothing.
      if (out !== den) out.set(den.subarray(o, o + dim), o);
      if (maxVal !== 1) for (let k = 0; k < dim; k++) out[o + k] = out[o + k]! / maxVal;
      continue;
    }
    const [qLo, qHi] = top ? [top[0]!, hi > lo ? top[1]! : top[0]!] : selectPair(abs!, dim, lo, hi);
    const s = Math.max(qLo + (qHi - qLo) * (pos - lo), maxVal);
    for (let k = 0; k < dim; k++) out[o + k] = Math.min(Math.max(den[o + k]!, -s), s) / s;
  }
  return out;
}

/** |a[o..o+n)| into abs; returns the largest. */
function absInto(a: Float64Array, o: number, n: number, abs: Float64Array): number {
  let maxAbs = 0;
  for (let k = 0; k < n; k++) {
    const v = Math.abs(a[o + k]!);
    abs[k] = v;
    if (v > maxAbs) maxAbs = v;
  }
  return maxAbs;
}

/** The order statistics lo and hi (= lo or lo + 1) of abs[0..n), reordering abs (quickselect). */
function selectPair(abs: Float64Array, n: number, lo: number, hi: number): [number, number] {
  const qLo = selectKth(abs, n, lo);
  if (hi === lo) return [qLo, qLo];
  // After selection everything right of `lo` is >= qLo: the next order statistic is their minimum.
  let qHi = Infinity;
  for (let k = lo + 1; k < n; k++) if (abs[k]! < qHi) qHi = abs[k]!;
  return [qLo, qHi];
}

/**
 * The top.length largest values of |a[o..o+n)| (n >= top.length), ascending into `top`: the
 * same multiset of order statistics a full sort would give, in one pass that rejects most
 * values with a single comparison.
 */
function largest(a: Float64Array, o: number, n: number, top: Float64Array): void {
  const m = top.length;
  for (let k = 0; k < m; k++) {
    // Insertion sort of the first m values.
    const v = Math.abs(a[o + k]!);
    let j = k;
    while (j > 0 && top[j - 1]! > v) {
      top[j] = top[j - 1]!;
      j--;
    }
    top[j] = v;
  }
  for (let k = m; k < n; k++) {
    const v = Math.abs(a[o + k]!);
    if (!(v > top[0]!)) continue;
    // v displaces the smallest kept value; shift the smaller ones down to make its place.
    let j = 1;
    while (j < m && top[j]! < v) {
      top[j - 1] = top[j]!;
      j++;
    }
    top[j - 1] = v;
  }
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
