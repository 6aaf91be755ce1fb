/**
 * Fused sampler against the host loop on this CPU (issue 16), in one run:
 *
 *   npm run build && node dist/bench/fused.js [--model models/cifar10-tiny-edm.onnx]
 *     [--predictor_path exp/00013-cifar10-4-5-adasde-dpm-3-uni1.0-afs-tiny] [--batches 3] [--threads 2]
 *     [--nine exp/00008-cifar10-6-9-adasde-dpm-2-uni1.0-afs-tiny]
 *
 * 1. Images/s at batch 64 and 5 NFE: `adasde sample`'s loop (sampleBatch over
 *    loadDenoiserModel: per-seed latents and noise, float64 solver arithmetic, float32 at the
 *    ONNX boundary) against `adasde sample --fused`'s (runFusedBatch: the same per-seed feeds,
 *    one session.run for the whole sampler), for the AdaSDE predictor and for DPM-Solver-2
 *    (num_steps 4, AFS: 5 NFE). One warm-up batch each, then `--batches` timed batches,
 *    alternating host and fused so that load changes hit both; the ratio fused / host (> 1:
 *    the fused graph is faster).
 * 2. File sizes: the fused 5-NFE and 9-NFE samplers against the model.
 * 3. Session creation (InferenceSession.create) of the model and of the 5- and 9-NFE fused
 *    samplers in onnxruntime-node (inline layout, and the 9-NFE one with --subgraphs at each
 *    --optimize level) at the
 *    optimisation levels `all` (what adasde uses for the inline layout), `basic` and
 *    `disabled` (what it uses for the subgraph layout), median of 3.
 * Prints one Markdown table per part (bench/RESULTS.md, "Fused samplers").
 */
import { mkdtempSync, statSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { resolveFuse, runFuse, type FusePlan } from '../src/app/fuse.js';
import { openFused, runFusedBatch } from '../src/app/fused-sample.js';
import { fuseOptionTable, type FuseOptions } from '../src/config/fuse.js';
import { parseOptions } from '../src/config/options.js';
import { fusedInfo } from '../src/fuse/info.js';
import { loadDenoiserModel } from '../src/runtime/model.js';
import { readModelSignature } from '../src/runtime/session.js';
import { sampleBatch } from '../src/sample/pipeline.js';
import { benchArgs } from './args.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const B = 64;

const { fail, str, int } = benchArgs('fused', ['model', 'predictor_path', 'nine', 'batches', 'threads']);
const model = resolve(str('model', join(root, 'models', 'cifar10-tiny-edm.onnx')));
const predictor = resolve(str('predictor_path', join(root, 'exp', '00013-cifar10-4-5-adasde-dpm-3-uni1.0-afs-tiny')));
const nine = resolve(str('nine', join(root, 'exp', '00008-cifar10-6-9-adasde-dpm-2-uni1.0-afs-tiny')));
const batches = int('batches', 3, 1);
const threads = int('threads', availableParallelism(), 1);
const dir = mkdtempSync(join(tmpdir(), 'adasde-bench-fused-'));

async function fuse(flags: Partial<FuseOptions>, name: string): Promise<{ plan: FusePlan; file: string; bytes: number }> {
  const file = join(dir, `${name}.onnx`);
  const plan = resolveFuse({ ...parseOptions(fuseOptionTable, { quiet: true }), model, ...flags, out: file } as FuseOptions);
  const res = await runFuse(plan);
  return { plan, file, bytes: res.bytes };
}

const seedsOf = (b: number): number[] => Array.from({ length: B }, (_, k) => b * B + k);

async function speed(name: string, flags: Partial<FuseOptions>): Promise<string> {
  const { plan, file } = await fuse(flags, name);
  const host = await loadDenoiserModel(model, { threads, maxBatch: B });
  const sig = readModelSignature(file);
  const info = fusedInfo(file, new Map(Object.entries(sig.metadata)), sig.inputs.map((s) => s.name), sig.outputs.map((s) => s.name));
  const session = await openFused(file, info, { threads });
  const solverPlan = { solver: plan.solver.solver, options: plan.solver.options, tSteps: plan.solver.tSteps, sampleShape: plan.sampleShape, labelDim: 0 };
  const runHost = (b: number) => sampleBatch(solverPlan, host.denoise, { seeds: seedsOf(b) });
  const runFused = (b: number) => runFusedBatch(session, info, seedsOf(b));
  await runHost(0);
  await runFused(0);
  let tHost = 0;
  let tFused = 0;
  for (let b = 1; b <= batches; b++) {
    let t0 = performance.now();
    await runHost(b);
    tHost += performance.now() - t0;
    t0 = performance.now();
    await runFused(b);
    tFused += performance.now() - t0;
  }
  await host.dispose();
  await session.dispose();
  const rHost = (batches * B) / (tHost / 1000);
  const rFused = (batches * B) / (tFused / 1000);
  return `| ${name} | ${plan.nfe} | ${rHost.toFixed(2)} | ${rFused.toFixed(2)} | **${(rFused / rHost).toFixed(2)}** |`;
}

async function creation(file: string, level: 'all' | 'basic' | 'disabled'): Promise<number> {
  const times: number[] = [];
  for (let k = 0; k < 3; k++) {
    const t0 = performance.now();
    const s = await ort.InferenceSession.create(file, { graphOptimizationLevel: level, executionProviders: ['cpu'], intraOpNumThreads: threads });
    times.push(performance.now() - t0);
    await s.release();
  }
  return times.sort((a, b) => a - b)[1]!;
}

console.log(`bench/fused: ${cpus()[0]?.model ?? 'cpu'}, ${availableParallelism()} cores, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}, ${threads} threads, batch ${B}, ${batches} timed batches\n`);
console.log('| sampler | NFE | host loop images/s | fused images/s | fused / host |');
console.log('|---|---:|---:|---:|---:|');
console.log(await speed('adasde (predictor)', { predictorPath: predictor }));
console.log(await speed('dpm, num_steps 4, AFS', { solver: 'dpm', numSteps: 4, afs: true }));
for (const optimize of ['basic', 'none', 'extended'] as const) {
  console.log(await speed(`adasde (predictor), subgraph layout, --optimize ${optimize}`, { predictorPath: predictor, subgraphs: true, optimize }));
}

const f5 = await fuse({ predictorPath: predictor }, 'size5');
const f9 = await fuse({ predictorPath: nine }, 'size9');
const mb = statSync(model).size;
console.log('\n| file | NFE | bytes | vs model |');
console.log('|---|---:|---:|---:|');
console.log(`| model | 1 | ${mb} | |`);
for (const [f, n] of [[f5, 5], [f9, 9]] as const) console.log(`| fused AdaSDE | ${n} | ${f.bytes} | +${((f.bytes / mb - 1) * 100).toFixed(1)}% |`);

const f9s = await fuse({ predictorPath: nine, subgraphs: true, optimize: 'none' }, 'size9-subgraphs');
const f9b = await fuse({ predictorPath: nine, subgraphs: true, optimize: 'basic' }, 'size9-subgraphs-basic');
const f9e = await fuse({ predictorPath: nine, subgraphs: true, optimize: 'extended' }, 'size9-subgraphs-extended');
console.log('\n| session creation (onnxruntime-node), median of 3 | level all | level basic | level disabled |');
console.log('|---|---:|---:|---:|');
for (const [label, file] of [['model', model], ['fused AdaSDE 5 NFE', f5.file], ['fused AdaSDE 9 NFE', f9.file], ['fused AdaSDE 9 NFE, subgraph layout, --optimize none', f9s.file], ['fused AdaSDE 9 NFE, subgraph layout, --optimize basic (auto)', f9b.file], ['fused AdaSDE 9 NFE, subgraph layout, --optimize extended', f9e.file]] as const) {
  console.log(`| ${label} | ${(await creation(file, 'all')).toFixed(0)} ms | ${(await creation(file, 'basic')).toFixed(0)} ms | ${(await creation(file, 'disabled')).toFixed(0)} ms |`);
}
