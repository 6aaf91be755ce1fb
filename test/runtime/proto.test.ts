import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { saveModel } from '../../src/onnx/builder.js';
import { buildGaussModel, buildMixtureModel } from '../support/models.js';
import { fromHalfBits, toHalfBits } from '../../src/runtime/half.js';
import {
  AttributeType,
  DataType,
  FileSource,
  MemorySource,
  ProtoError,
  ProtoReader,
  ProtoWriter,
  decodeModel,
  decodeModelHeader,
  encodeModel,
  floatTensor,
  int64Tensor,
  readModelHeader,
  tensorFloats,
  type ByteSource,
  type ModelProto,
} from '../../src/onnx/proto.js';
import { readModelSignature } from '../../src/runtime/session.js';
import { tempDir } from './helpers.js';

test('varints and int64 round trip, including negative and large values', () => {
  const values = [0, 1, 127, 128, 300, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 5, 2 ** 40, 2 ** 53 - 1, -1, -2, -(2 ** 31), -(2 ** 40)];
  const w = new ProtoWriter();
  for (const v of values) w.int64Field(1, v);
  w.floatField(2, 1.5).floatField(2, -0.1);
  const r = new ProtoReader(new MemorySource(w.finish()));
  for (const v of values) {
    assert.deepEqual(r.tag(), [1, 0]);
    assert.equal(r.int64(), v);
  }
  assert.deepEqual(r.tag(), [2, 5]);
  assert.equal(r.float(), 1.5);
  assert.deepEqual(r.tag(), [2, 5]);
  assert.equal(r.float(), Math.fround(-0.1));
  assert.ok(r.eof());
});

function sampleModel(): ModelProto {
  return {
    irVersion: 8,
    opsetImport: [
      { domain: '', version: 17 },
      { domain: 'com.microsoft', version: 1 },
    ],
    producerName: 'test',
    producerVersion: '1.2',
    metadataProps: [
      { key: 'adasde.family', value: 'analytic' },
      { key: 'unicode', value: 'σ → ∞' },
    ],
    graph: {
      name: 'g',
      node: [
        {
          input: ['x', 'w'],
          output: ['y'],
          name: 'n0',
          opType: 'Conv',
          domain: '',
          attribute: [
            { name: 'alpha', type: AttributeType.FLOAT, f: 0.25 },
            { name: 'axis', type: AttributeType.INT, i: -1 },
            { name: 'mode', type: AttributeType.STRING, s: new TextEncoder().encode('linear') },
            { name: 'pads', type: AttributeType.INTS, ints: [1, 1, -2, 3] },
            { name: 'scales', type: AttributeType.FLOATS, floats: [0.5, 2] },
            { name: 'value', type: AttributeType.TENSOR, t: floatTensor('c', [2], [1, 2]) },
          ],
        },
        { input: ['y', ''], output: ['z'], name: '', opType: 'Custom', domain: 'com.microsoft', attribute: [] },
      ],
      initializer: [
        floatTensor('w', [2, 3], [1, 2, 3, 4, 5, 6]),
        int64Tensor('shape', [2], [-1, 7]),
        { name: 'ext', dims: [4], dataType: DataType.FLOAT, dataLocation: 1, externalData: [{ key: 'location', value: 'w.bin' }, { key: 'offset', value: '0' }] },
      ],
      input: [
        { name: 'x', type: { elemType: DataType.FLOAT16, shape: ['N', 3, null, 32] } },
        { name: 'w', type: { elemType: DataType.FLOAT, shape: [2, 3] } },
      ],
      output: [{ name: 'z', type: { elemType: DataType.FLOAT } }],
      valueInfo: [{ name: 'y' }],
    },
  };
}

test('encodeModel then decodeModel reproduces every supported field', () => {
  const m = sampleModel();
  const back = decodeModel(encodeModel(m));
  assert.deepEqual(back, m);
  assert.deepEqual(Array.from(tensorFloats(back.graph!.initializer[0]!)), [1, 2, 3, 4, 5, 6]);
  // Re-encoding the decoded model is byte-identical.
  assert.deepEqual(encodeModel(back), encodeModel(m));
});

test('decoder skips unknown fields of every wire type and reads packed dims', () => {
  const tensor = new ProtoWriter();
  tensor.tag(1, 2).varint(3).varint(2).varint(3).varint(4); // packed dims [2,3,4]
  tensor.int64Field(2, DataType.FLOAT);
  tensor.int64Field(99, 12345); // unknown varint
  tensor.tag(98, 1).rawBytes(new Uint8Array(8)); // unknown fixed64
  tensor.tag(97, 5).rawBytes(new Uint8Array(4)); // unknown fixed32
  tensor.bytesField(96, new Uint8Array([1, 2, 3])); // unknown bytes
  tensor.stringField(8, 't');
  const graph = new ProtoWriter().bytesField(5, tensor.finish()).stringField(2, 'g').bytesField(777, new Uint8Array(10));
  const model = new ProtoWriter().int64Field(1, 9).int64Field(21, 5).bytesField(7, graph.finish()).finish();
  const m = decodeModel(model);
  assert.equal(m.irVersion, 9);
  assert.equal(m.graph!.name, 'g');
  assert.deepEqual(m.graph!.initializer[0]!.dims, [2, 3, 4]);
  assert.equal(m.graph!.initializer[0]!.name, 't');
});

test('truncated and malformed bytes raise ProtoError', () => {
  const bytes = encodeModel(sampleModel());
  assert.throws(() => decodeModel(bytes.subarray(0, bytes.length - 3)), ProtoError);
  assert.throws(() => decodeModel(new Uint8Array([0x0f, 0x00])), ProtoError); // wire type 7
  assert.throws(() => decodeModel(new Uint8Array([0x00])), ProtoError); // field 0
});

test('a builder model decodes with its metadata and signatures', () => {
  const mu = new Float64Array(48).fill(0.5);
  const bytes = encodeModel(buildGaussModel({ mu, s: 0.3 }, [3, 4, 4], { datasetName: 'unit' }));
  const m = decodeModel(bytes);
  const md = Object.fromEntries(m.metadataProps.map((e) => [e.key, e.value]));
  assert.equal(md['adasde.family'], 'analytic');
  assert.equal(md['adasde.img_channels'], '3');
  assert.equal(md['adasde.img_resolution'], '4');
  assert.equal(md['adasde.dataset_name'], 'unit');
  assert.deepEqual(m.opsetImport, [{ domain: '', version: 17 }]);
  assert.deepEqual(
    m.graph!.input.map((v) => [v.name, v.type?.elemType, v.type?.shape]),
    [
      ['x', DataType.FLOAT, ['N', 3, 4, 4]],
      ['sigma', DataType.FLOAT, ['N']],
    ],
  );
  assert.deepEqual(m.graph!.output.map((v) => [v.name, v.type?.shape]), [['denoised', ['N', 3, 4, 4]]]);
  const muTensor = m.graph!.initializer.find((t) => t.dims.join() === '3,4,4')!;
  assert.deepEqual(Array.from(tensorFloats(muTensor)), Array.from(mu));
});

/** Counts the bytes a decoder actually reads. */
class CountingSource implements ByteSource {
  touched = 0;
  constructor(private readonly inner: ByteSource) {}
  get length(): number {
    return this.inner.length;
  }
  byte(pos: number): number {
    this.touched++;
    return this.inner.byte(pos);
  }
  bytes(pos: number, len: number): Uint8Array {
    this.touched += len;
    return this.inner.bytes(pos, len);
  }
}

test('header decoding skips initializer payloads (a few kilobytes of a 5 MB model)', () => {
  const t = tempDir();
  try {
    const K = 100;
    const dim = 3 * 64 * 64;
    const params = { weights: new Float64Array(K).fill(1), means: new Float64Array(K * dim).fill(0.25), stds: new Float64Array(K) };
    const file = t.file('big.onnx');
    saveModel(buildMixtureModel(params, [3, 64, 64], { distance: 'matmul' }), file);
    const src = new FileSource(file);
    const counting = new CountingSource(src);
    try {
      const m = decodeModelHeader(counting);
      assert.ok(src.length > 4 * K * dim, 'model holds the means');
      assert.ok(counting.touched < 5000, `read ${counting.touched} bytes`);
      assert.equal(m.graph!.node.length, 0);
      assert.ok(m.graph!.initializer.every((i) => i.rawData === undefined));
      assert.ok(m.graph!.initializer.some((i) => i.dims.join() === `${K},${dim}`));
    } finally {
      src.close();
    }
    const header = readModelHeader(file);
    assert.equal(header.metadataProps.find((e) => e.key === 'adasde.img_resolution')?.value, '64');
    const sig = readModelSignature(file);
    assert.deepEqual(
      sig.inputs.map((s) => [s.name, s.dtype, s.dims]),
      [
        ['x', 'float32', ['N', 3, 64, 64]],
        ['sigma', 'float32', ['N']],
      ],
    );
    assert.deepEqual(sig.externalFiles, []);
  } finally {
    t.cleanup();
  }
});

test('external data: signature lists the weights file and the model file stays small', () => {
  const t = tempDir();
  try {
    const file = t.file('ext.onnx');
    saveModel(buildGaussModel({ mu: new Float64Array(3 * 32 * 32).fill(0.1), s: 0.5 }, [3, 32, 32]), file, { externalData: 'ext.onnx.data' });
    const sig = readModelSignature(file);
    assert.deepEqual(sig.externalFiles, ['ext.onnx.data']);
    const m = readModelHeader(file);
    const mu = m.graph!.initializer.find((i) => i.dataLocation === 1)!;
    assert.deepEqual(
      mu.externalData!.map((e) => e.key),
      ['location', 'offset', 'length'],
    );
  } finally {
    t.cleanup();
  }
});

test('binary16 conversion rounds to nearest even and round-trips every half value', () => {
  for (let h = 0; h < 0x10000; h++) {
    const v = fromHalfBits(h);
    if (Number.isNaN(v)) continue;
    assert.equal(toHalfBits(v), h, `bits ${h.toString(16)}`);
  }
  assert.equal(toHalfBits(1 + 2 ** -11), 0x3c00); // tie -> even (down)
  assert.equal(toHalfBits(1 + 3 * 2 ** -11), 0x3c02); // tie -> even (up)
  assert.equal(toHalfBits(1 + 2 ** -11 + 2 ** -40), 0x3c01); // just above the tie (float32 would round to the tie)
  assert.equal(toHalfBits(65520), 0x7c00); // overflow to inf
  assert.equal(toHalfBits(2 ** -25), 0); // tie between 0 and the smallest subnormal -> 0
  assert.equal(toHalfBits(2 ** -25 * 1.5), 1);
  assert.equal(fromHalfBits(toHalfBits(-0.1)), -0.0999755859375);
  assert.ok(Number.isNaN(fromHalfBits(toHalfBits(NaN))));
});

test('signatures leave out initializers listed as graph inputs (IR < 4 style) and list external files', () => {
  const t = tempDir();
  try {
    const file = t.file('sample.onnx');
    saveModel(sampleModel(), file);
    const sig = readModelSignature(file);
    assert.deepEqual(
      sig.inputs.map((s) => [s.name, s.dtype, s.dims]),
      [['x', 'float16', ['N', 3, null, 32]]],
    );
    assert.deepEqual(sig.outputs.map((s) => [s.name, s.dtype, s.dims]), [['z', 'float32', undefined]]);
    assert.deepEqual(sig.externalFiles, ['w.bin']);
    assert.equal(sig.opset, 17);
    assert.equal(sig.producerName, 'test');
    assert.equal(sig.metadata['unicode'], 'σ → ∞');
  } finally {
    t.cleanup();
  }
});
