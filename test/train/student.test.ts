/**
 * Forward-mode derivatives of the AdaSDE trajectory (ALGORITHM.md 4.3) checked against
 * independent truth: the closed-form Jacobian of the mixture denoiser, and central
 * differences of the whole sampler with respect to every raw coefficient.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mixtureDenoise, mixtureDenoiser, mixtureJvp, type MixtureParams } from '../../src/solvers/analytic.js';
import { sampleAdasde } from '../../src/solvers/adasde.js';
import { effectiveCoefficients, type CoefficientBounds, type RawParams } from '../../src/solvers/coefficients.js';
import { getSchedule } from '../../src/solvers/schedule.js';
import { finiteDifferenceJvp, type JvpFn } from '../../src/train/jvp.js';
import { studentStepJvp, type Tangent } from '../../src/train/student.js';
import { SeedStream, SeedNoise, seedLatents } from '../../src/rng/streams.js';

const dim = 6;
const batch = 3;
const mix: MixtureParams = {
  weights: Float64Array.of(0.6, 0.4),
  means: Float64Array.from({ length: 2 * dim }, (_, k) => (k < dim ? 0.5 : -0.4) + 0.1 * Math.sin(k)),
  stds: Float64Array.of(0.3, 0.2),
};
const exactJvp: JvpFn = async (x, sigma, rows, tangents) => {
  const req = { x, sigma, batch: rows };
  const zx = new Float64Array(x.length);
  const zs = new Float64Array(rows);
  return { D: mixtureDenoise(mix, req), dD: tangents.map((t) => mixtureJvp(mix, req, t.dx ?? zx, t.ds ?? zs)), rows };
};
const N = 4;
const K = 2;
const bounds: CoefficientBounds = { scaleDir: 0.05, scaleTime: 0.2, gamma: 0.3, gammaMin: 2e-4, fcn: false };
const tSteps = getSchedule({ numSteps: N, sigmaMin: 0.002, sigmaMax: 80, type: 'time_uniform', rho: 1 });
const seeds = [3, 14, 15];

function randomRaw(): RawParams {
  const g = new SeedStream(7, 'init');
  const tab = () => Array.from({ length: N - 1 }, () => Array.from({ length: K }, () => g.normal()));
  return { r: tab(), scaleDir: tab(), scaleTime: tab(), weight: tab(), gamma: tab() };
}

async function trajectoryWithTangents(raw: RawParams, jvp: JvpFn): Promise<{ x: Float64Array; tangents: Tangent[] }> {
  const coeffs = effectiveCoefficients(raw, bounds);
  const noise = new SeedNoise(seeds);
  let x: Float64Array = seedLatents(seeds, dim).map((v) => v * tSteps[0]!);
  let tangents: Tangent[] = [];
  for (let i = 0; i < N - 1; i++) {
    const eps = i > 0 ? noise.source(i, batch, dim) : undefined;
    const out = await studentStepJvp({ jvp, i, x, tangents, tCur: tSteps[i]!, tNext: tSteps[i + 1]!, raw, coeffs, bounds, afs: true, batch, eps });
    x = out.x;
    tangents = out.tangents;
  }
  return { x, tangents };
}

function relErr(a: Float64Array, b: Float64Array): number {
  let num = 0;
  let den = 0;
  for (let k = 0; k < a.length; k++) {
    num += (a[k]! - b[k]!) ** 2;
    den += b[k]! ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}

test('student jvp: the trajectory is the sampler\'s, bit for bit, with exact and with finite-difference derivatives', async () => {
  // One step definition (adasdeStep) for both: the tangents ride along without touching the values.
  const raw = randomRaw();
  const ref = await sampleAdasde(seedLatents(seeds, dim).map((v) => v * tSteps[0]!), { denoise: mixtureDenoiser(mix), tSteps, batch, dim, noise: new SeedNoise(seeds).source }, { afs: true, coeffs: effectiveCoefficients(raw, bounds) });
  for (const jvp of [exactJvp, finiteDifferenceJvp(mixtureDenoiser(mix), { relStep: 1e-5, scheme: 'central' })]) {
    const { x } = await trajectoryWithTangents(raw, jvp);
    assert.deepEqual(x, ref);
  }
});

for (const [scheme, relStep] of [['central', 1e-5], ['forward', 1e-7]] as const) test(`student jvp: ${scheme}-difference tangents match the closed-form Jacobian (<= 1e-3)`, async () => {
  const raw = randomRaw();
  const exact = await trajectoryWithTangents(raw, exactJvp);
  const fd = await trajectoryWithTangents(raw, finiteDifferenceJvp(mixtureDenoiser(mix), { relStep, scheme }));
  assert.equal(exact.tangents.length, fd.tangents.length);
  // r, scaleDir, scaleTime, weight for 3 intervals + gamma for intervals 1, 2: 4*3*2 + 2*2 = 28.
  assert.equal(exact.tangents.length, 28);
  for (let p = 0; p < exact.tangents.length; p++) {
    const e = relErr(fd.tangents[p]!.dx, exact.tangents[p]!.dx);
    assert.ok(e <= 1e-3, `${JSON.stringify(exact.tangents[p]!.ref)}: ${e}`);
  }
});

test('student jvp: tangents match central differences of the whole sampler', async () => {
  const raw = randomRaw();
  const { tangents } = await trajectoryWithTangents(raw, exactJvp);
  const h = 1e-5;
  for (const t of tangents) {
    const run = async (delta: number) => {
      const r2 = structuredClone(raw);
      r2[t.ref.name][t.ref.i]![t.ref.j]! += delta;
      return sampleAdasde(seedLatents(seeds, dim).map((v) => v * tSteps[0]!), { denoise: mixtureDenoiser(mix), tSteps, batch, dim, noise: new SeedNoise(seeds).source }, { afs: true, coeffs: effectiveCoefficients(r2, bounds) });
    };
    const [plus, minus] = [await run(h), await run(-h)];
    const cd = plus.map((v, k) => (v - minus[k]!) / (2 * h));
    const e = relErr(t.dx, cd);
    assert.ok(e <= 1e-5, `${JSON.stringify(t.ref)}: ${e}`);
  }
});
