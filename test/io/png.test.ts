import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { encodePng, imagePath, makeGrid, quantize, writePng } from '../../src/io/png.js';
import { expected, num } from './helpers.js';

test('quantize edge cases: -1 -> 0, 1 -> 255, 0 -> 128, clip, NaN -> 0', () => {
  for (const Arr of [Float64Array, Float32Array]) {
    const x = Arr.from([-1, 1, 0, -5, 5, Infinity, -Infinity, NaN, 0.5, -0.996]);
    // 127.5*-1+128 = 0.5 truncates to 0; 127.5*0.5+128 = 191.75 -> 191; -0.996 -> 1.01 -> 1.
    assert.deepEqual(Array.from(quantize(x, 0, 1, 1, x.length)), [0, 255, 128, 0, 255, 255, 0, 0, 191, 1]);
  }
});

test('quantize matches NumPy in float32 and float64, including precision-dependent cases', () => {
  const q = expected().quantize;
  assert.ok(q.disagreeing > 0, 'fixture should include values where float32 and float64 differ');
  const xs = q.x.map(num);
  assert.deepEqual(Array.from(quantize(Float32Array.from(xs), 0, 1, 1, xs.length)), q.float32);
  assert.deepEqual(Array.from(quantize(Float64Array.from(xs), 0, 1, 1, xs.length)), q.float64);
});

test('quantize reads C*H*W values at the offset', () => {
  const x = Float64Array.from([9, 9, -1, 0, 1, 0.5, 9]);
  assert.deepEqual(Array.from(quantize(x, 2, 2, 1, 2)), [0, 128, 255, 191]);
  assert.throws(() => quantize(x, 5, 1, 1, 3), RangeError);
});

test('makeGrid: square-ish layout, row-major placement, black padding', () => {
  const C = 2, H = 2, W = 3;
  const imgs = Array.from({ length: 5 }, (_, k) => new Uint8Array(C * H * W).fill(k + 1));
  const g = makeGrid(imgs, C, H, W);
  assert.deepEqual([g.cols, g.rows, g.width, g.height, g.data.length], [3, 2, 9, 4, C * 4 * 9]);
  const at = (c: number, y: number, x: number) => g.data[(c * g.height + y) * g.width + x];
  assert.equal(at(0, 0, 0), 1);
  assert.equal(at(1, 1, 5), 2); // image 1: row 0, columns 3..5
  assert.equal(at(0, 2, 0), 4); // image 3: row 1, column 0
  assert.equal(at(1, 3, 8), 0); // empty sixth cell
  assert.deepEqual([makeGrid(Array(64).fill(imgs[0]), C, H, W).cols, makeGrid(Array(64).fill(imgs[0]), C, H, W).rows], [8, 8]);
  const g2 = makeGrid(imgs, C, H, W, 5);
  assert.deepEqual([g2.cols, g2.rows], [5, 1]);
});

test('encodePng: sharp decodes back the same pixels (RGB and grey), deterministically', async () => {
  const H = 5, W = 7;
  const rgb = Uint8Array.from({ length: 3 * H * W }, (_, i) => (i * 37) % 256);
  const png = await encodePng(rgb, 3, H, W);
  assert.deepEqual(png, await encodePng(rgb, 3, H, W));
  const meta = await sharp(png).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height, meta.channels], ['png', W, H, 3]);
  const { data } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  for (let c = 0; c < 3; c++) for (let p = 0; p < H * W; p++) assert.equal(data[p * 3 + c], rgb[c * H * W + p]);

  const grey = Uint8Array.from({ length: H * W }, (_, i) => 255 - i);
  const gpng = await encodePng(grey, 1, H, W);
  const gm = await sharp(gpng).metadata();
  assert.equal(gm.channels, 1);
  const gd = await sharp(gpng).extractChannel(0).raw().toBuffer();
  assert.deepEqual(Array.from(gd), Array.from(grey));
  await assert.rejects(encodePng(rgb, 4, H, W), RangeError);
});

test('writePng creates folders, writes atomically; imagePath layout', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'adasde-png-'));
  try {
    assert.equal(imagePath('out', 12345), join('out', '012000', '012345.png'));
    assert.equal(imagePath('out', 7), join('out', '000000', '000007.png'));
    assert.equal(imagePath('out', 999), join('out', '000000', '000999.png'));
    assert.equal(imagePath('out', 1000), join('out', '001000', '001000.png'));
    assert.equal(imagePath('out', 49999, false), join('out', '049999.png'));
    assert.equal(imagePath('out', 1234567), join('out', '1234000', '1234567.png'));
    const p = imagePath(dir, 1001);
    const px = Uint8Array.from([0, 255, 10, 20, 30, 40]);
    await writePng(p, px, 3, 1, 2);
    assert.deepEqual(await readFile(p), await encodePng(px, 3, 1, 2));
    assert.deepEqual(await readdir(join(dir, '001000')), ['001001.png']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
