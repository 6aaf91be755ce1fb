/**
 * Improved PNDM (Zhang & Chen 2023): Adams-Bashforth multistep on the ODE direction with
 * fixed weights, order min(max_order, i+1), ALGORITHM.md 3. NFE N-1.
 */
import { afsDirection, axpyCombine, Evaluator, finish, type BaseSolverOptions } from './common.js';
import type { SolverContext } from './types.js';

export interface IpndmOptions extends BaseSolverOptions {
  /** 1..4, default 4. */
  maxOrder?: number;
}

/** Adams-Bashforth weights for d_i, d_{i-1}, d_{i-2}, d_{i-3}. */
const AB_WEIGHTS: readonly (readonly number[])[] = [
  [1],
  [3 / 2, -1 / 2],
  [23 / 12, -16 / 12, 5 / 12],
  [55 / 24, -59 / 24, 37 / 24, -9 / 24],
];

export async function sampleIpndm(x0: Float64Array, ctx: SolverContext, opts: IpndmOptions = {}): Promise<Float64Array> {
  const maxOrder = opts.maxOrder ?? 4;
  if (!(maxOrder >= 1 && maxOrder <= 4)) throw new RangeError(`ipndm max_order must be 1..4, got ${maxOrder}`);
  const ev = new Evaluator(ctx);
  const t = ctx.tSteps;
  const n = t.length - 1;
  let x = x0;
  const history: Float64Array[] = []; // newest first
  for (let i = 0; i < n; i++) {
    const tCur = t[i]!;
    const tNext = t[i + 1]!;
    const dCur = opts.afs && i === 0 ? afsDirection(x, tCur, ev.take()) : await ev.d(x, tCur);
    history.unshift(dCur);
    if (history.length > 4) ev.give(history.pop());
    const order = Math.min(maxOrder, i + 1);
    const xNext = axpyCombine(x, tNext - tCur, AB_WEIGHTS[order - 1]!, history.slice(0, order), ev.take());
    ev.step(i, tCur, tNext, xNext, ctx.callback, n);
    if (x !== x0) ev.give(x);
    x = xNext;
  }
  ev.give(...history);
  return finish(ev, x, t[n]!, opts.denoiseToZero);
}
