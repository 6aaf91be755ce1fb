/**
 * The AdaSDE coefficient parameterisation, ALGORITHM.md 4.1. Raw parameters are
 * unconstrained reals, one (N-1) x K table each; the effective coefficients are bounded
 * smooth functions of them, so gradient steps can never leave the admissible region.
 */

export interface RawParams {
  r: number[][];
  scaleDir: number[][];
  scaleTime: number[][];
  weight: number[][];
  gamma: number[][];
}

export interface CoefficientBounds {
  /** Bound of |c - 1| (scale_dir), 0 disables. */
  scaleDir: number;
  /** Bound of |a - 1| (scale_time), 0 disables. */
  scaleTime: number;
  /** gamma_max, 0 disables noise injection. */
  gamma: number;
  gammaMin: number;
  /** Force c = 1 on the last interval. */
  fcn: boolean;
}

/** Effective per-interval coefficients, each (N-1) x K. */
export interface Coefficients {
  r: number[][];
  scaleDir: number[][];
  scaleTime: number[][];
  weight: number[][];
  gamma: number[][];
}

/** One interval's coefficients, one value per point j: numbers, or dual numbers in training. */
export interface IntervalCoefficients<S> {
  r: readonly S[];
  scaleDir: readonly S[];
  scaleTime: readonly S[];
  weight: readonly S[];
  gamma: readonly S[];
}

/** Interval i of the effective coefficients. */
export function intervalCoefficients(c: Coefficients, i: number): IntervalCoefficients<number> {
  return { r: c.r[i]!, scaleDir: c.scaleDir[i]!, scaleTime: c.scaleTime[i]!, weight: c.weight[i]!, gamma: c.gamma[i]! };
}

export const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

/** Offset b = 2 ln(0.6/0.4) puts sigmoid((g + b)/2) at 0.6 for g = 0. */
export const GAMMA_OFFSET = 2 * Math.log(0.6 / 0.4);

export function softmax(v: readonly number[]): number[] {
  const m = Math.max(...v);
  const e = v.map((x) => Math.exp(x - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

/**
 * The bound of |c - 1| and |a - 1| actually used: at most 0.99, so the scales stay positive
 * (c = 1 + bound tanh(raw / 2) > 0.01).
 */
export function scaleBound(bound: number): number {
  return Math.min(bound, 0.99);
}

/** Whether interval i's direction scale is a function of its raw parameter (not held at 1). */
export function scaleDirLive(b: CoefficientBounds, i: number, steps: number): boolean {
  return scaleBound(b.scaleDir) !== 0 && !(b.fcn && i === steps - 1);
}

export function effectiveCoefficients(raw: RawParams, bounds: CoefficientBounds): Coefficients {
  const steps = raw.r.length;
  const sd = scaleBound(bounds.scaleDir);
  const st = scaleBound(bounds.scaleTime);
  const out: Coefficients = { r: [], scaleDir: [], scaleTime: [], weight: [], gamma: [] };
  for (let i = 0; i < steps; i++) {
    const dirLive = scaleDirLive(bounds, i, steps);
    out.r.push(raw.r[i]!.map(sigmoid));
    out.scaleDir.push(raw.scaleDir[i]!.map((v) => (dirLive ? 1 + sd * Math.tanh(v / 2) : 1)));
    out.scaleTime.push(raw.scaleTime[i]!.map((v) => (st === 0 ? 1 : 1 + st * Math.tanh(v / 2))));
    out.weight.push(softmax(raw.weight[i]!));
    out.gamma.push(
      raw.gamma[i]!.map((v) => (bounds.gamma === 0 ? 0 : bounds.gammaMin + (bounds.gamma - bounds.gammaMin) * sigmoid((v + GAMMA_OFFSET) / 2))),
    );
  }
  return out;
}

/** The five raw parameter tables, in the order of the predictor file and of training's gradient vector. */
export const RAW_PARAM_NAMES = ['r', 'scaleDir', 'scaleTime', 'weight', 'gamma'] as const;
export type RawParamName = (typeof RAW_PARAM_NAMES)[number];

/** One raw parameter: table `name`, interval i, point j. */
export interface ParamRef {
  name: RawParamName;
  i: number;
  j: number;
}

/**
 * The raw parameters of interval i that can change the trajectory under these bounds: the
 * others are held constant by the parameterisation (effectiveCoefficients).
 */
export function liveParams(i: number, K: number, numIntervals: number, b: CoefficientBounds): ParamRef[] {
  const out: ParamRef[] = [];
  const add = (name: RawParamName) => {
    for (let j = 0; j < K; j++) out.push({ name, i, j });
  };
  add('r');
  if (scaleDirLive(b, i, numIntervals)) add('scaleDir');
  if (scaleBound(b.scaleTime) > 0) add('scaleTime');
  // With one point the softmax weight is identically 1.
  if (K > 1) add('weight');
  // gamma_0 is forced to 0 (ALGORITHM.md 4), so the first interval's gamma parameters are not in the graph.
  if (b.gamma > 0 && i > 0) add('gamma');
  return out;
}

/**
 * The derivatives of interval i's effective coefficients with respect to one raw parameter:
 * per table, one value per point j (zero unless `ref` is a parameter of interval i), the
 * derivatives of the maps in effectiveCoefficients:
 *   r = sigmoid(v): r (1 - r);  c, a = 1 + bound tanh(v / 2): bound (1 - tanh^2(v / 2)) / 2;
 *   w = softmax(v): dw_q / dv_j = w_q (delta_qj - w_j);
 *   gamma = gmin + (gmax - gmin) sigmoid((v + b) / 2): (gmax - gmin) s (1 - s) / 2.
 */
export function coefficientDerivatives(ref: ParamRef, i: number, raw: RawParams, c: Coefficients, b: CoefficientBounds): Record<RawParamName, Float64Array> {
  const K = c.r[i]!.length;
  const z = { r: new Float64Array(K), scaleDir: new Float64Array(K), scaleTime: new Float64Array(K), weight: new Float64Array(K), gamma: new Float64Array(K) };
  if (ref.i !== i) return z;
  const j = ref.j;
  const tanhSlope = (bound: number, v: number) => {
    const th = Math.tanh(v / 2);
    return (scaleBound(bound) * (1 - th * th)) / 2;
  };
  switch (ref.name) {
    case 'r': {
      const r = c.r[i]![j]!;
      z.r[j] = r * (1 - r);
      break;
    }
    case 'scaleDir':
      if (scaleDirLive(b, i, c.r.length)) z.scaleDir[j] = tanhSlope(b.scaleDir, raw.scaleDir[i]![j]!);
      break;
    case 'scaleTime':
      z.scaleTime[j] = tanhSlope(b.scaleTime, raw.scaleTime[i]![j]!);
      break;
    case 'weight': {
      const w = c.weight[i]!;
      for (let q = 0; q < K; q++) z.weight[q] = w[q]! * ((q === j ? 1 : 0) - w[j]!);
      break;
    }
    case 'gamma':
      if (b.gamma !== 0) {
        const s = sigmoid((raw.gamma[i]![j]! + GAMMA_OFFSET) / 2);
        z.gamma[j] = ((b.gamma - b.gammaMin) * s * (1 - s)) / 2;
      }
      break;
  }
  return z;
}
