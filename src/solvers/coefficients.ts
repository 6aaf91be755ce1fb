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

export function effectiveCoefficients(raw: RawParams, bounds: CoefficientBounds): Coefficients {
  const steps = raw.r.length;
  const sd = Math.min(bounds.scaleDir, 0.99);
  const st = Math.min(bounds.scaleTime, 0.99);
  const out: Coefficients = { r: [], scaleDir: [], scaleTime: [], weight: [], gamma: [] };
  for (let i = 0; i < steps; i++) {
    const lastFcn = bounds.fcn && i === steps - 1;
    out.r.push(raw.r[i]!.map(sigmoid));
    out.scaleDir.push(raw.scaleDir[i]!.map((v) => (sd === 0 || lastFcn ? 1 : 1 + sd * Math.tanh(v / 2))));
    out.scaleTime.push(raw.scaleTime[i]!.map((v) => (st === 0 ? 1 : 1 + st * Math.tanh(v / 2))));
    out.weight.push(softmax(raw.weight[i]!));
    out.gamma.push(
      raw.gamma[i]!.map((v) => (bounds.gamma === 0 ? 0 : bounds.gammaMin + (bounds.gamma - bounds.gammaMin) * sigmoid((v + GAMMA_OFFSET) / 2))),
    );
  }
  return out;
}

/** gamma_i = sum_j w_ij gamma_ij (0 on the first interval, ALGORITHM.md 4). */
export function stepGamma(c: Coefficients, i: number): number {
  if (i === 0) return 0;
  let g = 0;
  c.gamma[i]!.forEach((v, j) => (g += c.weight[i]![j]! * v));
  return g;
}
