/**
 * Recycled state arrays (src/solvers/pool.ts) must never change a result: every solver gives
 * the same samples bit for bit with a pool shared across batches as with fresh arrays, for
 * denoisers that fill the offered output, ignore it, or hand back x itself; x_0 is left alone.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SOLVERS, type SolverName } from '../../src/config/common.js';
import { sampleBatch, type SolverPlan } from '../../src/sample/pipeline.js';
import { mixtureDenoise } from '../../src/solvers/analytic.js';
import type { Coefficients } from '../../src/solvers/coefficients.js';
import { ArrayPool } from '../../src/solvers/pool.js';
import { defaultSolverOptions, SOLVER_REGISTRY, type SolverOptions } from '../../src/solvers/registry.js';
import { getSchedule } from '../../src/solvers/schedule.js';
import type { Denoiser } from '../../src/core/denoiser.js';
import { elementCount } from '../../src/core/shape.js';

test('ArrayPool: recycles by length, ignores views, double gives and arrays beyond its cap', () => {
  const pool = new ArrayPool(2);
  const a = pool.take(8);
  assert.equal(a.length, 8);
  pool.give(a);
  pool.give(a); // a second give must not let two takers share it
  assert.equal(pool.size, 1);
  assert.equal(pool.take(8), a);
  assert.notEqual(pool.take(8), a);
  assert.equal(pool.take(4).length, 4); // another length: a fresh array
  const big = new Float64Array(16);
  pool.give(big.subarray(0, 8), big.subarray(8)); // views share memory with `big`
  assert.equal(pool.size, 0);
  pool.give(new Float64Array(8), new Float64Array(8), new Float64Array(8));
  assert.equal(pool.size, 2);
  pool.give(undefined);
  assert.equal(pool.size, 2);
});

const shape = [3, 4, 4];
const dim = elementCount(shape);
const K = 4;
const params = {
  weights: Float64Array.of(0.4, 0.3, 0.2, 0.1),
  // Means beyond [-1, 1] so that dynamic thresholding clips (its in-place path is exercised).
  means: Float64Array.from({ length: K * dim }, (_, k) => 1.6 * Math.sin(k * 0.77)),
  stds: Float64Array.of(0.1, 0.3, 0.2, 0.05),
};
/** Three denoisers with the same values: filling `out`, ignoring it, and (at sigma = 0) aliasing. */
const fills: Denoiser = async (req) => {
  const d = mixtureDenoise(params, req);
  if (!req.out) return d;
  req.out.set(d);
  return req.out;
};
const ignores: Denoiser = async (req) => mixtureDenoise(params, req);
/** Writes stale garbage into the offered output first: a solver must not read it. */
const dirtyOut: Denoiser = async (req) => {
  req.out?.fill(Number.NaN);
  return fills(req);
};
const N = 6;
const tab = (v: number) => Array.from({ length: N - 1 }, () => [v]);
const coeffs: Coefficients = { r: tab(0.4), scaleDir: tab(1.02), scaleTime: tab(0.98), weight: tab(1), gamma: tab(0.05) };

function planFor(solver: SolverName, variant: 'a' | 'b'): SolverPlan {
  const options: SolverOptions =
    solver === 'adasde'
      ? { afs: variant === 'a', coeffs }
      : { afs: variant === 'a', maxOrder: defaultSolverOptions(solver).maxOrder, thresholding: variant === 'a', predictX0: variant === 'a', denoiseToZero: variant === 'b' };
  return { solver, options, tSteps: getSchedule({ numSteps: N, sigmaMin: 0.002, sigmaMax: 80, type: 'polynomial', rho: 7 }), sampleShape: shape, labelDim: 0 };
}

for (const solver of SOLVERS as readonly SolverName[]) {
  test(`${solver}: a pool shared across batches changes no sample, whatever the denoiser does with its output`, async () => {
    for (const variant of ['a', 'b'] as const) {
      const plan = planFor(solver, variant);
      const batches = [[3, 1, 4], [1, 5], [9, 2, 6], [3, 1, 4]];
      const fresh = await Promise.all(batches.map((seeds) => sampleBatch(plan, ignores, { seeds })));
      const pool = new ArrayPool();
      for (const denoise of [fills, dirtyOut, ignores, fills]) {
        for (let b = 0; b < batches.length; b++) {
          const x = await sampleBatch(plan, denoise, { seeds: batches[b]!, pool });
          assert.deepEqual(x, fresh[b], `${solver} (${variant}) batch ${b}`);
          // The caller gives the result back, as runBatches does after writing it.
          pool.give(x);
        }
      }
      // Steady state: after one batch the working set is reused, not grown.
      const steady = new ArrayPool();
      const sizes: number[] = [];
      for (let r = 0; r < 3; r++) {
        steady.give(await sampleBatch(plan, fills, { seeds: [3, 1, 4], pool: steady }));
        sizes.push(steady.size);
      }
      assert.ok(sizes[0]! > 0 && sizes.every((v) => v === sizes[0]), `${solver}: idle arrays ${sizes.join(', ')}`);
    }
  });
}

test('solvers leave x_0 alone and survive a denoiser that returns x itself', async () => {
  const identity: Denoiser = async (req) => req.x;
  for (const solver of SOLVERS as readonly SolverName[]) {
    const plan = planFor(solver, 'b');
    const x0 = Float64Array.from({ length: 2 * dim }, (_, k) => Math.cos(k));
    const copy = x0.slice();
    const pool = new ArrayPool();
    const run = (denoise: Denoiser) =>
      SOLVER_REGISTRY[solver].sample(x0, { denoise, tSteps: plan.tSteps, batch: 2, dim, pool, noise: (_i, batch, d, out = new Float64Array(batch * d)) => out.fill(0.5) }, plan.options);
    const a = await run(identity);
    assert.deepEqual(x0, copy, `${solver} wrote into x_0`);
    // D = x means the ODE direction is 0: without noise every state stays x_0.
    if (solver !== 'adasde') assert.deepEqual(a, copy, `${solver} with D(x) = x`);
    const b = await run(fills);
    assert.deepEqual(x0, copy, `${solver} wrote into x_0`);
    assert.notEqual(b, x0);
  }
});
