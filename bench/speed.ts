/**
 * Images per second at 5 NFE, batch 64, on this CPU: adasde (onnxruntime-node) against a
 * plain PyTorch sampling loop running the same network in Debian's torch, in one run.
 *
 *   npm run build && node dist/bench/speed.js [--model models/cifar10-tiny-edm.onnx] [--batches 3]
 *     [--threads 2] [--checkpoint models/tiny-edm/checkpoint.pt] [--python /usr/bin/python3] [--predictor_path 2]
 *
 * adasde side: `sampleBatch` (src/sample/pipeline.ts, the loop `adasde sample` runs: per-seed
 * latents, float64 solver arithmetic, float32 at the ONNX boundary) over `loadDenoiserModel`
 * with `--model`, for two 5-NFE plans at batch 64:
 *   * `dpm` (DPM-Solver-2) with num_steps 4, AFS, time_uniform rho 1: 2 (4 - 1) - 1 = 5 NFE;
 *   * `adasde` with the published CIFAR-10 predictor (`--predictor_path`, default exp/00002:
 *     num_steps 4, AFS, time_uniform rho 1, one point per interval: 5 NFE).
 * Each runs one warm-up batch, then `--batches` timed batches (seeds -> final states; no PNGs).
 *
 * PyTorch side: `/usr/bin/python3 bench/speed_torch.py` with the network built as
 * tools/train_tiny_edm.py builds it from `--checkpoint` (EMA weights, the weights the ONNX file
 * was exported from), the same DPM-Solver-2 + AFS loop on the same t_steps (passed explicitly),
 * same batch, batches and threads; skipped with the reason when the checkpoint, the
 * interpreter or torch is missing. The Markdown table puts the rates side by side with the
 * ratio adasde / PyTorch (> 1: adasde is faster). Both sides use `--threads` intra-op threads
 * (default: all cores) and run one after the other, never concurrently.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { isUsageError } from '../src/core/errors.js';
import type { SolverName } from '../src/config/common.js';
import { coefficientsOf, loadPredictor } from '../src/config/predictor.js';
import { resolvePredictorPath } from '../src/io/runs.js';
import { loadDenoiserModel, type DenoiserModel } from '../src/runtime/model.js';
import { sampleBatch } from '../src/sample/pipeline.js';
import { SOLVER_REGISTRY, type SolverOptions } from '../src/solvers/registry.js';
import { getSchedule } from '../src/solvers/schedule.js';
import { benchArgs } from './args.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'); // dist/bench -> checkout
const B = 64;

const { fail, str, int } = benchArgs('speed', ['model', 'batches', 'threads', 'checkpoint', 'python', 'predictor_path']);

const modelFile = resolve(str('model', join(root, 'models', 'cifar10-tiny-edm.onnx')));
const batches = int('batches', 3, 1);
const threads = int('threads', availableParallelism(), 1);
const checkpoint = resolve(str('checkpoint', join(root, 'models', 'tiny-edm', 'checkpoint.pt')));
const python = str('python', '/usr/bin/python3');
const predictorSpec = str('predictor_path', '2');
const show = (p: string) => (p.startsWith(root) ? relative(root, p) : p);

if (!existsSync(modelFile)) {
  fail(`--model ${show(modelFile)}: no such file; train and export the bundled network with \`/usr/bin/python3 tools/train_tiny_edm.py\` (writes models/cifar10-tiny-edm.onnx), or pass --model PATH`);
}

let model: DenoiserModel;
let predictorPath: string;
let coeffs: ReturnType<typeof coefficientsOf>;
let predictorOpts: ReturnType<typeof loadPredictor>['options'];
try {
  predictorPath = resolvePredictorPath(predictorSpec, join(root, 'exp'));
  const predictor = loadPredictor(predictorPath);
  coeffs = coefficientsOf(predictor);
  predictorOpts = predictor.options;
  model = await loadDenoiserModel(modelFile, { threads, maxBatch: B });
} catch (e) {
  if (isUsageError(e)) fail(e.message);
  throw e;
}
const { sigmaMin, sigmaMax } = model.meta;

interface Plan {
  label: string;
  solver: SolverName;
  options: SolverOptions;
  tSteps: Float64Array;
}
const dpmSteps = getSchedule({ numSteps: 4, sigmaMin, sigmaMax, type: 'time_uniform', rho: 1 });
const plans: Plan[] = [
  { label: 'dpm (DPM-Solver-2), AFS', solver: 'dpm', options: { afs: true }, tSteps: dpmSteps },
  {
    label: `adasde (${show(predictorPath)})`,
    solver: 'adasde',
    options: { afs: predictorOpts.afs, coeffs },
    tSteps: getSchedule({ numSteps: predictorOpts.num_steps, sigmaMin, sigmaMax, type: predictorOpts.schedule_type, rho: predictorOpts.schedule_rho }),
  },
];

interface Row {
  impl: string;
  label: string;
  nfe: number | string;
  imagesPerS: number | undefined;
  seconds: number | undefined;
  note: string;
}
const rows: Row[] = [];
let ortVersion = '?';
try {
  ortVersion = (JSON.parse(readFileSync(join(root, 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8')) as { version: string }).version;
} catch {
  /* version unknown */
}
const load0 = loadavg()[0]!;

for (const plan of plans) {
  const nfe = SOLVER_REGISTRY[plan.solver].nfe(plan.tSteps.length, plan.options);
  const run = (seeds: number[]) => sampleBatch({ solver: plan.solver, options: plan.options, tSteps: plan.tSteps, sampleShape: model.sampleShape, labelDim: model.meta.labelDim }, model.denoise, { seeds });
  // Warm-up: session initialisation, first-call allocations, JIT.
  await run(Array.from({ length: B }, (_, k) => 1e6 + k));
  model.resetStats();
  let finite = true;
  const t0 = performance.now();
  for (let b = 0; b < batches; b++) {
    const x = await run(Array.from({ length: B }, (_, k) => b * B + k));
    for (let k = 0; k < x.length && finite; k++) finite = Number.isFinite(x[k]!);
  }
  const seconds = (performance.now() - t0) / 1000;
  const inModel = model.stats.runMs / 1000;
  const row: Row = {
    impl: `adasde (onnxruntime-node ${ortVersion})`,
    label: plan.label,
    nfe,
    imagesPerS: (batches * B) / seconds,
    seconds,
    note: `${((100 * inModel) / seconds).toFixed(1)}% in session.run${finite ? '' : '; NON-FINITE samples'}`,
  };
  rows.push(row);
  console.error(`${row.impl} ${row.label}: ${row.imagesPerS!.toFixed(1)} images/s (${seconds.toFixed(2)} s, ${row.note})`);
}
const trainKimg = model.meta.raw['adasde.train_kimg'];
await model.dispose();

// ---- PyTorch -----------------------------------------------------------------------------
interface TorchResult {
  torch: string;
  nfe: number;
  images_per_s: number;
  seconds: number;
  finite: boolean;
  checkpoint_kimg: number;
  threads: number;
}
async function runTorch(): Promise<TorchResult | string> {
  if (!existsSync(checkpoint)) return `no checkpoint ${show(checkpoint)} (tools/train_tiny_edm.py writes it; --checkpoint PATH)`;
  if (!existsSync(python)) return `no Python interpreter ${python} (--python PATH)`;
  const script = join(root, 'bench', 'speed_torch.py');
  const args = [script, '--checkpoint', checkpoint, '--batches', String(batches), '--batch', String(B), '--threads', String(threads), '--t-steps', Array.from(dpmSteps).join(',')];
  console.error(`running ${python} ${show(script)} ${args.slice(1).map(show).join(' ')}`);
  return new Promise((done) => {
    const child = spawn(python, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => done(`cannot start ${python}: ${e.message}`));
    child.on('close', (code) => {
      const lastErr = err.trim().split('\n').filter((l) => l.trim()).pop() ?? '';
      if (code !== 0) {
        if (/No module named 'torch'/.test(err)) return done(`torch is not installed for ${python}`);
        return done(`speed_torch.py exited with code ${code}: ${lastErr}`);
      }
      const line = out.trim().split('\n').pop() ?? '';
      try {
        done(JSON.parse(line) as TorchResult);
      } catch {
        done(`speed_torch.py printed no JSON result (${line.slice(0, 120)})`);
      }
    });
  });
}
const torchResult = await runTorch();
const load1 = loadavg()[0]!;
let torchRate: number | undefined;
if (typeof torchResult === 'string') {
  console.error(`PyTorch: skipped: ${torchResult}`);
  rows.push({ impl: 'PyTorch', label: 'dpm (DPM-Solver-2), AFS', nfe: 5, imagesPerS: undefined, seconds: undefined, note: `skipped: ${torchResult}` });
} else {
  torchRate = torchResult.images_per_s;
  rows.push({
    impl: `PyTorch ${torchResult.torch} (float32, no_grad)`,
    label: 'dpm (DPM-Solver-2), AFS',
    nfe: torchResult.nfe,
    imagesPerS: torchResult.images_per_s,
    seconds: torchResult.seconds,
    note: `checkpoint ${torchResult.checkpoint_kimg} kimg, ${torchResult.threads} threads${torchResult.finite ? '' : '; NON-FINITE samples'}`,
  });
}

const fmt = (v: number | undefined, d: number) => (v === undefined ? '—' : v.toFixed(d));
console.log(
  `\nmodel ${show(modelFile)}${trainKimg ? ` (adasde.train_kimg ${trainKimg})` : ''}, checkpoint ${show(checkpoint)}; ` +
    `batch ${B}, ${batches} timed batches after one warm-up batch, ${threads} threads each; ` +
    `t_steps [${Array.from(dpmSteps, (t) => t.toPrecision(4)).join(', ')}]; ${cpus()[0]?.model ?? 'CPU ?'}, load average ${load0.toFixed(1)} -> ${load1.toFixed(1)}\n`,
);
console.log('| implementation | solver | NFE | wall s | images/s | adasde / PyTorch | notes |\n|---|---|---|---|---|---|---|');
for (const r of rows) {
  const ratio = r.imagesPerS !== undefined && torchRate !== undefined ? (r.imagesPerS / torchRate).toFixed(2) : '—';
  console.log(`| ${r.impl} | ${r.label} | ${r.nfe} | ${fmt(r.seconds, 2)} | ${fmt(r.imagesPerS, 1)} | ${ratio} | ${r.note} |`);
}
