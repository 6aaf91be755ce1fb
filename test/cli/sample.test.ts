/**
 * `adasde sample` end to end on a generated Gaussian-mixture ONNX model: the CLI's npy output
 * equals the in-process solver over the TypeScript analytic denoiser, images do not depend
 * on batch size or process count, bad input is one line with exit 2, and an interrupted run
 * resumes writing only what is missing.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { SOLVERS } from '../../src/config/common.js';
import { coefficientsOf, loadPredictor } from '../../src/config/predictor.js';
import { resolvePredictorPath } from '../../src/io/runs.js';
import { decodeImage } from '../../src/io/images.js';
import { readNpy, toFloat64 } from '../../src/io/npy.js';
import { saveModel } from '../../src/onnx/builder.js';
import { buildFeatureModel, buildMixtureModel } from '../support/models.js';
import { sampleBatch } from '../../src/sample/pipeline.js';
import { defaultSolverOptions } from '../../src/solvers/registry.js';
import { getSchedule } from '../../src/solvers/schedule.js';
import { repoRoot } from '../helpers.js';
import { DIM, makeModelDir, MIX, SHAPE, denoiseTs } from './sample-fixture.js';

const bin = resolve(repoRoot, 'bin', 'adasde.js');
const { dir, model } = makeModelDir();
const expDir = resolve(repoRoot, 'exp');
const SEEDS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

async function cli(...args: string[]): Promise<number> {
  return main(['node', 'adasde', ...args]);
}
function cliProcess(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: dir });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
async function npyOf(path: string): Promise<Float64Array> {
  return toFloat64(await readNpy(path));
}
function closeTo(a: Float64Array, b: Float64Array, tol: number): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let k = 0; k < a.length; k++) worst = Math.max(worst, Math.abs(a[k]! - b[k]!) / Math.max(1, Math.abs(b[k]!)));
  assert.ok(worst <= tol, `max deviation ${worst}`);
  return worst;
}

for (const solver of SOLVERS.filter((s) => s !== 'adasde')) {
  for (const afs of [false, true]) {
    test(`sample: --solver ${solver} afs=${afs} --output_format npy equals the in-process solver (1e-5)`, async () => {
      const outdir = join(dir, `npy-${solver}-${afs}`);
      const code = await cli('sample', '--model', model, '--solver', solver, '--num_steps', '5', `--afs=${afs}`, '--seeds', '0-11', '--batch', '5', '--output_format', 'npy', '--outdir', outdir, '--quiet');
      assert.equal(code, 0);
      const got = await npyOf(join(outdir, 'samples.npy'));
      const tSteps = getSchedule({ numSteps: 5, sigmaMin: 0.002, sigmaMax: 80, type: 'polynomial', rho: 7 });
      const options = { afs, denoiseToZero: false, maxOrder: defaultSolverOptions(solver).maxOrder, lowerOrderFinal: true, thresholding: true, variant: 'bh2' as const };
      const want = await sampleBatch({ solver, options, tSteps, sampleShape: SHAPE, labelDim: 0 }, denoiseTs, { seeds: SEEDS });
      closeTo(got, want, 1e-5);
    });
  }
}

for (const solver of ['dpmpp', 'unipc'] as const) {
  test(`sample: --solver ${solver} --predict_x0=False --max_order 2 equals the in-process noise-prediction solver`, async () => {
    const outdir = join(dir, `npy-eps-${solver}`);
    assert.equal(await cli('sample', '--model', model, '--solver', solver, '--num_steps', '6', '--predict_x0=False', '--max_order', '2', '--seeds', '0-11', '--output_format', 'npy', '--outdir', outdir, '--quiet'), 0);
    const tSteps = getSchedule({ numSteps: 6, sigmaMin: 0.002, sigmaMax: 80, type: 'polynomial', rho: 7 });
    const options = { afs: false, denoiseToZero: false, maxOrder: 2, lowerOrderFinal: true, thresholding: true, variant: 'bh2' as const, predictX0: false };
    const want = await sampleBatch({ solver, options, tSteps, sampleShape: SHAPE, labelDim: 0 }, denoiseTs, { seeds: SEEDS });
    closeTo(await npyOf(join(outdir, 'samples.npy')), want, 1e-5);
  });
}

test('sample: AdaSDE from a predictor file (experiment number) equals the in-process sampler', async () => {
  for (const exp of ['0', '2']) {
    const outdir = join(dir, `npy-adasde-${exp}`);
    assert.equal(await cli('sample', '--model', model, '--predictor_path', exp, '--exp_dir', expDir, '--seeds', '0-11', '--batch', '7', '--output_format', 'npy', '--outdir', outdir, '--quiet'), 0);
    const p = loadPredictor(resolvePredictorPath(exp, expDir));
    const tSteps = getSchedule({ numSteps: p.options.num_steps, sigmaMin: 0.002, sigmaMax: 80, type: p.options.schedule_type, rho: p.options.schedule_rho });
    const want = await sampleBatch({ solver: 'adasde', options: { afs: p.options.afs, coeffs: coefficientsOf(p) }, tSteps, sampleShape: SHAPE, labelDim: 0 }, denoiseTs, { seeds: SEEDS });
    closeTo(await npyOf(join(outdir, 'samples.npy')), want, 1e-5);
  }
});

function pngs(outdir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const sub of readdirSync(outdir).filter((d) => /^\d{6}$/.test(d))) {
    for (const f of readdirSync(join(outdir, sub))) out.set(`${sub}/${f}`, readFileSync(join(outdir, sub, f)));
  }
  return out;
}

test('sample: PNGs are identical for --batch 1, 7 and 64 and for 1 versus 3 processes', async () => {
  const args = ['sample', '--model', model, '--predictor_path', '0', '--exp_dir', expDir, '--seeds', '0-19,995-1004', '--quiet'];
  const runs = new Map<string, Map<string, Buffer>>();
  for (const batch of ['1', '7', '64']) {
    const outdir = join(dir, `png-b${batch}`);
    assert.equal(await cli(...args, '--batch', batch, '--outdir', outdir), 0);
    runs.set(batch, pngs(outdir));
  }
  const multi = join(dir, 'png-p3');
  const r = cliProcess(...args, '--batch', '4', '--outdir', multi, '--nproc_per_node', '3');
  assert.equal(r.code, 0, r.err);
  runs.set('3 processes', pngs(multi));
  const ref = runs.get('1')!;
  assert.equal(ref.size, 30);
  assert.ok(ref.has('000000/000000.png') && ref.has('001000/001004.png'));
  for (const [name, m] of runs) {
    assert.equal(m.size, ref.size, name);
    for (const [k, v] of ref) assert.ok(m.get(k)?.equals(v), `${name}: ${k} differs`);
  }
});

test('sample: --grid tiles every image in --seeds order', async () => {
  const outdir = join(dir, 'grid');
  assert.equal(await cli('sample', '--model', model, '--solver', 'euler', '--num_steps', '4', '--seeds', '0-9', '--grid', '--outdir', outdir, '--quiet'), 0);
  const grid = await decodeImage(readFileSync(join(outdir, 'grid.png')), 'grid.png');
  // 10 images of 8x8: ceil(sqrt(10)) = 4 columns, 3 rows.
  assert.deepEqual([grid.width, grid.height], [32, 24]);
  const seven = await decodeImage(readFileSync(join(outdir, '000000', '000007.png')), '7');
  // Seed 7 is tile (row 1, column 3).
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 8; x++) assert.equal(grid.data[(c * 24 + 8 + y) * 32 + 24 + x], seven.data[(c * 8 + y) * 8 + x]);
    }
  }
});

test('sample: bad input is one line and exit code 2', () => {
  const bad = (name: string, metadata: Record<string, string>, omit: string[] = []) => {
    const p = join(dir, `${name}.onnx`);
    const shape = name === 'channels' ? [1, 8, 8] : SHAPE;
    const means = name === 'channels' ? MIX.means.slice(0, 5 * 64) : MIX.means;
    saveModel(buildMixtureModel({ ...MIX, means }, shape, { datasetName: 'gmm', metadata, omit }), p);
    return p;
  };
  writeFileSync(join(dir, 'garbage.onnx'), 'not a model');
  const badPredictor = join(dir, 'p.json');
  const p = JSON.parse(readFileSync(resolvePredictorPath('0', expDir), 'utf8')) as { options: { num_steps: number } };
  writeFileSync(badPredictor, JSON.stringify(p));
  const cases: [string[], RegExp][] = [
    [['--model', join(dir, 'missing.onnx'), '--solver', 'euler'], /--model: .*missing\.onnx does not exist/],
    [['--model', join(dir, 'garbage.onnx'), '--solver', 'euler'], /garbage\.onnx/],
    [['--model', bad('nometa', {}, ['adasde.sigma_max']), '--solver', 'euler'], /adasde\.sigma_max/],
    [['--model', model, '--seeds', '3-x', '--solver', 'euler'], /--seeds: expected a seed list/],
    [['--model', model, '--solver', 'rk45'], /--solver: expected one of/],
    [['--model', model, '--solver', 'euler', '--batch', '0'], /--batch: expected an integer >= 1, got "0"/],
    [['--model', model, '--predictor_path', badPredictor, '--num_steps', '6'], /--num_steps=6 disagrees with the predictor .*num_steps=3/],
    [['--model', model, '--predictor_path', '77', '--exp_dir', expDir], /--predictor_path: no experiment 00077-\*/],
    [['--model', model, '--solver', 'adasde'], /--solver adasde needs --predictor_path/],
    [['--model', model, '--solver', 'euler', '--latents', join(dir, 'nolatents.npy')], /--latents: .* does not exist/],
  ];
  for (const [args, pattern] of cases) {
    const r = cliProcess('sample', ...args, '--outdir', join(dir, 'bad-out'), '--quiet');
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    const lines = r.err.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.err);
    assert.match(lines[0]!, pattern);
  }
});

test('sample: an interrupted run resumes, writing only the missing images', async () => {
  const outdir = join(dir, 'resume');
  const args = [bin, 'sample', '--model', model, '--solver', 'heun', '--num_steps', '30', '--seeds', '0-399', '--batch', '1', '--outdir', outdir, '--quiet'];
  const child = spawn(process.execPath, args, { cwd: dir, stdio: 'ignore' });
  // Interrupt once some, but not all, images exist.
  const count = () => (existsSync(join(outdir, '000000')) ? readdirSync(join(outdir, '000000')).length : 0);
  while (count() < 40) await new Promise((r) => setTimeout(r, 20));
  child.kill('SIGINT');
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  assert.equal(code, 130);
  const files = readdirSync(join(outdir, '000000'));
  assert.ok(files.length < 400, `only ${files.length} of 400 written before the interrupt`);
  assert.ok(files.every((f) => /^\d{6}\.png$/.test(f)), 'no partial or temporary files remain');
  const before = new Map(files.map((f) => [f, statSync(join(outdir, '000000', f)).mtimeMs]));
  const r = cliProcess(...args.slice(1));
  assert.equal(r.code, 0, r.err);
  const after = readdirSync(join(outdir, '000000'));
  assert.equal(after.length, 400);
  for (const [f, m] of before) assert.equal(statSync(join(outdir, '000000', f)).mtimeMs, m, `${f} was rewritten`);
  // The resumed set equals an uninterrupted run.
  const clean = join(dir, 'resume-clean');
  assert.equal(await cli('sample', '--model', model, '--solver', 'heun', '--num_steps', '30', '--seeds', '0-399', '--batch', '64', '--outdir', clean, '--quiet'), 0);
  const a = pngs(outdir);
  const b = pngs(clean);
  for (const [k, v] of b) assert.ok(a.get(k)?.equals(v), `${k} differs after resume`);
});

test('sample --grid, then fid ref / fid calc --images <outdir> as the README does: grid.png is not an image of the set', async () => {
  const outdir = join(dir, 'grid-then-fid');
  const detector = join(dir, 'grid-features.onnx');
  saveModel(buildFeatureModel({ dim: 16, size: 16, seed: 5 }), detector);
  assert.equal(await cli('sample', '--model', model, '--solver', 'euler', '--num_steps', '4', '--seeds', '0-9', '--grid', '--outdir', outdir, '--quiet'), 0);
  assert.ok(existsSync(join(outdir, 'grid.png')));
  const ref = join(dir, 'grid-ref.npz');
  const a = cliProcess('fid', 'ref', '--data', outdir, '--dest', ref, '--detector', detector);
  assert.equal(a.code, 0, a.err);
  assert.match(a.err, / of 10 images from /);
  // The same ten images against their own statistics: distance 0.
  const b = cliProcess('fid', 'calc', '--images', outdir, '--ref', ref, '--detector', detector, '--json');
  assert.equal(b.code, 0, b.err);
  // Feature extraction spends no network evaluations: its progress bar has no NFE/s.
  assert.doesNotMatch(b.err, /NFE\/s/);
  assert.match(b.err, /images\/s/);
  const rec = JSON.parse(b.out.trim()) as { fd_bundled: number; n: number };
  assert.equal(rec.n, 10);
  assert.ok(Math.abs(rec.fd_bundled) < 1e-9, `distance ${rec.fd_bundled}`);
});

test('sample: a resumed run counts the images it skipped in its summary', () => {
  const outdir = join(dir, 'summary');
  const args = ['sample', '--model', model, '--solver', 'euler', '--num_steps', '3', '--outdir', outdir];
  assert.equal(cliProcess(...args, '--seeds', '0-4').code, 0);
  const r = cliProcess(...args, '--seeds', '0-11');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^sampled 7 images \(5 already present, skipped\) with euler at 2 NFE/);
});

test('sample: --dataset_name cifar10 falling back to the bundled tiny network says so on stderr', () => {
  const models = join(dir, 'fallback-models');
  mkdirSync(models, { recursive: true });
  copyFileSync(model, join(models, 'cifar10-tiny-edm.onnx'));
  const args = ['sample', '--dataset_name', 'cifar10', '--model_dir', models, '--solver', 'euler', '--num_steps', '3', '--seeds', '0-1', '--outdir', join(dir, 'fallback')];
  const r = cliProcess(...args);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /--dataset_name cifar10: using the bundled tiny network .*cifar10-tiny-edm\.onnx \(no cifar10\.onnx or edm-cifar10-32x32-uncond-vp\.onnx in /);
  const q = cliProcess(...args, '--quiet');
  assert.equal(q.code, 0, q.err);
  assert.equal(q.err, '');
});
