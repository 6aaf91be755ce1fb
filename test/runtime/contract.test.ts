/** Contract violations: each is a one-line UsageError naming the file, the input and its dims. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, describe, test } from 'node:test';
import { UsageError } from '../../src/core/errors.js';
import { GraphBuilder, saveModel } from '../../src/onnx/builder.js';
import { buildGaussModel, buildMixtureModel, contractMetadata, seededUniform } from '../support/models.js';
import { loadDenoiserModel } from '../../src/runtime/model.js';
import { DataType, type Dim } from '../../src/onnx/proto.js';
import { cudaProviderPresent, parseDevice } from '../../src/runtime/session.js';
import { rejectsUsage, tempDir } from './helpers.js';

const SHAPE = [3, 4, 4] as const;
const gauss = { mu: new Float64Array(48).fill(0.1), s: 0.5 };
const META = contractMetadata({ sigmaMin: 0.002, sigmaMax: 80, imgResolution: 4, imgChannels: 3, labelDim: 0, family: 'analytic', datasetName: 'unit' });

/** A graph with the given x/sigma declarations whose output is x (cast to float) reshaped. */
function customModel(inputs: { name: string; type: number; dims: Dim[] }[], meta: Record<string, string> = META, outDims: Dim[] = ['N', 3, 4, 4]) {
  const b = new GraphBuilder('custom');
  const names = inputs.map((i) => b.input(i.name, i.type, i.dims));
  let v = b.op('Cast', [names[0]!], { to: { i: DataType.FLOAT } });
  v = b.op('Reshape', [v, b.constantInt64([-1, 3, 4, 4], [4])]);
  b.output(v, 'denoised', DataType.FLOAT, outDims);
  return b.model(meta);
}

describe('denoiser contract violations', () => {
  const t = tempDir();
  after(() => t.cleanup());
  const save = (name: string, m: ReturnType<typeof customModel>): string => {
    const f = t.file(name);
    saveModel(m, f);
    return f;
  };

  test('missing sigma input', async () => {
    const f = save('nosigma.onnx', customModel([{ name: 'x', type: DataType.FLOAT, dims: ['N', 3, 4, 4] }]));
    await rejectsUsage(loadDenoiserModel(f), new RegExp(`^${escape(f)}: has no input 'sigma'; the contract needs x \\[N,C,H,W\\] and sigma \\[N\\] \\(model inputs: x\\)$`));
  });

  test('x of rank 3', async () => {
    const f = save('rank3.onnx', customModel([{ name: 'x', type: DataType.FLOAT, dims: ['N', 3, 16] }, { name: 'sigma', type: DataType.FLOAT, dims: ['N'] }]));
    await rejectsUsage(loadDenoiserModel(f), new RegExp(`^${escape(f)}: input 'x' has shape \\[N,3,16\\]; expected \\[N,3,4,4\\]`));
  });

  test('wrong channel count', async () => {
    const f = t.file('channels.onnx');
    saveModel(buildGaussModel({ mu: new Float64Array(16), s: 0.5 }, [1, 4, 4], { metadata: { 'adasde.img_channels': '3' } }), f);
    const msg = await rejectsUsage(loadDenoiserModel(f), /input 'x'/);
    assert.equal(msg, `${f}: input 'x' has shape [N,1,4,4]; expected [N,3,4,4] (adasde.img_channels=3, adasde.img_resolution=4)`);
  });

  test('wrong dtype (int64)', async () => {
    const f = save('int64.onnx', customModel([{ name: 'x', type: DataType.INT64, dims: ['N', 3, 4, 4] }, { name: 'sigma', type: DataType.FLOAT, dims: ['N'] }]));
    const msg = await rejectsUsage(loadDenoiserModel(f), /dtype/);
    assert.equal(msg, `${f}: input 'x' has dtype int64; expected float32 or float16`);
  });

  test('missing metadata key', async () => {
    const f = t.file('nometa.onnx');
    saveModel(buildGaussModel(gauss, SHAPE, { omit: ['adasde.sigma_min'] }), f);
    await rejectsUsage(loadDenoiserModel(f), new RegExp(`^${escape(f)}: missing metadata adasde\\.sigma_min `));
  });

  test('bad metadata values', async () => {
    const f = t.file('badmeta.onnx');
    saveModel(buildGaussModel(gauss, SHAPE, { metadata: { 'adasde.sigma_max': 'lots' } }), f);
    await rejectsUsage(loadDenoiserModel(f), /adasde\.sigma_max='lots' is not a number above sigma_min=0\.002/);
    saveModel(buildGaussModel(gauss, SHAPE, { family: 'vae' }), f);
    await rejectsUsage(loadDenoiserModel(f), /adasde\.family='vae' is not one of edm, cm, adm, ldm, sd, ddpm, analytic/);
    saveModel(buildGaussModel(gauss, SHAPE, { family: 'sd' }), f);
    await rejectsUsage(loadDenoiserModel(f), /missing metadata adasde\.alphas_cumprod \(required for family 'sd'\)/);
  });

  test('non-existent file', async () => {
    const f = t.file('nope.onnx');
    const msg = await rejectsUsage(loadDenoiserModel(f), /no such file/);
    assert.equal(msg, `${f}: no such file`);
  });

  test('a random-bytes file', async () => {
    const f = t.file('random.onnx');
    const u = seededUniform(42);
    fs.writeFileSync(f, Uint8Array.from({ length: 4096 }, () => Math.floor(u() * 256)));
    await rejectsUsage(loadDenoiserModel(f), new RegExp(`^${escape(f)}: not an ONNX model`));
    fs.writeFileSync(f, '');
    await rejectsUsage(loadDenoiserModel(f), new RegExp(`^${escape(f)}: not an ONNX model`));
  });

  test('a directory', async () => {
    await rejectsUsage(loadDenoiserModel(t.dir), /is a directory/);
  });

  test('unexpected extra input and missing output', async () => {
    const f = save('extra.onnx', customModel([
      { name: 'x', type: DataType.FLOAT, dims: ['N', 3, 4, 4] },
      { name: 'sigma', type: DataType.FLOAT, dims: ['N'] },
      { name: 'timestep', type: DataType.FLOAT, dims: ['N'] },
    ]));
    await rejectsUsage(loadDenoiserModel(f), /unexpected input 'timestep' \[N\]; the contract allows x, sigma, class_labels, condition/);
    const b = new GraphBuilder();
    const x = b.input('x', DataType.FLOAT, ['N', 3, 4, 4]);
    b.input('sigma', DataType.FLOAT, ['N']);
    b.output(x, 'out', DataType.FLOAT, ['N', 3, 4, 4]);
    const g = t.file('noout.onnx');
    saveModel(b.model(META), g);
    await rejectsUsage(loadDenoiserModel(g), /has no output 'denoised' \(model outputs: out\)/);
  });

  test('sigma of the wrong rank and disagreeing fixed batch sizes', async () => {
    const f = save('sigma2.onnx', customModel([{ name: 'x', type: DataType.FLOAT, dims: ['N', 3, 4, 4] }, { name: 'sigma', type: DataType.FLOAT, dims: ['N', 1] }]));
    await rejectsUsage(loadDenoiserModel(f), /input 'sigma' has shape \[N,1\]; expected \[N\] \(one noise level per sample\)/);
    const g = save('batches.onnx', customModel([{ name: 'x', type: DataType.FLOAT, dims: [2, 3, 4, 4] }, { name: 'sigma', type: DataType.FLOAT, dims: [3] }], META, [2, 3, 4, 4]));
    await rejectsUsage(loadDenoiserModel(g), /disagree on a fixed batch size \(2 vs 3\)/);
  });

  test('class labels: label_dim and the class_labels input must agree', async () => {
    const logits = new Float64Array(2 * 2);
    const params = { weights: Float64Array.from([1, 1]), means: new Float64Array(96), stds: Float64Array.from([0.1, 0.1]) };
    const f = t.file('labels.onnx');
    saveModel(buildMixtureModel(params, SHAPE, { conditioning: { input: 'class_labels', labelDim: 2, logits }, metadata: { 'adasde.label_dim': '0' } }), f);
    await rejectsUsage(loadDenoiserModel(f), /input 'class_labels' \[N,2\] but adasde\.label_dim=0/);
    saveModel(buildMixtureModel(params, SHAPE, { conditioning: { input: 'class_labels', labelDim: 2, logits }, metadata: { 'adasde.label_dim': '10' } }), f);
    await rejectsUsage(loadDenoiserModel(f), /input 'class_labels' has shape \[N,2\]; expected \[N,10\] \(adasde\.label_dim=10\)/);
    saveModel(buildGaussModel(gauss, SHAPE, { metadata: { 'adasde.label_dim': '10' } }), f);
    await rejectsUsage(loadDenoiserModel(f), /adasde\.label_dim=10 but the model has no input 'class_labels'/);
    // A valid class-conditional model refuses to run without labels.
    saveModel(buildMixtureModel(params, SHAPE, { conditioning: { input: 'class_labels', labelDim: 2, logits } }), f);
    const m = await loadDenoiserModel(f, { threads: 1 });
    try {
      await rejectsUsage(m.denoise({ x: new Float64Array(48), sigma: Float64Array.from([1]), batch: 1 }), /input 'class_labels' \[N,2\] needs class labels/);
    } finally {
      await m.dispose();
    }
  });

  test('requested sample shape differs from the model', async () => {
    const f = t.file('shape.onnx');
    saveModel(buildGaussModel(gauss, SHAPE), f);
    await rejectsUsage(loadDenoiserModel(f, { sampleShape: [3, 8, 8] }), /denoises \[3,4,4\] samples .*; requested \[3,8,8\]/);
    const m = await loadDenoiserModel(f, { sampleShape: [3, 4, 4], threads: 1 });
    await m.dispose();
  });

  test('onnxruntime load failures are one line', async () => {
    const b = new GraphBuilder();
    const x = b.input('x', DataType.FLOAT, ['N', 3, 4, 4]);
    b.input('sigma', DataType.FLOAT, ['N']);
    b.output(b.op('NoSuchOperator', [x]), 'denoised', DataType.FLOAT, ['N', 3, 4, 4]);
    const f = t.file('badop.onnx');
    saveModel(b.model(META), f);
    await rejectsUsage(loadDenoiserModel(f), new RegExp(`^${escape(f)}: onnxruntime cannot load the model: .*NoSuchOperator`));
  });

  test('missing external data file', async () => {
    const f = t.file('ext.onnx');
    saveModel(buildGaussModel(gauss, SHAPE), f, { externalData: 'ext.bin', threshold: 16 });
    fs.rmSync(t.file('ext.bin'));
    await rejectsUsage(loadDenoiserModel(f), /external data file 'ext\.bin' not found beside the model/);
  });
});

describe('devices', () => {
  test('device strings', () => {
    assert.deepEqual(parseDevice('cpu'), { kind: 'cpu' });
    assert.deepEqual(parseDevice('cuda'), { kind: 'cuda', deviceId: 0 });
    assert.deepEqual(parseDevice('cuda:3'), { kind: 'cuda', deviceId: 3 });
    for (const bad of ['gpu', 'cuda:', 'cpu:0', 'cuda:x']) assert.throws(() => parseDevice(bad), UsageError);
  });

  test('cuda on a machine without the CUDA provider is a one-line UsageError', { skip: cudaProviderPresent() && 'the CUDA provider is installed here' }, async () => {
    const t = tempDir();
    try {
      const f = t.file('g.onnx');
      saveModel(buildGaussModel(gauss, SHAPE), f);
      for (const device of ['cuda', 'cuda:1']) {
        await rejectsUsage(loadDenoiserModel(f, { device }), new RegExp(`^--device ${device === 'cuda' ? 'cuda:0' : 'cuda:1'}: .*ONNXRUNTIME_NODE_INSTALL=cuda12`));
      }
    } finally {
      t.cleanup();
    }
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
