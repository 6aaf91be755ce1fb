/**
 * Distance to the ODE solution: for every cell of a quality-table spec (bench/quality.yaml),
 * the rms error of the final states of `adasde sample` against a converged solution of the
 * probability-flow ODE (Heun on EDM's polynomial schedule with many steps) from the same
 * latents. The feature distance of bench/quality measures what a metric sees; this measures
 * how closely a few-step sampler follows the trajectory its teacher approximates (the
 * quantity AdaSDE's per-interval L2 loss distils, ALGORITHM.md 4.3), and how much of that
 * gap each solver leaves. Cells run as real `adasde sample` processes with
 * `--output_format npy`; their outputs are cached under --outdir by the table's cell
 * fingerprint, so a re-run with new rows samples only those.
 *
 *   npm run build && node dist/bench/ode_gap.js --spec bench/quality.yaml --nfe 7,9 \
 *     [--seeds 0-255] [--ref_steps 41] [--outdir bench/ode-gap] [--threads 1] [--teachers 5:3,6:2]
 *
 * --teachers lists distillation teachers as num_steps:M (ALGORITHM.md 4.2: dpm on the
 * (M+1)(N-1)+1-point time_uniform rho-1 grid, every interval split in two by a polynomial rho-7
 * sub-schedule, no AFS), sampled through `adasde sample --solver dpm --t_steps` on that exact
 * list of times: a student that matches its teacher perfectly is this far from the ODE.
 *
 * The reference's own error is printed beside it: the rms difference between Heun with
 * --ref_steps and with about half as many intervals (Heun is second order, so the reference's
 * error is about a quarter of that).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tableInputs } from '../src/app/table.js';
import { cellCommand, planCell } from '../src/app/table-plan.js';
import type { TableRow } from '../src/config/table.js';
import { readNpy, toFloat64 } from '../src/io/npy.js';
import { loadDenoiserModel } from '../src/runtime/model.js';
import { elementCount } from '../src/core/shape.js';
import { substepSchedule, teacherSchedule } from '../src/solvers/teacher.js';
import { benchArgs } from './args.js';

const args = benchArgs('ode_gap', ['spec', 'nfe', 'seeds', 'ref_steps', 'outdir', 'threads', 'batch', 'teachers']);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'bin', 'adasde.js');
const outdir = args.str('outdir', 'bench/ode-gap');
const refSteps = args.int('ref_steps', 41, 3);
const threads = args.int('threads', 1, 0);
const nfeList = args.str('nfe', '3,5,7,9').split(',').map(Number);
if (nfeList.some((k) => !Number.isInteger(k) || k < 1)) args.fail(`--nfe: expected a comma-separated list of positive integers, got ${args.str('nfe', '')}`);
if (!args.has('spec')) args.fail('--spec is required (a quality-table spec such as bench/quality.yaml)');

// Resolved exactly as `adasde table` resolves the spec; the detector only enters the fingerprints.
const inputs = tableInputs({
  spec: args.str('spec', ''),
  seeds: args.str('seeds', '0-255'),
  nfe: nfeList,
  batch: args.int('batch', 64, 1),
  keepImages: false,
  device: 'cpu',
  threads,
  nprocPerNode: 1,
  dryRun: false,
  quiet: true,
} as Parameters<typeof tableInputs>[0]);
const model = await loadDenoiserModel(inputs.modelFile, { threads: 1 });
const { meta, sampleShape } = model;
await model.dispose();
const dim = elementCount(sampleShape);
mkdirSync(join(outdir, 'cells'), { recursive: true });

/** The final states of `adasde sample` with these flags, sampled into cells/<key>/samples.npy unless stored. */
async function states(key: string, sampleArgs: string[]): Promise<Float64Array> {
  const dir = join(outdir, 'cells', key);
  const file = join(dir, 'samples.npy');
  if (!existsSync(file)) {
    const r = spawnSync(process.execPath, [cli, 'sample', ...sampleArgs, '--outdir', dir, '--output_format', 'npy', '--threads', String(threads), '--quiet'], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.status !== 0) args.fail(`adasde sample for ${key} exited with ${r.status}`);
  }
  const a = toFloat64(await readNpy(file));
  if (a.length !== inputs.seeds.length * dim) args.fail(`${file}: ${a.length} values, expected ${inputs.seeds.length} x ${dim}`);
  return a;
}

/** Mean over images of the per-image rms difference, in the model's data units. */
function rms(a: Float64Array, b: Float64Array): number {
  let total = 0;
  for (let i = 0; i < inputs.seeds.length; i++) {
    let s = 0;
    for (let j = i * dim; j < (i + 1) * dim; j++) s += (a[j]! - b[j]!) ** 2;
    total += Math.sqrt(s / dim);
  }
  return total / inputs.seeds.length;
}

const seedArg = args.str('seeds', '0-255');
const planContext = { meta, sampleShape, modelFile: inputs.modelFile, detectorFile: inputs.detector, seeds: inputs.seeds, expDir: inputs.expDir };
/** A table row at one NFE as `adasde sample` flags (without --outdir), resolved as `adasde table` does; undefined with the reason when it cannot be planned. */
function cellArgs(row: TableRow, nfe: number): { args?: string[]; label: string; fingerprint?: string; missing?: string } {
  const c = planCell(row, nfe, planContext);
  const cmd = cellCommand(c, { modelFile: inputs.modelFile, detectorFile: inputs.detector, ref: inputs.ref, seeds: inputs.seeds, batch: inputs.batch, imagesDir: '' });
  if (!cmd) return { label: c.label, missing: c.missing ?? 'not resolvable' };
  return { args: cmd.sample.slice(0, cmd.sample.indexOf('--outdir')), label: c.label, fingerprint: c.fingerprint };
}
// Heun without AFS takes 2 (steps - 1) NFE.
const heun = (steps: number): string[] => {
  const c = cellArgs({ solver: 'heun', afs: false }, 2 * (steps - 1));
  if (!c.args) return args.fail(`--ref_steps ${steps}: ${c.missing}`);
  return c.args;
};
const halfSteps = Math.floor((refSteps - 1) / 2) + 1;
const ref = await states(`ref-heun-${refSteps}`, heun(refSteps));
const refErr = rms(await states(`ref-heun-${halfSteps}`, heun(halfSteps)), ref);

const teachers: { label: string; nfe: number; value: number }[] = [];
for (const spec of args.str('teachers', '').split(',').filter(Boolean)) {
  const m = /^(\d+):(\d+)$/.exec(spec);
  if (!m) args.fail(`--teachers: expected num_steps:M pairs such as 5:3,6:2, got ${spec}`);
  const [n, M] = [Number(m![1]), Number(m![2])];
  const grid = teacherSchedule({ numSteps: n, sigmaMin: meta.sigmaMin, sigmaMax: meta.sigmaMax, type: 'time_uniform', rho: 1 }, M);
  const times: number[] = [grid[0]!];
  for (let i = 0; i + 1 < grid.length; i++) {
    const sub = substepSchedule(grid[i]!, grid[i + 1]!);
    times.push(sub[1]!, sub[2]!);
  }
  const teacherArgs = ['--model', inputs.modelFile, '--solver', 'dpm', `--t_steps=[${times.map((t) => t.toPrecision(17)).join(',')}]`, '--afs=false', '--denoise_to_zero=false', '--seeds', seedArg, '--batch', String(inputs.batch)];
  const nfe = 2 * (times.length - 1);
  const value = rms(await states(`teacher-${n}-${M}`, teacherArgs), ref);
  teachers.push({ label: `teacher of num_steps ${n}, M ${M} (dpm, ${nfe} NFE)`, nfe, value });
  console.error(`teacher ${n}:${M}: ${value.toFixed(4)}`);
}

const rows: { label: string; nfe: number; value?: number; missing?: string }[] = [];
for (const row of inputs.rows) {
  for (const k of inputs.nfe) {
    const c = cellArgs(row, k);
    if (!c.args) {
      rows.push({ label: c.label, nfe: k, missing: c.missing });
      continue;
    }
    const value = rms(await states(`${c.label.replace(/[^\w.-]+/g, '_')}-nfe${k}-${c.fingerprint!.slice(0, 12)}`, c.args), ref);
    rows.push({ label: c.label, nfe: k, value });
    console.error(`${c.label} NFE ${k}: ${value.toFixed(4)}`);
  }
}

const labels = [...new Set(rows.map((r) => r.label))];
const best = new Map(inputs.nfe.map((k) => [k, Math.min(...rows.filter((r) => r.nfe === k && r.value !== undefined).map((r) => r.value!))]));
const lines = [
  `rms error of the final states against Heun with ${refSteps} steps (${2 * (refSteps - 1)} NFE, EDM schedule rho 7) from the same latents, seeds ${seedArg}, model ${inputs.modelFile}, data units (images in [-1, 1]); lower is better`,
  `reference's own error: Heun with ${halfSteps} steps differs from it by ${refErr.toFixed(5)} (second order: the reference is within about a quarter of that)`,
  '',
  `| solver | ${inputs.nfe.map((k) => `NFE ${k}`).join(' | ')} |`,
  `|---|${inputs.nfe.map(() => '---:').join('|')}|`,
  ...teachers.map((t) => `| ${t.label} | ${inputs.nfe.map(() => t.value.toFixed(4)).join(' | ')} |`),
  ...labels.map((l) => `| ${l} | ${inputs.nfe.map((k) => {
    const r = rows.find((x) => x.label === l && x.nfe === k);
    if (r?.value === undefined) return 'n/a';
    const v = r.value.toFixed(4);
    return r.value === best.get(k) ? `**${v}**` : v;
  }).join(' | ')} |`),
];
const md = lines.join('\n') + '\n';
writeFileSync(join(outdir, 'ode-gap.md'), md);
writeFileSync(join(outdir, 'ode-gap.json'), JSON.stringify({ refSteps, halfSteps, refErr, seeds: seedArg, model: inputs.modelFile, teachers, rows }, null, 2) + '\n');
process.stdout.write(md);
