/**
 * Forward-mode (dual-number) implementation of the array operations of src/solvers/ops.ts:
 * every array carries its tangents, the directional derivatives of its values with respect
 * to P raw coefficients, and every scalar carries its P partial derivatives. Running
 * `adasdeStep` (src/solvers/adasde.ts) on it yields x_{i+1} together with dx_{i+1}/dtheta,
 * the exact gradient of any loss on x being a dot product (ALGORITHM.md 4.3).
 *
 * The values are computed by the eager kernels themselves (EagerOps), so the trajectory
 * equals the sampler's bit for bit; the denoiser's derivatives come from a JvpFn (finite
 * differences for ONNX models, the closed form for the analytic ones), which sends every
 * perturbed copy of an evaluation in one model call.
 *
 * A tangent that is identically zero is `undefined` and costs nothing: no arithmetic here,
 * no perturbed rows in the model call.
 */
import { repeatConditioning } from '../solvers/common.js';
import { EagerOps, type ArrayOps, type ScalarOps } from '../solvers/ops.js';
import type { Conditioning } from '../core/denoiser.js';
import type { JvpFn, JvpTangent } from './jvp.js';

/** A scalar and its P partial derivatives (undefined: all zero). */
export interface DualScalar {
  v: number;
  d: Float64Array | undefined;
}

/** An array and its P tangents (undefined: zero). */
export interface DualArray {
  v: Float64Array;
  t: (Float64Array | undefined)[];
}

/** sum_k c_k v_k of derivative vectors, skipping zero terms; undefined when every term is zero. */
function combineDerivs(P: number, terms: readonly (readonly [number, Float64Array | undefined])[]): Float64Array | undefined {
  let out: Float64Array | undefined;
  for (const [c, v] of terms) {
    if (!v || c === 0) continue;
    out ??= new Float64Array(P);
    for (let p = 0; p < P; p++) out[p] = out[p]! + c * v[p]!;
  }
  return out;
}

/**
 * The value of addStackedDirections (EagerOps' own kernel, so trajectories stay bit-identical
 * to the eager sampler's) and its quotients q_j = (u_j - v_j) / r_j, which both derivative
 * passes need: the tangents here, the tape's backward pass (tape.ts).
 */
export function stackedDirectionValues(values: EagerOps, acc: Float64Array, f: readonly DualScalar[], u: Float64Array, v: Float64Array, r: readonly DualScalar[]): { out: Float64Array; q: Float64Array[]; len: number } {
  const out = values.addStackedDirections(
    acc,
    f.map((s) => s.v),
    u,
    v,
    r.map((s) => s.v),
  );
  const len = acc.length;
  const q = f.map((_, j) => values.diffOver(block(u, j, len)!, block(v, j, len)!, r[j]!.v));
  return { out, q, len };
}

/** Dual-number arithmetic: the values as plain float64 (so they equal numberScalars'), the derivatives by the chain rule. */
export function dualScalars(P: number): ScalarOps<DualScalar> {
  return {
    of: (v) => ({ v, d: undefined }),
    value: (s) => s.v,
    add: (a, b) => ({ v: a.v + b.v, d: combineDerivs(P, [[1, a.d], [1, b.d]]) }),
    sub: (a, b) => ({ v: a.v - b.v, d: combineDerivs(P, [[1, a.d], [-1, b.d]]) }),
    mul: (a, b) => ({ v: a.v * b.v, d: combineDerivs(P, [[b.v, a.d], [a.v, b.d]]) }),
    div: (a, b) => {
      const v = a.v / b.v;
      return { v, d: combineDerivs(P, [[1 / b.v, a.d], [-v / b.v, b.d]]) };
    },
    sqrt: (a) => {
      const v = Math.sqrt(a.v);
      return { v, d: combineDerivs(P, [[1 / (2 * v), a.d]]) };
    },
    pow: (a, b) => {
      // d(a^b) = a^b (ln(a) db + b da / a)
      const v = a.v ** b.v;
      return { v, d: combineDerivs(P, [[v * Math.log(a.v), b.d], [(v * b.v) / a.v, a.d]]) };
    },
  };
}

/**
 * sum_k c_k a_k element-wise over arrays of one length (undefined terms and zero coefficients
 * skipped); undefined when nothing remains. A lone unit term is returned as it is: dual
 * arrays are never written after they are made.
 */
function tangentSum(terms: readonly (readonly [number, Float64Array | undefined])[]): Float64Array | undefined {
  const live = terms.filter((t): t is readonly [number, Float64Array] => t[1] !== undefined && t[0] !== 0);
  if (live.length === 0) return undefined;
  if (live.length === 1 && live[0]![0] === 1) return live[0]![1];
  const n = live[0]![1].length;
  const out = new Float64Array(n);
  for (const [c, a] of live) for (let k = 0; k < n; k++) out[k] = out[k]! + c * a[k]!;
  return out;
}

const dOf = (s: DualScalar, p: number): number => s.d?.[p] ?? 0;
const block = (a: Float64Array | undefined, j: number, len: number) => a?.subarray(j * len, (j + 1) * len);

export interface DualSetup {
  /** D and its directional derivatives. */
  jvp: JvpFn;
  batch: number;
  dim: number;
  /** Number of tangents P every array and scalar carries. */
  tangents: number;
  cond?: Conditioning;
  /** The SDE noise of the one interval this instance runs (a constant: no tangent). */
  eps?: Float64Array;
}

/** The array operations with tangents (see the file header). Values and their order of evaluation are EagerOps'. */
export class DualOps implements ArrayOps<DualArray, DualScalar> {
  readonly scalar: ScalarOps<DualScalar>;
  /** Denoiser evaluations per sample (not counting the perturbed copies). */
  nfe = 0;
  /** Rows sent to the model, perturbed copies included. */
  rows = 0;
  private readonly values: EagerOps;
  private readonly P: number;

  constructor(private readonly setup: DualSetup) {
    this.P = setup.tangents;
    this.scalar = dualScalars(this.P);
    // Values only: the model is evaluated through the JVP below, never through EagerOps.
    this.values = new EagerOps({
      batch: setup.batch,
      dim: setup.dim,
      denoise: () => Promise.reject(new Error('DualOps evaluates the model through its JVP')),
    });
  }

  private map(f: (p: number) => Float64Array | undefined): (Float64Array | undefined)[] {
    return Array.from({ length: this.P }, (_, p) => f(p));
  }

  // Inputs are never written over (`reuse` is ignored): the tangents need the inputs' values.
  axpy(a: DualArray, s: DualScalar, b: DualArray): DualArray {
    return { v: this.values.axpy(a.v, s.v, b.v), t: this.map((p) => tangentSum([[1, a.t[p]], [dOf(s, p), b.v], [s.v, b.t[p]]])) };
  }

  diffOver(u: DualArray, v: DualArray, r: DualScalar): DualArray {
    const out = this.values.diffOver(u.v, v.v, r.v);
    // d((u - v) / r) = (du - dv) / r - out dr / r
    return { v: out, t: this.map((p) => tangentSum([[1 / r.v, u.t[p]], [-1 / r.v, v.t[p]], [-dOf(r, p) / r.v, out]])) };
  }

  scale(x: DualArray, s: DualScalar): DualArray {
    return { v: this.values.scale(x.v, s.v), t: this.map((p) => tangentSum([[s.v, x.t[p]], [dOf(s, p), x.v]])) };
  }

  stackPoints(x: DualArray, steps: readonly DualScalar[], d: DualArray): DualArray {
    const v = this.values.stackPoints(
      x.v,
      steps.map((s) => s.v),
      d.v,
    );
    const len = x.v.length;
    const t = this.map((p) => {
      const blocks = steps.map((s) => tangentSum([[1, x.t[p]], [dOf(s, p), d.v], [s.v, d.t[p]]]));
      if (blocks.every((b) => b === undefined)) return undefined;
      const out = new Float64Array(steps.length * len);
      blocks.forEach((b, j) => b && out.set(b, j * len));
      return out;
    });
    return { v, t };
  }

  addStackedDirections(acc: DualArray, f: readonly DualScalar[], u: DualArray, v: DualArray, r: readonly DualScalar[]): DualArray {
    const { out, q, len } = stackedDirectionValues(this.values, acc.v, f, u.v, v.v, r);
    // d(f_j q_j) = (df_j - f_j dr_j / r_j) q_j + f_j (du_j - dv_j) / r_j.
    const t = this.map((p) => {
      const terms: (readonly [number, Float64Array | undefined])[] = [[1, acc.t[p]]];
      f.forEach((fj, j) => {
        const rj = r[j]!;
        terms.push([dOf(fj, p) - (fj.v * dOf(rj, p)) / rj.v, q[j]], [fj.v / rj.v, block(u.t[p], j, len)], [-fj.v / rj.v, block(v.t[p], j, len)]);
      });
      return tangentSum(terms);
    });
    return { v: out, t };
  }

  async denoise(x: DualArray, sigmas: readonly DualScalar[]): Promise<DualArray> {
    const { batch, cond } = this.setup;
    const K = sigmas.length;
    const rows = K * batch;
    const sigma = new Float64Array(rows);
    sigmas.forEach((s, j) => sigma.fill(s.v, j * batch, (j + 1) * batch));
    const tangents: JvpTangent[] = this.map(() => undefined).map((_, p) => {
      let ds: Float64Array | undefined;
      if (sigmas.some((s) => dOf(s, p) !== 0)) {
        ds = new Float64Array(rows);
        sigmas.forEach((s, j) => ds!.fill(dOf(s, p), j * batch, (j + 1) * batch));
      }
      return { dx: x.t[p], ds };
    });
    const res = await this.setup.jvp(x.v, sigma, rows, tangents, repeatConditioning(cond, K));
    this.nfe++;
    this.rows += res.rows;
    return { v: res.D, t: tangents.map((tg, p) => (tg.dx || tg.ds ? res.dD[p] : undefined)) };
  }

  noise(_i: number): DualArray {
    if (!this.setup.eps) throw new RangeError('AdaSDE with gamma > 0 needs the interval\'s noise');
    return { v: this.setup.eps, t: this.map(() => undefined) };
  }

  /** Nothing to recycle: dual arrays are left to the garbage collector. */
  release(): void {}

  /** Training reports its own progress. */
  reportStep(): void {}
}
