/**
 * The AdaSDE student step (ALGORITHM.md 4) in forward mode: alongside the state x it carries
 * the tangent dx/dtheta for every raw coefficient theta that the trajectory depends on, so the
 * exact gradient of any loss on x is a dot product. Earlier intervals' coefficients enter
 * through the incoming x; the current interval's coefficients enter through the step itself.
 */
import { GAMMA_OFFSET, sigmoid, stepGamma, type CoefficientBounds, type Coefficients, type RawParams } from '../solvers/coefficients.js';
import type { Conditioning } from '../core/denoiser.js';
import { repeatConditioning } from '../solvers/common.js';
import type { JvpFn, JvpTangent } from './jvp.js';

export const TABLES = ['r', 'scaleDir', 'scaleTime', 'weight', 'gamma'] as const;
export type TableName = (typeof TABLES)[number];

/** One raw parameter: table, interval i, point j. */
export interface ParamRef {
  table: TableName;
  i: number;
  j: number;
}

/** A parameter and the tangent of the current state with respect to it. */
export interface Tangent {
  ref: ParamRef;
  dx: Float64Array;
}

/** The raw parameters of interval i that can change the trajectory under these bounds. */
export function liveParams(i: number, K: number, numIntervals: number, b: CoefficientBounds): ParamRef[] {
  const out: ParamRef[] = [];
  for (let j = 0; j < K; j++) out.push({ table: 'r', i, j });
  if (b.scaleDir > 0 && !(b.fcn && i === numIntervals - 1)) for (let j = 0; j < K; j++) out.push({ table: 'scaleDir', i, j });
  if (b.scaleTime > 0) for (let j = 0; j < K; j++) out.push({ table: 'scaleTime', i, j });
  // With one point the softmax weight is identically 1.
  if (K > 1) for (let j = 0; j < K; j++) out.push({ table: 'weight', i, j });
  // gamma_0 is forced to 0, so the first interval's gamma parameters are not in the graph.
  if (b.gamma > 0 && i > 0) for (let j = 0; j < K; j++) out.push({ table: 'gamma', i, j });
  return out;
}

/** d(coefficient)/d(raw) of the step's own parameters: scalars per point. */
interface LocalDerivs {
  dgamma: number;
  dr: Float64Array;
  dc: Float64Array;
  da: Float64Array;
  dw: Float64Array;
}

function localDerivs(ref: ParamRef, i: number, raw: RawParams, c: Coefficients, b: CoefficientBounds): LocalDerivs {
  const K = c.r[i]!.length;
  const z: LocalDerivs = { dgamma: 0, dr: new Float64Array(K), dc: new Float64Array(K), da: new Float64Array(K), dw: new Float64Array(K) };
  if (ref.i !== i) return z;
  const j = ref.j;
  const w = c.weight[i]!;
  switch (ref.table) {
    case 'r': {
      const r = c.r[i]![j]!;
      z.dr[j] = r * (1 - r);
      break;
    }
    case 'scaleDir': {
      const th = Math.tanh(raw.scaleDir[i]![j]! / 2);
      z.dc[j] = (Math.min(b.scaleDir, 0.99) * (1 - th * th)) / 2;
      break;
    }
    case 'scaleTime': {
      const th = Math.tanh(raw.scaleTime[i]![j]! / 2);
      z.da[j] = (Math.min(b.scaleTime, 0.99) * (1 - th * th)) / 2;
      break;
    }
    case 'weight': {
      // softmax: dw_q / draw_j = w_q (delta_qj - w_j)
      for (let q = 0; q < K; q++) z.dw[q] = w[q]! * ((q === j ? 1 : 0) - w[j]!);
      if (i > 0) for (let q = 0; q < K; q++) z.dgamma += z.dw[q]! * c.gamma[i]![q]!;
      break;
    }
    case 'gamma': {
      if (i > 0) {
        const s = sigmoid((raw.gamma[i]![j]! + GAMMA_OFFSET) / 2);
        z.dgamma = (w[j]! * (b.gamma - b.gammaMin) * s * (1 - s)) / 2;
      }
      break;
    }
  }
  return z;
}

export interface StudentStepInput {
  /** D and its directional derivatives (finite differences for ONNX models). */
  jvp: JvpFn;
  i: number;
  x: Float64Array;
  tangents: Tangent[];
  tCur: number;
  tNext: number;
  raw: RawParams;
  coeffs: Coefficients;
  bounds: CoefficientBounds;
  afs: boolean;
  batch: number;
  /** Standard normal noise of this interval (used when gamma_i > 0). */
  eps: Float64Array | undefined;
  cond?: Conditioning;
}

export interface StudentStepOutput {
  x: Float64Array;
  /** Incoming tangents (updated) followed by the tangents of this interval's live parameters. */
  tangents: Tangent[];
  /** Denoiser evaluations per sample (not counting the perturbed copies). */
  nfe: number;
  /** Rows sent to the model in total, perturbed copies included (as counted by the JVP). */
  rows: number;
}

export async function studentStepJvp(s: StudentStepInput): Promise<StudentStepOutput> {
  const { i, x, tCur, tNext, coeffs, batch } = s;
  const len = x.length;
  const numIntervals = coeffs.r.length;
  const K = coeffs.r[i]!.length;
  const refs = [...s.tangents.map((t) => t.ref), ...liveParams(i, K, numIntervals, s.bounds)];
  const dxIn = [...s.tangents.map((t) => t.dx), ...liveParams(i, K, numIntervals, s.bounds).map(() => new Float64Array(len))];
  const P = refs.length;
  const loc = refs.map((ref) => localDerivs(ref, i, s.raw, coeffs, s.bounds));
  let nfe = 0;
  let rows = 0;

  // Noise injection: t_hat = (1 + gamma) t_i, x_hat = x + sqrt(t_hat^2 - t_i^2) eps.
  const gamma = stepGamma(coeffs, i);
  const tHat = (1 + gamma) * tCur;
  const dtHat = loc.map((l) => tCur * l.dgamma);
  const xHat = Float64Array.from(x);
  const dxHat = dxIn.map((d) => Float64Array.from(d));
  if (gamma > 0) {
    if (!s.eps) throw new RangeError('gamma > 0 needs noise');
    const std = Math.sqrt(tHat * tHat - tCur * tCur);
    for (let k = 0; k < len; k++) xHat[k] = xHat[k]! + std * s.eps[k]!;
    for (let p = 0; p < P; p++) {
      const dstd = (tHat * dtHat[p]!) / std;
      if (dstd !== 0) for (let k = 0; k < len; k++) dxHat[p]![k] = dxHat[p]![k]! + dstd * s.eps[k]!;
    }
  }

  // Direction at (x_hat, t_hat).
  let dHat: Float64Array;
  let ddHat: Float64Array[];
  if (s.afs && i === 0) {
    // gamma_0 = 0, so t_hat = t_0 is constant here.
    const f = 1 / Math.sqrt(1 + tHat * tHat);
    dHat = xHat.map((v) => v * f);
    ddHat = dxHat.map((d) => d.map((v) => v * f));
  } else {
    const sigma = new Float64Array(batch).fill(tHat);
    const tg: JvpTangent[] = dxHat.map((d, p) => ({ dx: d, ds: dtHat[p] ? new Float64Array(batch).fill(dtHat[p]!) : undefined }));
    const { D, dD, rows: sent } = await s.jvp(xHat, sigma, batch, tg, s.cond);
    nfe++;
    rows += sent;
    dHat = new Float64Array(len);
    for (let k = 0; k < len; k++) dHat[k] = (xHat[k]! - D[k]!) / tHat;
    ddHat = dxHat.map((d, p) => {
      const out = new Float64Array(len);
      const dt = dtHat[p]!;
      for (let k = 0; k < len; k++) out[k] = (d[k]! - dD[p]![k]!) / tHat - (dHat[k]! * dt) / tHat;
      return out;
    });
  }

  // K intermediate points, stacked along the batch into one model call.
  const r = coeffs.r[i]!;
  const tMid = r.map((rj) => tNext ** rj * tHat ** (1 - rj));
  const logRatio = Math.log(tNext) - Math.log(tHat);
  const xMid = new Float64Array(K * len);
  const sig = new Float64Array(K * batch);
  const dxMid = refs.map(() => new Float64Array(K * len));
  const dsig = refs.map(() => new Float64Array(K * batch));
  const dtMid: number[][] = refs.map(() => new Array<number>(K).fill(0));
  for (let j = 0; j < K; j++) {
    const tm = tMid[j]!;
    const a = coeffs.scaleTime[i]![j]!;
    const o = j * len;
    for (let k = 0; k < len; k++) xMid[o + k] = xHat[k]! + (tm - tHat) * dHat[k]!;
    sig.fill(a * tm, j * batch, (j + 1) * batch);
    for (let p = 0; p < P; p++) {
      // t_mid = t_next^r t_hat^(1-r)
      const dtm = tm * logRatio * loc[p]!.dr[j]! + (tm * (1 - r[j]!) * dtHat[p]!) / tHat;
      dtMid[p]![j] = dtm;
      const dxm = dxMid[p]!;
      const step = tm - tHat;
      const dstep = dtm - dtHat[p]!;
      const dh = dxHat[p]!;
      const ddh = ddHat[p]!;
      for (let k = 0; k < len; k++) dxm[o + k] = dh[k]! + dstep * dHat[k]! + step * ddh[k]!;
      dsig[p]!.fill(loc[p]!.da[j]! * tm + a * dtm, j * batch, (j + 1) * batch);
    }
  }
  const condK = repeatConditioning(s.cond, K);
  const { D: Dm, dD: dDm, rows: sentMid } = await s.jvp(xMid, sig, K * batch, refs.map((_, p) => ({ dx: dxMid[p], ds: dsig[p] })), condK);
  nfe++;
  rows += sentMid;

  // x_next = x_hat + sum_j w_j c_j (t_next - t_hat) d_mid_j
  const xNext = Float64Array.from(xHat);
  const dxNext = dxHat.map((d) => Float64Array.from(d));
  for (let j = 0; j < K; j++) {
    const tm = tMid[j]!;
    const w = coeffs.weight[i]![j]!;
    const c = coeffs.scaleDir[i]![j]!;
    const h = tNext - tHat;
    const o = j * len;
    const dMid = new Float64Array(len);
    for (let k = 0; k < len; k++) dMid[k] = (xMid[o + k]! - Dm[o + k]!) / tm;
    for (let k = 0; k < len; k++) xNext[k] = xNext[k]! + w * c * h * dMid[k]!;
    for (let p = 0; p < P; p++) {
      const l = loc[p]!;
      const dtm = dtMid[p]![j]!;
      const coef = (l.dw[j]! * c + w * l.dc[j]!) * h - w * c * dtHat[p]!;
      const out = dxNext[p]!;
      const dxm = dxMid[p]!;
      const ddm = dDm[p]!;
      for (let k = 0; k < len; k++) {
        // d(d_mid) = (dx_mid - dD_mid)/t_mid - d_mid dt_mid / t_mid
        const dd = (dxm[o + k]! - ddm[o + k]!) / tm - (dMid[k]! * dtm) / tm;
        out[k] = out[k]! + coef * dMid[k]! + w * c * h * dd;
      }
    }
  }
  return { x: xNext, tangents: refs.map((ref, p) => ({ ref, dx: dxNext[p]! })), nfe, rows };
}
