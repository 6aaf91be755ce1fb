import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  encodeNpy,
  encodeNpyHeader,
  ndarray,
  parseNpy,
  parseNpyHeader,
  readNpy,
  toFloat64,
  writeNpy,
  type NdArray,
} from '../../src/io/npy.js';
import { expected, expectedValues, fixture, rejectsUsage } from './helpers.js';

function values(a: NdArray): Array<number | boolean> {
  if (a.dtype === 'bool') return Array.from(a.data, (v) => v === 1);
  if (a.dtype === 'int64' || a.dtype === 'uint64') return Array.from(a.data, (v) => Number(v));
  return Array.from(a.data);
}

test('reads .npy format versions 1.0, 2.0 and 3.0 written by NumPy', async () => {
  const want = expected().arrays['f64_4x5']!;
  for (const [file, major] of [['v1.npy', 1], ['v2.npy', 2], ['v3.npy', 3]] as const) {
    const bytes = await readFile(fixture(file));
    assert.equal(parseNpyHeader(bytes).version[0], major, file);
    const a = await readNpy(fixture(file));
    assert.equal(a.dtype, 'float64');
    assert.deepEqual(a.shape, want.shape);
    assert.deepEqual(values(a), expectedValues(want));
  }
});

test('float16 is widened to float32 exactly', async () => {
  const want = expected().arrays['f16_vec']!;
  const a = await readNpy(fixture('f16.npy'));
  assert.equal(a.dtype, 'float32');
  assert.deepEqual(a.shape, want.shape);
  // NumPy's float16 -> float32 widening is exact, so the values must match bit for bit.
  assert.deepEqual(Array.from(a.data as Float32Array), expectedValues(want));
});

test('our header bytes are identical to np.save for every fixture array', () => {
  const e = expected();
  for (const [name, hex] of Object.entries(e.npyHex)) {
    const numpyBytes = Buffer.from(hex, 'hex');
    const parsed = parseNpy(numpyBytes, { label: name });
    assert.deepEqual(Buffer.from(encodeNpy(parsed)), numpyBytes, name);
  }
});

test('header format: sorted keys, repr shape, padded to 64 bytes, ending in newline', () => {
  const h = Buffer.from(encodeNpyHeader('float64', [2, 3]));
  assert.equal(h.length % 64, 0);
  assert.deepEqual([...h.subarray(0, 8)], [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  assert.equal(h.readUInt16LE(8), h.length - 10);
  const text = h.subarray(10).toString('latin1');
  assert.ok(text.startsWith("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }"), text);
  assert.ok(text.endsWith('\n'));
  assert.match(text, /^[^\n]*\}\s*\n$/);
  assert.ok(Buffer.from(encodeNpyHeader('float32', [])).toString('latin1').includes("'shape': (), }"));
  assert.ok(Buffer.from(encodeNpyHeader('uint8', [7])).toString('latin1').includes("'descr': '|u1', 'fortran_order': False, 'shape': (7,), }"));
  assert.ok(Buffer.from(encodeNpyHeader('bool', [1])).toString('latin1').includes("'|b1'"));
  assert.ok(Buffer.from(encodeNpyHeader('int64', [1])).toString('latin1').includes("'<i8'"));
});

test('scalar, (n,), 0-length and int64 arrays round-trip through a file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'adasde-npy-'));
  try {
    const cases: NdArray[] = [
      ndarray('float64', [], new Float64Array([2.5])),
      ndarray('float32', [3], new Float32Array([1, -2, 0.25])),
      ndarray('int64', [0, 4], new BigInt64Array(0)),
      ndarray('int64', [2], new BigInt64Array([-(2n ** 62n), 2n ** 40n])),
      ndarray('bool', [2, 2], new Uint8Array([1, 0, 0, 1])),
      ndarray('int32', [1, 1, 2], new Int32Array([-5, 7])),
      ndarray('uint8', [2, 3], new Uint8Array([0, 1, 2, 253, 254, 255])),
    ];
    for (const [i, a] of cases.entries()) {
      const p = join(dir, `sub/a${i}.npy`);
      await writeNpy(p, a);
      const b = await readNpy(p);
      assert.equal(b.dtype, a.dtype);
      assert.deepEqual(b.shape, a.shape);
      assert.deepEqual(values(b), values(a));
    }
    assert.deepEqual((await readdir(join(dir, 'sub'))).filter((f) => f.includes('.tmp-')), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('unaligned data is copied into an aligned buffer', () => {
  const a = ndarray('float64', [2, 2], new Float64Array([1.5, -2, 3, 1e300]));
  const bytes = encodeNpy(a);
  const shifted = new Uint8Array(bytes.length + 3);
  shifted.set(bytes, 3);
  const view = shifted.subarray(3);
  assert.notEqual(view.byteOffset % 8, 0);
  const b = parseNpy(view);
  assert.deepEqual(Array.from(toFloat64(b)), [1.5, -2, 3, 1e300]);
  assert.equal((b.data as Float64Array).byteOffset % 8, 0);
});

test('Python 2 style and loosely formatted headers are accepted', () => {
  const make = (dict: string, data: Uint8Array): Uint8Array => {
    const h = Buffer.from(dict + '\n', 'latin1');
    return Buffer.concat([Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, h.length & 0xff, h.length >> 8]), h, data]);
  };
  const data = new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer);
  for (const dict of [
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }",
    '{"shape": (2, 3), "fortran_order": False, "descr": "<f4"}',
    "{ 'descr' : u'<f4' ,'fortran_order':False,'shape':( 2 , 3 ) }",
    "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 6), }", // F order with one non-unit axis = C order
  ]) {
    const a = parseNpy(make(dict, data));
    assert.equal(a.dtype, 'float32', dict);
    assert.equal(a.data.length, 6, dict);
  }
});

test('malformed, unsupported and hostile .npy files are refused with one line naming the file', async () => {
  const f = (n: string) => fixture(n);
  // The shape claims 8e18 bytes; refused from the header, before the data is read.
  await rejectsUsage(readNpy(f('huge_shape.npy')), 'huge_shape.npy', /truncated/, /\(1000000000000, 1000000\)/);
  await rejectsUsage(readNpy(f('truncated_npy.npy')), 'truncated_npy.npy', /truncated/, /800 data bytes, only 400/);
  await rejectsUsage(readNpy(f('malformed_header.npy')), 'malformed_header.npy', /malformed .npy header/);
  await rejectsUsage(readNpy(f('extra_key.npy')), 'extra_key.npy', /malformed .npy header/, /keys/);
  await rejectsUsage(readNpy(f('bad_version.npy')), 'bad_version.npy', /version 4\.0/);
  await rejectsUsage(readNpy(f('deep_nesting.npy')), 'deep_nesting.npy', /nested too deeply/);
  await rejectsUsage(readNpy(f('savez.npz')), 'savez.npz', /not a NumPy \.npy/);
  await rejectsUsage(readNpy(f('no-such.npy')), 'no-such.npy', /no such file/);
});

test('maxElements and maxBytes are enforced from the header', async () => {
  await rejectsUsage(readNpy(fixture('v1.npy'), { maxElements: 19 }), 'v1.npy', /20 elements, over the limit of 19/);
  await rejectsUsage(readNpy(fixture('v1.npy'), { maxBytes: 100 }), 'v1.npy', /160 bytes, over the limit of 100/);
  const a = await readNpy(fixture('v1.npy'), { maxElements: 20, maxBytes: 160 });
  assert.equal(a.data.length, 20);
});

test('bool bytes other than 0/1 read as true', () => {
  const bytes = encodeNpy(ndarray('bool', [3], new Uint8Array([0, 1, 1])));
  const copy = Uint8Array.from(bytes);
  copy[copy.length - 1] = 7;
  assert.deepEqual(Array.from(parseNpy(copy).data as Uint8Array), [0, 1, 1]);
});
