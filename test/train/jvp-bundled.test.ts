/**
 * The gradient scheme `adasde train` uses on float32 models (forward differences, relative step
 * 1e-3, src/train/jvp.ts) against central differences on the bundled CIFAR-10 U-Net: an NFE-5
 * student trajectory (num_steps 4, K 1, AFS, noise injection), the L2 loss of every interval
 * against fixed targets, and its gradient with respect to every raw coefficient both ways.
 * Also counts the model rows each scheme costs, against the count of live tangents.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolve } from 'node:path';
import { loadDenoiserModel } from '../../src/runtime/model.js';
import { SeedStream } from '../../src/rng/streams.js';
import type { CoefficientBounds } from '../../src/solvers/coefficients.js';
import { getSchedule } from '../../src/solvers/schedule.js';
import type { JvpScheme } from '../../src/train/jvp.js';
import { repoRoot } from '../helpers.js';
import { studentLossGradients } from './student-gradients.js';
import { elementCount } from '../../src/core/shape.js';

test('bundled U-Net: forward-difference loss gradients agree with central differences (<= 1e-2) at 35 instead of 65 rows per trajectory', async () => {
  const model = await loadDenoiserModel(resolve(repoRoot, 'models', 'cifar10-tiny-edm.onnx'), { threads: 1 });
  try {
    const B = 2;
    const dim = elementCount(model.sampleShape);
    const N = 4;
    const bounds: CoefficientBounds = { scaleDir: 0.05, scaleTime: 0.2, gamma: 0.01, gammaMin: 2e-4, fcn: false };
    const tSteps = getSchedule({ numSteps: N, sigmaMin: model.meta.sigmaMin, sigmaMax: model.meta.sigmaMax, type: 'time_uniform', rho: 1 });
    const seeds = [1000, 1001];
    const run = (scheme: JvpScheme, targets?: Float64Array[]) => studentLossGradients({ denoise: (req) => model.denoise(req), dim, tSteps, bounds, seeds, scheme, relStep: 1e-3, targets });
    // Targets near the student's own states, so each interval's loss has a gradient of ordinary size.
    const g = new SeedStream(5, 'init');
    const targets = (await run('forward')).xs.map((x) => x.map((v) => v + 0.05 * g.normal()));
    const central = await run('central', targets);
    const forward = await run('forward', targets);
    // Live tangents per evaluation (interval 0 has AFS: its mid point only; scale_dir is not
    // live at a mid point; the first evaluation of interval i > 0 carries the incoming
    // tangents and gamma_i): mid 2, then 4 + 6, then 8 + 10 -> 30 tangents in 5 evaluations.
    assert.equal(forward.rows, (5 + 30) * B);
    assert.equal(central.rows, (5 + 2 * 30) * B);
    for (let i = 0; i < N - 1; i++) {
      const a = forward.grads[i]!;
      const b = central.grads[i]!;
      const err = Math.sqrt(a.reduce((s, v, k) => s + (v - b[k]!) ** 2, 0) / b.reduce((s, v) => s + v * v, 0));
      assert.ok(err <= 1e-2, `interval ${i}: relative gradient error ${err}`);
      assert.ok(b.some((v) => Math.abs(v) > 0), 'the gradient is not zero');
    }
  } finally {
    await model.dispose();
  }
});
