/**
 * Where training switches from forward mode to reverse mode (ALGORITHM.md 4.3, exact
 * gradients through the whole student trajectory either way).
 *
 * Forward mode (dual.ts) pays one model row per live tangent at every evaluation, and the
 * number of tangents grows by one interval's coefficients per interval, so interval i costs
 * O(i) rows. Reverse mode (tape.ts) pays one forward row per evaluation, but because
 * ALGORITHM.md 4.3 takes an Adam step after every interval, interval i's loss must be
 * back-propagated through every taped evaluation up to it: O(i - k) VJPs for loss i when the
 * tape starts at interval k. The hybrid carries forward tangents up to x_k and tapes the
 * rest; the gradient of a taped loss with respect to a coefficient of an interval before k
 * is the dot product of x_k's cotangent with that coefficient's tangent.
 *
 * This file counts both per trajectory, from the structure alone, and picks the cheapest k.
 */
import { liveParams, scaleDirLive, type CoefficientBounds } from '../solvers/coefficients.js';

/**
 * A VJP row's cost in forward rows, for choosing k: the VJP graph repeats the forward pass and
 * adds the backward one (bench/vjp_cost.ts measures the ratio; bench/RESULTS.md, "Training
 * cost"). A constant, not a measurement at run time, so that a run's split (and so its
 * rounding) does not depend on the machine's load.
 */
export const VJP_ROW_COST = 3;

export interface GradientShape {
  /** Student intervals N - 1. */
  intervals: number;
  /** Points per interval K. */
  numPoints: number;
  afs: boolean;
  bounds: CoefficientBounds;
}

/** Model evaluations (rows per sample) of interval i: the direction at t_hat (not with AFS on interval 0) and the K points. */
export function intervalRows(s: GradientShape, i: number): number {
  return (s.afs && i === 0 ? 0 : 1) + s.numPoints;
}

/**
 * Rows per trajectory of interval i in forward mode: each evaluation costs its rows once for
 * the point and once more per tangent live there (jvp.ts, forward differences). At the
 * direction's evaluation the incoming tangents and the interval's gamma (and, with several
 * points, the weights that mix gamma) are live; at the K points also r and scale_time (and
 * the weights and gamma through t_hat), never scale_dir, which only scales the update.
 */
export function forwardIntervalRows(s: GradientShape, i: number, copiesPerTangent = 1): number {
  const K = s.numPoints;
  let incoming = 0;
  for (let j = 0; j < i; j++) incoming += liveParams(j, K, s.intervals, s.bounds).length;
  const fresh = liveParams(i, K, s.intervals, s.bounds);
  const count = (name: string) => fresh.filter((p) => p.name === name).length;
  const gammaLive = count('gamma') > 0;
  let rows = 0;
  if (!(s.afs && i === 0)) rows += 1 + copiesPerTangent * (incoming + (gammaLive ? count('gamma') + count('weight') : 0));
  const atPoints = incoming + fresh.length - (scaleDirLive(s.bounds, i, s.intervals) ? count('scaleDir') : 0) - (gammaLive ? 0 : count('weight'));
  rows += K * (1 + copiesPerTangent * atPoints);
  return rows;
}

export interface GradientCost {
  /** Forward rows (points and finite-difference copies) per trajectory. */
  forwardRows: number;
  /** Rows sent through VJPs per trajectory. */
  vjpRows: number;
  /** forwardRows + vjpCost * vjpRows. */
  total: number;
}

/** The cost per trajectory of taping from interval k on (k = intervals: forward mode only). */
export function hybridCost(s: GradientShape, k: number, vjpCost: number, copiesPerTangent = 1): GradientCost {
  let forwardRows = 0;
  let vjpRows = 0;
  for (let i = 0; i < k; i++) forwardRows += forwardIntervalRows(s, i, copiesPerTangent);
  let taped = 0;
  for (let i = k; i < s.intervals; i++) {
    forwardRows += intervalRows(s, i);
    taped += intervalRows(s, i);
    // loss i is back-propagated through every taped evaluation so far.
    vjpRows += taped;
  }
  return { forwardRows, vjpRows, total: forwardRows + vjpCost * vjpRows };
}

/** The k with the lowest cost (ties: the later k, fewer VJPs). */
export function bestReverseFrom(s: GradientShape, vjpCost: number, copiesPerTangent = 1): number {
  let best = s.intervals;
  let bestCost = hybridCost(s, best, vjpCost, copiesPerTangent).total;
  for (let k = s.intervals - 1; k >= 0; k--) {
    const c = hybridCost(s, k, vjpCost, copiesPerTangent).total;
    if (c < bestCost) {
      best = k;
      bestCost = c;
    }
  }
  return best;
}
