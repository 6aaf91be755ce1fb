import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { checkSameSize, openImageSet, pickSubset } from '../../src/io/images.js';
import { buildZip } from '../../src/io/zip.js';
import { expected, rejectsUsage, SHARED_DATA } from './helpers.js';

/** HWC raw pixels -> image bytes, written by sharp (independently of our encoder). */
async function png(w: number, h: number, channels: 1 | 2 | 3 | 4, pixel: (x: number, y: number, c: number) => number): Promise<Buffer> {
  const raw = Buffer.alloc(w * h * channels);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < channels; c++) raw[(y * w + x) * channels + c] = pixel(x, y, c);
  let img = sharp(raw, { raw: { width: w, height: h, channels } });
  if (channels <= 2) img = img.toColourspace('b-w');
  return img.png().toBuffer();
}

let dir = '';
const rgb = (x: number, y: number, c: number) => [x * 40, y * 50, 200][c]!;
const files: Record<string, () => Promise<Buffer>> = {
  'b/rgb.png': () => png(4, 3, 3, rgb),
  'a/grey.png': () => png(4, 3, 1, (x, y) => 10 * x + y),
  'B_upper.PNG': () => png(4, 3, 4, (x, y, c) => (c === 3 ? 0 : rgb(x, y, c))), // fully transparent: alpha must be dropped, not composited
  'c/photo.JPEG': () => sharp({ create: { width: 4, height: 3, channels: 3, background: { r: 128, g: 64, b: 32 } } }).jpeg().toBuffer(),
  'c/d/pic.webp': () => sharp({ create: { width: 4, height: 3, channels: 3, background: { r: 1, g: 2, b: 3 } } }).webp({ lossless: true }).toBuffer(),
  'notes.txt': async () => Buffer.from('not an image'),
};
const imageNames = ['B_upper.PNG', 'a/grey.png', 'b/rgb.png', 'c/d/pic.webp', 'c/photo.JPEG'];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'adasde-img-'));
  for (const [name, make] of Object.entries(files)) {
    await mkdir(join(dir, 'set', name, '..'), { recursive: true });
    await writeFile(join(dir, 'set', name), await make());
  }
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('folder: recursive, extensions case-insensitive, sorted by code unit', async () => {
  const set = await openImageSet(join(dir, 'set'));
  assert.equal(set.kind, 'folder');
  assert.equal(set.count, 5);
  assert.deepEqual(set.names, imageNames);
  assert.equal(set.labels, undefined);
  await set.close();
});

test('decoding: CHW RGB, grey repeated, alpha dropped', async () => {
  const set = await openImageSet(join(dir, 'set'));
  const plane = 12;
  const rgbImg = await set.read(set.names.indexOf('b/rgb.png'));
  assert.deepEqual([rgbImg.width, rgbImg.height, rgbImg.channels], [4, 3, 3]);
  for (let y = 0; y < 3; y++)
    for (let x = 0; x < 4; x++) for (let c = 0; c < 3; c++) assert.equal(rgbImg.data[c * plane + y * 4 + x], rgb(x, y, c));
  const grey = await set.read(set.names.indexOf('a/grey.png'));
  for (let c = 0; c < 3; c++) for (let y = 0; y < 3; y++) for (let x = 0; x < 4; x++) assert.equal(grey.data[c * plane + y * 4 + x], 10 * x + y);
  const alpha = await set.read(set.names.indexOf('B_upper.PNG'));
  assert.deepEqual(alpha.data, rgbImg.data);
  const webp = await set.read(set.names.indexOf('c/d/pic.webp'));
  assert.deepEqual([webp.data[0], webp.data[plane], webp.data[2 * plane]], [1, 2, 3]);
  const jpg = await set.read(set.names.indexOf('c/photo.JPEG'));
  assert.equal(jpg.data.length, 3 * plane);
  assert.ok(Math.abs(jpg.data[0]! - 128) <= 3);
});

test('checkSameSize passes, then names two files and sizes when one differs', async () => {
  const set = await openImageSet(join(dir, 'set'));
  assert.deepEqual(await checkSameSize(set), { width: 4, height: 3 });
  await writeFile(join(dir, 'set', 'c', 'zz_big.png'), await png(5, 7, 3, rgb));
  try {
    const set2 = await openImageSet(join(dir, 'set'));
    await rejectsUsage(checkSameSize(set2), 'set', /'B_upper\.PNG' is 4x3/, /'c\/zz_big\.png' is 5x7/);
  } finally {
    await rm(join(dir, 'set', 'c', 'zz_big.png'));
  }
});

test('zip image set with dataset.json labels', async () => {
  const members = [];
  for (const name of imageNames) members.push({ name, data: await files[name]!() });
  const labels = imageNames.map((n, i) => [n, (i * 3) % 10]);
  members.push({ name: 'dataset.json', data: Buffer.from(JSON.stringify({ labels: [...labels].reverse() })) });
  members.push({ name: '__MACOSX/._x.png', data: Buffer.from('resource fork') });
  const p = join(dir, 'set.zip');
  await writeFile(p, Buffer.concat(await buildZip(members, { compressed: true })));
  const set = await openImageSet(p);
  assert.equal(set.kind, 'zip');
  assert.deepEqual(set.names, imageNames);
  assert.deepEqual(Array.from(set.labels!), [0, 3, 6, 9, 2]);
  assert.equal(set.labelPairs!.length, 5);
  const img = await set.read(2);
  assert.equal(img.name, 'b/rgb.png');
  assert.equal(img.data[1], rgb(1, 0, 0));
  assert.deepEqual(await checkSameSize(set), { width: 4, height: 3 });
  await set.close();

  // An image without a label is a user error.
  const p2 = join(dir, 'nolabel.zip');
  members[members.length - 2] = { name: 'dataset.json', data: Buffer.from(JSON.stringify({ labels: labels.slice(1) })) };
  await writeFile(p2, Buffer.concat(await buildZip(members)));
  await rejectsUsage(openImageSet(p2), 'nolabel.zip', /no label for image 'B_upper\.PNG'/);
});

test('empty, missing and undecodable inputs are UsageErrors', async () => {
  await mkdir(join(dir, 'empty'), { recursive: true });
  await rejectsUsage(openImageSet(join(dir, 'empty')), 'empty', /no images found/);
  await rejectsUsage(openImageSet(join(dir, 'nope')), 'nope', /no such file or folder/);
  await mkdir(join(dir, 'bad'), { recursive: true });
  await writeFile(join(dir, 'bad', 'x.png'), Buffer.from('garbage'));
  const set = await openImageSet(join(dir, 'bad'));
  await rejectsUsage(set.read(0), 'x.png', /cannot decode image/);
  await rejectsUsage(checkSameSize(set), 'x.png', /cannot read image header/);
});

test('pickSubset picks what NumPy RandomState picks (EDM fid.py --num/--seed)', () => {
  for (const c of expected().subsets) {
    assert.deepEqual(pickSubset(c.count, c.num, c.seed), c.picked, `count=${c.count} num=${c.num} seed=${c.seed}`);
  }
  assert.deepEqual(pickSubset(5, 5, 7), [0, 1, 2, 3, 4]);
  assert.deepEqual(pickSubset(5, 0, 7), []);
  assert.throws(() => pickSubset(5, 6, 0), /asked for 6 images but only 5/);
});

test('EDM dataset zip from ../shared/data decodes', async (t) => {
  const p = join(SHARED_DATA, 'cifar10-test.zip');
  if (!existsSync(p)) {
    t.skip('shared data not present');
    return;
  }
  const set = await openImageSet(p);
  try {
    assert.equal(set.count, 10000);
    assert.equal(set.labels!.length, 10000);
    assert.ok(set.labels!.every((c) => c >= 0 && c < 10));
    const img = await set.read(0);
    assert.deepEqual([img.width, img.height, img.channels, img.data.length], [32, 32, 3, 3 * 32 * 32]);
    assert.equal(img.name, set.names[0]);
    assert.deepEqual(await checkSameSize(set, pickSubset(set.count, 50, 0)), { width: 32, height: 32 });
  } finally {
    await set.close();
  }
});
