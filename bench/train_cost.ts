/**
 * Training cost (issue: `adasde train`): model rows and seconds per kimg of trajectories, with
 * the teacher's share, for the paper's CIFAR-10 setting (num_steps 4, M 3, K 1, AFS, gamma > 0:
 * NFE 5). Rows are counted at the model (every sample it sees, the finite-difference copies
 * included) and seconds are time inside the model, both split by phase inside trainBatch.
 *
 *   npm run build && node dist/bench/train_cost.js [--model models/cifar10-tiny-edm.onnx | --model conv]
 *     [--jvp forward|central] [--batches 2] [--batch 16] [--threads 0] [--detector models/cifar10-features.onnx]
 *     [--num_steps 4] [--M 3]      (the released settings: NFE 3 = 3/3, 5 = 4/3, 7 = 5/3, 9 = 6/2)
 *     [--gradient forward|hybrid] [--reverse_from K]   (hybrid: reverse mode through the VJP graphs
 *                                  from interval K on, default the cheapest, as `adasde train`)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { saveModel } from '../src/onnx/builder.js';
import { buildConvDenoiserModel } from '../test/support/models.js';
import { loadDenoiserModel, loadFeatureModel } from '../src/runtime/model.js';
import { initState, trainBatch, type FeatureFn, type TrainSetup } from '../src/train/loop.js';
import { bestReverseFrom, hybridCost, VJP_ROW_COST } from '../src/train/gradient-plan.js';
import { loadDenoiserVjp, loadFeatureVjp } from '../src/runtime/vjp.js';
import { copyFileSync } from 'node:fs';

const arg = (name: string, def: string) => {
  const k = process.argv.indexOf(`--${name}`);
  return k > 0 ? process.argv[k + 1]! : def;
};
const batches = Number(arg('batches', '2'));
const B = Number(arg('batch', '16'));
const threads = Number(arg('threads', '0'));
const scheme = arg('jvp', 'forward') as 'forward' | 'central';
const gradient = arg('gradient', 'forward');
if (gradient !== 'forward' && gradient !== 'hybrid') throw new Error('--gradient must be forward or hybrid');
const dir = mkdtempSync(join(tmpdir(), 'adasde-bench-'));
// Copies, so the VJP graphs are cached in the temporary folder.
let detector = arg('detector', '');
if (detector) {
  copyFileSync(detector, join(dir, 'detector.onnx'));
  detector = join(dir, 'detector.onnx');
}
let file = arg('model', 'models/cifar10-tiny-edm.onnx');
if (file === 'conv') {
  file = join(dir, 'conv.onnx');
  saveModel(buildConvDenoiserModel({ resolution: 32, width: 128, depth: 3 }), file);
} else {
  copyFileSync(file, join(dir, 'model.onnx'));
  file = join(dir, 'model.onnx');
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
const bounds = { scaleDir: 0.05, scaleTime: 0.2, gamma: 0.02, gammaMin: 2e-4, fcn: false };
const shape = { intervals: N - 1, numPoints: 1, afs: true, bounds };
const reverseFrom = gradient === 'hybrid' ? (process.argv.includes('--reverse_from') ? Number(arg('reverse_from', '0')) : bestReverseFrom(shape, VJP_ROW_COST)) : N - 1;
const dv = gradient === 'hybrid' ? await loadDenoiserVjp(file, { threads: threads || undefined, maxBatch: 4096 }) : undefined;
const fv = gradient === 'hybrid' && detector ? await loadFeatureVjp(detector, [model.sampleShape[0], model.sampleShape[1], model.sampleShape[2]], { threads: threads || undefined }) : undefined;
const setup: TrainSetup = {
  denoise: model.denoise,
  sampleShape: model.sampleShape,
  labelDim: 0,
  schedule: { numSteps: N, sigmaMin: 0.002, sigmaMax: 80, type: 'time_uniform', rho: 1 },
  M,
  teacher: 'dpm',
  afs: true,
  bounds,
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
  reverseFrom,
  vjp: dv?.vjp,
  featureVjp: fv?.vjp,
};
const state = initState(0, N, 1);
await trainBatch(setup, state); // warm-up
const sum = { teacherRows: 0, studentRows: 0, studentVjpRows: 0, detectorRows: 0, teacherSec: 0, studentSec: 0 };
const t0 = performance.now();
for (let b = 0; b < batches; b++) {
  const st = await trainBatch(setup, state);
  for (const k of Object.keys(sum) as (keyof typeof sum)[]) sum[k] += st[k];
}
const wall = (performance.now() - t0) / 1000;
const traj = batches * B;
const perKimg = (v: number) => (v / traj) * 1000;
await model.dispose();
await dv?.dispose();
await fv?.dispose();
rmSync(dir, { recursive: true, force: true });
const how = gradient === 'hybrid' ? `hybrid gradients (reverse mode from interval ${reverseFrom}; plan: ${JSON.stringify(hybridCost(shape, reverseFrom, VJP_ROW_COST))} rows per trajectory at ${VJP_ROW_COST} a VJP)` : `forward mode, ${scheme} differences`;
console.log(`${arg('model', 'models/cifar10-tiny-edm.onnx')}; num_steps ${N}, M ${M}, K 1, AFS, gamma 0.02; ${how}; batch ${B}, ${batches} batches timed, threads ${threads || 'default'}${detector ? `, feature loss through ${arg('detector', '')}` : ''}\n`);
console.log('| per kimg | teacher | student (incl. finite-difference copies and VJP rows) | total | total / teacher |\n|---|---|---|---|---|');
const row = (name: string, t: number, s: number, digits: number) => `| ${name} | ${t.toFixed(digits)} | ${s.toFixed(digits)} | ${(t + s).toFixed(digits)} | ${((t + s) / t).toFixed(2)} |`;
console.log(row('model rows', perKimg(sum.teacherRows), perKimg(sum.studentRows), 0));
if (gradient === 'hybrid') {
  console.log(`| of which VJP rows | | ${perKimg(sum.studentVjpRows).toFixed(0)} | | |`);
  console.log(row(`rows, a VJP row counted as ${VJP_ROW_COST}`, perKimg(sum.teacherRows), perKimg(sum.studentRows + (VJP_ROW_COST - 1) * sum.studentVjpRows), 0));
}
console.log(row('seconds in the model', perKimg(sum.teacherSec), perKimg(sum.studentSec), 0));
console.log(`| wall seconds | | | ${perKimg(wall).toFixed(0)} | |`);
if (detector) console.log(`| detector rows | | ${perKimg(sum.detectorRows).toFixed(0)} | | |`);
