/**
 * Reverse mode for the AdaSDE student (ALGORITHM.md 4.3): the array operations of
 * src/solvers/ops.ts recorded on a tape, so `adasdeStep` runs unchanged and a loss on any
 * recorded state is back-propagated to the tape's input state and to the step's scalars.
 *
 * Why: forward mode (dual.ts) carries one tangent per raw coefficient, and every tangent costs
 * one model row per evaluation, so its cost grows with the square of the number of intervals.
 * A backward pass costs one vector-Jacobian product (VJP) per evaluation whatever the number
 * of coefficients. Training mixes the two (loop.ts, split by gradient-plan.ts): forward tangents up to some interval,
 * this tape after it.
 *
 * Scalars stay dual numbers (they are a few dozen floats): their derivatives with respect to
 * the raw coefficients are those of the parameterisation, so a scalar's cotangent turns into
 * parameter gradients by one dot product. The values are EagerOps' own kernels, so the
 * recorded trajectory equals the sampler's bit for bit.
 */
import { repeatConditioning } from '../solvers/common.js';
import { EagerOps, type ArrayOps, type ScalarOps } from '../solvers/ops.js';
import type { Conditioning, Denoiser } from '../core/denoiser.js';
import { dualScalars, stackedDirectionValues, type DualScalar } from './dual.js';

/** A recorded array: its value and its place on the tape. */
export interface TapeArray {
  readonly id: number;
  readonly v: Float64Array;
}

/**
 * J_x^T u and J_sigma^T u of the denoiser at (x, sigma): `gx` [rows * dim], `gs` [rows] (per
 * row sum of u * dD/dsigma). `rows` counts the rows the VJP sent to its model.
 */
export interface VjpResult {
  gx: Float64Array;
  gs: Float64Array;
  rows: number;
}
export type VjpFn = (x: Float64Array, sigma: Float64Array, rows: number, cotangent: Float64Array, cond?: Conditioning) => Promise<VjpResult>;

type Node =
  | { op: 'axpy'; out: number; a: number; s: DualScalar; b: number; bv: Float64Array }
  | { op: 'diffOver'; out: number; u: number; v: number; r: DualScalar; outV: Float64Array }
  | { op: 'scale'; out: number; x: number; s: DualScalar; xv: Float64Array }
  | { op: 'stack'; out: number; x: number; steps: DualScalar[]; d: number; dv: Float64Array }
  | { op: 'addStacked'; out: number; acc: number; f: DualScalar[]; u: number; v: number; r: DualScalar[]; q: Float64Array[] }
  | { op: 'denoise'; out: number; x: number; xv: Float64Array; sigma: Float64Array; sigmas: DualScalar[]; cond?: Conditioning };

export interface TapeSetup {
  /** The plain denoiser for the forward evaluations. */
  denoise: Denoiser;
  /** Its vector-Jacobian product for the backward pass. */
  vjp: VjpFn;
  batch: number;
  dim: number;
  /** Number of raw coefficients P the scalars' derivatives refer to. */
  params: number;
  cond?: Conditioning;
}

export interface Backward {
  /** Cotangents of the requested leaves (undefined: the loss does not depend on it). */
  leaves: (Float64Array | undefined)[];
  /** d loss / d theta_p through the recorded scalars, [P]. */
  paramGrad: Float64Array;
  /** Rows the VJPs sent to the model. */
  vjpRows: number;
}

export const dot = (a: Float64Array, b: Float64Array, from = 0, to = a.length): number => {
  let s = 0;
  for (let k = from; k < to; k++) s += a[k]! * b[k]!;
  return s;
};

/** The array operations on a tape (see the file header). One instance spans several intervals. */
export class TapeOps implements ArrayOps<TapeArray, DualScalar> {
  readonly scalar: ScalarOps<DualScalar>;
  /** Denoiser evaluations per sample (forward). */
  nfe = 0;
  /** Rows the forward evaluations sent to the model. */
  rows = 0;
  private readonly nodes: Node[] = [];
  private nextId = 0;
  private readonly values: EagerOps;
  private eps: Float64Array | undefined;

  constructor(private readonly setup: TapeSetup) {
    this.scalar = dualScalars(setup.params);
    this.values = new EagerOps({
      batch: setup.batch,
      dim: setup.dim,
      denoise: () => Promise.reject(new Error('TapeOps evaluates the model itself')),
    });
  }

  /** A leaf: an input state or a constant. */
  leaf(v: Float64Array): TapeArray {
    return { id: this.nextId++, v };
  }

  /** The SDE noise of the next interval (a constant leaf). */
  setNoise(eps: Float64Array | undefined): void {
    this.eps = eps;
  }

  private record(v: Float64Array, node: (out: number) => Node): TapeArray {
    const a = this.leaf(v);
    this.nodes.push(node(a.id));
    return a;
  }

  axpy(a: TapeArray, s: DualScalar, b: TapeArray): TapeArray {
    return this.record(this.values.axpy(a.v, s.v, b.v), (out) => ({ op: 'axpy', out, a: a.id, s, b: b.id, bv: b.v }));
  }

  diffOver(u: TapeArray, v: TapeArray, r: DualScalar): TapeArray {
    const outV = this.values.diffOver(u.v, v.v, r.v);
    return this.record(outV, (out) => ({ op: 'diffOver', out, u: u.id, v: v.id, r, outV }));
  }

  scale(x: TapeArray, s: DualScalar): TapeArray {
    return this.record(this.values.scale(x.v, s.v), (out) => ({ op: 'scale', out, x: x.id, s, xv: x.v }));
  }

  stackPoints(x: TapeArray, steps: readonly DualScalar[], d: TapeArray): TapeArray {
    const v = this.values.stackPoints(
      x.v,
      steps.map((s) => s.v),
      d.v,
    );
    return this.record(v, (out) => ({ op: 'stack', out, x: x.id, steps: [...steps], d: d.id, dv: d.v }));
  }

  addStackedDirections(acc: TapeArray, f: readonly DualScalar[], u: TapeArray, v: TapeArray, r: readonly DualScalar[]): TapeArray {
    // q_j = (u_j - v_j) / r_j, kept for the backward pass.
    const { out, q } = stackedDirectionValues(this.values, acc.v, f, u.v, v.v, r);
    return this.record(out, (o) => ({ op: 'addStacked', out: o, acc: acc.id, f: [...f], u: u.id, v: v.id, r: [...r], q }));
  }

  async denoise(x: TapeArray, sigmas: readonly DualScalar[]): Promise<TapeArray> {
    const { batch, cond } = this.setup;
    const K = sigmas.length;
    const sigma = new Float64Array(K * batch);
    sigmas.forEach((s, j) => sigma.fill(s.v, j * batch, (j + 1) * batch));
    const c = repeatConditioning(cond, K);
    const D = await this.setup.denoise({ x: x.v, sigma, batch: K * batch, cond: c });
    this.nfe++;
    this.rows += K * batch;
    // A denoiser may hand back its input (identity tests): keep the two apart.
    const v = D === x.v ? Float64Array.from(D) : D;
    return this.record(v, (out) => ({ op: 'denoise', out, x: x.id, xv: x.v, sigma, sigmas: [...sigmas], cond: c }));
  }

  noise(_i: number): TapeArray {
    if (!this.eps) throw new RangeError("AdaSDE with gamma > 0 needs the interval's noise");
    return this.leaf(this.eps);
  }

  /** Recorded arrays stay alive until the tape goes. */
  release(): void {}

  /** Training reports its own progress. */
  reportStep(): void {}

  /**
   * Back-propagates the cotangents `seeds` (one per recorded array) through the whole tape:
   * the rule of each op is the transpose of its forward formula (see the cases), the
   * denoiser's through its VJP. Returns the cotangents of `leaves` and the parameter gradient.
   */
  async backward(seeds: readonly (readonly [TapeArray, Float64Array])[], leaves: readonly TapeArray[]): Promise<Backward> {
    const P = this.setup.params;
    const cot = new Map<number, Float64Array>();
    const add = (id: number, g: Float64Array, c = 1) => {
      const cur = cot.get(id);
      if (!cur) {
        cot.set(id, c === 1 ? Float64Array.from(g) : g.map((v) => c * v));
        return;
      }
      for (let k = 0; k < g.length; k++) cur[k] = cur[k]! + c * g[k]!;
    };
    /** Adds into a sub-range of a (possibly new) cotangent of length `len`. */
    const addBlock = (id: number, len: number, offset: number, g: Float64Array, c: number) => {
      let cur = cot.get(id);
      if (!cur) cot.set(id, (cur = new Float64Array(len)));
      for (let k = 0; k < g.length; k++) cur[offset + k] = cur[offset + k]! + c * g[k]!;
    };
    const paramGrad = new Float64Array(P);
    const addScalar = (s: DualScalar, g: number) => {
      if (!s.d || g === 0) return;
      for (let p = 0; p < P; p++) paramGrad[p] = paramGrad[p]! + g * s.d[p]!;
    };
    for (const [a, g] of seeds) add(a.id, g);
    let vjpRows = 0;
    for (let n = this.nodes.length - 1; n >= 0; n--) {
      const node = this.nodes[n]!;
      const G = cot.get(node.out);
      if (!G) continue;
      switch (node.op) {
        case 'axpy':
          // out = a + s b
          add(node.a, G);
          add(node.b, G, node.s.v);
          addScalar(node.s, dot(G, node.bv));
          break;
        case 'diffOver':
          // out = (u - v) / r: d/dr = -out / r
          add(node.u, G, 1 / node.r.v);
          add(node.v, G, -1 / node.r.v);
          addScalar(node.r, -dot(G, node.outV) / node.r.v);
          break;
        case 'scale':
          add(node.x, G, node.s.v);
          addScalar(node.s, dot(G, node.xv));
          break;
        case 'stack': {
          // block j = x + steps_j d
          const len = node.dv.length;
          node.steps.forEach((s, j) => {
            const Gj = G.subarray(j * len, (j + 1) * len);
            add(node.x, Gj);
            add(node.d, Gj, s.v);
            addScalar(s, dot(Gj, node.dv));
          });
          break;
        }
        case 'addStacked': {
          // out = acc + sum_j f_j q_j, q_j = (u_j - v_j) / r_j: d/df_j = q_j, d/dr_j = -f_j q_j / r_j
          const len = G.length;
          const K = node.f.length;
          add(node.acc, G);
          node.f.forEach((f, j) => {
            const r = node.r[j]!;
            const gq = dot(G, node.q[j]!);
            addScalar(f, gq);
            addScalar(r, (-f.v * gq) / r.v);
            addBlock(node.u, K * len, j * len, G, f.v / r.v);
            addBlock(node.v, K * len, j * len, G, -f.v / r.v);
          });
          break;
        }
        case 'denoise': {
          const rows = node.sigma.length;
          const res = await this.setup.vjp(node.xv, node.sigma, rows, G, node.cond);
          vjpRows += res.rows;
          add(node.x, res.gx);
          const B = this.setup.batch;
          node.sigmas.forEach((s, j) => {
            let g = 0;
            for (let r = j * B; r < (j + 1) * B; r++) g += res.gs[r]!;
            addScalar(s, g);
          });
          break;
        }
      }
    }
    return { leaves: leaves.map((l) => cot.get(l.id)), paramGrad, vjpRows };
  }
}
