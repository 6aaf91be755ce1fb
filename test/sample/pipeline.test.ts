/** An image depends only on its seed (ALGORITHM.md 5, 7): batch size and composition do not matter. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mixtureDenoiser } from '../../src/solvers/analytic.js';
import type { Coefficients } from '../../src/solvers/coefficients.js';
import { getSchedule } from '../../src/solvers/schedule.js';
import { chunk, runBatches, sampleBatch, type SolverPlan } from '../../src/sample/pipeline.js';
import { elementCount } from '../../src/core/shape.js';

const shape = [2, 3, 3];
const dim = elementCount(shape);
const K = 3;
const means = Float64Array.from({ length: K * dim }, (_, k) => Math.sin(k * 1.7) * 0.8);
const denoise = mixtureDenoiser({ weights: Float64Array.of(0.5, 0.3, 0.2), means, stds: Float64Array.of(0.1, 0.2, 0.15) });
const N = 5;
const tab = (v: number) => Array.from({ length: N - 1 }, () => [v]);
const coeffs: Coefficients = { r: tab(0.35), scaleDir: tab(1.01), scaleTime: tab(0.97), weight: tab(1), gamma: tab(0.2) };
const plan: SolverPlan = {
  solver: 'adasde',
  options: { afs: true, coeffs },
  tSteps: getSchedule({ numSteps: N, sigmaMin: 0.002, sigmaMax: 80, type: 'time_uniform', rho: 1 }),
  sampleShape: shape,
  labelDim: 0,
};
const seeds = [5, 0, 17, 3, 42, 8, 1, 99, 23, 7, 11];

async function runInChunks(size: number, order = seeds): Promise<Map<number, Float64Array>> {
  const out = new Map<number, Float64Array>();
  for (const part of chunk(order, size)) {
    const x = await sampleBatch(plan, denoise, { seeds: part });
    part.forEach((s, b) => out.set(s, x.slice(b * dim, (b + 1) * dim)));
  }
  return out;
}

test('AdaSDE with gamma > 0: identical samples for batch sizes 1, 3 and 8 and any order', async () => {
  const one = await runInChunks(1);
  for (const [size, order] of [[3, seeds], [8, seeds], [4, [...seeds].reverse()]] as const) {
    const other = await runInChunks(size, order);
    for (const s of seeds) assert.deepEqual(other.get(s), one.get(s), `seed ${s} differs at batch ${size}`);
  }
});

test('AdaSDE with gamma > 0: different seeds give different samples, and the noise matters', async () => {
  const one = await runInChunks(8);
  const a = one.get(5)!;
  const b = one.get(0)!;
  assert.notDeepEqual(a, b);
  // Same latent, no noise injection: a different result proves the SDE noise was used.
  const noNoise = await sampleBatch({ ...plan, options: { afs: true, coeffs: { ...coeffs, gamma: tab(0) } } }, denoise, { seeds: [5] });
  assert.ok(noNoise.some((v, k) => Math.abs(v - a[k]!) > 1e-6));
});

test('runBatches: every batch is consumed once, in order, with the samples of separate sampleBatch calls', async () => {
  const batches = chunk(seeds, 4);
  const got: { seeds: readonly number[]; x: Float64Array }[] = [];
  let inFlight = 0;
  await runBatches(plan, denoise, batches, {
    consume: async (x, s) => {
      inFlight++;
      assert.equal(inFlight, 1, 'at most one batch is consumed at a time');
      await new Promise((r) => setTimeout(r, 2));
      got.push({ seeds: s, x });
      inFlight--;
    },
  });
  assert.deepEqual(got.map((g) => g.seeds), batches);
  const want = await runInChunks(4);
  for (const g of got) g.seeds.forEach((s, b) => assert.deepEqual(g.x.subarray(b * dim, (b + 1) * dim), want.get(s)));
});

test('runBatches: a failing consume stops the run with its error', async () => {
  let calls = 0;
  await assert.rejects(
    runBatches(plan, denoise, chunk(seeds, 3), {
      consume: async () => {
        calls++;
        throw new Error('disk full');
      },
    }),
    /disk full/,
  );
  assert.equal(calls, 1);
});
