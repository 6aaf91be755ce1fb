/**
 * The published CIFAR-10 coefficients, converted into exp/ by
 * tools/convert_reference_predictors.mjs, evaluate to the effective values the paper's
 * authors stored beside the raw parameters (../shared/reference/adasde-cifar10-predictors.json).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { UsageError } from '../../src/core/errors.js';
import { coefficientsOf, loadPredictor, parsePredictor } from '../../src/config/predictor.js';
import { resolvePredictorPath } from '../../src/io/runs.js';
import { readJson, repoRoot, sharedDir } from '../helpers.js';

interface RefRun {
  num_steps: number;
  gamma: number;
  effective_per_step: number[][][];
}
const reference = readJson<Record<string, RefRun>>(resolve(sharedDir, 'reference', 'adasde-cifar10-predictors.json'));
const expDir = resolve(repoRoot, 'exp');

test('published predictors: every reference run is in exp/ and resolves by number', () => {
  const names = Object.keys(reference);
  assert.equal(names.length, 8);
  for (const name of names) {
    const num = String(Number(name.slice(0, 5)));
    assert.equal(resolvePredictorPath(num, expDir), join(expDir, name, 'predictor.json'));
  }
});

test('published predictors: effective coefficients match the stored values to 1e-6', () => {
  for (const [name, run] of Object.entries(reference)) {
    const p = loadPredictor(join(expDir, name, 'predictor.json'));
    assert.equal(p.options.num_steps, run.num_steps);
    const c = coefficientsOf(p);
    const withGamma = run.gamma > 0;
    run.effective_per_step.forEach((step, i) => {
      // (r, scale_dir, scale_time[, gamma], weight), each a list over the K points.
      const expected = withGamma
        ? { r: step[0]!, sd: step[1]!, st: step[2]!, g: step[3]!, w: step[4]! }
        : { r: step[0]!, sd: step[1]!, st: step[2]!, g: undefined, w: step[3]! };
      const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b)), `${name} step ${i} ${what}: ${a} vs ${b}`);
      expected.r.forEach((v, j) => close(c.r[i]![j]!, v, 'r'));
      expected.sd.forEach((v, j) => close(c.scaleDir[i]![j]!, v, 'scale_dir'));
      expected.st.forEach((v, j) => close(c.scaleTime[i]![j]!, v, 'scale_time'));
      expected.w.forEach((v, j) => close(c.weight[i]![j]!, v, 'weight'));
      if (expected.g) expected.g.forEach((v, j) => close(c.gamma[i]![j]!, v, 'gamma'));
      else c.gamma[i]!.forEach((v) => assert.equal(v, 0));
    });
  }
});

test('predictor files: malformed input is a one-line UsageError naming the file', () => {
  const good = loadPredictor(join(expDir, Object.keys(reference)[0]!, 'predictor.json'));
  assert.throws(() => parsePredictor('{', 'p.json'), (e: unknown) => e instanceof UsageError && /^p\.json: not a JSON/.test(e.message));
  const wrongShape = structuredClone(good);
  wrongShape.params.r.push([0]);
  assert.throws(() => parsePredictor(JSON.stringify(wrongShape), 'q.json'), (e: unknown) => e instanceof UsageError && /q\.json: params\.r is 3x1; expected 2x1/.test(e.message));
  const badFormat = { ...good, format: 'other' };
  assert.throws(() => parsePredictor(JSON.stringify(badFormat), 'r.json'), (e: unknown) => e instanceof UsageError && /r\.json: invalid predictor file: format/.test(e.message));
});

test('predictor path: run folders pick their newest snapshot; unknown numbers are usage errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'adasde-exp-'));
  const run = join(dir, '00003-cifar10-4-5-adasde-dpm-3-uni1.0-afs');
  mkdirSync(run);
  for (const k of ['000002', '000010', '000005']) writeFileSync(join(run, `network-snapshot-${k}.json`), '{}');
  assert.equal(resolvePredictorPath('3', dir), join(run, 'network-snapshot-000010.json'));
  assert.equal(resolvePredictorPath(run, dir), join(run, 'network-snapshot-000010.json'));
  assert.throws(() => resolvePredictorPath('4', dir), (e: unknown) => e instanceof UsageError && /--predictor_path: no experiment 00004-\*/.test(e.message));
  assert.throws(() => resolvePredictorPath(join(dir, 'nope.json'), dir), UsageError);
});
