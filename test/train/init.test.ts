/**
 * Starting points of a training (ALGORITHM.md 4.1): the neutral start is the plain
 * second-order midpoint step, checked against the DPM-Solver-2 sampler it must equal, and
 * against the parameterisation's closed forms.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mixtureDenoiser, type MixtureParams } from '../../src/solvers/analytic.js';
import { sampleAdasde } from '../../src/solvers/adasde.js';
import { effectiveCoefficients, type CoefficientBounds } from '../../src/solvers/coefficients.js';
import { sampleDpm } from '../../src/solvers/dpm.js';
import { getSchedule } from '../../src/solvers/schedule.js';
import { SeedNoise, seedLatents } from '../../src/rng/streams.js';
import { initState, neutralState, stateFromRaw } from '../../src/train/loop.js';

const dim = 12;
const mix: MixtureParams = {
  weights: Float64Array.of(0.3, 0.7),
  means: Float64Array.from({ length: 2 * dim }, (_, q) => 0.5 * Math.sin(1.3 * q)),
  stds: Float64Array.of(0.2, 0.1),
};

test('neutral start: r = 1/2, c = a = 1, equal weights, gamma 1% above its minimum', () => {
  const bounds: CoefficientBounds = { scaleDir: 0.05, scaleTime: 0.2, gamma: 0.02, gammaMin: 2e-4, fcn: false };
  const st = neutralState(5, 3);
  const c = effectiveCoefficients(st.raw, bounds);
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 3; j++) {
      assert.equal(c.r[i]![j], 0.5);
      assert.equal(c.scaleDir[i]![j], 1);
      assert.equal(c.scaleTime[i]![j], 1);
      assert.ok(Math.abs(c.weight[i]![j]! - 1 / 3) < 1e-15);
      const share = (c.gamma[i]![j]! - 2e-4) / (0.02 - 2e-4);
      assert.ok(Math.abs(share - 0.01) < 1e-4, `gamma share of the range ${share}`);
    }
  }
  assert.equal(st.batchIndex, 0);
  assert.deepEqual(st.adam.r.m, [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]);
});

test('neutral start without noise samples exactly as DPM-Solver-2 (r = 1/2) with AFS', async () => {
  const bounds: CoefficientBounds = { scaleDir: 0.05, scaleTime: 0.2, gamma: 0, gammaMin: 2e-4, fcn: false };
  const seeds = [4, 5, 6, 7];
  const tSteps = getSchedule({ numSteps: 4, sigmaMin: 0.002, sigmaMax: 80, type: 'time_uniform', rho: 1 });
  const x0 = seedLatents(seeds, dim).map((v) => v * tSteps[0]!);
  const ctx = { denoise: mixtureDenoiser(mix), tSteps, batch: seeds.length, dim, noise: new SeedNoise(seeds).source };
  const a = await sampleAdasde(x0, ctx, { afs: true, coeffs: effectiveCoefficients(neutralState(4, 1).raw, bounds) });
  const d = await sampleDpm(x0, { ...ctx, noise: undefined }, { afs: true });
  let err = 0;
  let ref = 0;
  a.forEach((v, k) => {
    err = Math.max(err, Math.abs(v - d[k]!));
    ref = Math.max(ref, Math.abs(d[k]!));
  });
  assert.ok(err <= 1e-12 * ref, `max difference ${err} (scale ${ref})`);
  // And the reference's random start is something else.
  const rnd = await sampleAdasde(x0, ctx, { afs: true, coeffs: effectiveCoefficients(initState(0, 4, 1).raw, bounds) });
  assert.ok(rnd.some((v, k) => Math.abs(v - d[k]!) > 1e-3));
});

test('stateFromRaw copies the parameters (training never writes into the source)', () => {
  const raw = neutralState(3, 1).raw;
  const st = stateFromRaw(raw);
  st.raw.r[0]![0] = 5;
  assert.equal(raw.r[0]![0], 0);
});
