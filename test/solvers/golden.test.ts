/**
 * The reference implementation's vectors (../shared/golden/gauss.json, ALGORITHM.md 10),
 * matched to 1e-9 relative in float64.
 */
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { test } from 'node:test';
import type { ScheduleType } from '../../src/solvers/schedule.js';
import { gaussDenoiser } from '../../src/solvers/analytic.js';
import { sampleAdasde } from '../../src/solvers/adasde.js';
import type { Coefficients } from '../../src/solvers/coefficients.js';
import { getSchedule } from '../../src/solvers/schedule.js';
import { sampleSubsteps, teacherSchedule, teacherTargets } from '../../src/solvers/teacher.js';
import type { SolverContext } from '../../src/solvers/types.js';
import { maxRelErr, readJson, sharedDir } from '../helpers.js';

interface GoldenArgs {
  afs?: boolean;
  M?: number;
  num_steps: number;
  sigma_min: number;
  sigma_max: number;
  schedule_type: ScheduleType;
  schedule_rho: number;
}
interface Golden {
  denoiser: { kind: 'gauss'; mu: number[]; s: number };
  shape: [number, number, number, number];
  latents: number[];
  schedules: { schedule_type: ScheduleType; schedule_rho: number; num_steps: number; sigma_min: number; sigma_max: number; t_steps: number[] }[];
  cases: { name: string; args: GoldenArgs; output: number[]; coefficients?: number[][] }[];
}

const golden = readJson<Golden>(resolve(sharedDir, 'golden', 'gauss.json'));
const [B, C, H, W] = golden.shape;
const dim = C * H * W;
const denoise = gaussDenoiser({ mu: Float64Array.from(golden.denoiser.mu), s: golden.denoiser.s });
const TOL = 1e-9;

function specOf(a: GoldenArgs) {
  return { numSteps: a.num_steps, sigmaMin: a.sigma_min, sigmaMax: a.sigma_max, type: a.schedule_type, rho: a.schedule_rho };
}

function context(tSteps: Float64Array): SolverContext {
  return { denoise, tSteps, batch: B, dim };
}

/** The reference starts from x = sigma_max * z (in float64). */
function startLatents(tSteps: Float64Array): Float64Array {
  return Float64Array.from(golden.latents, (z) => z * tSteps[0]!);
}

test('golden: schedules', () => {
  assert.ok(golden.schedules.length >= 16);
  for (const s of golden.schedules) {
    const t = getSchedule({ numSteps: s.num_steps, sigmaMin: s.sigma_min, sigmaMax: s.sigma_max, type: s.schedule_type, rho: s.schedule_rho });
    assert.ok(maxRelErr(t, s.t_steps) < TOL, `${s.schedule_type} rho ${s.schedule_rho} N ${s.num_steps}: ${maxRelErr(t, s.t_steps)}`);
  }
});

for (const c of golden.cases) {
  test(`golden: ${c.name}`, async () => {
    const kind = c.name.split('-')[0]!;
    const spec = specOf(c.args);
    const tStudent = getSchedule(spec);
    let out: Float64Array;
    if (kind === 'heun' || kind === 'dpm') {
      out = await sampleSubsteps(kind, startLatents(tStudent), context(tStudent), { afs: c.args.afs ?? false });
    } else if (kind === 'teacher') {
      const M = c.args.M!;
      const tTeacher = teacherSchedule(spec, M);
      const targets = await teacherTargets('dpm', startLatents(tTeacher), context(tTeacher), M);
      assert.equal(targets.length, spec.numSteps - 1);
      out = new Float64Array(targets.length * B * dim);
      targets.forEach((y, i) => out.set(y, i * B * dim));
    } else if (kind === 'adasde') {
      const co = c.coefficients!;
      const coeffs: Coefficients = {
        r: co.map((row) => [row[0]!]),
        scaleDir: co.map((row) => [row[1]!]),
        scaleTime: co.map((row) => [row[2]!]),
        gamma: co.map((row) => [row[3]!]),
        weight: co.map(() => [1]),
      };
      out = await sampleAdasde(startLatents(tStudent), context(tStudent), { coeffs, afs: c.args.afs ?? false });
    } else {
      throw new Error(`unknown golden case ${c.name}`);
    }
    assert.equal(out.length, c.output.length);
    const err = maxRelErr(out, c.output, 1e-6);
    assert.ok(err < TOL, `${c.name}: max relative error ${err}`);
  });
}
