/**
 * Companion contracts (text encoder, first-stage decoder, classifier) on graphs built with
 * the project's graph builder: outputs equal their closed forms, batches are split and
 * padded like the denoiser's, and every contract violation is a one-line UsageError.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { checkDecoderSignature, checkTextEncoderSignature, loadClassifier, loadDecoder, loadTextEncoder } from '../../src/runtime/companions.js';
import { collector } from '../../src/runtime/contract.js';
import { GraphBuilder, saveModel } from '../../src/onnx/builder.js';
import { buildDecoderModel, buildTextEncoderModel, seededUniform } from '../support/models.js';
import { DataType, type Dim } from '../../src/onnx/proto.js';
import { readModelSignature } from '../../src/runtime/session.js';
import { normals, rejectsUsage, tempDir } from './helpers.js';

const t = tempDir();
after(() => t.cleanup());

const V = 20;
const E = 3;
const L = 5;
const u = seededUniform(3);
const EMB = Float32Array.from({ length: V * E }, () => 2 * u() - 1);
const POS = Float32Array.from({ length: L * E }, () => 0.1 * (2 * u() - 1));

function encodeRef(ids: ArrayLike<number>): number[] {
  const out: number[] = [];
  const mean = new Array<number>(E).fill(0);
  for (let l = 0; l < L; l++) for (let e = 0; e < E; e++) mean[e]! += EMB[ids[l]! * E + e]! / L;
  for (let l = 0; l < L; l++) for (let e = 0; e < E; e++) out.push(EMB[ids[l]! * E + e]! + POS[l * E + e]! + mean[e]!);
  return out;
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k]! - b[k]!));
  return m;
}

describe('text encoder', () => {
  const ids = Int32Array.from({ length: 4 * L }, (_, k) => (k * 7 + 3) % V);
  const want = [0, 1, 2, 3].flatMap((r) => encodeRef(ids.subarray(r * L, (r + 1) * L)));

  for (const variant of [
    { name: 'int64 ids, output condition', spec: {} },
    { name: 'int32 ids, output last_hidden_state', spec: { idsType: 'int32' as const, outputName: 'last_hidden_state' } },
    { name: 'symbolic sequence length', spec: { dynamicSeq: true } },
  ]) {
    test(`${variant.name}: states equal emb + pos + mean`, async () => {
      const f = t.file(`enc-${variant.name.replace(/\W+/g, '-')}.onnx`);
      saveModel(buildTextEncoderModel({ vocabSize: V, embedDim: E, seqLen: L, embedding: EMB, position: POS, ...variant.spec }), f);
      const m = await loadTextEncoder(f, { maxBatch: 3 });
      try {
        if (!variant.spec.dynamicSeq) assert.equal(m.io.seqLen, L);
        assert.equal(m.io.embedDim, E);
        const res = await m.encode(ids, 4, L);
        assert.equal(res.L, L);
        assert.equal(res.E, E);
        assert.ok(maxAbs(res.data, want) < 1e-6);
        assert.equal(m.stats.runs, 2, 'maxBatch 3 splits 4 rows into 2 runs');
      } finally {
        await m.dispose();
      }
    });
  }

  test('a fixed batch of 2 pads the last run', async () => {
    const f = t.file('enc-fixed.onnx');
    saveModel(buildTextEncoderModel({ vocabSize: V, embedDim: E, seqLen: L, embedding: EMB, position: POS, batch: 2 }), f);
    const m = await loadTextEncoder(f);
    try {
      const res = await m.encode(ids.subarray(0, 3 * L), 3, L);
      assert.ok(maxAbs(res.data, want.slice(0, 3 * L * E)) < 1e-6);
      assert.equal(m.stats.runs, 2);
      assert.equal(m.stats.paddedRows, 1);
    } finally {
      await m.dispose();
    }
  });

  test('contract violations', async () => {
    const custom = (name: string, inName: string, inType: number, inDims: Dim[], outName: string, outDims: Dim[], meta: Record<string, string> = {}) => {
      const b = new GraphBuilder('enc');
      let v = b.input(inName, inType, inDims);
      v = b.op('Cast', [v], { to: { i: DataType.FLOAT } });
      v = b.op('Unsqueeze', [v, b.constantInt64([2], [1])]);
      b.output(b.op('Tile', [v, b.constantInt64([1, 1, E], [3])]), outName, DataType.FLOAT, outDims);
      const f = t.file(name);
      saveModel(b.model(meta), f);
      return f;
    };
    await rejectsUsage(loadTextEncoder(custom('e1.onnx', 'ids', DataType.INT64, ['N', L], 'condition', ['N', L, E])), /unexpected input 'ids' \[N,5\]; a text encoder takes only input_ids \[N,L\]/);
    await rejectsUsage(loadTextEncoder(custom('e2.onnx', 'input_ids', DataType.FLOAT, ['N', L], 'condition', ['N', L, E])), /input 'input_ids' has dtype float32; expected int64 \(or int32\)/);
    await rejectsUsage(loadTextEncoder(custom('e3.onnx', 'input_ids', DataType.INT64, ['N', L], 'hidden', ['N', L, E])), /has no output 'condition' \(or 'last_hidden_state'\) \[N,L,E\] \(model outputs: hidden\)/);
    await rejectsUsage(loadTextEncoder(custom('e4.onnx', 'input_ids', DataType.INT64, ['N', L], 'condition', ['N', L + 1, E])), /output 'condition' has shape \[N,6,3\]; expected \[N,5,3\] \(one state per token\)/);
    await rejectsUsage(loadTextEncoder(custom('e5.onnx', 'input_ids', DataType.INT64, ['N', L], 'condition', ['N', L, E], { 'adasde.role': 'decoder' })), /adasde\.role='decoder'; a text encoder has adasde\.role='text_encoder'/);
    // inspect collects every problem instead of stopping at the first.
    const f = custom('e6.onnx', 'ids', DataType.FLOAT, ['N', L], 'hidden', ['N', L, E]);
    const c = collector();
    checkTextEncoderSignature(f, readModelSignature(f), c.sink);
    assert.deepEqual(c.problems.map((p) => p.replace(`${f}: `, '')), [
      "unexpected input 'ids' [N,5]; a text encoder takes only input_ids [N,L]",
      "has no input 'input_ids'; a text encoder takes input_ids int64 [N,L] (model inputs: ids)",
    ]);
    const m = await loadTextEncoder(custom('e7.onnx', 'input_ids', DataType.INT64, ['N', L], 'condition', ['N', L, E]));
    try {
      await rejectsUsage(m.encode(new Int32Array(2 * 7), 2, 7), /input 'input_ids' takes 5 tokens per row; got 7/);
    } finally {
      await m.dispose();
    }
  });
});

describe('decoder', () => {
  const C = 2;
  const W = Float32Array.from([0.5, -0.3, 0.2, 0.9, -0.7, 0.1]);
  const B = Float32Array.from([0.05, -0.1, 0.2]);
  const ref = (z: Float64Array, n: number): number[] => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < 3; c++) {
        for (let y = 0; y < 6; y++) {
          for (let x = 0; x < 6; x++) {
            let acc = B[c]!;
            for (let k = 0; k < C; k++) acc += W[c * C + k]! * Math.fround(z[i * 18 + k * 9 + Math.floor(y / 2) * 3 + Math.floor(x / 2)]!);
            out.push(Math.tanh(acc));
          }
        }
      }
    }
    return out;
  };

  test('image = tanh(1x1 conv) upsampled, in [-1, 1], split into runs', async () => {
    const f = t.file('dec.onnx');
    saveModel(buildDecoderModel({ latent: [C, 3, 3], weight: W, bias: B, scale: 2, metadata: { 'adasde.scale_factor': '0.5' } }), f);
    const m = await loadDecoder(f, { maxBatch: 2, latentShape: [C, 3, 3] });
    try {
      const z = normals(5 * 18, 4);
      const img = await m.decode(z, 5, [C, 3, 3]);
      assert.deepEqual(img.shape, [3, 6, 6]);
      assert.ok(img.data instanceof Float32Array);
      assert.ok(maxAbs(img.data, ref(z, 5)) < 1e-6);
      assert.ok(img.data.every((v) => v >= -1 && v <= 1));
      assert.equal(m.stats.runs, 3);
    } finally {
      await m.dispose();
    }
  });

  test('contract violations, checked against the denoiser latent shape', async () => {
    const f = t.file('dec2.onnx');
    saveModel(buildDecoderModel({ latent: [C, 3, 3], weight: W, bias: B }), f);
    await rejectsUsage(loadDecoder(f, { latentShape: [4, 3, 3] }), /input 'z' has shape \[N,2,3,3\]; expected \[N,4,3,3\] \(the denoiser's samples are \[4,3,3\]\)/);
    const g = t.file('dec3.onnx');
    saveModel(buildDecoderModel({ latent: [C, 3, 3], weight: W, bias: B, inputName: 'x', outputName: 'rgb' }), g);
    const c = collector();
    checkDecoderSignature(g, readModelSignature(g), c.sink);
    assert.deepEqual(c.problems.map((p) => p.replace(`${g}: `, '')), [
      "unexpected input 'x' [N,2,3,3]; a decoder takes only z [N,C,h,w]",
      "has no input 'z'; a decoder takes z [N,C,h,w] (model inputs: x)",
    ]);
    // `latents` -> `images` is accepted as the alternative spelling.
    const h = t.file('dec4.onnx');
    saveModel(buildDecoderModel({ latent: [C, 3, 3], weight: W, bias: B, inputName: 'latents', outputName: 'images' }), h);
    const m = await loadDecoder(h);
    await m.dispose();
  });
});

describe('classifier', () => {
  test('log_probs = log_softmax(W x / sqrt(1 + sigma^2)) and its contract', async () => {
    const D = 12;
    const K = 4;
    const Wc = Float32Array.from({ length: D * K }, (_, k) => Math.sin(k));
    const b = new GraphBuilder('cls');
    const x = b.input('x', DataType.FLOAT, ['N', 3, 2, 2]);
    const s = b.input('sigma', DataType.FLOAT, ['N']);
    const flat = b.op('Flatten', [x], { axis: { i: 1 } });
    const scale = b.op('Reshape', [b.op('Sqrt', [b.op('Add', [b.op('Mul', [s, s]), b.scalar(1)])]), b.constantInt64([-1, 1], [2])]);
    const logits = b.op('Div', [b.op('MatMul', [flat, b.constant(Wc, [D, K])]), scale]);
    b.output(b.op('LogSoftmax', [logits], { axis: { i: 1 } }), 'log_probs', DataType.FLOAT, ['N', K]);
    const f = t.file('cls.onnx');
    saveModel(b.model({ 'adasde.role': 'classifier' }), f);
    const m = await loadClassifier(f, { sampleShape: [3, 2, 2], labelDim: K });
    try {
      const xs = normals(2 * D, 9);
      const sig = Float64Array.from([0.5, 3]);
      const res = await m.classify(xs, sig, 2, [3, 2, 2]);
      assert.equal(res.classes, K);
      for (let i = 0; i < 2; i++) {
        const lg = Array.from({ length: K }, (_, k) => {
          let a = 0;
          for (let j = 0; j < D; j++) a += Math.fround(xs[i * D + j]!) * Wc[j * K + k]!;
          return a / Math.sqrt(1 + sig[i]! ** 2);
        });
        const mx = Math.max(...lg);
        const lse = mx + Math.log(lg.reduce((a, v) => a + Math.exp(v - mx), 0));
        assert.ok(maxAbs(res.data.subarray(i * K, (i + 1) * K), lg.map((v) => v - lse)) < 1e-5);
      }
    } finally {
      await m.dispose();
    }
    await rejectsUsage(loadClassifier(f, { labelDim: 10 }), /output 'log_probs' has shape \[N,4\]; expected \[N,10\] \(adasde\.label_dim=10\)/);
  });
});
