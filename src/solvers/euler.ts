/** Euler (DDIM in the EDM parameterisation), ALGORITHM.md 3: x_{i+1} = x_i + h d_i. NFE N-1. */
import { afsDirection, axpy, Evaluator, finish, type BaseSolverOptions } from './common.js';
import type { SolverContext } from './types.js';

export async function sampleEuler(x0: Float64Array, ctx: SolverContext, opts: BaseSolverOptions = {}): Promise<Float64Array> {
  const ev = new Evaluator(ctx);
  const t = ctx.tSteps;
  const n = t.length - 1;
  let x = x0;
  for (let i = 0; i < n; i++) {
    const tCur = t[i]!;
    const tNext = t[i + 1]!;
    const dCur = opts.afs && i === 0 ? afsDirection(x, tCur) : await ev.d(x, tCur);
    x = axpy(x, tNext - tCur, dCur);
    ev.step(i, tCur, tNext, x, ctx.callback, n);
  }
  return finish(ev, x, t[n]!, opts.denoiseToZero);
}
