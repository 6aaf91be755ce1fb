/**
 * Training cost (issue: `adasde train`): model rows and seconds per kimg of trajectories, with
 * the teacher's share, for the paper's CIFAR-10 setting (num_steps 4, M 3, K 1, AFS, gamma > 0:
 * NFE 5). Rows are counted at the model (every sample it sees, the finite-difference copies
 * included) and seconds are time inside the model, both split by phase inside trainBatch.
 *
 *   npm run build && node dist/bench/train_cost.js [--model models/cifar10-tiny-edm.onnx | --model conv]
 *     [--jvp forward|central] [--batches 2] [--batch 16] [--threads 0] [--detector models/cifar10-features.onnx]
 *     [--num_steps 4] [--M 3]      (the released settings: NFE 3 = 3/3, 5 = 4/3, 7 = 5/3, 9 = 6/2)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { saveModel } from '../src/onnx/builder.js';
import { buildConvDenoiserModel } from '../test/support/models.js';
import { loadDenoiserModel, loadFeatureModel } from '../src/runtime/model.js';
import { initState, trainBatch, type FeatureFn, type TrainSetup } from '../src/train/loop.js';

const arg = (name: string, def: string) => {
  const k = process.argv.indexOf(`--${name}`);
  return k > 0 ? process.argv[k + 1]! : def;
};
const batches = Number(arg('batches', '2'));
const B = Number(arg('batch', '16'));
const threads = Number(arg('threads', '0'));
const scheme = arg('jvp', 'forward') as 'forward' | 'central';
const detector = arg('detector', '');
let file = arg('model', 'models/cifar10-tiny-edm.onnx');
const dir = mkdtempSync(join(tmpdir(), 'adasde-bench-'));
if (file === 'conv') {
  file = join(dir, 'conv.onnx');
  saveModel(buildConvDenoiserModel({ resolution: 32, width: 128, depth: 3 }), file);
}
const model = await loadDenoiserModel(file, { threads: threads || undefined, maxBatch: 4096 });
let features: FeatureFn | undefined;
if (detector) {
  const det = await loadFeatureModel(detector, { threads: threads || undefined });
  const [C, H, W] = model.sampleShape;
  features = async (images, n, shape) => {
    const f = await det.extract(images, n, shape ?? [C, H, W]);
    return { features: f, dim: f.length / n };
  };
}
const N = Number(arg('num_steps', '4'));
const M = Number(arg('M', '3'));
if (!(Number.isInteger(N) && N >= 2 && Number.isInteger(M) && M >= 1)) throw new Error('--num_steps must be an integer >= 2 and --M an integer >= 1');
const setup: TrainSetup = {
  denoise: model.denoise,
  sampleShape: model.sampleShape,
  labelDim: 0,
  schedule: { numSteps: N, sigmaMin: 0.002, sigmaMax: 80, type: 'time_uniform', rho: 1 },
  M,
  teacher: 'dpm',
  afs: true,
  bounds: { scaleDir: 0.05, scaleTime: 0.2, gamma: 0.02, gammaMin: 2e-4, fcn: false },
  numPoints: 1,
  lr: 0.2,
  coslr: true,
  totalKimg: 10,
  batch: B,
  seed: 0,
  alpha: 20,
  features,
  jvpRelStep: 1e-3,
  jvpScheme: scheme,
  featureRelStep: 1e-3,
  rank: 0,
  worldSize: 1,
  reduce: async (v) => v,
};
const state = initState(0, N, 1);
await trainBatch(setup, state); // warm-up
const sum = { teacherRows: 0, studentRows: 0, detectorRows: 0, teacherSec: 0, studentSec: 0 };
const t0 = performance.now();
for (let b = 0; b < batches; b++) {
  const st = await trainBatch(setup, state);
  for (const k of Object.keys(sum) as (keyof typeof sum)[]) sum[k] += st[k];
}
const wall = (performance.now() - t0) / 1000;
const traj = batches * B;
const perKimg = (v: number) => (v / traj) * 1000;
await model.dispose();
rmSync(dir, { recursive: true, force: true });
console.log(`${arg('model', 'models/cifar10-tiny-edm.onnx')}; num_steps ${N}, M ${M}, K 1, AFS, gamma 0.02; ${scheme} differences; batch ${B}, ${batches} batches timed, threads ${threads || 'default'}${detector ? `, feature loss through ${detector}` : ''}\n`);
console.log('| per kimg | teacher | student (incl. finite-difference copies) | total | student / teacher |\n|---|---|---|---|---|');
const row = (name: string, t: number, s: number, digits: number) => `| ${name} | ${t.toFixed(digits)} | ${s.toFixed(digits)} | ${(t + s).toFixed(digits)} | ${(s / t).toFixed(2)} |`;
console.log(row('model rows', perKimg(sum.teacherRows), perKimg(sum.studentRows), 0));
console.log(row('seconds in the model', perKimg(sum.teacherSec), perKimg(sum.studentSec), 0));
console.log(`| wall seconds | | | ${perKimg(wall).toFixed(0)} | |`);
if (detector) console.log(`| detector rows | | ${perKimg(sum.detectorRows).toFixed(0)} | | |`);
