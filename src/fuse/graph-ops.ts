/**
 * The graph-building implementation of the solvers' array operations (src/solvers/ops.ts):
 * every array is a float32 tensor of the ONNX graph being built and every op appends the
 * nodes that compute it. Running a solver's `solve` on `GraphOps` therefore writes that
 * solver, step by step, as a graph: the same arithmetic, in the same order, as the host loop
 * runs on Float64Array states, with the schedule, the coefficients and every solver constant
 * folded into float32 initializers (they are known when the graph is built).
 *
 * States are [N, C, H, W] with N the graph's dynamic batch; AdaSDE's K stacked points are
 * [K * N, C, H, W], block j holding rows j N .. (j + 1) N - 1, as in the eager layout.
 * `release` and `reportStep` have nothing to do in a graph.
 */
import { numberScalars, type SolverOps } from '../solvers/ops.js';
import type { GraphBuilder } from '../onnx/builder.js';

/** Evaluates the denoiser on `x` ([blocks * N, C, H, W]) at the per-row noise levels `sigma` ([blocks * N]). */
export type GraphDenoiser = (x: string, sigma: string, blocks: number) => string;

export interface GraphOpsSetup {
  g: GraphBuilder;
  /** [C, H, W] of one sample. */
  sampleShape: readonly [number, number, number];
  /** int64 [1]: the batch N, read from the z input at run time. */
  batchShape: string;
  denoise: GraphDenoiser;
  /** The name of the SDE-noise input, declared by the caller once the solver has run. */
  noiseInput: string;
}

/** Dynamic thresholding's quantile (Saharia et al. 2022, as common.ts's `threshold`). */
const THRESHOLD_RATIO = 0.995;

export class GraphOps implements SolverOps<string> {
  readonly scalar = numberScalars;
  /** Model evaluations per sample: each block of a stacked call counts, as the NFE formulas count AdaSDE's K points. */
  nfe = 0;
  /** The intervals whose SDE noise the graph reads, in the order of the noise input's first axis. */
  readonly noiseIntervals: number[] = [];
  private readonly g: GraphBuilder;

  constructor(private readonly setup: GraphOpsSetup) {
    this.g = setup.g;
  }

  private c(v: number): string {
    return this.g.scalar(v);
  }

  private int64(values: readonly number[]): string {
    return this.g.constantInt64(values, [values.length], 'shape');
  }

  /** [K, N, C, H, W] view of a stacked [K * N, C, H, W] array, for reading block j. */
  private block(stacked: string, K: number, j: number): string {
    const [C, H, W] = this.setup.sampleShape;
    const blocks = this.g.op('Reshape', [stacked, this.int64([K, -1, C, H, W])], {}, 'blocks');
    return this.g.op('Gather', [blocks, this.g.constantInt64([j], [], 'index')], { axis: { i: 0 } }, 'block');
  }

  release(): void {}

  reportStep(): void {}

  axpy(a: string, s: number, b: string): string {
    return this.g.op('Add', [a, this.g.op('Mul', [b, this.c(s)])], {}, 'axpy');
  }

  diffOver(u: string, v: string, r: number): string {
    return this.g.op('Div', [this.g.op('Sub', [u, v]), this.c(r)], {}, 'diff_over');
  }

  scale(x: string, s: number): string {
    return this.g.op('Mul', [x, this.c(s)], {}, 'scale');
  }

  axmby(a: number, x: string, c: number, y: string): string {
    return this.g.op('Sub', [this.g.op('Mul', [x, this.c(a)]), this.g.op('Mul', [y, this.c(c)])], {}, 'axmby');
  }

  combine(a: string, s: number, c: readonly number[], v: readonly string[]): string {
    // a + s (sum_j c_j v_j), the sum left to right, as the eager kernel.
    let acc: string | undefined;
    v.forEach((vj, j) => {
      const term = this.g.op('Mul', [vj, this.c(c[j]!)]);
      acc = acc === undefined ? term : this.g.op('Add', [acc, term]);
    });
    if (acc === undefined) return a;
    return this.g.op('Add', [a, this.g.op('Mul', [acc, this.c(s)])], {}, 'combine');
  }

  /**
   * Per sample s = max(quantile_0.995(|D|), 1) with torch.quantile's linear interpolation,
   * D <- clip(D, -s, s) / s. The two order statistics come from TopK over |D|: the lo-th
   * smallest of `dim` values is the (dim - lo)-th largest.
   */
  threshold(den: string): string {
    const [C, H, W] = this.setup.sampleShape;
    const dim = C * H * W;
    const pos = THRESHOLD_RATIO * (dim - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(lo + 1, dim - 1);
    const m = dim - lo;
    const g = this.g;
    const flat = g.op('Reshape', [den, this.int64([0, -1])], {}, 'flat');
    const abs = g.op('Abs', [flat]);
    const [top] = g.opN('TopK', [abs, this.int64([m])], 2, { axis: { i: 1 }, largest: { i: 1 }, sorted: { i: 1 } }, 'top');
    // Descending: position m - 1 holds order statistic lo, position m - 2 order statistic lo + 1.
    const qLo = g.op('Gather', [top!, g.constantInt64([m - 1], [], 'index')], { axis: { i: 1 } }, 'q_lo');
    const qHi = hi > lo ? g.op('Gather', [top!, g.constantInt64([m - 2], [], 'index')], { axis: { i: 1 } }, 'q_hi') : qLo;
    const q = g.op('Add', [qLo, g.op('Mul', [g.op('Sub', [qHi, qLo]), this.c(pos - lo)])], {}, 'quantile');
    const s = g.op('Reshape', [g.op('Max', [q, this.c(1)]), this.int64([-1, 1, 1, 1])], {}, 'threshold_s');
    const clipped = g.op('Min', [g.op('Max', [den, g.op('Neg', [s])]), s]);
    return g.op('Div', [clipped, s], {}, 'thresholded');
  }

  stackPoints(x: string, steps: readonly number[], d: string): string {
    const points = steps.map((s) => this.axpy(x, s, d));
    return points.length === 1 ? points[0]! : this.g.op('Concat', points, { axis: { i: 0 } }, 'points');
  }

  addStackedDirections(acc: string, f: readonly number[], u: string, v: string, r: readonly number[]): string {
    // acc + sum_j f_j (u_j - v_j) / r_j, added in order j = 0, 1, ... as the eager kernel.
    const K = f.length;
    const diff = this.g.op('Sub', [u, v]);
    let out = acc;
    for (let j = 0; j < K; j++) {
      const dj = K === 1 ? diff : this.block(diff, K, j);
      out = this.g.op('Add', [out, this.g.op('Div', [this.g.op('Mul', [dj, this.c(f[j]!)]), this.c(r[j]!)])], {}, 'direction_sum');
    }
    return out;
  }

  async denoise(x: string, sigmas: readonly number[]): Promise<string> {
    this.nfe += sigmas.length;
    // One noise level per row: block j of the stacked batch at sigmas[j].
    const levels = sigmas.map((s) => this.g.op('Expand', [this.g.constant([s], [1], 'sigma'), this.setup.batchShape], {}, 'sigma_rows'));
    const sigma = levels.length === 1 ? levels[0]! : this.g.op('Concat', levels, { axis: { i: 0 } }, 'sigma_rows');
    return this.setup.denoise(x, sigma, sigmas.length);
  }

  noise(i: number): string {
    const k = this.noiseIntervals.push(i) - 1;
    return this.g.op('Gather', [this.setup.noiseInput, this.g.constantInt64([k], [], 'index')], { axis: { i: 0 } }, `noise_${i}`);
  }
}
