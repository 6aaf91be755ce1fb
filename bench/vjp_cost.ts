/**
 * The cost of a denoiser VJP row in forward rows (src/train/gradient-plan.ts's VJP_ROW_COST):
 * median seconds per row of the plain model and of its VJP graph (src/runtime/vjp.ts), runs
 * interleaved so that load on the machine hits both alike.
 *
 *   npm run build && node dist/bench/vjp_cost.js [--model models/cifar10-tiny-edm.onnx | --model conv]
 *     [--rows 8,16,32] [--reps 7] [--threads 0]
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { saveModel } from '../src/onnx/builder.js';
import { loadDenoiserModel } from '../src/runtime/model.js';
import { loadDenoiserVjp } from '../src/runtime/vjp.js';
import { buildConvDenoiserModel } from '../test/support/models.js';

const arg = (name: string, def: string) => {
  const k = process.argv.indexOf(`--${name}`);
  return k > 0 ? process.argv[k + 1]! : def;
};
const rowsList = arg('rows', '8,16,32').split(',').map(Number);
const reps = Number(arg('reps', '7'));
const threads = Number(arg('threads', '0'));
const name = arg('model', 'models/cifar10-tiny-edm.onnx');
const dir = mkdtempSync(join(tmpdir(), 'adasde-vjp-bench-'));
const file = join(dir, 'model.onnx');
if (name === 'conv') saveModel(buildConvDenoiserModel({ resolution: 32, width: 128, depth: 3 }), file);
else copyFileSync(name, file);
const t0 = performance.now();
const model = await loadDenoiserModel(file, { threads: threads || undefined, maxBatch: 4096 });
const dv = await loadDenoiserVjp(file, { threads: threads || undefined, maxBatch: 4096 });
const buildSec = (performance.now() - t0) / 1000;
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

console.log(`${name}: the VJP graph built and opened in ${buildSec.toFixed(1)} s; ${reps} interleaved runs per size, threads ${threads || 'default'}\n`);
console.log('| rows per call | forward ms/row | VJP ms/row | VJP / forward |\n|---:|---:|---:|---:|');
for (const rows of rowsList) {
  const x = Float64Array.from({ length: rows * model.dim }, (_, k) => Math.sin(0.37 * k));
  const sigma = Float64Array.from({ length: rows }, (_, k) => 0.05 * 1.6 ** k);
  const u = Float64Array.from({ length: rows * model.dim }, (_, k) => Math.cos(0.11 * k));
  await model.denoise({ x, sigma, batch: rows });
  await dv.vjp(x, sigma, rows, u);
  const f: number[] = [];
  const v: number[] = [];
  for (let r = 0; r < reps; r++) {
    let s = performance.now();
    await model.denoise({ x, sigma, batch: rows });
    f.push((performance.now() - s) / rows);
    s = performance.now();
    await dv.vjp(x, sigma, rows, u);
    v.push((performance.now() - s) / rows);
  }
  console.log(`| ${rows} | ${median(f).toFixed(2)} | ${median(v).toFixed(2)} | ${(median(v) / median(f)).toFixed(2)} |`);
}
await model.dispose();
await dv.dispose();
rmSync(dir, { recursive: true, force: true });
