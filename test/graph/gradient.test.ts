/**
 * The classifier gradient transform (src/graph/gradient.ts) against independent truth:
 *   (a) PyTorch autograd's input gradients of the ADM fixture classifiers
 *       (test/fixtures/export/adm, `gradient_cases` of its manifest, written by
 *       tools/export/selftest.py), to the manifest's 1e-4 rule;
 *   (b) central differences of the forward classifier run in onnxruntime-node, on the
 *       fixture classifier and on graphs built here that exercise every operator rule
 *       (strided/padded/grouped Conv, Gemm with transposes, batched MatMul, broadcasting
 *       Add/Sub/Mul/Div, SiLU, GroupNorm as torch exports it, Softmax, LogSoftmax, Reshape,
 *       Transpose, Concat, Slice, Split, Gather, Pad, ReduceMean, AveragePool, Einsum, ...);
 *   (c) refusal, naming the node, of an operator without a rule on the path from x.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import ort from 'onnxruntime-node';
import { UsageError } from '../../src/core/errors.js';
import { classifierGradientModel } from '../../src/graph/gradient.js';
import { readNpy, toFloat64 } from '../../src/io/npy.js';
import { AttributeType, DataType, decodeModel, encodeModel, type ModelProto } from '../../src/onnx/proto.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { seededUniform } from '../support/models.js';
import { repoRoot } from '../helpers.js';
import { elementCount } from '../../src/core/shape.js';

const ADM = join(repoRoot, 'test', 'fixtures', 'export', 'adm');

async function session(m: ModelProto): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(encodeModel(m));
}

interface Inputs {
  x: Float32Array;
  sigma: Float32Array;
  labels: Float32Array;
  xDims: number[];
  K: number;
}

async function forward(s: ort.InferenceSession, inp: Inputs, x: Float32Array): Promise<Float32Array> {
  const n = inp.xDims[0]!;
  const r = await s.run({ x: new ort.Tensor('float32', x, inp.xDims), sigma: new ort.Tensor('float32', inp.sigma, [n]) });
  return r['log_probs']!.data as Float32Array;
}

async function gradient(s: ort.InferenceSession, inp: Inputs): Promise<{ grad: Float32Array; logProbs: Float32Array }> {
  const n = inp.xDims[0]!;
  const r = await s.run({
    x: new ort.Tensor('float32', inp.x, inp.xDims),
    sigma: new ort.Tensor('float32', inp.sigma, [n]),
    class_labels: new ort.Tensor('float32', inp.labels, [n, inp.K]),
  });
  return { grad: r['grad_x']!.data as Float32Array, logProbs: r['log_probs']!.data as Float32Array };
}

/** Per sample: f_n(x) = sum_k labels[n,k] log_probs[n,k]. */
function picked(lp: Float32Array, labels: Float32Array, n: number, K: number): Float64Array {
  const f = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let k = 0; k < K; k++) f[i]! += labels[i * K + k]! * lp[i * K + k]!;
  return f;
}

/**
 * Directional derivatives along random directions by Richardson-extrapolated central
 * differences ((4 D(h/2) - D(h)) / 3, error O(h^4)), compared per sample with grad . v.
 * Returns the worst |fd - grad.v| / max(1, |grad| |v|).
 */
async function centralDifferenceError(model: ModelProto, inp: Inputs, directions = 3, h = 0.02): Promise<number> {
  const fwd = await session(model);
  const bwd = await session(classifierGradientModel(model));
  const { grad } = await gradient(bwd, inp);
  const n = inp.xDims[0]!;
  const per = inp.x.length / n;
  const rand = seededUniform(99);
  let worst = 0;
  for (let d = 0; d < directions; d++) {
    const v = Float32Array.from({ length: inp.x.length }, () => 2 * rand() - 1);
    const diff = async (step: number) => {
      const xp = Float32Array.from(inp.x, (xv, j) => xv + step * v[j]!);
      const xm = Float32Array.from(inp.x, (xv, j) => xv - step * v[j]!);
      const fp = picked(await forward(fwd, inp, xp), inp.labels, n, inp.K);
      const fm = picked(await forward(fwd, inp, xm), inp.labels, n, inp.K);
      return fp.map((p, i) => (p - fm[i]!) / (2 * step));
    };
    const dh = await diff(h);
    const dh2 = await diff(h / 2);
    for (let i = 0; i < n; i++) {
      const fd = (4 * dh2[i]! - dh[i]!) / 3;
      let gv = 0;
      let gn = 0;
      let vn = 0;
      for (let j = i * per; j < (i + 1) * per; j++) {
        gv += grad[j]! * v[j]!;
        gn += grad[j]! ** 2;
        vn += v[j]! ** 2;
      }
      worst = Math.max(worst, Math.abs(fd - gv) / Math.max(1, Math.sqrt(gn * vn)));
    }
  }
  await fwd.release();
  await bwd.release();
  return worst;
}

function randomInputs(xDims: number[], K: number, seed: number): Inputs {
  const rand = seededUniform(seed);
  const n = xDims[0]!;
  const size = elementCount(xDims);
  const labels = new Float32Array(n * K);
  for (let i = 0; i < n; i++) labels[i * K + ((i * 7 + 3) % K)] = 1;
  return {
    x: Float32Array.from({ length: size }, () => 2 * rand() - 1),
    sigma: Float32Array.from({ length: n }, (_, i) => 0.3 + i),
    labels,
    xDims,
    K,
  };
}

// ---------------------------------------------------------------------------------------
// (a) PyTorch autograd fixtures
// ---------------------------------------------------------------------------------------

interface GradCase {
  name: string;
  model: string;
  inputs: Record<string, string>;
  outputs: { grad_x: string };
  reference_float64?: { grad_x: string };
  tolerance: number;
}

async function fixtureInputs(c: GradCase, rows?: number): Promise<Inputs> {
  const x = await readNpy(join(ADM, c.inputs['x']!));
  const s = await readNpy(join(ADM, c.inputs['sigma']!));
  const l = await readNpy(join(ADM, c.inputs['class_labels']!));
  const n = rows ?? x.shape[0]!;
  const K = l.shape[1]!;
  const per = elementCount(x.shape.slice(1));
  return {
    x: Float32Array.from(toFloat64(x).subarray(0, n * per)),
    sigma: Float32Array.from(toFloat64(s).subarray(0, n)),
    labels: Float32Array.from(toFloat64(l).subarray(0, n * K)),
    xDims: [n, ...x.shape.slice(1)],
    K,
  };
}

function scaledErrors(got: ArrayLike<number>, ref: ArrayLike<number>, n: number): number {
  const per = ref.length / n;
  let worst = 0;
  for (let i = 0; i < n; i++) {
    let d = 0;
    let m = 0;
    for (let j = i * per; j < (i + 1) * per; j++) {
      d = Math.max(d, Math.abs(got[j]! - ref[j]!));
      m = Math.max(m, Math.abs(ref[j]!));
    }
    worst = Math.max(worst, d / Math.max(1, m));
  }
  return worst;
}

describe('gradient graph vs PyTorch autograd (ADM fixture classifiers)', () => {
  const manifest = JSON.parse(readFileSync(join(ADM, 'manifest.json'), 'utf8')) as { gradient_cases?: GradCase[] };
  const cases = manifest.gradient_cases ?? [];
  test('the fixture has the companion and the attention-pooling classifier', () => {
    assert.deepEqual(cases.map((c) => c.name).sort(), ['classifier-attnpool-gradient', 'classifier-gradient']);
  });
  for (const c of cases) {
    test(`${c.name}: equals autograd to ${c.tolerance} (batch n and batch 1), and log_probs are kept`, async (t) => {
      const model = decodeModel(new Uint8Array(readFileSync(join(ADM, c.model))));
      const s = await session(classifierGradientModel(model, { file: c.model }));
      const ref = toFloat64(await readNpy(join(ADM, c.outputs.grad_x)));
      const ref64 = c.reference_float64 ? toFloat64(await readNpy(join(ADM, c.reference_float64.grad_x))) : undefined;
      const full = await fixtureInputs(c);
      const n = full.xDims[0]!;
      const { grad, logProbs } = await gradient(s, full);
      const e = scaledErrors(grad, ref, n);
      t.diagnostic(`scaled error vs torch float32 autograd ${e.toExponential(2)}`);
      assert.ok(e <= c.tolerance, `scaled error ${e} vs torch float32`);
      if (ref64) assert.ok(scaledErrors(grad, ref64, n) <= c.tolerance, 'vs torch float64');
      // The gradient is not trivially small: it is the reference's size.
      assert.ok(Math.max(...Array.from(ref, Math.abs)) > 1e-2);
      const one = await gradient(s, await fixtureInputs(c, 1));
      assert.ok(scaledErrors(one.grad, ref.subarray(0, ref.length / n), 1) <= c.tolerance, 'batch 1');
      const fwd = await session(model);
      const lp = await forward(fwd, full, full.x);
      assert.ok(scaledErrors(logProbs, lp, n) < 1e-6, 'log_probs output equals the classifier');
      await s.release();
      await fwd.release();
    });
  }
  test('central differences of the forward companion classifier agree with its gradient graph', async (t) => {
    const c = cases.find((k) => k.name === 'classifier-gradient')!;
    const model = decodeModel(new Uint8Array(readFileSync(join(ADM, c.model))));
    const inp = await fixtureInputs(c);
    // sigma_max = 152 makes the classifier nearly constant; the fixture's 4 rows span 0.01 .. 152.
    const err = await centralDifferenceError(model, inp);
    t.diagnostic(`central differences: worst scaled error ${err.toExponential(2)}`);
    assert.ok(err < 3e-4, `central differences: ${err}`);
  });
});

// ---------------------------------------------------------------------------------------
// (b) Central differences on graphs exercising every rule
// ---------------------------------------------------------------------------------------

type Body = (b: GraphBuilder, x: string, sigma: string, w: (dims: number[], scale?: number) => string) => string;

/** A classifier-contract graph: x [N,C,H,W], sigma [N] -> log_probs = LogSoftmax(body) [N,K]. */
function classifier(xDims: number[], K: number, body: Body, seed = 1): ModelProto {
  const b = new GraphBuilder('test_classifier');
  const x = b.input('x', DataType.FLOAT, ['N', ...xDims]);
  const sigma = b.input('sigma', DataType.FLOAT, ['N']);
  const rand = seededUniform(seed);
  const w = (dims: number[], scale = 1) => {
    const size = elementCount(dims);
    return b.constant(Float32Array.from({ length: size }, () => (2 * rand() - 1) * scale), dims, 'w');
  };
  const logits = body(b, x, sigma, w);
  b.output(b.op('LogSoftmax', [logits], { axis: { i: -1 } }), 'log_probs', DataType.FLOAT, ['N', K]);
  return b.model({ 'adasde.role': 'classifier' });
}

const i64 = (b: GraphBuilder, v: number[]) => b.constantInt64(v, [v.length]);
const silu = (b: GraphBuilder, v: string) => b.op('Mul', [v, b.op('Sigmoid', [v])]);
/** torch.nn.GroupNorm as torch.onnx exports it (opset 17): Reshape, InstanceNormalization, Reshape, affine. */
function groupNorm(b: GraphBuilder, v: string, C: number, groups: number, w: Body extends (...a: infer A) => string ? A[3] : never): string {
  const r = b.op('Reshape', [v, i64(b, [0, groups, -1])]);
  const inorm = b.op('InstanceNormalization', [r, b.constant(new Float32Array(groups).fill(1), [groups]), b.constant(new Float32Array(groups), [groups])], { epsilon: { f: 1e-5 } });
  const back = b.op('Reshape', [inorm, b.op('Shape', [v])]);
  return b.op('Add', [b.op('Mul', [back, w([C, 1, 1], 1)]), w([C, 1, 1], 0.5)]);
}
const flattenGemm = (b: GraphBuilder, v: string, inF: number, K: number, w: (d: number[], s?: number) => string) =>
  b.op('Gemm', [b.op('Flatten', [v], { axis: { i: 1 } }), w([K, inF], 0.5), w([K], 0.1)], { transB: { i: 1 } });

const ZOO: { name: string; xDims: number[]; K: number; body: Body; h?: number; spread?: boolean }[] = [
  {
    name: 'Conv (stride 2, asymmetric pads, groups, dilation) + SiLU + GroupNorm + Gemm',
    xDims: [2, 7, 6],
    K: 5,
    body: (b, x, sigma, w) => {
      const cin = b.op('Div', [x, b.op('Sqrt', [b.op('Add', [b.op('Mul', [b.op('Reshape', [sigma, i64(b, [-1, 1, 1, 1])]), b.op('Reshape', [sigma, i64(b, [-1, 1, 1, 1])])]), b.scalar(1)])])]);
      const c1 = b.op('Conv', [cin, w([4, 2, 3, 3], 0.5), w([4], 0.1)], { kernel_shape: { ints: [3, 3] }, strides: { ints: [2, 2] }, pads: { ints: [1, 0, 2, 1] } });
      const h = groupNorm(b, silu(b, c1), 4, 2, w);
      const c2 = b.op('Conv', [h, w([4, 2, 2, 2], 0.5)], { kernel_shape: { ints: [2, 2] }, group: { i: 2 }, dilations: { ints: [1, 2] }, pads: { ints: [1, 1, 1, 1] } });
      // [N,4,4,3] after the first convolution, [N,4,5,3] after the second
      return flattenGemm(b, c2, 4 * 5 * 3, 5, w);
    },
  },
  {
    name: 'AveragePool (pads, count_include_pad 0 and 1) + GlobalAveragePool + broadcasting Sub/Div/Mul',
    xDims: [3, 5, 5],
    K: 4,
    body: (b, x, _s, w) => {
      const p0 = b.op('AveragePool', [x], { kernel_shape: { ints: [3, 3] }, strides: { ints: [2, 2] }, pads: { ints: [1, 1, 1, 1] } });
      const p1 = b.op('AveragePool', [x], { kernel_shape: { ints: [2, 2] }, strides: { ints: [2, 1] }, pads: { ints: [0, 1, 1, 0] }, count_include_pad: { i: 1 } });
      const ga = b.op('GlobalAveragePool', [b.op('Mul', [x, x])]); // [N,3,1,1]
      const q = b.op('Div', [b.op('Sub', [p0, ga]), b.op('Add', [b.op('Mul', [ga, ga]), b.scalar(1)])]);
      const f0 = b.op('Flatten', [q], { axis: { i: 1 } }); // 3*3*3 = 27
      const f1 = b.op('Flatten', [b.op('Mul', [p1, w([1, 3, 1, 1])])], { axis: { i: 1 } }); // 3*3*5 = 45
      const cat = b.op('Concat', [f0, f1], { axis: { i: 1 } });
      return b.op('Gemm', [cat, w([72, 4], 0.3)], {});
    },
  },
  {
    name: 'attention: Reshape, Transpose, Einsum, Softmax, Split, MatMul, Concat, ReduceMean, Slice, Gather',
    xDims: [4, 3, 3],
    K: 3,
    body: (b, x, _s, w) => {
      const t = b.op('Reshape', [x, i64(b, [0, 4, -1])]); // [N,4,9]
      const tok = b.op('Concat', [b.op('ReduceMean', [t], { axes: { ints: [-1] }, keepdims: { i: 1 } }), t], { axis: { i: -1 } }); // [N,4,10]
      const pe = b.op('Add', [tok, w([4, 10], 0.3)]);
      const qkv = b.op('Conv', [pe, w([12, 4, 1], 0.6), w([12], 0.1)], { kernel_shape: { ints: [1] } });
      const [q, k, v] = b.opN('Split', [qkv, i64(b, [4, 4, 4])], 3, { axis: { i: 1 } });
      const att = b.op('Softmax', [b.op('Einsum', [q!, k!], { equation: { s: 'bct,bcs->bts' } })], { axis: { i: -1 } });
      const a = b.op('Einsum', [att, v!], { equation: { s: 'bts,bcs->bct' } }); // [N,4,10]
      const tr = b.op('Transpose', [a], { perm: { ints: [0, 2, 1] } }); // [N,10,4]
      const mm = b.op('MatMul', [tr, w([4, 6], 0.5)]); // [N,10,6]
      const sl = b.op('Slice', [mm, i64(b, [-8, 1]), i64(b, [1000, 5]), i64(b, [1, 2])]); // [N,8,4]
      const first = b.op('Gather', [mm, b.constantInt64([0], [], 'idx')], { axis: { i: 1 } }); // [N,6]
      const red = b.op('ReduceMean', [sl], { axes: { ints: [1] }, keepdims: { i: 0 } }); // [N,4]
      const both = b.op('Concat', [red, b.op('Tanh', [first])], { axis: { i: 1 } }); // [N,10]
      // Gemm with x on the B side: [3,10] x both^T -> [3,N], transposed back to [N,3].
      return b.op('Transpose', [b.op('Gemm', [w([3, 10], 0.5), both], { transB: { i: 1 } })], { perm: { ints: [1, 0] } });
    },
  },
  {
    name: 'Pad, Where, Exp/Log/Pow/Reciprocal/Relu/Erf, Unsqueeze/Squeeze/Expand, Gemm transA',
    xDims: [2, 4, 4],
    K: 3,
    body: (b, x, _s, w) => {
      const pd = b.op('Pad', [x, i64(b, [0, 0, 1, 0, 0, 0, 0, 2])], { mode: { s: 'constant' } }); // [N,2,5,6]
      const pos = b.op('Greater', [pd, b.scalar(0)]);
      const wh = b.op('Where', [pos, b.op('Exp', [pd]), b.op('Mul', [pd, b.scalar(0.5)])]);
      const lg = b.op('Log', [b.op('Add', [b.op('Mul', [wh, wh]), b.scalar(1)])]);
      const pw = b.op('Pow', [b.op('Add', [b.op('Relu', [pd]), b.scalar(1)]), b.scalar(1.5)]);
      const rc = b.op('Reciprocal', [b.op('Add', [b.op('Mul', [pd, pd]), b.scalar(2)])]);
      const er = b.op('Erf', [pd]);
      const sum = b.op('Add', [b.op('Add', [lg, pw]), b.op('Mul', [rc, er])]);
      const m = b.op('ReduceMean', [sum], { axes: { ints: [2, 3] }, keepdims: { i: 0 } }); // [N,2]
      const ex = b.op('Expand', [b.op('Unsqueeze', [m, i64(b, [2])]), i64(b, [1, 2, 3])]); // [N,2,3]
      const sq = b.op('Squeeze', [b.op('Reshape', [ex, i64(b, [0, 1, 6])]), i64(b, [1])]); // [N,6]
      const sub = b.op('Sub', [w([6], 1), sq]);
      // Gemm with transA: A = sub^T given as [6, N] through a Transpose.
      return b.op('Gemm', [b.op('Transpose', [sub], { perm: { ints: [1, 0] } }), w([6, 3], 0.5), w([1, 3], 0.1)], { transA: { i: 1 }, alpha: { f: 0.7 }, beta: { f: 2 } });
    },
  },
];

ZOO.push(
  {
    name: 'Sin/Cos (a sigma embedding times x), BatchNormalization (rank 4 and rank 2)',
    xDims: [2, 3, 3],
    K: 4,
    body: (b, x, sigma, w) => {
      const emb = b.op('Mul', [b.op('Reshape', [b.op('Log', [sigma]), i64(b, [-1, 1, 1, 1])]), w([1, 2, 1, 1], 2)]);
      const mod = b.op('Mul', [b.op('Sin', [b.op('Add', [x, emb])]), b.op('Cos', [b.op('Mul', [x, b.scalar(1.7)])])]);
      const bn = (v: string, C: number) => b.op('BatchNormalization', [v, w([C], 1), w([C], 0.5), w([C], 0.3), b.constant(Float32Array.from({ length: C }, (_, k) => 0.5 + k), [C])], { epsilon: { f: 1e-3 } });
      const f = b.op('Flatten', [bn(mod, 2)], { axis: { i: 1 } }); // [N,18]
      return b.op('Gemm', [bn(b.op('Gemm', [f, w([18, 6], 0.4)], {}), 6), w([6, 4], 0.5)], {});
    },
  },
  {
    name: 'Resize: nearest x2 (asymmetric/floor, at any size), linear half_pixel to fixed sizes, nearest align_corners by scales',
    xDims: [2, 5, 4],
    K: 3,
    body: (b, x, _s, w) => {
      const up = b.op('Resize', [x, '', b.constant([1, 1, 2, 2], [4])], { mode: { s: 'nearest' }, coordinate_transformation_mode: { s: 'asymmetric' }, nearest_mode: { s: 'floor' } }); // [N,2,10,8]
      const sizes = b.op('Concat', [b.op('Slice', [b.op('Shape', [x]), i64(b, [0]), i64(b, [2])]), i64(b, [7, 3])], { axis: { i: 0 } });
      const lin = b.op('Resize', [x, '', '', sizes], { mode: { s: 'linear' }, coordinate_transformation_mode: { s: 'half_pixel' } }); // [N,2,7,3]
      const lin2 = b.op('Resize', [x, '', b.constant([1, 1, 1.6, 2.5], [4])], { mode: { s: 'linear' }, coordinate_transformation_mode: { s: 'pytorch_half_pixel' } }); // [N,2,8,10]
      const nn = b.op('Resize', [x, '', b.constant([1, 1, 0.6, 1.5], [4])], { mode: { s: 'nearest' }, coordinate_transformation_mode: { s: 'align_corners' }, nearest_mode: { s: 'round_prefer_ceil' } }); // [N,2,3,6]
      const parts = [up, lin, lin2, nn].map((v) => b.op('Flatten', [b.op('Mul', [v, v])], { axis: { i: 1 } }));
      const cat = b.op('Concat', parts, { axis: { i: 1 } }); // 160 + 42 + 160 + 36
      return b.op('Gemm', [cat, w([398, 3], 0.2)], {});
    },
  },
  {
    name: 'ConvTranspose (stride 2, pads, output_padding, groups), LayerNormalization, Clip, Slice with step -1 (a flip)',
    xDims: [2, 3, 4],
    K: 3,
    body: (b, x, _s, w) => {
      const up = b.op('ConvTranspose', [x, w([2, 2, 3, 3], 0.5), w([4], 0.1)], { strides: { ints: [2, 2] }, pads: { ints: [1, 0, 1, 1] }, output_padding: { ints: [1, 0] }, group: { i: 2 } }); // [N,4,6,8]
      const ln = b.op('LayerNormalization', [up, w([6, 8], 1), w([6, 8], 0.3)], { axis: { i: -2 }, epsilon: { f: 1e-3 } });
      const flip = b.op('Slice', [ln, i64(b, [-1]), i64(b, [-(2 ** 62)]), i64(b, [1]), i64(b, [-1])]);
      const f = b.op('Flatten', [b.op('Mul', [flip, w([1, 4, 1, 1], 1)])], { axis: { i: 1 } }); // 4*6*8 = 192
      // Clip on the inputs themselves (uniform in [-1, 1], times 3): about half are clipped, and
      // a step of 3e-3 carries none across a bound, where differences are not derivatives.
      const cl = b.op('Flatten', [b.op('Clip', [b.op('Mul', [x, b.scalar(3)]), b.scalar(-1.5), b.scalar(1.5)])], { axis: { i: 1 } }); // 24
      return b.op('Gemm', [b.op('Concat', [f, cl], { axis: { i: 1 } }), w([216, 3], 0.2)], {});
    },
    h: 3e-3,
  },
  {
    name: 'GridSample bilinear (zeros and border padding, align_corners 0 and 1), as the FID detector resizes',
    xDims: [2, 5, 6],
    K: 3,
    body: (b, x, _s, w) => {
      // A fixed grid for the batch of 3, reaching a little outside [-1, 1].
      const rand = seededUniform(21);
      const grid = b.constant(Float32Array.from({ length: 3 * 4 * 7 * 2 }, () => 2.4 * rand() - 1.2), [3, 4, 7, 2], 'grid');
      const z = b.op('GridSample', [x, grid], { mode: { s: 'bilinear' }, padding_mode: { s: 'zeros' }, align_corners: { i: 0 } });
      const br = b.op('GridSample', [b.op('Mul', [x, x]), grid], { mode: { s: 'bilinear' }, padding_mode: { s: 'border' }, align_corners: { i: 1 } });
      const cat = b.op('Concat', [b.op('Flatten', [z], { axis: { i: 1 } }), b.op('Flatten', [br], { axis: { i: 1 } })], { axis: { i: 1 } }); // 56 + 56
      return b.op('Gemm', [cat, w([112, 3], 0.4)], {});
    },
  },
  {
    name: 'MaxPool 3x3 stride 2 with padding (overlapping windows, as Inception), ceil_mode',
    xDims: [2, 7, 6],
    K: 3,
    body: (b, x, _s, w) => {
      const p = b.op('MaxPool', [x], { kernel_shape: { ints: [3, 3] }, strides: { ints: [2, 2] }, pads: { ints: [1, 1, 1, 1] } }); // [N,2,4,3]
      const q = b.op('MaxPool', [b.op('Mul', [x, x])], { kernel_shape: { ints: [3, 2] }, strides: { ints: [2, 1] }, ceil_mode: { i: 1 } }); // [N,2,3,5]
      const cat = b.op('Concat', [b.op('Flatten', [p], { axis: { i: 1 } }), b.op('Flatten', [q], { axis: { i: 1 } })], { axis: { i: 1 } }); // 24 + 30
      return b.op('Gemm', [cat, w([54, 3], 0.5)], {});
    },
    h: 1e-3,
    spread: true,
  },
  {
    name: 'MaxPool 2x2 (a left-over row and column) and 1x3',
    xDims: [2, 5, 7],
    K: 3,
    body: (b, x, _s, w) => {
      const p = b.op('MaxPool', [x], { kernel_shape: { ints: [2, 2] }, strides: { ints: [2, 2] } }); // [N,2,2,3]
      const q = b.op('MaxPool', [b.op('Mul', [x, x])], { kernel_shape: { ints: [1, 3] }, strides: { ints: [1, 3] } }); // [N,2,5,2]
      const cat = b.op('Concat', [b.op('Flatten', [p], { axis: { i: 1 } }), b.op('Flatten', [q], { axis: { i: 1 } })], { axis: { i: 1 } }); // 12 + 20
      return b.op('Gemm', [cat, w([32, 3], 0.5)], {});
    },
    // A maximum is a kink: steps small enough that no window's top two swap.
    h: 2e-3,
  },
);

describe('gradient graph vs central differences of the forward graph', () => {
  for (const z of ZOO) {
    test(z.name, async (t) => {
      const model = classifier(z.xDims, z.K, z.body);
      const inp = randomInputs([3, ...z.xDims], z.K, 5);
      if (z.spread) {
        // Maxima must not swap within a step: inputs a shuffled, evenly spaced grid (offset so
        // that no two values are equal in magnitude either).
        const rand = seededUniform(6);
        const grid = Array.from({ length: inp.x.length }, (_, k) => -1 + (2 * (k + 1 / 3)) / inp.x.length);
        for (let k = grid.length - 1; k > 0; k--) {
          const j = Math.floor(rand() * (k + 1));
          [grid[k], grid[j]] = [grid[j]!, grid[k]!];
        }
        inp.x.set(grid);
      }
      const err = await centralDifferenceError(model, inp, 3, z.h);
      t.diagnostic(`central differences: worst scaled error ${err.toExponential(2)}`);
      assert.ok(err < 3e-4, `worst |fd - grad.v| / max(1, |grad||v|) = ${err}`);
      // Not vacuous: the gradient is far from zero.
      const s = await session(classifierGradientModel(model));
      const { grad } = await gradient(s, inp);
      assert.ok(Math.max(...Array.from(grad, Math.abs)) > 1e-2, 'gradient is not zero');
      await s.release();
    });
  }
  test('a gradient bug would be caught: a perturbed rule misses by far more than the tolerance', async () => {
    // The same check against a wrong gradient (scaled by 1.01) must fail: the tolerance is tight.
    const z = ZOO[0]!;
    const model = classifier(z.xDims, z.K, z.body);
    const inp = randomInputs([3, ...z.xDims], z.K, 5);
    const fwd = await session(model);
    const bwd = await session(classifierGradientModel(model));
    const { grad } = await gradient(bwd, inp);
    const v = Float32Array.from(grad, (g) => g); // direction = the gradient itself
    const h = 0.01;
    const fp = picked(await forward(fwd, inp, Float32Array.from(inp.x, (xv, j) => xv + h * v[j]!)), inp.labels, 3, z.K);
    const fm = picked(await forward(fwd, inp, Float32Array.from(inp.x, (xv, j) => xv - h * v[j]!)), inp.labels, 3, z.K);
    const per = inp.x.length / 3;
    for (let i = 0; i < 3; i++) {
      let gg = 0;
      for (let j = i * per; j < (i + 1) * per; j++) gg += grad[j]! * grad[j]!;
      const fd = (fp[i]! - fm[i]!) / (2 * h);
      assert.ok(Math.abs(fd - gg) < 3e-4 * Math.max(1, gg), `row ${i}: ${fd} vs ${gg}`);
      assert.ok(Math.abs(fd - 1.01 * gg) > 3e-4 * Math.max(1, gg), 'a 1% error is detectable');
    }
    await fwd.release();
    await bwd.release();
  });
});

// ---------------------------------------------------------------------------------------
// (c) Refusals
// ---------------------------------------------------------------------------------------

describe('operators without a rule are refused, naming the node', () => {
  test('Abs on the path from x', () => {
    const model = classifier([1, 2, 2], 2, (b, x, _s, w) => flattenGemm(b, b.op('Abs', [x]), 4, 2, w));
    assert.throws(
      () => classifierGradientModel(model, { file: 'c.onnx' }),
      (e: unknown) => e instanceof UsageError && /^c\.onnx: node 'Abs_\d+' uses Abs, which the gradient transform does not support/.test(e.message) && !e.message.includes('\n'),
    );
  });
  test('a rule outside its supported case: a Slice with step 2, a linear Resize of unknown size', () => {
    const strided = classifier([1, 4, 4], 2, (b, x, _s, w) => flattenGemm(b, b.op('Slice', [x, i64(b, [0]), i64(b, [4]), i64(b, [3]), i64(b, [2])]), 8, 2, w));
    assert.throws(() => classifierGradientModel(strided, { file: 'c.onnx' }), /c\.onnx: node 'Slice_\d+' \(Slice\): steps other than 1, or -1 over a whole axis/);
    const b = new GraphBuilder('dyn');
    const x = b.input('x', DataType.FLOAT, ['N', 1, 'H', 'W']);
    b.input('sigma', DataType.FLOAT, ['N']);
    const r = b.op('Resize', [x, '', b.constant([1, 1, 1.5, 1.5], [4])], { mode: { s: 'linear' } });
    b.output(b.op('LogSoftmax', [b.op('ReduceMean', [r], { axes: { ints: [1, 2] }, keepdims: { i: 0 } })], { axis: { i: -1 } }), 'log_probs', DataType.FLOAT, ['N', 'K']);
    assert.throws(() => classifierGradientModel(b.model(), { file: 'c.onnx' }), /c\.onnx: node 'Resize_\d+' \(Resize\): a resize whose input size is not static/);
  });
  test('an unsupported operator off the path (on sigma only) is fine', async () => {
    const model = classifier([1, 2, 2], 2, (b, x, sigma, w) => {
      const t = b.op('Reshape', [b.op('ReduceMax', [b.op('Reshape', [sigma, i64(b, [-1, 1])])], { axes: { ints: [1] }, keepdims: { i: 1 } }), i64(b, [-1, 1])]);
      return b.op('Add', [flattenGemm(b, x, 4, 2, w), t]);
    });
    const err = await centralDifferenceError(model, randomInputs([2, 1, 2, 2], 2, 3), 2);
    assert.ok(err < 3e-4, String(err));
  });
  test('an If decided by the static input size is replaced by its branch; one decided by data is refused in one line', async () => {
    /** x -> If(cond(x)) { then: 3 x^2 } else { x }, as TorchScript exports wrap a resize. */
    const withIf = (cond: (b: GraphBuilder, x: string) => string) =>
      classifier([1, 2, 2], 2, (b, x, _s, w) => {
        // Value names must be unique across the model, branches included.
        const branch = (label: string, body: (bb: GraphBuilder) => string) => {
          const bb = new GraphBuilder(label);
          bb.output(body(bb), `${label}_out`, DataType.FLOAT, ['N', 1, 2, 2]);
          return bb.graph();
        };
        const thenG = branch('then', (bb) => bb.op('Mul', [bb.op('Mul', [x, x], {}, 'then_sq'), bb.constant([3], [], 'then_three')], {}, 'then_mul'));
        const elseG = branch('else', (bb) => bb.op('Identity', [x], {}, 'else_id'));
        const out = b.fresh('if_out');
        b.node({ input: [cond(b, x)], output: [out], name: 'resize_if', opType: 'If', domain: '', attribute: [{ name: 'then_branch', type: AttributeType.GRAPH, g: thenG }, { name: 'else_branch', type: AttributeType.GRAPH, g: elseG }] });
        return flattenGemm(b, out, 4, 2, w);
      });
    // Shape(x)[2] != 299 (x is 2x2): the then branch, whose gradient 6 x differs from else's 1.
    const bySize = withIf((b, x) => b.op('Not', [b.op('Equal', [b.op('Gather', [b.op('Shape', [x]), b.constantInt64([2], [], 'h')], { axis: { i: 0 } }), b.constantInt64([299], [], 'size')])]));
    // The model survives a round trip through the proto codec with its branches.
    const again = decodeModel(encodeModel(bySize));
    assert.ok(again.graph!.node.find((n) => n.opType === 'If')!.attribute.every((a) => a.g?.node.length === (a.name === 'then_branch' ? 3 : 2)));
    const err = await centralDifferenceError(again, randomInputs([3, 1, 2, 2], 2, 5));
    assert.ok(err < 3e-4, `central differences: ${err}`);
    const byData = withIf((b, x) => b.op('Greater', [b.op('ReduceSum', [x], { keepdims: { i: 0 } }), b.scalar(0)]));
    assert.throws(() => classifierGradientModel(byData, { file: 'c.onnx' }), (e: unknown) => e instanceof UsageError && /c\.onnx: node 'resize_if' \(If\) holds a subgraph whose branch is not known from the input sizes/.test(e.message) && !e.message.includes('\n'));
  });
  test('float16 inputs and other opsets are refused with one line', () => {
    const m = classifier([1, 2, 2], 2, (b, x, _s, w) => flattenGemm(b, x, 4, 2, w));
    assert.throws(() => classifierGradientModel({ ...m, opsetImport: [{ domain: '', version: 11 }] }, { file: 'c.onnx' }), /c\.onnx: opset 11; the gradient transform handles opsets 13 to 17/);
    const g = m.graph!;
    const half = { ...m, graph: { ...g, input: g.input.map((v) => (v.name === 'x' ? { ...v, type: { ...v.type!, elemType: DataType.FLOAT16 } } : v)) } };
    assert.throws(() => classifierGradientModel(half, { file: 'c.onnx' }), /'x' is float16; the gradient transform needs a float32 classifier/);
  });
});
