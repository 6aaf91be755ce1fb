/**
 * Jacobian-vector products of a black-box denoiser (ALGORITHM.md 4.3): the derivative of
 * D(x, s) along (dx, ds) by central finite differences,
 *   J[dx, ds] ~ (D(x + e dx, s + e ds) - D(x - e dx, s - e ds)) / (2 e),
 * with every tangent's two perturbed copies stacked into ONE model call together with the
 * point itself. Central differences keep the truncation error O(e^2), which matters for
 * float32 ONNX models where rounding limits how small e can be.
 */
import { repeatConditioning } from '../solvers/common.js';
import type { Conditioning, Denoiser } from '../solvers/types.js';

export interface JvpTangent {
  /** Direction in x ([rows * dim]); undefined means zero. */
  dx: Float64Array | undefined;
  /** Direction in sigma, one value per row; undefined means zero. */
  ds: Float64Array | undefined;
}

export interface JvpOptions {
  /**
   * Relative size of the perturbation: e is chosen per tangent so that the larger of
   * |e dx| / |x| (root mean square) and max |e ds| / s equals this. 1e-3 suits float32 models
   * (error ~1e-6 relative); 1e-5 suits the float64 analytic denoisers.
   */
  relStep: number;
}

export interface JvpResult {
  D: Float64Array;
  dD: Float64Array[];
}

/** D and its directional derivatives at (x, sigma) for `rows` samples. */
export type JvpFn = (x: Float64Array, sigma: Float64Array, rows: number, tangents: readonly JvpTangent[], cond?: Conditioning) => Promise<JvpResult>;

/** The finite-difference JVP of a black-box denoiser. */
export function finiteDifferenceJvp(denoise: Denoiser, opts: JvpOptions): JvpFn {
  return (x, sigma, rows, tangents, cond) => denoiseWithJvp(denoise, x, sigma, rows, tangents, opts, cond);
}

function rms(v: Float64Array): number {
  let s = 0;
  for (let k = 0; k < v.length; k++) s += v[k]! * v[k]!;
  return Math.sqrt(s / Math.max(1, v.length));
}

/**
 * D at (x, sigma) and its derivative along every tangent, in one denoiser call of
 * (1 + 2 * live tangents) * rows samples. Tangents that are zero in both x and sigma cost nothing.
 */
export async function denoiseWithJvp(
  denoise: Denoiser,
  x: Float64Array,
  sigma: Float64Array,
  rows: number,
  tangents: readonly JvpTangent[],
  opts: JvpOptions,
  cond?: Conditioning,
): Promise<JvpResult> {
  const dim = x.length / rows;
  const xScale = Math.max(rms(x), 1e-3);
  const live: { k: number; e: number }[] = [];
  tangents.forEach((t, k) => {
    const rx = t.dx ? rms(t.dx) / xScale : 0;
    let rs = 0;
    if (t.ds) for (let r = 0; r < rows; r++) rs = Math.max(rs, Math.abs(t.ds[r]!) / sigma[r]!);
    const m = Math.max(rx, rs);
    if (m > 0 && Number.isFinite(m)) live.push({ k, e: opts.relStep / m });
  });
  const copies = 1 + 2 * live.length;
  const X = new Float64Array(copies * rows * dim);
  const S = new Float64Array(copies * rows);
  X.set(x, 0);
  S.set(sigma, 0);
  live.forEach(({ k, e }, n) => {
    const t = tangents[k]!;
    for (const [slot, sign] of [[1 + 2 * n, 1], [2 + 2 * n, -1]] as const) {
      const xo = slot * rows * dim;
      const so = slot * rows;
      for (let q = 0; q < rows * dim; q++) X[xo + q] = x[q]! + (t.dx ? sign * e * t.dx[q]! : 0);
      for (let r = 0; r < rows; r++) S[so + r] = sigma[r]! + (t.ds ? sign * e * t.ds[r]! : 0);
    }
  });
  const out = await denoise({ x: X, sigma: S, batch: copies * rows, cond: repeatConditioning(cond, copies) });
  const D = out.slice(0, rows * dim);
  const dD = tangents.map(() => new Float64Array(rows * dim));
  live.forEach(({ k, e }, n) => {
    const plus = (1 + 2 * n) * rows * dim;
    const minus = (2 + 2 * n) * rows * dim;
    const d = dD[k]!;
    for (let q = 0; q < rows * dim; q++) d[q] = (out[plus + q]! - out[minus + q]!) / (2 * e);
  });
  return { D, dD };
}
