/**
 * Test-only builders for one training batch (src/train/loop.ts trainBatch): a TrainSetup with
 * the single-process defaults whose reducer records every interval's [loss, gradient] vector,
 * and the comparison of two such records.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { TrainSetup } from '../../src/train/loop.js';

type Given = Omit<TrainSetup, 'M' | 'teacher' | 'lr' | 'coslr' | 'totalKimg' | 'alpha' | 'rank' | 'worldSize' | 'reduce' | 'labelDim' | 'numPoints'> & Partial<TrainSetup>;

/** `given` completed with one process, M 1, the dpm teacher, lr 0.2 without decay, alpha 20; `grads` fills as trainBatch reduces. */
export function recordingSetup(given: Given): { setup: TrainSetup; grads: Float64Array[] } {
  const grads: Float64Array[] = [];
  const setup: TrainSetup = {
    labelDim: 0,
    numPoints: 1,
    M: 1,
    teacher: 'dpm',
    lr: 0.2,
    coslr: false,
    totalKimg: 1,
    alpha: 20,
    rank: 0,
    worldSize: 1,
    ...given,
    reduce: async (v) => {
      grads.push(Float64Array.from(v));
      return v;
    },
  };
  return { setup, grads };
}

/**
 * Per interval: the same loss (entry 0) to 1e-6 and a gradient (the rest) within `bound`
 * relative rms of the reference, which must not be zero.
 */
export function assertGradientsMatch(t: TestContext, ref: Float64Array[], got: Float64Array[], bound: number, label: string): void {
  assert.equal(got.length, ref.length, `${label}: intervals`);
  got.forEach((g, i) => {
    const r = ref[i]!;
    assert.ok(Math.abs(g[0]! - r[0]!) <= 1e-6 * Math.abs(r[0]!), `${label}, interval ${i}: loss ${g[0]} vs ${r[0]}`);
    let d = 0;
    let n = 0;
    for (let p = 1; p < r.length; p++) {
      d += (g[p]! - r[p]!) ** 2;
      n += r[p]! ** 2;
    }
    assert.ok(n > 0, `${label}, interval ${i}: the gradient is not zero`);
    const rel = Math.sqrt(d / n);
    t.diagnostic(`${label}, interval ${i}: loss ${r[0]!.toPrecision(5)}, relative gradient error ${rel.toExponential(2)}`);
    assert.ok(rel <= bound, `${label}, interval ${i}: relative gradient error ${rel}`);
  });
}
