/**
 * The array operations every solver is written against (issue 16), so one definition of a
 * solver's arithmetic serves three implementations:
 *
 *  - `EagerOps` (this file): Float64Array states, the element-wise kernels of common.ts, the
 *    run's array pool and the context's denoiser; what `adasde sample` runs.
 *  - a graph-building implementation (the fused ONNX sampler): every array is a tensor of the
 *    graph being built and every op appends nodes;
 *  - a tangent-carrying implementation (src/train/dual.ts): arrays carry their directional
 *    derivatives with respect to the raw AdaSDE coefficients and scalars carry theirs, which
 *    is how training differentiates the very step the sampler runs.
 *
 * Contract, for every implementation:
 *  - Each op is a pure function of its arguments and returns a new array handle (A). Ops
 *    never modify an argument, except that an op offered `reuse` (an array of the same size
 *    the caller gives up with this call: one of the op's inputs, or a state it no longer
 *    reads) may write its result over it: the eager kernels read each element before
 *    writing it, so the meaning never depends on the aliasing, and other implementations
 *    ignore the hint. After the call the caller must not use `reuse` again (in eager mode
 *    it IS the result).
 *  - Scalars (S) are what the schedule, the coefficients and the solver constants are made
 *    of: plain float64 numbers in eager and graph mode (known when the graph is built),
 *    dual numbers in training. A solver may branch on `scalar.value(s)` (e.g. gamma_i > 0):
 *    such branches depend on the coefficients, never on the data.
 *  - Data-dependent work is an op of its own: the denoiser call (`denoise`, one per model
 *    evaluation, whose blocks may sit at different noise levels), the SDE noise of an
 *    interval (`noise`), dynamic thresholding's per-sample quantile (`threshold`).
 *  - `release` hands arrays back for reuse (eager: the pool of src/solvers/pool.ts) and
 *    `reportStep` tells the caller's progress callback about x_{i+1}; both are no-ops for a
 *    graph. Releasing an array the solver did not get from an op (x_0) is never done.
 *
 * Arrays hold `rows` samples of `dim` values each: a state is [B * dim]; the stacked states of
 * AdaSDE's K points are [K * B * dim], block j holding rows j*B .. (j+1)*B - 1.
 */
import { axmby, axpy, axpyCombine, diffOver, repeatConditioning, scale, threshold, type BaseSolverOptions } from './common.js';
import { ArrayPool } from './pool.js';
import type { SolverContext } from './types.js';

/** Arithmetic on a step's scalars (t_hat, std, t_mid, sigma, f, ...). */
export interface ScalarOps<S> {
  /** A constant (no derivative). */
  of(v: number): S;
  /** The value itself, for branches on coefficients. */
  value(s: S): number;
  add(a: S, b: S): S;
  sub(a: S, b: S): S;
  mul(a: S, b: S): S;
  div(a: S, b: S): S;
  sqrt(a: S): S;
  /** a ** b */
  pow(a: S, b: S): S;
}

/** Plain float64 scalars: the eager and graph implementations' `scalar`. */
export const numberScalars: ScalarOps<number> = {
  of: (v) => v,
  value: (s) => s,
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  sqrt: (a) => Math.sqrt(a),
  pow: (a, b) => a ** b,
};

/**
 * The operations AdaSDE's step (and the one-step solvers' building blocks) are written in;
 * every one of them is differentiable, so training implements this set with tangents.
 */
export interface ArrayOps<A, S = number> {
  readonly scalar: ScalarOps<S>;
  /** a + s b */
  axpy(a: A, s: S, b: A, reuse?: A): A;
  /** (u - v) / r */
  diffOver(u: A, v: A, r: S, reuse?: A): A;
  /** x s */
  scale(x: A, s: S, reuse?: A): A;
  /**
   * K states stacked along the batch, [K * rows * dim]: block j = x + steps_j d (the K
   * intermediate points of AdaSDE, ALGORITHM.md 4).
   */
  stackPoints(x: A, steps: readonly S[], d: A): A;
  /**
   * acc + sum_j f_j (u_j - v_j) / r_j, where u_j, v_j are the blocks of the stacked u, v
   * (K = f.length blocks of acc's size), added in order j = 0, 1, ...: AdaSDE's update
   * x_{i+1} = x_hat + sum_j w_ij c_ij (t_{i+1} - t_hat) d_mid_j with d_mid_j = (x_mid_j - D_j) / t_mid_j.
   */
  addStackedDirections(acc: A, f: readonly S[], u: A, v: A, r: readonly S[]): A;
  /**
   * One model evaluation D(x, sigma) (ALGORITHM.md 1): x holds sigmas.length blocks of the
   * batch, every row of block j at noise level sigmas[j]; the conditioning is repeated per
   * block. Counts as one NFE whatever the number of blocks.
   */
  denoise(x: A, sigmas: readonly S[]): Promise<A>;
  /** The SDE noise of interval i: per sample, a standard normal vector from that sample's seed stream. */
  noise(i: number): A;
  /** Gives arrays back for reuse; the caller must not touch them afterwards. */
  release(...arrays: (A | undefined)[]): void;
  /** x_{i+1} is done (the progress callback); `total` intervals in all. */
  reportStep(i: number, tCur: number, tNext: number, x: A, total: number): void;
}

/** The rest of what the baseline solvers need (multistep combinations, thresholding). */
export interface SolverOps<A> extends ArrayOps<A, number> {
  /** a x - c y */
  axmby(a: number, x: A, c: number, y: A, reuse?: A): A;
  /**
   * a + s (sum_j c_j v_j), the sum taken left to right inside the product (not the same
   * rounding as a chain of axpy).
   */
  combine(a: A, s: number, c: readonly number[], v: readonly A[], reuse?: A): A;
  /**
   * Dynamic thresholding of a data prediction (Saharia et al. 2022, as DPM-Solver++ uses
   * it): per sample s = max(quantile_0.995(|D|), 1), D <- clip(D, -s, s) / s.
   */
  threshold(den: A, reuse?: A): A;
}

/** What the eager implementation needs: a SolverContext without the time grid. */
export type EagerSetup = Omit<SolverContext, 'tSteps'>;

/**
 * Float64Array states with the kernels of common.ts (bit for bit the arithmetic the solvers
 * had before this interface); temporaries come from the run's pool and results of `reuse`
 * ops are written over the given-up input. Counts denoiser evaluations per sample (`nfe`).
 */
export class EagerOps implements SolverOps<Float64Array> {
  readonly scalar = numberScalars;
  /** Denoiser evaluations per sample so far. */
  nfe = 0;
  readonly pool: ArrayPool;
  constructor(private readonly setup: EagerSetup) {
    this.pool = setup.pool ?? new ArrayPool();
  }

  /** A [B * dim] array (or `length` values) with unspecified contents. */
  take(length = this.setup.batch * this.setup.dim): Float64Array {
    return this.pool.take(length);
  }

  release(...arrays: (Float64Array | undefined)[]): void {
    this.pool.give(...arrays);
  }

  axpy(a: Float64Array, s: number, b: Float64Array, reuse?: Float64Array): Float64Array {
    return axpy(a, s, b, reuse ?? this.take(a.length));
  }

  diffOver(u: Float64Array, v: Float64Array, r: number, reuse?: Float64Array): Float64Array {
    return diffOver(u, v, r, reuse ?? this.take(u.length));
  }

  scale(x: Float64Array, s: number, reuse?: Float64Array): Float64Array {
    return scale(x, s, reuse ?? this.take(x.length));
  }

  axmby(a: number, x: Float64Array, c: number, y: Float64Array, reuse?: Float64Array): Float64Array {
    return axmby(a, x, c, y, reuse ?? this.take(x.length));
  }

  combine(a: Float64Array, s: number, c: readonly number[], v: readonly Float64Array[], reuse?: Float64Array): Float64Array {
    return axpyCombine(a, s, c, v, reuse ?? this.take(a.length));
  }

  threshold(den: Float64Array, reuse?: Float64Array): Float64Array {
    return threshold(den, den.length / this.setup.dim, undefined, undefined, reuse ?? this.take(den.length));
  }

  stackPoints(x: Float64Array, steps: readonly number[], d: Float64Array): Float64Array {
    const len = x.length;
    const out = this.take(steps.length * len);
    steps.forEach((s, j) => axpy(x, s, d, out.subarray(j * len, (j + 1) * len)));
    return out;
  }

  addStackedDirections(acc: Float64Array, f: readonly number[], u: Float64Array, v: Float64Array, r: readonly number[]): Float64Array {
    const len = acc.length;
    const out = this.take(len);
    // The first term is written straight from acc, the others added to out in order.
    for (let j = 0; j < f.length; j++) addScaledDiff(j === 0 ? acc : out, f[j]!, u.subarray(j * len, (j + 1) * len), v.subarray(j * len, (j + 1) * len), r[j]!, out);
    return out;
  }

  async denoise(x: Float64Array, sigmas: readonly number[]): Promise<Float64Array> {
    const { batch, cond } = this.setup;
    const K = sigmas.length;
    const sigma = new Float64Array(K * batch);
    sigmas.forEach((s, j) => sigma.fill(s, j * batch, (j + 1) * batch));
    this.nfe++;
    const out = this.take(x.length);
    const den = await this.setup.denoise({ x, sigma, batch: K * batch, cond: repeatConditioning(cond, K), out });
    // A denoiser that hands back x itself (identity tests) must not make x and D one array.
    if (den === x) {
      out.set(den);
      return out;
    }
    if (den !== out) this.release(out);
    return den;
  }

  noise(i: number): Float64Array {
    const { noise, batch, dim } = this.setup;
    if (!noise) throw new RangeError('AdaSDE with gamma > 0 needs a per-seed noise source');
    return noise(i, batch, dim, this.take());
  }

  reportStep(i: number, tCur: number, tNext: number, x: Float64Array, total: number): void {
    this.setup.callback?.({ i, total, tCur, tNext, x, nfe: this.nfe });
  }
}

/** out = acc + f (u - v) / r, into out (which may be acc). */
function addScaledDiff(acc: Float64Array, f: number, u: Float64Array, v: Float64Array, r: number, out: Float64Array): void {
  for (let k = 0; k < acc.length; k++) out[k] = acc[k]! + (f * (u[k]! - v[k]!)) / r;
}

/*
 * Building blocks written once against the interface.
 */

/** d = (x - D(x, t)) / t, the probability-flow ODE direction dx/dsigma (ALGORITHM.md 1), over D's array. */
export async function odeDirection<A, S>(o: ArrayOps<A, S>, x: A, t: S): Promise<A> {
  const den = await o.denoise(x, [t]);
  return o.diffOver(x, den, t, den);
}

/**
 * AFS (analytic first step, ALGORITHM.md 3): at sigma = t the ODE direction of N(0, I) data
 * is x / sqrt(1 + t^2), which replaces the first denoiser call. Paper: Zhou et al. 2024 ("Fast
 * ODE-based Sampling for Diffusion Models in Around 5 Steps", the AMED-Solver paper), its
 * analytical first step.
 */
export function afsDirection<A, S>(o: ArrayOps<A, S>, x: A, t: S): A {
  const s = o.scalar;
  return o.scale(x, s.div(s.of(1), s.sqrt(s.add(s.of(1), s.mul(t, t)))));
}

/** The denoised estimate implied by AFS: D = x - t d = x (1 - t / sqrt(1 + t^2)). */
export function afsDenoised<A, S>(o: ArrayOps<A, S>, x: A, t: S): A {
  const s = o.scalar;
  return o.scale(x, s.sub(s.of(1), s.div(t, s.sqrt(s.add(s.of(1), s.mul(t, t))))));
}

/** The optional final x <- D(x, t_{N-1}) (+1 NFE) every solver offers. */
export async function finalDenoise<A, S>(o: ArrayOps<A, S>, x: A, tLast: S, denoiseToZero: boolean | undefined): Promise<A> {
  return denoiseToZero ? o.denoise(x, [tLast]) : x;
}

/**
 * One step from (x, tCur) to tNext, given the ODE direction dCur at x. The step owns `dCur`
 * (it may write over it or release it) and leaves `x` alone; it returns x_{i+1}.
 */
export type StepFn = <A>(o: SolverOps<A>, x: A, tCur: number, tNext: number, dCur: A) => Promise<A>;

/**
 * The loop of the one-step-per-interval solvers (euler, heun, dpm): the direction at t_i
 * (AFS replaces it on the first interval), then the solver's step to t_{i+1}.
 */
export async function stepwise<A>(o: SolverOps<A>, x0: A, t: Float64Array, opts: BaseSolverOptions, step: StepFn): Promise<A> {
  const n = t.length - 1;
  let x = x0;
  for (let i = 0; i < n; i++) {
    const tCur = t[i]!;
    const tNext = t[i + 1]!;
    const dCur = opts.afs && i === 0 ? afsDirection(o, x, tCur) : await odeDirection(o, x, tCur);
    const xNext = await step(o, x, tCur, tNext, dCur);
    o.reportStep(i, tCur, tNext, xNext, n);
    // x_0 belongs to the caller; every later state is the loop's own.
    if (x !== x0) o.release(x);
    x = xNext;
  }
  return finalDenoise(o, x, t[n]!, opts.denoiseToZero);
}
