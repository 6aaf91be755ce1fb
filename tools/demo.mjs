#!/usr/bin/env node
// `npm run demo`: the main job on the default model. Samples 64 images with AdaSDE at 5 NFE
// into samples/demo/adasde_nfe5/ with a grid.png.
//
// Model: models/cifar10-tiny-edm.onnx (the bundled network) with the AdaSDE predictor
// distilled for it (the newest exp/NNNNN-cifar10-4-5-adasde-*-tiny run, exp/README.md). With
// the bundled feature network (models/cifar10-features.onnx) and the CIFAR-10 test split's
// statistics (models/cifar10-test-features.npz) it also samples DEMO_LARGER (default 1000)
// images and prints their bundled-feature distance (a small classifier's features, not FID).
//
// Without the bundled network (a checkout that dropped models/) it samples an analytic
// Gaussian-mixture denoiser written as a real ONNX file by the TypeScript graph builder, whose
// components are 256 CIFAR-10 test images (from ../shared/data when present, else smooth
// synthetic patterns), with the published CIFAR-10 predictor exp/00002.
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(join(root, 'dist', 'src', p));
const { main } = await dist('cli/main.js');

const bundled = join(root, 'models', 'cifar10-tiny-edm.onnx');
let model = bundled;
if (!existsSync(bundled)) {
  const { buildMixtureModel } = await import(join(root, 'dist', 'test', 'support', 'models.js'));
  const { saveModel } = await dist('onnx/builder.js');
  const K = 256;
  const dim = 3 * 32 * 32;
  const means = new Float64Array(K * dim);
  const zipPath = resolve(root, '..', 'shared', 'data', 'cifar10-test.zip');
  let source = 'synthetic patterns';
  if (existsSync(zipPath)) {
    const { openImageSet } = await dist('io/images.js');
    const set = await openImageSet(zipPath);
    for (let k = 0; k < K; k++) {
      const img = await set.read(k * 37);
      for (let q = 0; q < dim; q++) means[k * dim + q] = img.data[q] / 127.5 - 1;
    }
    await set.close?.();
    source = 'CIFAR-10 test images';
  } else {
    for (let k = 0; k < K; k++) for (let q = 0; q < dim; q++) means[k * dim + q] = 0.8 * Math.sin((q % 1024) * 0.013 * (1 + (k % 7)) + k + Math.floor(q / 1024));
  }
  mkdirSync(join(root, 'samples', 'demo'), { recursive: true });
  model = join(root, 'samples', 'demo', 'cifar10-mixture.onnx');
  saveModel(
    buildMixtureModel({ weights: new Float64Array(K).fill(1), means, stds: new Float64Array(K).fill(0.05) }, [3, 32, 32], { datasetName: 'cifar10' }),
    model,
  );
  console.log(`demo model: analytic mixture of ${K} ${source} (${model}); the bundled network replaces it once models/cifar10-tiny-edm.onnx exists`);
}
// The predictor distilled for the bundled network at 5 NFE, else the published one.
const expDir = join(root, 'exp');
const tiny = model === bundled ? readdirSync(expDir).filter((d) => /^\d{5}-cifar10-4-5-adasde-.*-tiny$/.test(d)).sort().pop() : undefined;
const predictor = tiny ? join(expDir, tiny) : '2';
console.log(`predictor: ${tiny ? `exp/${tiny}` : 'exp/00002 (published CIFAR-10 coefficients)'}`);
const outdir = join(root, 'samples', 'demo', 'adasde_nfe5');
process.exitCode = await main([
  'node', 'adasde', 'sample', '--model', model, '--predictor_path', predictor, '--exp_dir', expDir,
  '--seeds', '0-63', '--batch', '64', '--grid', '--outdir', outdir, '--no-resume',
]);
if (process.exitCode === 0) console.log(`grid: ${join(outdir, 'grid.png')}`);

const features = join(root, 'models', 'cifar10-features.onnx');
const ref = join(root, 'models', 'cifar10-test-features.npz');
if (process.exitCode === 0 && model === bundled && existsSync(features) && existsSync(ref)) {
  const n = Number(process.env.DEMO_LARGER ?? 1000);
  const larger = join(root, 'samples', 'demo', `adasde_nfe5_${n}`);
  process.exitCode = await main([
    'node', 'adasde', 'sample', '--model', model, '--predictor_path', predictor, '--exp_dir', expDir,
    '--seeds', `0-${n - 1}`, '--batch', '100', '--outdir', larger, '--no-resume', '--quiet',
  ]);
  if (process.exitCode === 0) {
    console.log(`bundled-feature distance of ${n} AdaSDE (5 NFE) samples to the CIFAR-10 test split (not FID):`);
    process.exitCode = await main(['node', 'adasde', 'fid', 'calc', '--images', larger, '--ref', ref, '--detector', features, '--quiet']);
  }
}
