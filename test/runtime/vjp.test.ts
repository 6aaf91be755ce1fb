/**
 * Reverse-mode graphs of whole networks (src/runtime/vjp.ts over src/graph/gradient.ts)
 * against central differences of the forward models run in onnxruntime-node:
 *   - the bundled CIFAR-10 U-Net (Sin/Cos noise embedding, nearest Resize, attention Einsum,
 *     GroupNorm): <u, D(x + h v) - D(x - h v)> / 2h against <J_x^T u, v>, and the same along
 *     sigma against J_sigma^T u, in batches split over several runs;
 *   - the bundled feature network (linear Resize, MaxPool, BatchNormalization, ReLU) at 32x32,
 *     where kinks make central differences first order (so: Richardson-extrapolated);
 *   - a grey image's gradient sums the RGB channels it was repeated into;
 *   - the cached graphs are reused, rebuilt when the model changes, and `adasde inspect` says
 *     which; a uint8 feature model is differentiated through its cast to float.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadDenoiserModel, loadFeatureModel } from '../../src/runtime/model.js';
import { loadDenoiserVjp, loadFeatureVjp } from '../../src/runtime/vjp.js';
import { GraphBuilder, saveModel } from '../../src/onnx/builder.js';
import { DataType } from '../../src/onnx/proto.js';
import { UsageError } from '../../src/core/errors.js';
import { seededUniform } from '../support/models.js';
import { repoRoot } from '../helpers.js';
import { inspectFile } from '../../src/app/inspect.js';
import { parseOptions } from '../../src/config/options.js';
import { inspectTable } from '../../src/config/inspect.js';

const dir = mkdtempSync(join(tmpdir(), 'adasde-vjp-'));
after(() => rmSync(dir, { recursive: true, force: true }));
// Copies, so the caches are written here and not in models/.
const unet = join(dir, 'unet.onnx');
const detector = join(dir, 'features.onnx');
copyFileSync(join(repoRoot, 'models', 'cifar10-tiny-edm.onnx'), unet);
copyFileSync(join(repoRoot, 'models', 'cifar10-features.onnx'), detector);

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k]! * b[k]!;
  return s;
};
const uniform = (seed: number, n: number, lo = -1, hi = 1) => {
  const r = seededUniform(seed);
  return Float64Array.from({ length: n }, () => lo + (hi - lo) * r());
};

test('U-Net VJP: J_x^T u and J_sigma^T u match central differences of the forward model', async (t) => {
  const model = await loadDenoiserModel(unet);
  const dv = await loadDenoiserVjp(unet, { maxBatch: 2 });
  const rows = 3; // two runs of at most 2 rows
  const dim = model.dim;
  const sigma = Float64Array.of(0.05, 1.3, 20);
  const x0 = uniform(1, rows * dim, -1, 1);
  const x = x0.map((v, k) => v + sigma[Math.floor(k / dim)]! * (2 * ((k * 7919) % 13) / 13 - 1));
  const u = uniform(2, rows * dim);
  const v = uniform(3, rows * dim);
  const { gx, gs, rows: sent } = await dv.vjp(x, sigma, rows, u);
  assert.equal(sent, rows);
  for (let b = 0; b < rows; b++) {
    const seg = (a: Float64Array) => a.subarray(b * dim, (b + 1) * dim);
    const one = async (xx: Float64Array, ss: number) => dot(seg(u), await model.denoise({ x: xx, sigma: Float64Array.of(ss), batch: 1 }));
    // Along x: steps big enough for float32 (|v| ~ 1 per pixel), small against the network's curvature.
    const h = 1e-2;
    const xs = Float64Array.from(seg(x));
    const fdX = ((await one(xs.map((q, k) => q + h * seg(v)[k]!), sigma[b]!)) - (await one(xs.map((q, k) => q - h * seg(v)[k]!), sigma[b]!))) / (2 * h);
    const gv = dot(seg(gx), seg(v));
    const hs = 1e-2 * sigma[b]!;
    const fdS = ((await one(xs, sigma[b]! + hs)) - (await one(xs, sigma[b]! - hs))) / (2 * hs);
    t.diagnostic(`sigma ${sigma[b]}: x ${gv.toPrecision(6)} vs ${fdX.toPrecision(6)}, sigma ${gs[b]!.toPrecision(6)} vs ${fdS.toPrecision(6)}`);
    assert.ok(Math.abs(gv - fdX) <= 2e-3 * Math.max(Math.abs(fdX), 1), `row ${b}, x: ${gv} vs ${fdX}`);
    assert.ok(Math.abs(gs[b]! - fdS) <= 2e-3 * Math.max(Math.abs(fdS), 1), `row ${b}, sigma: ${gs[b]} vs ${fdS}`);
  }
  // The gradient is not degenerate.
  assert.ok(Math.sqrt(dot(gx, gx)) > 1);
  await dv.dispose();
  await model.dispose();
});

test('feature network VJP at 32x32 matches central differences; grey images sum their channels', async (t) => {
  const fm = await loadFeatureModel(detector);
  const fv = await loadFeatureVjp(detector, [3, 32, 32]);
  const n = 2;
  const dim = 3 * 32 * 32;
  // Smooth images in the pixel range (a real picture's statistics matter less than staying
  // away from ReLU and max-pool kinks, which smooth images and small steps do).
  const images = Float32Array.from({ length: n * dim }, (_, k) => 128 + 90 * Math.sin(k * 0.013 + Math.floor(k / dim)) * Math.cos(k * 0.0021));
  const D = 256;
  const u = uniform(4, n * D);
  const { grad, rows } = await fv.vjp(images, n, u);
  assert.equal(rows, n);
  // ReLU and max-pool kinks sit a fraction of a pixel apart in this network, so a central
  // difference converges to the local derivative only at first order in the step: along the
  // VJP's own direction w (where the derivative is largest, |grad|), errors halve with the step
  // and their Richardson extrapolation 2 fd(h/2) - fd(h) lands on it.
  const rms = Math.sqrt(dot(grad, grad) / grad.length);
  const w = grad.map((g) => g / rms);
  const gw = dot(grad, w);
  const fd = async (h: number) => {
    const plus = await fm.extract(Float32Array.from(images, (q, k) => q + h * w[k]!), n, [3, 32, 32]);
    const minus = await fm.extract(Float32Array.from(images, (q, k) => q - h * w[k]!), n, [3, 32, 32]);
    return (dot(u, plus) - dot(u, minus)) / (2 * h);
  };
  const [f2, f1] = [await fd(2e-3), await fd(1e-3)];
  const rich = 2 * f1 - f2;
  t.diagnostic(`features: VJP ${gw.toPrecision(6)}, central differences ${f2.toPrecision(6)} (h 2e-3), ${f1.toPrecision(6)} (h 1e-3), extrapolated ${rich.toPrecision(6)}`);
  assert.ok(Math.abs(f1 - gw) < Math.abs(f2 - gw), 'central differences approach the VJP');
  assert.ok(Math.abs(rich - gw) <= 2e-2 * gw, `${gw} vs extrapolated ${rich}`);

  // A grey image is fed as RGB; its gradient is the sum over the three channels' gradients.
  const grey = images.subarray(0, 1024);
  const rgb = new Float32Array(dim);
  for (let ch = 0; ch < 3; ch++) rgb.set(grey, ch * 1024);
  const g1 = await (await loadFeatureVjp(detector, [1, 32, 32])).vjp(Float32Array.from(grey), 1, u.subarray(0, D));
  const g3 = await fv.vjp(rgb, 1, u.subarray(0, D));
  for (let j = 0; j < 1024; j++) {
    const s = g3.grad[j]! + g3.grad[1024 + j]! + g3.grad[2048 + j]!;
    assert.ok(Math.abs(g1.grad[j]! - s) <= 1e-6 * Math.max(1, Math.abs(s)));
  }
  await fv.dispose();
  await fm.dispose();
});

test('VJP graphs are cached beside the model and reused; uint8 feature models are differentiated through their cast', async () => {
  const cache = join(dir, 'unet.vjp.onnx');
  const before = statSync(cache).mtimeMs;
  const again = await loadDenoiserVjp(unet);
  assert.equal(again.path, cache);
  assert.equal(statSync(cache).mtimeMs, before);
  await again.dispose();
  // `adasde inspect` names it a derived graph and says whether it is current.
  const fresh = await inspectFile(cache, parseOptions(inspectTable, {}));
  assert.equal(fresh.contract, 'derived graph');
  assert.deepEqual(fresh.problems, []);
  assert.ok(fresh.lines.some((l) => /^source {6}up to date with .*unet\.onnx/.test(l)), fresh.lines.join('\n'));
  const t = new Date(Date.now() + 5000);
  utimesSync(unet, t, t);
  const stale = await inspectFile(cache, parseOptions(inspectTable, {}));
  assert.ok(stale.lines.some((l) => /^source {6}stale/.test(l)), stale.lines.join('\n'));
  // ... and the next load rebuilds it.
  const rebuilt = await loadDenoiserVjp(unet);
  assert.ok(statSync(cache).mtimeMs > before);
  await rebuilt.dispose();

  // A uint8 detector (FID's Inception casts its byte pixels to float) is differentiated through
  // that cast: features = per-channel means, so d/d pixel = u_c / (H W).
  const b = new GraphBuilder('u8');
  const img = b.input('images', DataType.UINT8, ['N', 3, 8, 8]);
  const f = b.op('ReduceMean', [b.op('Cast', [img], { to: { i: DataType.FLOAT } })], { axes: { ints: [2, 3] }, keepdims: { i: 0 } });
  b.output(f, 'features', DataType.FLOAT, ['N', 3]);
  const u8 = join(dir, 'u8.onnx');
  saveModel(b.model(), u8);
  const fv = await loadFeatureVjp(u8, [3, 8, 8]);
  const u = Float64Array.of(0.5, -2, 3, 1, 1, 1);
  const { grad } = await fv.vjp(Float32Array.from({ length: 2 * 192 }, (_, q) => (q * 37) % 256), 2, u);
  grad.forEach((g, q) => assert.ok(Math.abs(g - u[Math.floor(q / 64)]! / 64) < 1e-7, `pixel ${q}: ${g}`));
  await fv.dispose();
  // One that reads its bytes otherwise (here: adds them as integers) is refused with one line.
  const b2 = new GraphBuilder('u8add');
  const img2 = b2.input('images', DataType.UINT8, ['N', 3, 8, 8]);
  const sum = b2.op('Cast', [b2.op('Add', [img2, img2])], { to: { i: DataType.FLOAT } });
  b2.output(b2.op('ReduceMean', [sum], { axes: { ints: [2, 3] }, keepdims: { i: 0 } }), 'features', DataType.FLOAT, ['N', 3]);
  const u8add = join(dir, 'u8add.onnx');
  saveModel(b2.model(), u8add);
  await assert.rejects(loadFeatureVjp(u8add, [3, 8, 8]), (e: unknown) => e instanceof UsageError && /u8add\.onnx: node '.+' \(Add\) reads the uint8 input 'images' other than by a Cast to float/.test(e.message) && !e.message.includes('\n'));
});
