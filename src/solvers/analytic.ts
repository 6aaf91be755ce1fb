/**
 * Analytic denoisers of ALGORITHM.md section 9: exact D(x, sigma) for data distributions
 * whose posterior mean is known in closed form. They are the independent truth of the
 * test suite (exact ODE solutions, Jacobians for the gradient checks) and the reference
 * for the ONNX graphs the runtime builds from the same parameters.
 */
import type { Denoiser, DenoiseRequest } from '../core/denoiser.js';

export interface GaussParams {
  /** Mean, one value per element of a sample. */
  mu: Float64Array;
  /** Per-element standard deviation of the data. */
  s: number;
}

export interface MixtureParams {
  /** Mixture weights (need not be normalised). */
  weights: Float64Array;
  /** K x dim means, row-major. */
  means: Float64Array;
  /** K isotropic standard deviations (0 gives the empirical data set limit). */
  stds: Float64Array;
}

/** Gaussian data N(mu, s^2 I): D = mu + s^2/(s^2+sigma^2) (x - mu). */
export function gaussDenoise(p: GaussParams, req: DenoiseRequest): Float64Array {
  const dim = p.mu.length;
  const out = new Float64Array(req.batch * dim);
  const s2 = p.s * p.s;
  for (let b = 0; b < req.batch; b++) {
    const sg = req.sigma[b]!;
    const k = s2 / (s2 + sg * sg);
    const o = b * dim;
    for (let j = 0; j < dim; j++) out[o + j] = p.mu[j]! + k * (req.x[o + j]! - p.mu[j]!);
  }
  return out;
}

/** Exact probability-flow ODE solution for Gaussian data, from (x0 at sigma0) to sigma. */
export function gaussOdeSolution(p: GaussParams, x0: Float64Array, sigma0: number, sigma: number): Float64Array {
  const dim = p.mu.length;
  const s2 = p.s * p.s;
  const f = Math.sqrt((s2 + sigma * sigma) / (s2 + sigma0 * sigma0));
  const out = new Float64Array(x0.length);
  for (let i = 0; i < x0.length; i++) {
    const m = p.mu[i % dim]!;
    out[i] = m + (x0[i]! - m) * f;
  }
  return out;
}

/**
 * Posterior component log-weights for an isotropic mixture at one sample:
 * log p_k = log w_k - n/2 log(s_k^2+sigma^2) - |x-m_k|^2 / (2 (s_k^2+sigma^2)), normalised.
 * Writes the normalised probabilities into `prob`.
 */
function mixturePosterior(p: MixtureParams, x: Float64Array, off: number, dim: number, sigma: number, prob: Float64Array): void {
  const K = p.weights.length;
  let maxLog = -Infinity;
  for (let k = 0; k < K; k++) {
    const v = p.stds[k]! * p.stds[k]! + sigma * sigma;
    let d2 = 0;
    const mo = k * dim;
    for (let j = 0; j < dim; j++) {
      const d = x[off + j]! - p.means[mo + j]!;
      d2 += d * d;
    }
    const lw = Math.log(p.weights[k]!) - 0.5 * dim * Math.log(v) - d2 / (2 * v);
    prob[k] = lw;
    if (lw > maxLog) maxLog = lw;
  }
  let z = 0;
  for (let k = 0; k < K; k++) {
    prob[k] = Math.exp(prob[k]! - maxLog);
    z += prob[k]!;
  }
  for (let k = 0; k < K; k++) prob[k] = prob[k]! / z;
}

/** Isotropic Gaussian mixture: D = sum_k p_k (m_k + s_k^2/(s_k^2+sigma^2)(x - m_k)). */
export function mixtureDenoise(p: MixtureParams, req: DenoiseRequest): Float64Array {
  const K = p.weights.length;
  const dim = p.means.length / K;
  const out = new Float64Array(req.batch * dim);
  const prob = new Float64Array(K);
  for (let b = 0; b < req.batch; b++) {
    const off = b * dim;
    const sg = req.sigma[b]!;
    mixturePosterior(p, req.x, off, dim, sg, prob);
    for (let k = 0; k < K; k++) {
      const pk = prob[k]!;
      if (pk === 0) continue;
      const s2 = p.stds[k]! * p.stds[k]!;
      const c = s2 / (s2 + sg * sg);
      const mo = k * dim;
      for (let j = 0; j < dim; j++) out[off + j] = out[off + j]! + pk * (p.means[mo + j]! + c * (req.x[off + j]! - p.means[mo + j]!));
    }
  }
  return out;
}

/** The empirical data set {y_k} is the s_k -> 0 limit of a mixture with equal weights. */
export function empiricalParams(points: Float64Array, count: number): MixtureParams {
  return { weights: new Float64Array(count).fill(1), means: points, stds: new Float64Array(count) };
}

export function gaussDenoiser(p: GaussParams): Denoiser {
  return async (req) => gaussDenoise(p, req);
}

export function mixtureDenoiser(p: MixtureParams): Denoiser {
  return async (req) => mixtureDenoise(p, req);
}

/**
 * Jacobian-vector product of the mixture denoiser along (dx, dsigma), in closed form.
 * With v_k = s_k^2 + sigma^2, c_k = s_k^2 / v_k and mu_k = m_k + c_k (x - m_k):
 *   dD = sum_k dp_k mu_k + p_k (c_k dx + dc_k (x - m_k)),
 *   dc_k = -2 s_k^2 sigma dsigma / v_k^2,
 *   d log p_k = dl_k - sum_j p_j dl_j,  dl_k = -(x-m_k).dx / v_k + (|x-m_k|^2/(2 v_k^2) - n/(2 v_k)) 2 sigma dsigma.
 * Used to check the forward-mode derivatives of training (ALGORITHM.md section 4.3).
 */
export function mixtureJvp(p: MixtureParams, req: DenoiseRequest, dx: Float64Array, dsigma: Float64Array): Float64Array {
  const K = p.weights.length;
  const dim = p.means.length / K;
  const out = new Float64Array(req.batch * dim);
  const prob = new Float64Array(K);
  const dl = new Float64Array(K);
  for (let b = 0; b < req.batch; b++) {
    const off = b * dim;
    const sg = req.sigma[b]!;
    const ds = dsigma[b]!;
    mixturePosterior(p, req.x, off, dim, sg, prob);
    let mean = 0;
    for (let k = 0; k < K; k++) {
      const v = p.stds[k]! * p.stds[k]! + sg * sg;
      let d2 = 0;
      let dot = 0;
      const mo = k * dim;
      for (let j = 0; j < dim; j++) {
        const d = req.x[off + j]! - p.means[mo + j]!;
        d2 += d * d;
        dot += d * dx[off + j]!;
      }
      dl[k] = -dot / v + (d2 / (2 * v * v) - dim / (2 * v)) * 2 * sg * ds;
      mean += prob[k]! * dl[k]!;
    }
    for (let k = 0; k < K; k++) {
      const pk = prob[k]!;
      if (pk === 0) continue;
      const s2 = p.stds[k]! * p.stds[k]!;
      const v = s2 + sg * sg;
      const c = s2 / v;
      const dc = (-2 * s2 * sg * ds) / (v * v);
      const dpk = pk * (dl[k]! - mean);
      const mo = k * dim;
      for (let j = 0; j < dim; j++) {
        const xm = req.x[off + j]! - p.means[mo + j]!;
        out[off + j] = out[off + j]! + dpk * (p.means[mo + j]! + c * xm) + pk * (c * dx[off + j]! + dc * xm);
      }
    }
  }
  return out;
}

/**
 * Vector-Jacobian product of the mixture denoiser: J_x^T u and, per row, u . dD/dsigma.
 * D is the exact posterior mean, D = x + sigma^2 grad log p_sigma(x) (Tweedie), so J_x =
 * I + sigma^2 Hess log p_sigma is symmetric and J_x^T u = J_x u: the closed-form JVP serves.
 */
export function mixtureVjp(p: MixtureParams, req: DenoiseRequest, u: Float64Array): { gx: Float64Array; gs: Float64Array } {
  const rows = req.batch;
  const dim = req.x.length / rows;
  const gx = mixtureJvp(p, req, u, new Float64Array(rows));
  const dDdSigma = mixtureJvp(p, req, new Float64Array(req.x.length), new Float64Array(rows).fill(1));
  const gs = new Float64Array(rows);
  for (let b = 0; b < rows; b++) {
    let s = 0;
    for (let k = b * dim; k < (b + 1) * dim; k++) s += u[k]! * dDdSigma[k]!;
    gs[b] = s;
  }
  return { gx, gs };
}
