/**
 * The AdaSDE student step in forward mode (ALGORITHM.md 4.3): the sampler's own step
 * (`adasdeStep`, src/solvers/adasde.ts) run on dual numbers (src/train/dual.ts), so alongside
 * the state x it carries the tangent dx/dtheta for every raw coefficient theta that the
 * trajectory depends on. Earlier intervals' coefficients enter through the incoming x; the
 * current interval's coefficients enter through the step's scalars, whose derivatives are
 * those of the parameterisation (coefficientDerivatives, next to effectiveCoefficients).
 */
import { adasdeStep } from '../solvers/adasde.js';
import {
  coefficientDerivatives,
  liveParams,
  RAW_PARAM_NAMES,
  type CoefficientBounds,
  type Coefficients,
  type IntervalCoefficients,
  type ParamRef,
  type RawParams,
} from '../solvers/coefficients.js';
import type { Conditioning } from '../core/denoiser.js';
import { DualOps, type DualScalar } from './dual.js';
import type { JvpFn } from './jvp.js';

/** A parameter and the tangent of the current state with respect to it. */
export interface Tangent {
  ref: ParamRef;
  dx: Float64Array;
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

/** Interval i's coefficients as dual numbers: their values and their derivatives with respect to each of `refs`. */
export function dualCoefficients(refs: readonly ParamRef[], i: number, raw: RawParams, c: Coefficients, b: CoefficientBounds): IntervalCoefficients<DualScalar> {
  const K = c.r[i]!.length;
  const derivs = refs.map((ref) => coefficientDerivatives(ref, i, raw, c, b));
  const table = (name: (typeof RAW_PARAM_NAMES)[number]): DualScalar[] =>
    Array.from({ length: K }, (_, j) => {
      const d = Float64Array.from(derivs, (dr) => dr[name][j]!);
      return { v: c[name][i]![j]!, d: d.some((v) => v !== 0) ? d : undefined };
    });
  return { r: table('r'), scaleDir: table('scaleDir'), scaleTime: table('scaleTime'), weight: table('weight'), gamma: table('gamma') };
}

export async function studentStepJvp(s: StudentStepInput): Promise<StudentStepOutput> {
  const { i, x, coeffs, batch } = s;
  const len = x.length;
  const K = coeffs.r[i]!.length;
  const fresh = liveParams(i, K, coeffs.r.length, s.bounds);
  const refs = [...s.tangents.map((t) => t.ref), ...fresh];
  const o = new DualOps({ jvp: s.jvp, batch, dim: len / batch, tangents: refs.length, cond: s.cond, eps: s.eps });
  const xIn = { v: x, t: [...s.tangents.map((t) => t.dx), ...fresh.map(() => undefined)] };
  const out = await adasdeStep(o, xIn, { i, tCur: s.tCur, tNext: s.tNext, afs: s.afs }, dualCoefficients(refs, i, s.raw, coeffs, s.bounds));
  return { x: out.v, tangents: refs.map((ref, p) => ({ ref, dx: out.t[p] ?? new Float64Array(len) })), nfe: o.nfe, rows: o.rows };
}
