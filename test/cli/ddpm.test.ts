/**
 * DDPM-family models (tools/export/ddpm.py; fixtures in test/fixtures/export/ddpm, written by
 * tools/export/selftest.py) through the commands. gauss28.onnx (1 channel, 28x28, a network
 * trained on [0, 1] data with index/T time input and v-prediction) and gauss-rgb12.onnx
 * (3 channels, 12x12, [-0.5, 0.5], integer-index time, eps) hold the exact predictors for
 * Gaussian data, so after the exporter's rescaling their D must be the closed-form Gaussian
 * denoiser of ALGORITHM.md 9 in the contract's units, and a fine ODE solve on their discrete
 * schedule must land on the exact solution. table12.onnx has 2 channels (arrays only).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { main } from '../../src/cli/main.js';
import { latestSnapshot } from '../../src/io/runs.js';
import { readNpy, toFloat64 } from '../../src/io/npy.js';
import { imagePath, quantize } from '../../src/io/png.js';
import { saveModel } from '../../src/onnx/builder.js';
import { buildFeatureModel } from '../support/models.js';
import { loadDenoiserModel } from '../../src/runtime/model.js';
import { SeedStream, seedLatents } from '../../src/rng/streams.js';
import { parseChartSvg } from '../charts/svg.js';
import { repoRoot } from '../helpers.js';

const FIX = join(repoRoot, 'test', 'fixtures', 'export', 'ddpm');
const bin = resolve(repoRoot, 'bin', 'adasde.js');
const dir = mkdtempSync(join(tmpdir(), 'adasde-ddpm-'));
const cli = (...args: string[]) => main(['node', 'adasde', ...args]);
const GAUSS = JSON.parse(readFileSync(join(FIX, 'gauss.json'), 'utf8')) as Record<string, { mu: number[]; s: number; shape: [number, number, number] }>;

/** The exact probability-flow ODE solution for N(mu, s^2 I) data (ALGORITHM.md 9). */
function exactSolution(x0: Float64Array, mu: readonly number[], s: number, from: number, to: number): Float64Array {
  const f = Math.sqrt((s * s + to * to) / (s * s + from * from));
  return x0.map((v, q) => mu[q % mu.length]! + (v - mu[q % mu.length]!) * f);
}

for (const name of ['gauss28.onnx', 'gauss-rgb12.onnx']) {
  test(`ddpm ${name}: D is the closed-form Gaussian denoiser in x units over the whole sigma range`, async () => {
    const g = GAUSS[name]!;
    const m = await loadDenoiserModel(join(FIX, name), { maxBatch: 64 });
    try {
      assert.equal(m.meta.family, 'ddpm');
      assert.deepEqual([...m.sampleShape], g.shape);
      const dim = g.mu.length;
      const n = 16;
      const rng = new SeedStream(7_000_001, 'latent');
      const sigma = Float64Array.from({ length: n }, (_, b) => m.meta.sigmaMin * (m.meta.sigmaMax / m.meta.sigmaMin) ** (b / (n - 1)));
      const x = new Float64Array(n * dim);
      for (let b = 0; b < n; b++) for (let q = 0; q < dim; q++) x[b * dim + q] = g.mu[q]! + g.s * rng.normal() + sigma[b]! * rng.normal();
      const d = await m.denoise({ x, sigma, batch: n });
      for (let b = 0; b < n; b++) {
        const s2 = g.s * g.s;
        let worst = 0;
        for (let q = 0; q < dim; q++) {
          const want = g.mu[q]! + (s2 / (s2 + sigma[b]! ** 2)) * (x[b * dim + q]! - g.mu[q]!);
          worst = Math.max(worst, Math.abs(d[b * dim + q]! - want));
        }
        // float32 inside: x - s eps cancels numbers of size sigma
        assert.ok(worst <= 2e-5 * Math.max(1, sigma[b]!), `sigma ${sigma[b]}: max error ${worst}`);
      }
    } finally {
      await m.dispose();
    }
  });
}

test('ddpm gauss28 (1x28x28): sample on the discrete schedule lands on the exact ODE solution; grey PNGs hold its pixels', async () => {
  const model = join(FIX, 'gauss28.onnx');
  const g = GAUSS['gauss28.onnx']!;
  const seeds = [0, 1, 2, 3, 4, 5];
  const common = ['--model', model, '--solver', 'heun', '--schedule_type', 'discrete', '--schedule_rho', '1', '--seeds', '0-5', '--quiet'];
  const m = await loadDenoiserModel(model);
  const { sigmaMin, sigmaMax } = m.meta;
  await m.dispose();
  const z = seedLatents(seeds, g.mu.length).map((v) => v * sigmaMax);
  const exact = exactSolution(z, g.mu, g.s, sigmaMax, sigmaMin);
  const errors: number[] = [];
  let got: Float64Array = new Float64Array(0);
  for (const steps of [40, 80]) {
    const out = join(dir, `npy-${steps}`);
    assert.equal(await cli('sample', ...common, '--num_steps', String(steps), '--output_format', 'npy', '--outdir', out), 0);
    got = toFloat64(await readNpy(join(out, 'samples.npy')));
    errors.push(Math.sqrt(got.reduce((s, v, k) => s + (v - exact[k]!) ** 2, 0) / got.length));
  }
  // Heun's second order: doubling the steps divides the error by ~4, so what is left is
  // discretisation, not a wrong data range, noise level or time input (those leave a bias).
  assert.ok(errors[1]! < 5e-3 && errors[0]! / errors[1]! > 3, `rms distance to the exact solution at 40 / 80 steps: ${errors.join(' / ')}`);
  common.push('--num_steps', '80');
  // PNG output: 1-channel 28x28 files whose pixels are the quantised final states.
  const pngDir = join(dir, 'png');
  assert.equal(await cli('sample', ...common, '--outdir', pngDir, '--grid'), 0);
  for (const [b, s] of seeds.entries()) {
    const file = imagePath(pngDir, s);
    const meta = await sharp(file).metadata();
    assert.deepEqual([meta.width, meta.height, meta.channels], [28, 28, 1], file);
    const raw = await sharp(file).extractChannel(0).raw().toBuffer();
    const want = quantize(Float32Array.from(got.subarray(b * 784, (b + 1) * 784)), 0, 1, 28, 28);
    assert.deepEqual([...raw], [...want], file);
  }
  assert.ok(existsSync(join(pngDir, 'grid.png')));
});

test('ddpm table12 (2 channels): npy output works, PNG output is refused in one line', () => {
  const args = ['sample', '--model', join(FIX, 'table12.onnx'), '--solver', 'dpmpp', '--num_steps', '5', '--schedule_type', 'discrete', '--seeds', '0-1', '--quiet'];
  const bad = spawnSync(process.execPath, [bin, ...args, '--outdir', join(dir, 't12-png')], { encoding: 'utf8' });
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr.trim(), /^adasde: error: --output_format png: .*table12\.onnx has 2 channels; PNG images need 1 \(grey\) or 3 \(RGB\); use --output_format npy$/);
  const ok = spawnSync(process.execPath, [bin, ...args, '--output_format', 'npy', '--outdir', join(dir, 't12-npy')], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
});

test('ddpm gauss28: train (feature loss through a 3-channel detector on grey images) and sample its snapshot', async () => {
  const detector = join(dir, 'features.onnx');
  saveModel(buildFeatureModel({ dim: 16, size: 16, seed: 5 }), detector);
  const outdir = join(dir, 'exp');
  assert.equal(
    await cli('train', '--model', join(FIX, 'gauss28.onnx'), '--outdir', outdir, '--schedule_type', 'discrete', '--num_steps', '4', '--M', '2', '--total_kimg', '0.032', '--batch', '8', '--tick', '0.016', '--seed', '3', '--detector', detector, '--quiet'),
    0,
  );
  const run = join(outdir, readdirSync(outdir).find((d) => /^\d{5}-/.test(d))!);
  assert.match(run, /00000-gauss28-4-5-adasde-dpm-2-discrete-afs$/);
  const ticks = readFileSync(join(run, 'stats.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss: number[] });
  assert.equal(ticks.length, 2);
  assert.ok(ticks.every((t) => t.loss.length === 3 && t.loss.every(Number.isFinite)));
  const chart = parseChartSvg(readFileSync(join(run, 'loss.svg'), 'utf8'));
  assert.equal(chart.points.filter((p) => p.data.panel === 'loss').length, 6);
  const snap = latestSnapshot(run)!;
  const images = join(dir, 'from-snapshot');
  assert.equal(await cli('sample', '--model', join(FIX, 'gauss28.onnx'), '--predictor_path', snap, '--seeds', '0-3', '--outdir', images, '--quiet'), 0);
  const meta = await sharp(imagePath(images, 3)).metadata();
  assert.deepEqual([meta.width, meta.height, meta.channels], [28, 28, 1]);
});

test('ddpm gauss-rgb12 (3x12x12) and gauss28: a table of 2 solvers x 2 NFE with its chart', async () => {
  const detector = join(dir, 'features-t.onnx');
  saveModel(buildFeatureModel({ dim: 16, size: 16, seed: 6 }), detector);
  for (const name of ['gauss-rgb12', 'gauss28']) {
    const model = join(FIX, `${name}.onnx`);
    const refImages = join(dir, `${name}-ref`);
    const ref = join(dir, `${name}-ref.npz`);
    assert.equal(await cli('sample', '--model', model, '--solver', 'heun', '--num_steps', '20', '--schedule_type', 'discrete', '--seeds', '1000-1031', '--outdir', refImages, '--quiet'), 0);
    assert.equal(await cli('fid', 'ref', '--data', refImages, '--dest', ref, '--detector', detector, '--quiet'), 0);
    const outdir = join(dir, `${name}-table`);
    const r = spawnSync(process.execPath, [bin, 'table', '--model', model, '--detector', detector, '--ref', ref, '--solvers', 'euler,dpmpp', '--nfe', '3,5', '--seeds', '0-15', '--batch', '8', '--outdir', outdir, '--quiet'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const t = JSON.parse(readFileSync(join(outdir, 'table.json'), 'utf8')) as { cells: { label: string; nfe: number; value: number }[] };
    assert.equal(t.cells.length, 4);
    assert.ok(t.cells.every((c) => Number.isFinite(c.value) && c.value >= 0), JSON.stringify(t.cells));
    const chart = parseChartSvg(readFileSync(join(outdir, 'table.svg'), 'utf8'));
    assert.equal(chart.lines.length, 2);
  }
});
