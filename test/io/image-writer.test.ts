/**
 * The image-writer thread: decoded pixels are the quantised input (sharp is the independent
 * decoder), bytes equal the main-thread encoder's, no temp file stays behind, a failure is one
 * line naming the file, and after `halt` the thread starts no further file.
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { ImageWriter } from '../../src/io/image-writer.js';
import { encodePng, encodePngSync, imagePath, quantize, quantizeBatch } from '../../src/io/png.js';

const C = 3;
const H = 5;
const W = 7;
const n = C * H * W;
const images = (count: number) => Float64Array.from({ length: count * n }, (_, k) => Math.sin(k * 0.91) * 1.1);

async function listAll(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}

test('quantizeBatch equals quantize image by image', () => {
  const x = images(4);
  const q = quantizeBatch(x, 3, C, H, W);
  assert.equal(q.length, 3 * n);
  for (let b = 0; b < 3; b++) assert.deepEqual(q.subarray(b * n, (b + 1) * n), quantize(x, b * n, C, H, W));
});

test('ImageWriter writes every image atomically, as encodePng would, into new subfolders', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'adasde-writer-'));
  const writer = new ImageWriter();
  try {
    const x = images(6);
    const seeds = [0, 1, 999, 1000, 1001, 123456];
    const paths = seeds.map((s) => imagePath(dir, s, true));
    // Two batches in flight at once, as the sampler may have.
    await Promise.all([writer.write(paths.slice(0, 3), quantizeBatch(x, 3, C, H, W), C, H, W), writer.write(paths.slice(3), quantizeBatch(x.subarray(3 * n), 3, C, H, W), C, H, W)]);
    for (let b = 0; b < seeds.length; b++) {
      const q = quantize(x, b * n, C, H, W);
      const bytes = await readFile(paths[b]!);
      assert.deepEqual(bytes, await encodePng(q, C, H, W));
      assert.deepEqual(bytes, encodePngSync(q, C, H, W));
      const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
      assert.deepEqual([info.channels, info.height, info.width], [C, H, W]);
      for (let c = 0; c < C; c++) for (let p = 0; p < H * W; p++) assert.equal(data[p * C + c], q[c * H * W + p]);
    }
    const files = await listAll(dir);
    assert.ok(files.every((f) => !f.includes('.tmp-')), files.join(', '));
    assert.equal(files.filter((f) => f.endsWith('.png')).length, seeds.length);
  } finally {
    await writer.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('ImageWriter: a failed write rejects with the system error naming the file; later batches still work', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'adasde-writer-'));
  const writer = new ImageWriter();
  try {
    // A file where a folder should be.
    writeFileSync(join(dir, 'blocker'), 'x');
    const bad = join(dir, 'blocker', 'img.png');
    await assert.rejects(writer.write([bad], quantizeBatch(images(1), 1, C, H, W), C, H, W), (e: Error) => e.message.includes(join(dir, 'blocker')) && !e.message.includes('\n'));
    const good = join(dir, 'ok', 'img.png');
    await writer.write([good], quantizeBatch(images(1), 1, C, H, W), C, H, W);
    assert.ok(existsSync(good));
    assert.ok((await listAll(dir)).every((f) => !f.includes('.tmp-')));
    assert.throws(() => writer.write([good], new Uint8Array(3), C, H, W), /3 bytes for 1 images/);
  } finally {
    await writer.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('ImageWriter.halt: the thread finishes the file it is on and starts no other', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'adasde-writer-'));
  const writer = new ImageWriter();
  try {
    const count = 2000;
    const paths = Array.from({ length: count }, (_, s) => imagePath(dir, s, false));
    const pending = writer.write(paths, quantizeBatch(images(count), count, C, H, W), C, H, W);
    const outcome = pending.then(
      () => 'written',
      (e: Error) => e.message,
    );
    // Let the thread start, then stop it mid-batch.
    while ((await readdir(dir).catch(() => [])).length < 5) await new Promise((r) => setTimeout(r, 1));
    writer.halt();
    const after = (await listAll(dir)).length;
    await new Promise((r) => setTimeout(r, 50));
    const files = await listAll(dir);
    assert.equal(files.length, after, 'files appeared after halt returned');
    assert.ok(files.length < count, `all ${count} files written before the halt`);
    assert.ok(files.every((f) => f.endsWith('.png')), files.filter((f) => !f.endsWith('.png')).join(', '));
    // The batch settles, as a failure (it was cut short), rather than hanging.
    assert.match(await outcome, /^image writer halted before /);
  } finally {
    await writer.close();
    await rm(dir, { recursive: true, force: true });
  }
});
