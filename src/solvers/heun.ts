/**
 * Heun's second-order method (EDM, Karras et al. 2022, Algorithm 1 without churn),
 * ALGORITHM.md 3. NFE 2(N-1), one fewer with AFS.
 */
import { afsDirection, axpy, combine, Evaluator, finish, type BaseSolverOptions } from './common.js';
import type { SolverContext } from './types.js';

/** One Heun step from (x, tCur) to tNext given the direction at x. */
export async function heunStep(ev: Evaluator, x: Float64Array, tCur: number, tNext: number, dCur: Float64Array): Promise<Float64Array> {
  const h = tNext - tCur;
  const xPrime = axpy(x, h, dCur);
  const dPrime = await ev.d(xPrime, tNext);
  return axpy(x, h, combine([0.5, 0.5], [dCur, dPrime]));
}

export async function sampleHeun(x0: Float64Array, ctx: SolverContext, opts: BaseSolverOptions = {}): Promise<Float64Array> {
  const ev = new Evaluator(ctx);
  const t = ctx.tSteps;
  const n = t.length - 1;
  let x = x0;
  for (let i = 0; i < n; i++) {
    const tCur = t[i]!;
    const tNext = t[i + 1]!;
    const dCur = opts.afs && i === 0 ? afsDirection(x, tCur) : await ev.d(x, tCur);
    x = await heunStep(ev, x, tCur, tNext, dCur);
    ev.step(i, tCur, tNext, x, ctx.callback, n);
  }
  return finish(ev, x, t[n]!, opts.denoiseToZero);
}
