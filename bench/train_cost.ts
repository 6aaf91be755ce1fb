/**
 * Training cost (issue: `adasde train`): denoiser evaluations and wall time per kimg of
 * trajectories, with the teacher's share, for the paper's CIFAR-10 setting (num_steps 4,
 * M 3, K 1, AFS, gamma > 0) on a U-Net-sized convolutional denoiser at 32x32 on CPU.
 * Model rows count every sample the model sees, the finite-difference JVP copies included.
 *
 *   npm run build && node dist/bench/train_cost.js [--batches 2] [--batch 16] [--threads 0]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildConvDenoiserModel, saveModel } from '../src/runtime/graph.js';
import { loadDenoiserModel } from '../src/runtime/model.js';
import type { Denoiser } from '../src/solvers/types.js';
import { initState, trainBatch, type TrainSetup } from '../src/train/loop.js';

const arg = (name: string, def: number) => {
  const k = process.argv.indexOf(`--${name}`);
  return k > 0 ? Number(process.argv[k + 1]) : def;
};
const batches = arg('batches', 2);
const B = arg('batch', 16);
const threads = arg('threads', 0);
const dir = mkdtempSync(join(tmpdir(), 'adasde-bench-'));
const file = join(dir, 'conv.onnx');
saveModel(buildConvDenoiserModel({ resolution: 32, width: 128, depth: 3 }), file);
const model = await loadDenoiserModel(file, { threads: threads || undefined, maxBatch: 256 });

// Time spent in teacher calls vs student calls, separated by wrapping the denoiser.
let phase: 'teacher' | 'student' = 'teacher';
const ms = { teacher: 0, student: 0 };
const timed: Denoiser = async (req) => {
  const t0 = performance.now();
  const out = await model.denoise(req);
  ms[phase] += performance.now() - t0;
  return out;
};
const N = 4;
const M = 3;
const setup: TrainSetup = {
  denoise: timed,
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
  jvpRelStep: 1e-3,
  rank: 0,
  worldSize: 1,
  reduce: async (v) => v,
};
const state = initState(0, N, 1);
// The teacher runs first in every batch; switch phase when the first student call arrives.
const teacherCalls = 4 * (M + 1) * (N - 1);
let calls = 0;
const phased: Denoiser = async (req) => {
  phase = calls++ % (teacherCalls + 2 * (N - 1)) < teacherCalls ? 'teacher' : 'student';
  return timed(req);
};
setup.denoise = phased;
await trainBatch(setup, state); // warm-up
ms.teacher = 0;
ms.student = 0;
let rows = { teacher: 0, student: 0 };
const t0 = performance.now();
for (let b = 0; b < batches; b++) {
  const st = await trainBatch(setup, state);
  rows = { teacher: rows.teacher + st.teacherRows, student: rows.student + st.studentRows };
}
const wall = performance.now() - t0;
const traj = batches * B;
const perKimg = (v: number) => (v / traj) * 1000;
await model.dispose();
rmSync(dir, { recursive: true, force: true });
console.log(`conv denoiser 1.22 GFLOP/image; num_steps ${N}, M ${M}, K 1, AFS, gamma 0.02; batch ${B}, ${batches} batches timed, threads ${threads || 'default'}\n`);
console.log('| per kimg | teacher | student (incl. JVP copies) | total |\n|---|---|---|---|');
console.log(`| model rows (evaluations of one sample) | ${perKimg(rows.teacher).toFixed(0)} | ${perKimg(rows.student).toFixed(0)} | ${perKimg(rows.teacher + rows.student).toFixed(0)} |`);
console.log(`| time in the model (s) | ${(perKimg(ms.teacher) / 1000).toFixed(0)} | ${(perKimg(ms.student) / 1000).toFixed(0)} | ${(perKimg(ms.teacher + ms.student) / 1000).toFixed(0)} |`);
console.log(`| wall time (s) | | | ${(perKimg(wall) / 1000).toFixed(0)} |`);
