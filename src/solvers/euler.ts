/** Euler (DDIM in the EDM parameterisation), ALGORITHM.md 3: x_{i+1} = x_i + h d_i. NFE N-1. */
import { axpy, stepwise, type BaseSolverOptions } from './common.js';
import type { SolverContext } from './types.js';

export function sampleEuler(x0: Float64Array, ctx: SolverContext, opts: BaseSolverOptions = {}): Promise<Float64Array> {
  return stepwise(x0, ctx, opts, async (_ev, x, tCur, tNext, dCur) => axpy(x, tNext - tCur, dCur, dCur));
}
