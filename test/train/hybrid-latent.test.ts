/**
 * Hybrid gradients on a text-conditional latent model (the exported Stable Diffusion fixture:
 * U-Net with cross-attention on text states, KL decoder) with classifier-free guidance and the
 * final-interval feature loss on decoded images, against forward mode with central
 * differences: one training batch of an NFE-5 student, the gradient of every interval's loss
 * with respect to every raw coefficient, for splits k = 0 and 2. Measured: 7e-4 to 5e-3
 * relative (the references' own error), against a bound of 1e-2. Reverse mode carries the
 * feature loss back through the detector's, the clip's and the decoder's VJPs, and the
 * denoiser's through two stacked graph rows per sample (conditional and unconditional).
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { saveModel } from '../../src/onnx/builder.js';
import { loadDecoder } from '../../src/runtime/companions.js';
import { loadDenoiserModel, loadFeatureModel } from '../../src/runtime/model.js';
import { loadDecoderVjp, loadDenoiserVjp, loadFeatureVjp } from '../../src/runtime/vjp.js';
import { initState, trainBatch } from '../../src/train/loop.js';
import { buildFeatureModel, seededUniform } from '../support/models.js';
import { repoRoot } from '../helpers.js';
import { assertGradientsMatch, recordingSetup } from '../support/train-setup.js';

const FIX = join(repoRoot, 'test', 'fixtures', 'export', 'sd');
const dir = mkdtempSync(join(tmpdir(), 'adasde-hybrid-latent-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('SD fixture, CFG, feature loss on decoded images: hybrid gradients equal forward mode (central differences)', { skip: !existsSync(FIX) && 'no SD fixture' }, async (t) => {
  const file = join(dir, 'sd.onnx');
  const decFile = join(dir, 'sd.decoder.onnx');
  const detFile = join(dir, 'features.onnx');
  copyFileSync(join(FIX, 'denoiser.onnx'), file);
  copyFileSync(join(FIX, 'denoiser.decoder.onnx'), decFile);
  saveModel(buildFeatureModel({ dim: 16, size: 16, seed: 3 }), detFile);
  const w = 2;
  const model = await loadDenoiserModel(file, { threads: 1, guidanceRate: w });
  const latent = model.sampleShape as [number, number, number];
  const dv = await loadDenoiserVjp(file, { threads: 1, guidanceRate: w });
  const dec = await loadDecoder(decFile, { threads: 1, latentShape: latent });
  const decVjp = await loadDecoderVjp(decFile, latent, { threads: 1 });
  const det = await loadFeatureModel(detFile, { threads: 1 });
  const image = (await dec.decode(new Float64Array(model.dim), 1, latent)).shape;
  const fv = await loadFeatureVjp(detFile, image, { threads: 1 });
  try {
    const [L, E] = [model.conditionShape![0]!, model.conditionShape![1]!];
    // Each trajectory's own text states, and one shared unconditional set.
    const states = (g: number, lo: number) => Float32Array.from({ length: L * E }, seededUniform(100 + g)).map((q) => lo * (2 * q - 1));
    const condFor = async (idx: readonly number[]) => {
      const condition = new Float32Array(idx.length * L * E);
      const uncondition = new Float32Array(idx.length * L * E);
      idx.forEach((g, k) => {
        condition.set(states(g, 1), k * L * E);
        uncondition.set(states(-1, 0.3), k * L * E);
      });
      return { condition, uncondition, conditionShape: [L, E] as const };
    };
    const N = 4;
    const B = 2;
    const bounds = { scaleDir: 0.05, scaleTime: 0.2, gamma: 0.01, gammaMin: 2e-4, fcn: false };
    let detectorCalls = 0;
    const run = async (k: number) => {
      const { setup, grads } = recordingSetup({
        denoise: model.denoise,
        sampleShape: model.sampleShape,
        schedule: { numSteps: N, sigmaMin: model.meta.sigmaMin, sigmaMax: model.meta.sigmaMax, type: 'polynomial', rho: 7 },
        afs: true,
        bounds,
        batch: B,
        seed: 6,
        features: async (images, n, shape) => {
          detectorCalls++;
          const f = await det.extract(images, n, shape ?? image);
          return { features: f, dim: f.length / n };
        },
        decode: async (z, n) => {
          const img = await dec.decode(z, n, latent);
          return { images: Float64Array.from(img.data), shape: img.shape };
        },
        condFor,
        // Central differences with small steps on both sides: the discrete-time model is smooth
        // in sigma only between its table's knots, and the detector's ReLUs and the clip have kinks,
        // which larger steps straddle (at 1e-3 the reference itself is off by 1-4%).
        jvpRelStep: 3e-4,
        featureRelStep: 1e-4,
        jvpScheme: 'central',
        reverseFrom: k,
        vjp: dv.vjp,
        featureVjp: (images, n, u) => fv.vjp(images, n, u),
        decoderVjp: decVjp.vjp,
      });
      const stats = await trainBatch(setup, initState(9, N, 1));
      return { grads, stats };
    };
    const ref = await run(N - 1);
    assert.equal(ref.stats.studentVjpRows, 0);
    for (const k of [0, 2]) {
      const { grads, stats } = await run(k);
      assert.ok(stats.studentVjpRows > 0, 'reverse mode ran');
      assertGradientsMatch(t, ref.grads, grads, 1e-2, `k=${k}`);
    }
    assert.ok(detectorCalls > 0);
  } finally {
    for (const m of [dv, dec, decVjp, det, fv, model]) await m.dispose();
  }
});
