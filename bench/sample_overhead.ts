/**
 * The sampler's own overhead (issue: `adasde sample`): with a U-Net-sized convolutional
 * denoiser (test/support/models.ts buildConvDenoiserModel, ~1.2 GFLOP per 32x32 image) at
 * batch 64 on CPU, overhead = (wall time - NFE x model time) / wall time, where the wall time
 * covers the loop `adasde sample` runs (latents, solver arithmetic, float64 <-> float32
 * conversion, quantisation, PNG compression and atomic writes on the writer thread). Model
 * time is read two ways: in-run (time inside onnxruntime's session.run during the run) and
 * isolated (median of single calls with nothing else running, before and after the run).
 * Target: at most 3%. bench/RESULTS.md, "Sampler overhead", has the numbers.
 *
 *   npm run build && node dist/bench/sample_overhead.js [--threads 2] [--batches 2] [--spin 1] [--model FILE]
 *     [--solvers euler,unipc] [--write 0] [--calls 7]
 *
 * --model measures with an ONNX denoiser file instead, e.g. the bundled U-Net
 * models/cifar10-tiny-edm.onnx (1.19M parameters, less work per image than the generated one).
 * --write 0 leaves out image output; --calls sets the isolated calls before and after a run.
 * --spin 1 lets onnxruntime's pool threads busy-wait between runs (its own default; adasde
 * turns it off, see src/runtime/session.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SOLVERS, type SolverName } from '../src/config/common.js';
import { ImageWriter } from '../src/io/image-writer.js';
import { imagePath, quantizeBatch } from '../src/io/png.js';
import { saveModel } from '../src/onnx/builder.js';
import { buildConvDenoiserModel, convDenoiserFlops } from '../test/support/models.js';
import { loadDenoiserModel } from '../src/runtime/model.js';
import { runBatches } from '../src/sample/pipeline.js';
import { defaultSolverOptions, SOLVER_REGISTRY, type SolverOptions } from '../src/solvers/registry.js';
import { getSchedule } from '../src/solvers/schedule.js';

const arg = (name: string, def: number) => {
  const k = process.argv.indexOf(`--${name}`);
  return k > 0 ? Number(process.argv[k + 1]) : def;
};
const threads = arg('threads', 0);
const batches = arg('batches', 2);
const spin = arg('spin', 0) === 1;
const calls = arg('calls', 7);
// --write 0: skip quantisation and PNG writing (separates the solver loop from image output).
const writeImages = arg('write', 1) === 1;
const B = 64;
const modelArg = process.argv.indexOf('--model');
const solversArg = process.argv.indexOf('--solvers');
const solvers = (solversArg > 0 ? process.argv[solversArg + 1]!.split(',') : SOLVERS) as readonly SolverName[];
const dir = mkdtempSync(join(tmpdir(), 'adasde-bench-'));
const file = modelArg > 0 ? process.argv[modelArg + 1]! : join(dir, 'conv.onnx');
if (modelArg < 0) saveModel(buildConvDenoiserModel({ resolution: 32, width: 128, depth: 3 }), file);
const model = await loadDenoiserModel(file, { threads: threads || undefined, maxBatch: B, spin });
const [C, H, W] = model.sampleShape;

const coeffs = { r: [[0.4], [0.4], [0.4]], scaleDir: [[1], [1], [1]], scaleTime: [[1], [1], [1]], weight: [[1], [1], [1]], gamma: [[0], [0.01], [0.01]] };
const rows: string[] = [];
const writer = new ImageWriter();
// Warm-up run (session initialisation, first-call allocations) outside the measurement.
await model.denoise({ x: new Float64Array(B * model.dim), sigma: new Float64Array(B).fill(1), batch: B });
for (const solver of solvers) {
  const options: SolverOptions = solver === 'adasde' ? { afs: true, coeffs } : { afs: true, maxOrder: defaultSolverOptions(solver).maxOrder, thresholding: true };
  const numSteps = solver === 'adasde' || solver === 'heun' || solver === 'dpm' ? 4 : 6;
  const tSteps = getSchedule({ numSteps, sigmaMin: 0.002, sigmaMax: 80, type: 'time_uniform', rho: 1 });
  // One batch per solver first, outside the measurement: a 50k-image run is all steady state
  // (JIT-compiled solver code, warm allocator), which is what the target is about.
  const plan = { solver, options, tSteps, sampleShape: model.sampleShape, labelDim: 0 };
  const write = async (x: Float64Array, seeds: readonly number[]) => {
    if (!writeImages) return;
    // As `adasde sample` writes PNGs (src/cli/sample.ts): quantised here, written by the writer thread.
    await writer.write(seeds.map((s) => imagePath(join(dir, solver), s)), quantizeBatch(x, seeds.length, C, H, W), C, H, W);
  };
  await runBatches(plan, model.denoise, [Array.from({ length: B }, (_, k) => 1e6 + k)], { consume: write });
  // The model's own time per call at batch B, with nothing else running: the median of
  // isolated calls just before and just after the run (the "NFE x model time").
  const xs = new Float64Array(B * model.dim).map((_, k) => Math.sin(k));
  const alone: number[] = [];
  const isolated = async () => {
    for (let k = 0; k < calls; k++) {
      model.resetStats();
      await model.denoise({ x: xs, sigma: new Float64Array(B).fill(1 + k), batch: B });
      alone.push(model.stats.runMs);
    }
  };
  await isolated();
  model.resetStats();
  const t0 = performance.now();
  // The loop `adasde sample` runs (src/sample/pipeline.ts runBatches).
  await runBatches(plan, model.denoise, Array.from({ length: batches }, (_, b) => Array.from({ length: B }, (_, k) => b * B + k)), { consume: write });
  const wall = performance.now() - t0;
  const inModel = model.stats.runMs;
  await isolated();
  alone.sort((a, b) => a - b);
  const perCall = alone[alone.length >> 1]!;
  const nfe = SOLVER_REGISTRY[solver].nfe(numSteps, options);
  const modelAlone = nfe * batches * perCall;
  const pct = (m: number) => `${((100 * (wall - m)) / wall).toFixed(2)}%`;
  rows.push(`| ${solver} | ${nfe} | ${(wall / 1000).toFixed(2)} | ${(inModel / 1000).toFixed(2)} | ${pct(inModel)} | ${perCall.toFixed(1)} | ${(modelAlone / 1000).toFixed(2)} | ${pct(modelAlone)} |`);
  console.error(rows[rows.length - 1]);
}
await model.dispose();
await writer.close();
rmSync(dir, { recursive: true, force: true });
const what = modelArg > 0 ? file : `conv denoiser ${(convDenoiserFlops({ resolution: 32, width: 128, depth: 3 }) / 1e9).toFixed(2)} GFLOP/image`;
console.log(`\n${what}, batch ${B}, ${batches} batches per solver, threads ${threads || 'default'}, spinning ${spin ? 'on' : 'off'}\n`);
console.log('| solver | NFE | wall s | session.run s | overhead (in-run) | model ms/call alone | NFE x model s | overhead (NFE x model) |\n|---|---|---|---|---|---|---|---|');
console.log(rows.join('\n'));
