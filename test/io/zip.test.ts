import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { deflateRawSync } from 'node:zlib';
import { buildZip, openZip, ZipReader, METHOD_DEFLATE, METHOD_STORED } from '../../src/io/zip.js';
import { fixture, rejectsUsage, SHARED_DATA } from './helpers.js';

const members = [
  { name: 'a.txt', data: Buffer.from('hello zip\n') },
  { name: 'dir/b.bin', data: Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) % 256)) },
  { name: 'empty', data: new Uint8Array(0) },
  { name: 'ünïcödé/名前.txt', data: Buffer.from('utf8 name') },
  { name: 'parts', data: [Buffer.from('ab'), new Uint8Array(0), Buffer.from('cd')] },
];

function joined(d: Uint8Array | readonly Uint8Array[]): Buffer {
  return d instanceof Uint8Array ? Buffer.from(d) : Buffer.concat(d);
}

for (const opts of [{}, { compressed: true }, { forceZip64: true }, { compressed: true, forceZip64: true }]) {
  test(`buildZip -> ZipReader round trip ${JSON.stringify(opts)}`, async () => {
    const buf = Buffer.concat(await buildZip(members, opts));
    const z = await openZip(buf);
    assert.deepEqual(z.fileNames(), members.map((m) => m.name));
    for (const m of members) {
      const e = z.get(m.name)!;
      assert.equal(e.method, opts.compressed ? METHOD_DEFLATE : METHOD_STORED);
      assert.deepEqual(await z.read(m.name), joined(m.data));
    }
    await z.close();
  });
}

test('data prepended to the archive (self-extractor style) is tolerated', async () => {
  const buf = Buffer.concat([Buffer.from('#!/bin/sh\nexit 0\n'), ...(await buildZip(members, { compressed: true }))]);
  const z = await openZip(buf);
  assert.deepEqual(await z.read('dir/b.bin'), members[1]!.data);
});

test('an archive comment is skipped when finding the end record', async () => {
  const buf = Buffer.concat(await buildZip(members));
  const comment = Buffer.from('a comment with PK\x05\x06 inside it');
  buf.writeUInt16LE(comment.length, buf.length - 2);
  const z = await openZip(Buffer.concat([buf, comment]));
  assert.deepEqual(await z.read('a.txt'), Buffer.from('hello zip\n'));
});

test('reads from a file with positioned reads, concurrently', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'adasde-zip-'));
  try {
    const p = join(dir, 'x.zip');
    await writeFile(p, Buffer.concat(await buildZip(members, { compressed: true })));
    const z = await ZipReader.open(p);
    const all = await Promise.all(members.map((m) => z.read(m.name)));
    all.forEach((b, i) => assert.deepEqual(b, joined(members[i]!.data)));
    await rejectsUsage(z.read('missing.txt'), 'x.zip', /no entry 'missing\.txt'/);
    await rejectsUsage(z.read('dir/b.bin', { maxBytes: 100 }), 'x.zip', /entry 'dir\/b\.bin' declares 5000 bytes uncompressed, over the limit of 100/);
    await z.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('unsupported methods and encryption are refused with one line', async () => {
  const buf = Buffer.concat(await buildZip([{ name: 'x', data: Buffer.from('abc') }]));
  const cdAt = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
  const lzma = Buffer.from(buf);
  lzma.writeUInt16LE(14, cdAt + 10);
  await rejectsUsage((await openZip(lzma, { label: 'lzma.zip' })).read('x'), 'lzma.zip', /compression method 14/);
  const enc = Buffer.from(buf);
  enc.writeUInt16LE(1, cdAt + 8);
  await rejectsUsage((await openZip(enc, { label: 'enc.zip' })).read('x'), 'enc.zip', /encrypted/);
  await rejectsUsage(openZip(Buffer.from('PK'), { label: 'short.zip' }), 'short.zip', /not a valid zip file/);
  await rejectsUsage(openZip(fixture('not_a_zip.npz')), 'not_a_zip.npz', /no end-of-central-directory/);
  await rejectsUsage(openZip(join(tmpdir(), 'adasde-no-such.zip')), 'adasde-no-such.zip', /no such file/);
});

test('a deflate member inflating past its declared size stops during inflation', async () => {
  // 1 MB of zeros declared as 100 bytes; the CRC is that of the first 100 bytes, so only the
  // size cap can catch it.
  const big = Buffer.alloc(1 << 20);
  const buf = Buffer.concat(await buildZip([{ name: 'bomb', data: big.subarray(0, 100) }], { compressed: true }));
  const z = deflateRawSync(big, { level: 9 });
  // Rebuild by hand: the same headers but the big stream in place of the small one.
  const small = deflateRawSync(big.subarray(0, 100));
  const localEnd = 30 + 4; // local header + name 'bomb'
  const cd = buf.subarray(localEnd + small.length);
  const patchedCd = Buffer.from(cd);
  patchedCd.writeUInt32LE(z.length, 20); // compressed size
  patchedCd.writeUInt32LE(localEnd + z.length, patchedCd.length - 6); // central directory offset
  const local = Buffer.from(buf.subarray(0, localEnd));
  local.writeUInt32LE(z.length, 18);
  const bomb = Buffer.concat([local, z, patchedCd]);
  const r = await openZip(bomb, { label: 'bomb.zip' });
  await rejectsUsage(r.read('bomb'), 'bomb.zip', /inflates beyond its declared size of 100 bytes/);
});

test('EDM dataset zip: ../shared/data/cifar10-test.zip', async (t) => {
  const p = join(SHARED_DATA, 'cifar10-test.zip');
  if (!existsSync(p)) {
    t.skip('shared data not present');
    return;
  }
  const z = await openZip(p);
  try {
    const files = z.fileNames();
    const jpgs = files.filter((n) => n.endsWith('.jpg'));
    assert.equal(jpgs.length, 10000);
    assert.ok(z.has('dataset.json'));
    const meta = JSON.parse((await z.read('dataset.json')).toString('utf8')) as { labels: Array<[string, number]> };
    assert.equal(meta.labels.length, 10000);
    const first = await z.read(jpgs.sort()[0]!);
    assert.deepEqual([...first.subarray(0, 3)], [0xff, 0xd8, 0xff]); // JPEG SOI marker
  } finally {
    await z.close();
  }
});

test('zip64 fixture made by Python zipfile is read through its zip64 records', async () => {
  const buf = await readFile(fixture('zip64.npz'));
  assert.ok(buf.includes(Buffer.from([0x50, 0x4b, 0x06, 0x06])));
  const z = await openZip(buf);
  assert.deepEqual(z.fileNames(), ['f64_4x5.npy', 'u8_vec.npy', 'i64_2x3x4.npy']);
  // The central entries carry saturated 32-bit fields resolved from the zip64 extra field.
  assert.ok(z.entries.every((e) => e.uncompressedSize > 0 && e.uncompressedSize < 10000));
  assert.ok(z.entries[1]!.localHeaderOffset > 0);
  for (const e of z.entries) assert.equal((await z.read(e)).subarray(1, 6).toString('latin1'), 'NUMPY');
});
