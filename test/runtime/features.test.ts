import * as assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { GraphBuilder, modelBytes, saveModel } from '../../src/onnx/builder.js';
import { buildFeatureModel, seededUniform } from '../support/models.js';
import { loadFeatureModel, type FeatureModel } from '../../src/runtime/model.js';
import { DataType } from '../../src/onnx/proto.js';
import { rejectsUsage, tempDir } from './helpers.js';

function pixels(n: number, seed: number): Uint8Array {
  const u = seededUniform(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(u() * 256));
}

describe('feature model (FID detector contract)', () => {
  const t = tempDir();
  let f32: FeatureModel;
  let u8: FeatureModel;
  before(async () => {
    saveModel(buildFeatureModel({ dim: 64 }), t.file('f32.onnx'));
    saveModel(buildFeatureModel({ dim: 64, input: 'uint8' }), t.file('u8.onnx'));
    f32 = await loadFeatureModel(t.file('f32.onnx'), { threads: 1 });
    u8 = await loadFeatureModel(t.file('u8.onnx'), { threads: 1, maxBatch: 2 });
  });
  after(async () => {
    await f32.dispose();
    await u8.dispose();
    t.cleanup();
  });

  test('signature and output shape [n, D] for any input size', async () => {
    assert.equal(f32.inputDtype, 'float32');
    assert.equal(u8.inputDtype, 'uint8');
    assert.equal(f32.featureDim, 64);
    assert.deepEqual(f32.inputDims, ['N', 3, 'H', 'W']);
    for (const [h, w] of [
      [32, 32],
      [20, 30],
      [64, 64],
      [299, 299],
    ] as const) {
      const out = await f32.extract(pixels(2 * 3 * h * w, h), 2, [3, h, w]);
      assert.equal(out.length, 2 * 64);
      assert.ok(out.every(Number.isFinite));
      assert.ok(out.some((v) => v !== 0));
    }
  });

  test('deterministic: same bytes from the builder, same features from the model', async () => {
    assert.deepEqual(modelBytes(buildFeatureModel({ dim: 64 })), modelBytes(buildFeatureModel({ dim: 64 })));
    const img = pixels(3 * 3 * 40 * 40, 5);
    assert.deepEqual(await f32.extract(img, 3, [3, 40, 40]), await f32.extract(img, 3, [3, 40, 40]));
    assert.notDeepEqual(modelBytes(buildFeatureModel({ dim: 64, seed: 8 })), modelBytes(buildFeatureModel({ dim: 64 })));
  });

  test('uint8 and float32 variants agree on integer inputs; batch splitting changes nothing', async () => {
    const n = 5;
    const img = pixels(n * 3 * 24 * 24, 11);
    const a = await f32.extract(img, n, [3, 24, 24]);
    const b = await u8.extract(img, n, [3, 24, 24]);
    const c = await u8.extract(Float32Array.from(img), n, [3, 24, 24]);
    assert.deepEqual(b, c);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-6 * Math.max(1, Math.abs(a[i]!)), `feature ${i}: ${a[i]} vs ${b[i]}`);
    assert.equal(u8.stats.runs, 6); // two calls of 5 images, 2 per run
    // Per image, features do not depend on the batch they were computed in.
    const single = await f32.extract(img.subarray(3 * 24 * 24 * 2, 3 * 24 * 24 * 3), 1, [3, 24, 24]);
    for (let j = 0; j < 64; j++) assert.ok(Math.abs(single[j]! - a[2 * 64 + j]!) <= 1e-6 * Math.max(1, Math.abs(single[j]!)));
  });

  test('one-channel images are repeated to RGB', async () => {
    const gray = pixels(2 * 16 * 16, 3);
    const rgb = new Uint8Array(2 * 3 * 256);
    for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) rgb.set(gray.subarray(b * 256, (b + 1) * 256), b * 768 + c * 256);
    assert.deepEqual(await f32.extract(gray, 2, [1, 16, 16]), await f32.extract(rgb, 2, [3, 16, 16]));
    await rejectsUsage(f32.extract(new Uint8Array(2 * 4 * 16), 2, [4, 4, 4]), /1 or 3 channels, got 4/);
  });

  test('fixed input size and contract violations are one-line UsageErrors', async () => {
    const fixed = t.file('fixed.onnx');
    saveModel(buildFeatureModel({ inputSize: 32 }), fixed);
    const m = await loadFeatureModel(fixed, { threads: 1 });
    try {
      assert.equal((await m.extract(pixels(3 * 32 * 32, 1), 1, [3, 32, 32])).length, 64);
      await rejectsUsage(m.extract(pixels(3 * 16 * 16, 1), 1, [3, 16, 16]), /input 'images' has shape \[N,3,32,32\]; got images of 3x16x16/);
    } finally {
      await m.dispose();
    }
    const b = new GraphBuilder();
    const img = b.input('images', DataType.INT64, ['N', 3, 'H', 'W']);
    b.output(b.op('Cast', [b.op('ReduceMean', [img], { axes: { ints: [2, 3] }, keepdims: { i: 0 } })], { to: { i: DataType.FLOAT } }), 'features', DataType.FLOAT, ['N', 3]);
    const bad = t.file('int64.onnx');
    saveModel(b.model(), bad);
    await rejectsUsage(loadFeatureModel(bad), /input 'images' has dtype int64; expected uint8 or float32/);
    const g = new GraphBuilder();
    const gi = g.input('images', DataType.FLOAT, ['N', 1, 'H', 'W']);
    g.output(g.op('ReduceMean', [gi], { axes: { ints: [2, 3] }, keepdims: { i: 0 } }), 'features', DataType.FLOAT, ['N', 1]);
    saveModel(g.model(), bad);
    await rejectsUsage(loadFeatureModel(bad), /input 'images' has shape \[N,1,H,W\]; expected \[N,3,H,W\] \(RGB images\)/);
    await rejectsUsage(loadFeatureModel(t.file('missing.onnx')), /no such file/);
  });
});
