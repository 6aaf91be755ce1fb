import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ndarray, writeNpy, type NdArray } from '../../src/io/npy.js';
import { encodeNpz, readNpz, readStatsNpz, writeNpz, writeStatsNpz } from '../../src/io/npz.js';
import { expected, expectedValues, fixture, num, rejectsUsage } from './helpers.js';

function values(a: NdArray): Array<number | boolean> {
  if (a.dtype === 'bool') return Array.from(a.data, (v) => v === 1);
  if (a.dtype === 'int64' || a.dtype === 'uint64') return Array.from(a.data, (v) => Number(v));
  return Array.from(a.data);
}

function sum(a: NdArray): number {
  let s = 0;
  for (const v of values(a)) s += Number(v);
  return s;
}

/** Compare an array read by us with what NumPy recorded when it wrote the fixture. */
function assertMatchesNumpy(name: string, a: NdArray): void {
  const want = expected().arrays[name];
  assert.ok(want, `no expectation for ${name}`);
  assert.equal(a.dtype, want.dtype, name);
  assert.deepEqual(a.shape, want.shape, name);
  assert.equal(a.data.length, want.size, name);
  assert.deepEqual(values(a), expectedValues(want), name);
  const s = num(want.sum);
  if (Number.isFinite(s)) assert.ok(Math.abs(sum(a) - s) <= 1e-9 * Math.max(1, Math.abs(s)), `${name} sum`);
}

for (const file of ['savez.npz', 'savez_compressed.npz', 'zip64.npz']) {
  test(`reads ${file} written by NumPy`, async () => {
    const names = expected().files[file]!;
    const m = await readNpz(fixture(file));
    assert.deepEqual([...m.keys()], names);
    for (const [k, a] of m) assertMatchesNumpy(k, a);
  });

  test(`reads ${file} from a Buffer (members at unaligned offsets)`, async () => {
    const m = await readNpz(await readFile(fixture(file)));
    for (const [k, a] of m) assertMatchesNumpy(k, a);
  });
}

test('names option reads only the requested members', async () => {
  const m = await readNpz(fixture('savez_compressed.npz'), { names: ['u8_vec', 'nope'] });
  assert.deepEqual([...m.keys()], ['u8_vec']);
});

test('readStatsNpz: float64 and float32 reference statistics', async () => {
  const e = expected().stats;
  const s = await readStatsNpz(fixture('stats.npz'));
  assert.equal(s.dim, e.dim);
  assert.deepEqual(Array.from(s.mu), e.mu);
  assert.deepEqual(Array.from(s.sigma), e.sigma);
  const s32 = await readStatsNpz(fixture('stats_f32.npz'));
  assert.ok(s32.mu instanceof Float64Array && s32.sigma instanceof Float64Array);
  assert.deepEqual(Array.from(s32.mu), e.mu32);
  assert.deepEqual(Array.from(s32.sigma), e.sigma32);
});

test('readStatsNpz refuses missing or misshapen members with one line', async () => {
  await rejectsUsage(readStatsNpz(fixture('stats_no_sigma.npz')), 'stats_no_sigma.npz', /missing array 'sigma'/);
  await rejectsUsage(readStatsNpz(fixture('savez.npz')), 'savez.npz', /missing array 'mu'/);
  await rejectsUsage(readStatsNpz(fixture('stats_bad_shape.npz')), 'stats_bad_shape.npz', /member 'sigma' has shape \(4, 3\); expected \(4, 4\)/);
  await rejectsUsage(readStatsNpz(fixture('stats_int.npz')), 'stats_int.npz', /member 'mu' is int64; expected float32 or float64/);
  await rejectsUsage(readStatsNpz(fixture('nope.npz')), 'nope.npz', /no such file/);
});

test('writeStatsNpz then readStatsNpz gives back the same float64 values', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'adasde-npz-'));
  try {
    const mu = new Float64Array([0.1, -2, 1e-300]);
    // A covariance spanning 20 orders of magnitude (readStatsNpz refuses non-covariances).
    const sigma = new Float64Array([1, 0.5, 0, 0.5, 2, 1e-10, 0, 1e-10, 1e10]);
    await writeStatsNpz(join(dir, 'ref.npz'), mu, sigma);
    const s = await readStatsNpz(join(dir, 'ref.npz'));
    assert.equal(s.dim, 3);
    assert.deepEqual(s.mu, mu);
    assert.deepEqual(s.sigma, sigma);
    const raw = await readNpz(join(dir, 'ref.npz'));
    assert.equal(raw.get('mu')!.dtype, 'float64');
    assert.deepEqual(raw.get('sigma')!.shape, [3, 3]);
    // |s_21| = 1e10 > sqrt(s_11 s_22): no covariance has that entry.
    await writeStatsNpz(join(dir, 'bad.npz'), mu, new Float64Array([1, 0.5, 0, 0.5, 2, 1e10, 0, 1e10, 3]));
    await rejectsUsage(readStatsNpz(join(dir, 'bad.npz')), 'bad.npz', /member 'sigma' is not positive semi-definite/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('files NumPy can write but we refuse: one line naming file and member', async () => {
  const cases: Array<[string, RegExp]> = [
    ['fortran.npz', /^.*fortran\.npz: member 'sigma' is Fortran-ordered; expected C order$/],
    ['bigendian.npz', /member 'mu' is big-endian \('>f8'\); expected little-endian/],
    ['object.npz', /member 'obj' is an object array \('\|O'\)/],
    ['structured.npz', /member 'rec' has a structured dtype/],
    ['complex.npz', /member 'z' has unsupported dtype '<c16'/],
  ];
  for (const [file, re] of cases) await rejectsUsage(readNpz(fixture(file)), file, re);
});

test('hostile archives are refused before large allocations', async () => {
  // Each message category shows where the refusal happened: from the npy header or the
  // zip directory (before inflating), or while inflating (capped at the declared size).
  await rejectsUsage(readNpz(fixture('huge_shape.npz')), 'huge_shape.npz', /member 'x' is truncated: shape \(1000000000000, 1000000\)/);
  await rejectsUsage(readNpz(fixture('truncated_npy.npz')), 'truncated_npy.npz', /member 'x' is truncated: shape \(100,\)/);
  await rejectsUsage(readNpz(fixture('truncated_member.npz')), 'truncated_member.npz', /member 'x\.npy' is truncated/);
  await rejectsUsage(readNpz(fixture('bomb.npz')), 'bomb.npz', /member 'x\.npy' inflates beyond its declared size of 1000 bytes/);
  await rejectsUsage(readNpz(fixture('bomb_declared.npz')), 'bomb_declared.npz', /declares 3000000000 bytes .* more than deflate can produce/);
  await rejectsUsage(readNpz(fixture('bad_crc_stored.npz')), 'bad_crc_stored.npz', /member 'x\.npy' fails its CRC-32 check/);
  await rejectsUsage(readNpz(fixture('bad_crc_deflate.npz')), 'bad_crc_deflate.npz', /member 'x\.npy' fails its CRC-32 check/);
  await rejectsUsage(readNpz(fixture('corrupt_deflate.npz')), 'corrupt_deflate.npz', /member 'x\.npy' is corrupt \(deflate/);
  await rejectsUsage(readNpz(fixture('not_a_zip.npz')), 'not_a_zip.npz', /not a valid zip file/);
  await rejectsUsage(readNpz(fixture('huge_shape.npz')), 'huge_shape.npz');
});

test('maxElements / maxBytes limits apply per member, before inflating', async () => {
  await rejectsUsage(readNpz(fixture('savez.npz'), { maxElements: 10 }), 'savez.npz', /member 'f64_4x5' has shape \(4, 5\) with 20 elements, over the limit of 10/);
  // A limit far below the member's declared size stops it at the zip level (not inflated).
  const msg = await rejectsUsage(readNpz(fixture('bomb.npz'), { maxBytes: 10 }), 'bomb.npz');
  assert.match(msg, /inflates beyond|over the limit/);
});

/** The arrays tools/fixtures/make_npz_fixtures.py --verify expects (ts_arrays there). */
function tsArrays(): Record<string, NdArray> {
  return {
    a: ndarray('float64', [2, 3], Float64Array.from([0, 1, 2, 3, 4, 5], (v) => v * 0.5)),
    b: ndarray('uint8', [5], Uint8Array.from([0, 1, 2, 3, 4])),
    c: ndarray('float32', [], Float32Array.from([3.5])),
    d: ndarray('int64', [0, 4], new BigInt64Array(0)),
    e: ndarray('bool', [3], Uint8Array.from([1, 0, 1])),
    f: ndarray('int64', [3], BigInt64Array.from([-7n, 0n, 2n ** 40n])),
    g: ndarray('int32', [3], Int32Array.from([1, -2, 3])),
  };
}

test('TS write -> TS read round trips (stored, deflate, zip64), atomically and deterministically', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'adasde-npz-'));
  try {
    const arrays = tsArrays();
    for (const opts of [{}, { compressed: true }, { compressed: true, forceZip64: true }, { forceZip64: true }]) {
      const p = join(dir, 'out', 'x.npz');
      await writeNpz(p, arrays, opts);
      const m = await readNpz(p);
      assert.deepEqual([...m.keys()], Object.keys(arrays));
      for (const [k, a] of Object.entries(arrays)) {
        const b = m.get(k)!;
        assert.equal(b.dtype, a.dtype);
        assert.deepEqual(b.shape, a.shape);
        assert.deepEqual(values(b), values(a));
      }
      // Byte-for-byte reproducible (fixed timestamps).
      const again = Buffer.concat(await encodeNpz(arrays, opts));
      assert.deepEqual(await readFile(p), again);
    }
    assert.deepEqual((await readdir(join(dir, 'out'))).sort(), ['x.npz']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('stored members contain the exact .npy bytes with a 64-aligned header', async () => {
  const chunks = await encodeNpz({ a: tsArrays()['a']! });
  const zip = Buffer.concat(chunks);
  const at = zip.indexOf("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }");
  assert.ok(at > 0);
  const npyStart = at - 10;
  assert.deepEqual([...zip.subarray(npyStart, npyStart + 8)], [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  const hlen = zip.readUInt16LE(npyStart + 8);
  assert.equal((10 + hlen) % 64, 0);
  assert.equal(zip[npyStart + 10 + hlen - 1], 0x0a);
  assert.equal(zip.readDoubleLE(npyStart + 10 + hlen + 8), 0.5);
});

// Manual cross-check with NumPy (see test/fixtures/npz/README.md): with ADASDE_NPZ_OUT set,
// write the files that `make_npz_fixtures.py --verify DIR` loads with np.load.
test('write files for the NumPy cross-check when ADASDE_NPZ_OUT is set', async (t) => {
  const out = process.env['ADASDE_NPZ_OUT'];
  if (!out) {
    t.skip('ADASDE_NPZ_OUT not set (manual NumPy cross-check)');
    return;
  }
  await mkdir(out, { recursive: true });
  const arrays = tsArrays();
  await writeNpz(join(out, 'ts_stored.npz'), arrays);
  await writeNpz(join(out, 'ts_compressed.npz'), arrays, { compressed: true });
  await writeNpz(join(out, 'ts_zip64.npz'), arrays, { compressed: true, forceZip64: true });
  await writeStatsNpz(join(out, 'ts_stats.npz'), Float64Array.from([1, 2, 3]), Float64Array.from({ length: 9 }, (_, i) => i));
  await writeNpy(join(out, 'ts_single.npy'), ndarray('float32', [2, 3, 4], Float32Array.from({ length: 24 }, (_, i) => i / 8)));
});
