/**
 * Classifier guidance end to end on closed-form models: a Gaussian denoiser (ALGORITHM.md
 * section 9) whose companion is a linear softmax classifier, log p(y | x) = log_softmax(W x + b)_y,
 * with the known gradient W_y - sum_k p_k W_k.
 *   - the cached gradient graph equals that gradient, and the cache is reused / rebuilt;
 *   - the guided denoiser is D + rate s^2 grad (the spec's eps update, src/runtime/guidance.ts);
 *   - `adasde sample --guidance_type cg`: rate 0 equals unguided sampling, and the class-y
 *     log-probability of the samples grows with the guidance rate;
 *   - bad input: one line, exit 2;
 *   - the exported ADM fixture: guided samples score higher under its classifier.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { readNpy, toFloat64 } from '../../src/io/npy.js';
import { seedClassIndices } from '../../src/rng/streams.js';
import { loadClassifier } from '../../src/runtime/companions.js';
import { classifierGuided, gradientCachePath, loadClassifierGradient } from '../../src/runtime/guidance.js';
import { labelsFor } from '../../src/sample/pipeline.js';
import { captureStderr, repoRoot } from '../helpers.js';
import { GraphBuilder, saveModel } from '../../src/onnx/builder.js';
import { buildGaussModel, seededUniform } from '../support/models.js';
import { DataType } from '../../src/onnx/proto.js';
import type { DenoiseRequest } from '../../src/core/denoiser.js';

/** The lines an in-process CLI run writes to stderr (captured, not shown). */
async function stderrLines(body: () => Promise<void>): Promise<string[]> {
  return (await captureStderr(body)).lines;
}

const SHAPE = [1, 4, 4] as const;
const DIM = 16;
const K = 3;
const dir = mkdtempSync(join(tmpdir(), 'adasde-cg-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const rand = seededUniform(17);
const W = Float64Array.from({ length: K * DIM }, () => (2 * rand() - 1) * 0.6);
const B = Float64Array.from({ length: K }, () => 2 * rand() - 1);

function saveClassifier(file: string, op: 'Gemm' | 'Abs' = 'Gemm'): void {
  const b = new GraphBuilder('linear_classifier');
  const x = b.input('x', DataType.FLOAT, ['N', ...SHAPE]);
  b.input('sigma', DataType.FLOAT, ['N']);
  const src = op === 'Abs' ? b.op('Abs', [x]) : x;
  const logits = b.op('Gemm', [b.op('Flatten', [src], { axis: { i: 1 } }), b.constant(W, [K, DIM], 'W'), b.constant(B, [K], 'b')], { transB: { i: 1 } });
  b.output(b.op('LogSoftmax', [logits], { axis: { i: 1 } }), 'log_probs', DataType.FLOAT, ['N', K]);
  saveModel(b.model({ 'adasde.role': 'classifier' }), file);
}

const denoiserFile = join(dir, 'gauss.onnx');
const classifierFile = join(dir, 'gauss.classifier.onnx');
saveModel(buildGaussModel({ mu: new Float64Array(DIM), s: 1 }, SHAPE, { metadata: { 'adasde.classifier': 'gauss.classifier.onnx' } }), denoiserFile);
saveClassifier(classifierFile);
const plainFile = join(dir, 'plain.onnx');
saveModel(buildGaussModel({ mu: new Float64Array(DIM), s: 1 }, SHAPE), plainFile);

/** log_softmax(W x + b) and its gradient in float64 (the closed form). */
function linear(x: ArrayLike<number>, off: number): { logp: Float64Array; grad: (y: number) => Float64Array } {
  const z = new Float64Array(K);
  for (let k = 0; k < K; k++) {
    z[k] = B[k]!;
    for (let j = 0; j < DIM; j++) z[k]! += W[k * DIM + j]! * x[off + j]!;
  }
  const m = Math.max(...z);
  const lse = m + Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
  const logp = z.map((v) => v - lse);
  return {
    logp,
    grad: (y) => Float64Array.from({ length: DIM }, (_, j) => W[y * DIM + j]! - logp.reduce((a, lp, k) => a + Math.exp(lp) * W[k * DIM + j]!, 0)),
  };
}

function inputs(n: number, seed: number) {
  const r = seededUniform(seed);
  const x = Float64Array.from({ length: n * DIM }, () => 3 * (2 * r() - 1));
  const sigma = Float64Array.from({ length: n }, (_, i) => 0.05 + 2 * i);
  const ys = Array.from({ length: n }, (_, i) => (i * 2 + 1) % K);
  const labels = new Float32Array(n * K);
  ys.forEach((y, i) => (labels[i * K + y] = 1));
  return { x, sigma, ys, labels };
}

describe('classifier gradient graph (closed-form linear classifier)', () => {
  test('equals W_y - sum_k p_k W_k, cached beside the classifier and reused', async () => {
    const cache = gradientCachePath(classifierFile);
    assert.equal(cache, join(dir, 'gauss.classifier.grad.onnx'));
    const g = await loadClassifierGradient(classifierFile, { sampleShape: SHAPE, labelDim: K });
    assert.ok(existsSync(cache));
    const { x, sigma, ys, labels } = inputs(5, 1);
    const got = await g.gradient(x, sigma, labels, 5);
    await g.dispose();
    let worst = 0;
    ys.forEach((y, i) => {
      const want = linear(x, i * DIM).grad(y);
      for (let j = 0; j < DIM; j++) worst = Math.max(worst, Math.abs(got[i * DIM + j]! - want[j]!));
    });
    assert.ok(worst < 1e-5, `max error ${worst}`);
    const before = statSync(cache).mtimeMs;
    await (await loadClassifierGradient(classifierFile, { sampleShape: SHAPE, labelDim: K })).dispose();
    assert.equal(statSync(cache).mtimeMs, before, 'a fresh cache is not rewritten');
    // A changed classifier (new mtime) rebuilds it.
    const t = new Date(Date.now() + 5000);
    utimesSync(classifierFile, t, t);
    await (await loadClassifierGradient(classifierFile, { sampleShape: SHAPE, labelDim: K })).dispose();
    assert.notEqual(statSync(cache).mtimeMs, before, 'a stale cache is rebuilt');
  });

  test('the guided denoiser is D + rate s^2 grad_x log p(y | x)', async () => {
    const g = await loadClassifierGradient(classifierFile, { sampleShape: SHAPE, labelDim: K });
    const { x, sigma, ys, labels } = inputs(4, 2);
    // D of N(0, I) data: x / (1 + s^2).
    const gauss = async (req: DenoiseRequest) => Float64Array.from(req.x, (v, j) => v / (1 + req.sigma[Math.floor(j / DIM)]! ** 2));
    const rate = 2.5;
    const guided = classifierGuided(gauss, g, { rate });
    const d = await guided({ x, sigma, batch: 4, cond: { classLabels: labels, labelDim: K } });
    await g.dispose();
    let worst = 0;
    ys.forEach((y, i) => {
      const gr = linear(x, i * DIM).grad(y);
      const s = sigma[i]!;
      for (let j = 0; j < DIM; j++) worst = Math.max(worst, Math.abs(d[i * DIM + j]! - (x[i * DIM + j]! / (1 + s * s) + rate * s * s * gr[j]!)) / Math.max(1, rate * s * s));
    });
    assert.ok(worst < 1e-5, `max error ${worst}`);
  });
});

async function sampleNpy(outdir: string, ...extra: string[]): Promise<Float64Array> {
  const code = await main(['node', 'adasde', 'sample', '--model', denoiserFile, '--solver', 'heun', '--num_steps', '12', '--seeds', '0-47', '--batch', '16', '--output_format', 'npy', '--outdir', join(dir, outdir), '--quiet', ...extra]);
  assert.equal(code, 0);
  return toFloat64(await readNpy(join(dir, outdir, 'samples.npy')));
}

describe('adasde sample --guidance_type cg', () => {
  test('rate 0 equals unguided sampling; the class-y log-probability grows with the rate', async (t) => {
    const seeds = Array.from({ length: 48 }, (_, i) => i);
    const ys = seedClassIndices(seeds, K);
    const unguided = await sampleNpy('plain');
    const zero = await sampleNpy('cg0', '--guidance_type', 'cg', '--guidance_rate', '0');
    assert.deepEqual(zero, unguided);
    const means: number[] = [];
    const hits: number[] = [];
    for (const [name, x] of [['cg0', zero], ['cg1', await sampleNpy('cg1', '--guidance_type', 'cg', '--guidance_rate', '1')], ['cg4', await sampleNpy('cg4', '--guidance_type', 'cg', '--guidance_rate', '4')]] as const) {
      let sum = 0;
      let hit = 0;
      seeds.forEach((_, i) => {
        const lp = linear(x, i * DIM).logp;
        sum += lp[ys[i]!]!;
        if (lp.indexOf(Math.max(...lp)) === ys[i]) hit++;
      });
      means.push(sum / seeds.length);
      hits.push(hit / seeds.length);
      t.diagnostic(`${name}: mean log p(y | x) ${(sum / seeds.length).toFixed(3)}, classified as y ${hit}/${seeds.length}`);
    }
    assert.ok(means[0]! < means[1]! && means[1]! < means[2]!, `mean log p(y|x) rises with the rate: ${means.join(', ')}`);
    assert.ok(hits[2]! > hits[0]! && hits[2]! >= 0.9, `classified as the guided class: ${hits.join(', ')}`);
  });

  test('bad input: one line, exit 2', async () => {
    const unsupported = join(dir, 'abs.onnx');
    const unsupportedClf = join(dir, 'abs.classifier.onnx');
    saveModel(buildGaussModel({ mu: new Float64Array(DIM), s: 1 }, SHAPE, { metadata: { 'adasde.classifier': 'abs.classifier.onnx' } }), unsupported);
    saveClassifier(unsupportedClf, 'Abs');
    const run = (...a: string[]) => main(['node', 'adasde', 'sample', '--solver', 'euler', '--seeds', '0-1', '--output_format', 'npy', '--outdir', join(dir, 'bad'), '--quiet', ...a]);
    const out = await stderrLines(async () => {
      assert.equal(await run('--model', plainFile, '--guidance_type', 'cg', '--guidance_rate', '1'), 2);
      assert.equal(await run('--model', denoiserFile, '--guidance_type', 'cg'), 2);
      assert.equal(await run('--model', unsupported, '--guidance_type', 'cg', '--guidance_rate', '1'), 2);
    });
    assert.equal(out.length, 3, out.join('\n'));
    assert.match(out[0]!, /--guidance_type cg: .*plain\.onnx names no classifier companion/);
    assert.match(out[1]!, /--guidance_type cg needs --guidance_rate/);
    assert.match(out[2]!, /abs\.classifier\.onnx: node 'Abs_\d+' uses Abs, which the gradient transform does not support/);
  });
});

describe('adasde train --guidance_type cg', () => {
  const train = async (outdir: string, ...extra: string[]) =>
    main(['node', 'adasde', 'train', '--model', denoiserFile, '--outdir', join(dir, outdir), '--num_steps', '4', '--M', '1', '--total_kimg', '0.032', '--batch', '16', '--seed', '3', '--lr', '0.2', '--tick', '0.016', '--snap', '1', '--quiet', ...extra]);
  const firstLoss = (outdir: string): number[] => {
    const run = join(dir, outdir, readdirSync(join(dir, outdir)).find((d) => /^\d{5}-/.test(d))!);
    const line = readFileSync(join(run, 'log.txt'), 'utf8').split('\n').filter((l) => l.startsWith('batch 1 '));
    return line.map((l) => Number(/ loss (\S+)/.exec(l)![1]));
  };

  test('distils through the guided denoiser and records the guidance; its predictor samples toward the class', async (t) => {
    assert.equal(await train('train-plain'), 0);
    assert.equal(await train('train-cg', '--guidance_type', 'cg', '--guidance_rate', '2'), 0);
    const plain = firstLoss('train-plain');
    const guided = firstLoss('train-cg');
    assert.ok(guided.length === plain.length && guided.length > 0);
    assert.ok(guided.every(Number.isFinite));
    // Same seeds and latents: only the denoiser differs, so the first batch's losses must too.
    assert.ok(guided.some((l, i) => Math.abs(l - plain[i]!) > 1e-6 * Math.max(1, Math.abs(plain[i]!))), `${guided} vs ${plain}`);
    const run = join(dir, 'train-cg', readdirSync(join(dir, 'train-cg')).find((d) => /^\d{5}-/.test(d))!);
    const opts = JSON.parse(readFileSync(join(run, 'training_options.json'), 'utf8')) as { options: Record<string, unknown> };
    assert.equal(opts.options['guidance_type'], 'cg');
    assert.equal(opts.options['guidance_rate'], 2);
    const snap = readdirSync(run).filter((f) => f.startsWith('network-snapshot-')).sort().pop()!;
    const seeds = Array.from({ length: 32 }, (_, i) => i);
    const ys = seedClassIndices(seeds, K);
    const meanLogp = async (name: string, ...extra: string[]) => {
      const code = await main(['node', 'adasde', 'sample', '--model', denoiserFile, '--predictor_path', join(run, snap), '--seeds', '0-31', '--output_format', 'npy', '--outdir', join(dir, name), '--quiet', ...extra]);
      assert.equal(code, 0);
      const x = toFloat64(await readNpy(join(dir, name, 'samples.npy')));
      return seeds.reduce((a, _, i) => a + linear(x, i * DIM).logp[ys[i]!]!, 0) / seeds.length;
    };
    const lpPlain = await meanLogp('pred-plain');
    const lpCg = await meanLogp('pred-cg', '--guidance_type', 'cg', '--guidance_rate', '2');
    t.diagnostic(`AdaSDE predictor trained with cg: mean log p(y|x) ${lpPlain.toFixed(3)} unguided, ${lpCg.toFixed(3)} with cg rate 2`);
    assert.ok(lpCg > lpPlain + 0.5, `${lpCg} vs ${lpPlain}`);
  });

  test('without a classifier companion: one line, exit 2', async () => {
    const out = await stderrLines(async () => {
      assert.equal(await main(['node', 'adasde', 'train', '--model', plainFile, '--outdir', join(dir, 'train-bad'), '--guidance_type', 'cg', '--guidance_rate', '1', '--total_kimg', '0.016', '--quiet']), 2);
    });
    assert.equal(out.length, 1, out.join('\n'));
    assert.match(out[0]!, /--guidance_type cg: .*plain\.onnx names no classifier companion/);
  });
});

describe('the exported ADM fixture (denoiser + classifier companion) with --guidance_type cg', () => {
  // A copy: the gradient graph is cached beside the classifier, and the fixture folder stays as committed.
  const adm = join(dir, 'adm');
  const src = join(repoRoot, 'test', 'fixtures', 'export', 'adm');
  mkdirSync(adm);
  for (const f of ['denoiser.onnx', 'denoiser.classifier.onnx']) copyFileSync(join(src, f), join(adm, f));
  const run = async (rate: number, batch: number, out: string) => {
    const code = await main(['node', 'adasde', 'sample', '--model', join(adm, 'denoiser.onnx'), '--solver', 'heun', '--num_steps', '8', '--seeds', '0-23', '--batch', String(batch), '--guidance_type', 'cg', '--guidance_rate', String(rate), '--output_format', 'npy', '--outdir', join(adm, out), '--quiet']);
    assert.equal(code, 0);
    return toFloat64(await readNpy(join(adm, out, 'samples.npy')));
  };

  test('the classifier log-probability of each seed\'s class rises with the rate; batches do not matter', async (t) => {
    const clf = await loadClassifier(join(adm, 'denoiser.classifier.onnx'));
    const seeds = Array.from({ length: 24 }, (_, i) => i);
    const labels = labelsFor(seeds, 10);
    const means: number[] = [];
    for (const rate of [0, 3, 30]) {
      const x = await run(rate, 8, `r${rate}`);
      // Scored at the final noise level of the schedule (ADM sigma_min).
      const { data } = await clf.classify(x, new Float64Array(seeds.length).fill(0.010485992786702987), seeds.length, [3, 8, 8]);
      let s = 0;
      for (let k = 0; k < data.length; k++) s += labels[k]! * data[k]!;
      means.push(s / seeds.length);
    }
    await clf.dispose();
    t.diagnostic(`mean log p(y | x) at rates 0, 3, 30: ${means.map((m) => m.toFixed(4)).join(', ')}`);
    assert.ok(means[0]! < means[1]! && means[1]! < means[2]!, means.join(', '));
    assert.deepEqual(await run(3, 5, 'r3-b5'), await run(3, 8, 'r3'));
  });
});
