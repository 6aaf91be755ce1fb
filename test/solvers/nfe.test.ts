/** Counting denoiser calls gives each solver's NFE formula (ALGORITHM.md 3-4), with and without AFS. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SOLVERS } from '../../src/config/common.js';
import { gaussDenoiser } from '../../src/solvers/analytic.js';
import type { Coefficients } from '../../src/solvers/coefficients.js';
import { SOLVER_REGISTRY, teacherNfe } from '../../src/solvers/registry.js';
import { getSchedule } from '../../src/solvers/schedule.js';
import { teacherSchedule, teacherTargets } from '../../src/solvers/teacher.js';
import type { Denoiser } from '../../src/core/denoiser.js';
import { SeedNoise, seedLatents } from '../../src/rng/streams.js';

const dim = 12;
const batch = 2;
const base = gaussDenoiser({ mu: new Float64Array(dim).fill(0.1), s: 0.5 });

/** Counts evaluations per sample (a call on K*B rows counts K). */
function counted(): { denoise: Denoiser; count: () => number } {
  let rows = 0;
  return {
    denoise: (req) => {
      rows += req.batch;
      return base(req);
    },
    count: () => rows / batch,
  };
}

function coeffs(n: number, K: number, gamma: number): Coefficients {
  const tab = (v: number) => Array.from({ length: n - 1 }, () => new Array<number>(K).fill(v));
  return { r: tab(0.4), scaleDir: tab(1), scaleTime: tab(1), weight: tab(1 / K), gamma: tab(gamma) };
}

for (const name of SOLVERS) {
  for (const numSteps of [2, 3, 4, 6, 7]) {
    for (const afs of [false, true]) {
      for (const denoiseToZero of [false, true]) {
        for (const K of name === 'adasde' ? [1, 2, 3] : [1]) {
          test(`nfe: ${name} N=${numSteps} afs=${afs} d2z=${denoiseToZero}${name === 'adasde' ? ` K=${K}` : ''}`, async () => {
            const c = counted();
            const tSteps = getSchedule({ numSteps, sigmaMin: 0.002, sigmaMax: 80, type: 'polynomial', rho: 7 });
            const opts = { afs, denoiseToZero, coeffs: coeffs(numSteps, K, 0.01), thresholding: false };
            const noise = new SeedNoise([0, 1]);
            await SOLVER_REGISTRY[name].sample(seedLatents([0, 1], dim).map((v) => v * 80), { denoise: c.denoise, tSteps, batch, dim, noise: noise.source }, opts);
            // The closed forms, written out independently of the registry's nfe():
            const n = numSteps - 1;
            const expected =
              { euler: n, heun: 2 * n, dpm: 2 * n, ipndm: n, ipndm_v: n, deis: n, dpmpp: n, unipc: n, adasde: (1 + K) * n }[name] - (afs ? 1 : 0) + (denoiseToZero ? 1 : 0);
            assert.equal(c.count(), expected);
            assert.equal(SOLVER_REGISTRY[name].nfe(numSteps, opts), expected);
          });
        }
      }
    }
  }
}

test('nfe: AdaSDE with K = 1 and AFS gives 3, 5, 7, 9 for num_steps 3, 4, 5, 6', () => {
  const got = [3, 4, 5, 6].map((N) => SOLVER_REGISTRY.adasde.nfe(N, { afs: true, coeffs: coeffs(N, 1, 0) }));
  assert.deepEqual(got, [3, 5, 7, 9]);
});

test('nfe: teacher costs 4 (M+1)(N-1) evaluations', async () => {
  for (const [N, M] of [[3, 3], [4, 2], [6, 1]] as const) {
    const c = counted();
    const tT = teacherSchedule({ numSteps: N, sigmaMin: 0.002, sigmaMax: 80, type: 'time_uniform', rho: 1 }, M);
    const targets = await teacherTargets('dpm', seedLatents([0, 1], dim).map((v) => v * 80), { denoise: c.denoise, tSteps: tT, batch, dim }, M);
    assert.equal(targets.length, N - 1);
    assert.equal(c.count(), 4 * (M + 1) * (N - 1));
    assert.equal(teacherNfe(N, M), 4 * (M + 1) * (N - 1));
  }
});
