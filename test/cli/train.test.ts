/**
 * `adasde train` end to end on a generated Gaussian-mixture ONNX model: a short run beats the
 * untrained predictor and the dpm and heun baselines at the same NFE, `adasde sample` with the
 * snapshot reproduces that error, runs are deterministic, resumable and data-parallel.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { coefficientsOf, loadPredictor, type PredictorFile } from '../../src/config/predictor.js';
import { latestSnapshot } from '../../src/io/runs.js';
import { readNpy, toFloat64 } from '../../src/io/npy.js';
import { sampleBatch } from '../../src/sample/pipeline.js';
import { getSchedule } from '../../src/solvers/schedule.js';
import { teacherSchedule, teacherTargets } from '../../src/solvers/teacher.js';
import { seedLatents } from '../../src/rng/streams.js';
import { initState } from '../../src/train/loop.js';
import { parseChartSvg } from '../charts/svg.js';
import { repoRoot } from '../helpers.js';
import { denoiseTs, DIM, makeModelDir, SHAPE } from './sample-fixture.js';

const bin = resolve(repoRoot, 'bin', 'adasde.js');
const { dir, model } = makeModelDir();
const cli = (...args: string[]) => main(['node', 'adasde', ...args]);
const trainArgs = (outdir: string, kimg = '0.2') => ['train', '--model', model, '--outdir', outdir, '--num_steps', '4', '--M', '2', '--total_kimg', kimg, '--batch', '16', '--seed', '1', '--coslr', '--lr', '0.2', '--gamma', '0.02', '--schedule_rho', '1', '--tick', '0.05', '--snap', '1', '--quiet'];
const runDirOf = (outdir: string) => join(outdir, readdirSync(outdir).find((d) => /^\d{5}-/.test(d))!);

const EVAL = Array.from({ length: 48 }, (_, k) => 500000 + k);
const schedule = { numSteps: 4, sigmaMin: 0.002, sigmaMax: 80, type: 'time_uniform' as const, rho: 1 };

/** RMS distance of final states to the teacher's (M = 2, as trained), the training objective. */
async function teacherFinal(): Promise<Float64Array> {
  const tT = teacherSchedule(schedule, 2);
  const z = seedLatents(EVAL, DIM);
  const ys = await teacherTargets('dpm', z.map((v) => v * tT[0]!), { denoise: denoiseTs, tSteps: tT, batch: EVAL.length, dim: DIM }, 2);
  return ys[ys.length - 1]!;
}
const rms = (a: Float64Array, b: Float64Array) => Math.sqrt(a.reduce((s, v, k) => s + (v - b[k]!) ** 2, 0) / a.length);
const seedsFlag = `${EVAL[0]}-${EVAL[EVAL.length - 1]}`;
async function cliSamples(...args: string[]): Promise<Float64Array> {
  const outdir = join(dir, `eval-${Math.random().toString(16).slice(2)}`);
  assert.equal(await cli('sample', '--model', model, '--seeds', seedsFlag, '--output_format', 'npy', '--outdir', outdir, '--quiet', ...args), 0);
  return toFloat64(await readNpy(join(outdir, 'samples.npy')));
}

test('train: a short run beats the untrained predictor, dpm and heun at the same NFE; sample reproduces it', async () => {
  const outdir = join(dir, 'exp-main');
  assert.equal(await cli(...trainArgs(outdir, '0.5')), 0);
  const run = runDirOf(outdir);
  assert.match(run, /00000-gmm-4-5-adasde-dpm-2-uni1\.0-afs$/);
  for (const f of ['training_options.json', 'log.txt', 'stats.jsonl', 'network-snapshot-000000.500.json', 'loss.svg', 'loss.png']) assert.ok(existsSync(join(run, f)), f);
  // loss.svg: every tick's loss of each of the 3 intervals, the same numbers as stats.jsonl.
  const ticks = readFileSync(join(run, 'stats.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kimg: number; loss: number[] });
  assert.equal(ticks.length, 10);
  const chart = parseChartSvg(readFileSync(join(run, 'loss.svg'), 'utf8'));
  const drawn = chart.points.filter((q) => q.data.panel === 'loss').map((q) => `${q.data.interval}/${Number(q.data.kimg)}/${Number(q.data.value)}`);
  const want = ticks.flatMap((tk) => tk.loss.map((v, i) => `interval ${i}/${tk.kimg}/${v}`));
  assert.deepEqual(drawn.sort(), want.sort());
  const snap = latestSnapshot(run)!;
  const y = await teacherFinal();

  const trained = rms(await cliSamples('--predictor_path', snap), y);
  // The same snapshot in-process, with the float64 analytic denoiser.
  const p = loadPredictor(snap);
  const tS = getSchedule(schedule);
  const inProcess = rms(await sampleBatch({ solver: 'adasde', options: { afs: true, coeffs: coefficientsOf(p) }, tSteps: tS, sampleShape: SHAPE, labelDim: 0 }, denoiseTs, { seeds: EVAL }), y);
  assert.ok(Math.abs(trained - inProcess) / inProcess < 1e-4, `sample reproduces the error: ${trained} vs ${inProcess}`);

  // The untrained predictor: the same run's initial coefficients.
  const untrainedFile = join(dir, 'untrained.json');
  const init = initState(1, 4, 1);
  const u: PredictorFile = { ...p, params: { r: init.raw.r, scale_dir: init.raw.scaleDir, scale_time: init.raw.scaleTime, weight: init.raw.weight, gamma: init.raw.gamma } };
  writeFileSync(untrainedFile, JSON.stringify(u));
  const untrained = rms(await cliSamples('--predictor_path', untrainedFile), y);
  // Baselines at the same NFE (5): dpm and heun with AFS on 4 points, on the student's schedule and on EDM's.
  const baselines: Record<string, number> = {};
  for (const solver of ['dpm', 'heun']) {
    for (const [type, rho] of [['time_uniform', '1'], ['polynomial', '7']] as const) {
      baselines[`${solver}/${type}`] = rms(await cliSamples('--solver', solver, '--num_steps', '4', '--afs', '--schedule_type', type, '--schedule_rho', rho), y);
    }
  }
  const best = Math.min(...Object.values(baselines));
  assert.ok(trained < untrained, `trained ${trained} vs untrained ${untrained}`);
  assert.ok(trained < best, `trained ${trained} vs baselines ${JSON.stringify(baselines)}`);
});

test('train: same --seed gives the same snapshot bit for bit; --dry-run writes nothing', async () => {
  const a = join(dir, 'det-a');
  const b = join(dir, 'det-b');
  assert.equal(await cli(...trainArgs(a)), 0);
  assert.equal(await cli(...trainArgs(b)), 0);
  const pa = loadPredictor(latestSnapshot(runDirOf(a))!).params;
  const pb = loadPredictor(latestSnapshot(runDirOf(b))!).params;
  assert.deepEqual(pa, pb);
  const dry = join(dir, 'dry');
  const r = spawnSync(process.execPath, [bin, ...trainArgs(dry), '--dry-run'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /"num_steps": 4/);
  assert.match(r.stdout, /"run_dir": ".*00000-gmm-4-5-adasde-dpm-2-uni1\.0-afs"/);
  assert.ok(!existsSync(dry), 'dry run created the output folder');
});

test('train: bad flags are one line and exit 2', () => {
  const cases: [string[], RegExp][] = [
    [['--model', model, '--num_steps', '1'], /--num_steps: expected an integer >= 2/],
    [['--model', model, '--detector', join(dir, 'nope.onnx')], /--detector: .*nope\.onnx does not exist/],
    [['--model', join(dir, 'nope.onnx')], /--model: .*does not exist/],
    [['--model', model, '--lr', '-1'], /--lr: expected a positive number/],
    [['--model', model, '--resume', join(dir, 'no-such-run')], /--resume: .* does not exist/],
  ];
  for (const [args, pattern] of cases) {
    const r = spawnSync(process.execPath, [bin, 'train', ...args, '--outdir', join(dir, 'bad'), '--quiet'], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, pattern);
  }
});

test('train: a killed run resumes from its latest state and ends with the uninterrupted coefficients', async () => {
  const ref = join(dir, 'resume-ref');
  assert.equal(await cli(...trainArgs(ref, '0.4')), 0);
  const outdir = join(dir, 'resume');
  const child = spawn(process.execPath, [bin, ...trainArgs(outdir, '0.4')], { stdio: 'ignore' });
  const statePath = () => {
    if (!existsSync(outdir)) return undefined;
    const d = readdirSync(outdir)[0];
    return d && existsSync(join(outdir, d, 'training-state.json')) ? join(outdir, d, 'training-state.json') : undefined;
  };
  while (!statePath()) await new Promise((r) => setTimeout(r, 10));
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  const killedAt = (JSON.parse(readFileSync(statePath()!, 'utf8')) as { batchIndex: number }).batchIndex;
  assert.ok(killedAt < 25, `killed at batch ${killedAt} of 25`);
  assert.equal(await cli('train', '--outdir', outdir, '--resume', '0', '--quiet'), 0);
  const a = loadPredictor(latestSnapshot(runDirOf(ref))!).params;
  const b = loadPredictor(latestSnapshot(runDirOf(outdir))!).params;
  assert.deepEqual(b, a);
});

test('train: --nproc_per_node 2 gives the coefficients of one process (up to rounding)', async () => {
  const one = join(dir, 'dp-1');
  const two = join(dir, 'dp-2');
  assert.equal(await cli(...trainArgs(one)), 0);
  const r = spawnSync(process.execPath, [bin, ...trainArgs(two), '--nproc_per_node', '2'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const a = loadPredictor(latestSnapshot(runDirOf(one))!).params;
  const b = loadPredictor(latestSnapshot(runDirOf(two))!).params;
  for (const t of ['r', 'scale_dir', 'scale_time', 'gamma'] as const) {
    a[t].forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v - b[t][i]![j]!) < 1e-7, `${t}[${i}][${j}] ${v} vs ${b[t][i]![j]}`)));
  }
});

test('run numbers: processes starting together each get their own number; stale claims are skipped', async () => {
  const outdir = join(dir, 'claims');
  mkdirSync(join(outdir, '00000-old'), { recursive: true });
  // A claim left by a process that crashed before creating its folder.
  writeFileSync(join(outdir, '.claim-00001'), '');
  const mod = resolve(repoRoot, 'dist', 'src', 'io', 'runs.js');
  const script = `const { claimRunDir } = await import(${JSON.stringify(mod)}); process.stdout.write(claimRunDir(process.argv[1], process.argv[2]));`;
  const runs = await Promise.all(
    Array.from({ length: 6 }, (_, k) =>
      new Promise<string>((ok, fail) => {
        const p = spawn(process.execPath, ['--input-type=module', '-e', script, outdir, `p${k}`]);
        let out = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.on('close', (code) => (code === 0 ? ok(out) : fail(new Error(`claim process exited ${code}`))));
      }),
    ),
  );
  const numbers = runs.map((r) => Number(/(\d{5})-p\d$/.exec(r)![1])).sort((a, b) => a - b);
  assert.deepEqual(numbers, [2, 3, 4, 5, 6, 7]);
  const entries = readdirSync(outdir).sort();
  assert.deepEqual(entries.filter((n) => n.startsWith('.claim-')), ['.claim-00001']);
  assert.equal(entries.filter((n) => /^\d{5}-/.test(n)).length, 7);
  assert.ok(runs.every((r) => existsSync(r)));
});
