/**
 * Jacobian-vector products of a black-box denoiser (ALGORITHM.md 4.3): the derivative of
 * D(x, s) along (dx, ds) by finite differences, with every tangent's perturbed copies stacked
 * into ONE model call together with the point itself.
 *
 * Two schemes:
 *  - forward, J[dx, ds] ~ (D(x + e dx, s + e ds) - D(x, s)) / e: one extra row per live
 *    tangent, reusing the point's own D. Truncation error O(e); float32 rounding of the
 *    inputs and outputs adds O(u / e) with u = 2^-24, so the best step is near sqrt(u) ~ 2.4e-4
 *    relative. That gives ~1e-4-1e-3 relative error in each derivative, well below the
 *    batch-to-batch noise of the gradient it feeds (measured on the bundled network:
 *    test/train/jvp-bundled.test.ts, bench/RESULTS.md "Training cost").
 *  - central, (D(x + e dx, s + e ds) - D(x - e dx, s - e ds)) / (2 e): two extra rows per live
 *    tangent, truncation O(e^2); the reference choice for float16 models, whose rounding
 *    (u = 2^-11) leaves a forward difference no good step.
 */
import { repeatConditioning } from '../solvers/common.js';
import type { Conditioning, Denoiser } from '../core/denoiser.js';

export interface JvpTangent {
  /** Direction in x ([rows * dim]); undefined means zero. */
  dx: Float64Array | undefined;
  /** Direction in sigma, one value per row; undefined means zero. */
  ds: Float64Array | undefined;
}

export type JvpScheme = 'forward' | 'central';

export interface JvpOptions {
  scheme: JvpScheme;
  /**
   * Relative size of the perturbation: e is chosen per tangent and row so that the larger
   * of |e dx| / |x| (root mean square over the row) and |e ds| / s equals this. 1e-3 suits float32 models
   * (error ~1e-6 relative); 1e-5 suits the float64 analytic denoisers.
   */
  relStep: number;
}

export interface JvpResult {
  D: Float64Array;
  dD: Float64Array[];
  /** Rows sent to the model: (1 + copies per tangent * live tangents) * rows. */
  rows: number;
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
 * (1 + k * live tangents) * rows samples, k = 1 (forward) or 2 (central). Tangents that are
 * zero in both x and sigma for every row cost nothing (their derivative is 0).
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
  const central = opts.scheme === 'central';
  // The step e is chosen per row (sample), from that row alone, so a sample's derivative
  // never depends on which other samples share its batch or process.
  const rowRms = (v: Float64Array, r: number) => rms(v.subarray(r * dim, (r + 1) * dim));
  const xScale = Array.from({ length: rows }, (_, r) => Math.max(rowRms(x, r), 1e-3));
  const live: { k: number; e: Float64Array }[] = [];
  tangents.forEach((t, k) => {
    const e = new Float64Array(rows);
    let any = false;
    for (let r = 0; r < rows; r++) {
      const rx = t.dx ? rowRms(t.dx, r) / xScale[r]! : 0;
      const rs = t.ds ? Math.abs(t.ds[r]!) / sigma[r]! : 0;
      const m = Math.max(rx, rs);
      if (m > 0 && Number.isFinite(m)) {
        e[r] = opts.relStep / m;
        any = true;
      }
    }
    if (any) live.push({ k, e });
  });
  const per = central ? 2 : 1;
  const copies = 1 + per * live.length;
  const X = new Float64Array(copies * rows * dim);
  const S = new Float64Array(copies * rows);
  X.set(x, 0);
  S.set(sigma, 0);
  live.forEach(({ k, e }, n) => {
    const t = tangents[k]!;
    const slots: (readonly [number, number])[] = central ? [[1 + 2 * n, 1], [2 + 2 * n, -1]] : [[1 + n, 1]];
    for (const [slot, sign] of slots) {
      const xo = slot * rows * dim;
      const so = slot * rows;
      for (let r = 0; r < rows; r++) {
        const er = sign * e[r]!;
        for (let q = r * dim; q < (r + 1) * dim; q++) X[xo + q] = x[q]! + (t.dx ? er * t.dx[q]! : 0);
        S[so + r] = sigma[r]! + (t.ds ? er * t.ds[r]! : 0);
      }
    }
  });
  const out = await denoise({ x: X, sigma: S, batch: copies * rows, cond: repeatConditioning(cond, copies) });
  const D = out.slice(0, rows * dim);
  const dD = tangents.map(() => new Float64Array(rows * dim));
  live.forEach(({ k, e }, n) => {
    // forward: (D(+) - D(x)) / e; central: (D(+) - D(-)) / (2 e).
    const plus = (central ? 1 + 2 * n : 1 + n) * rows * dim;
    const minus = central ? (2 + 2 * n) * rows * dim : 0;
    const d = dD[k]!;
    for (let r = 0; r < rows; r++) {
      if (e[r] === 0) continue;
      const inv = 1 / (per * e[r]!);
      for (let q = r * dim; q < (r + 1) * dim; q++) d[q] = (out[plus + q]! - out[minus + q]!) * inv;
    }
  });
  return { D, dD, rows: copies * rows };
}
