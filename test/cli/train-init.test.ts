/**
 * `adasde train --init`: a warm start takes a predictor's raw parameters, the neutral start
 * the midpoint step's; both are recorded in training_options.json; a predictor of another
 * shape is refused in one line. Checked on real CLI runs with a learning rate so small that
 * the trained parameters must stay at their starting values.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { loadPredictor, type PredictorFile } from '../../src/config/predictor.js';
import { latestSnapshot } from '../../src/io/runs.js';
import { SeedStream } from '../../src/rng/streams.js';
import { NEUTRAL_RAW_GAMMA } from '../../src/train/loop.js';
import { repoRoot } from '../helpers.js';
import { makeModelDir } from './sample-fixture.js';

const bin = resolve(repoRoot, 'bin', 'adasde.js');
const { dir, model } = makeModelDir();
const cli = (...args: string[]) => main(['node', 'adasde', ...args]);
// Two batches at lr 1e-9: Adam moves each parameter by at most ~lr per step.
const args = (outdir: string, ...more: string[]) => [
  'train', '--model', model, '--outdir', outdir, '--num_steps', '4', '--num_points', '1', '--M', '2', '--total_kimg', '0.032', '--batch', '16',
  '--seed', '3', '--lr', '1e-9', '--coslr', 'False', '--scale_dir', '0.05', '--scale_time', '0.2', '--gamma', '0.02', '--schedule_type', 'time_uniform',
  '--schedule_rho', '1', '--afs', 'True', '--tick', '1', '--snap', '1', '--quiet', ...more,
];
const runDirOf = (outdir: string) => join(outdir, readdirSync(outdir).find((d) => /^\d{5}-/.test(d))!);
const optionsOf = (run: string) => JSON.parse(readFileSync(join(run, 'training_options.json'), 'utf8')) as { options: Record<string, unknown>; resolved: { init: { kind: string; file: string | null } } };

function close(a: number[][], b: number[][], tol: number, what: string) {
  a.forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v - b[i]![j]!) <= tol, `${what}[${i}][${j}]: ${v} vs ${b[i]![j]}`)));
}

/** A predictor file with distinct, recognisable raw values. */
function writePredictor(numSteps: number, file: string): PredictorFile {
  const g = new SeedStream(99, 'init');
  const tab = () => Array.from({ length: numSteps - 1 }, () => [0.5 + g.normal()]);
  const p: PredictorFile = {
    format: 'adasde-predictor',
    version: 1,
    options: {
      dataset_name: 'gmm', num_steps: numSteps, num_points: 1, M: 2, afs: true, schedule_type: 'time_uniform', schedule_rho: 1, scale_dir: 0.05,
      scale_time: 0.2, gamma: 0.02, gamma_min: 2e-4, fcn: false, sampler_stu: 'adasde', sampler_tea: 'dpm', guidance_type: null, guidance_rate: 0,
    },
    params: { r: tab(), scale_dir: tab(), scale_time: tab(), weight: tab(), gamma: tab() },
  };
  writeFileSync(file, JSON.stringify(p));
  return p;
}

test('train --init FILE: starts from the predictor\'s raw parameters and records it', async () => {
  const file = join(dir, 'warm.json');
  const p = writePredictor(4, file);
  const outdir = join(dir, 'warm');
  assert.equal(await cli(...args(outdir, '--init', file)), 0);
  const run = runDirOf(outdir);
  const got = loadPredictor(latestSnapshot(run)!).params;
  for (const t of ['r', 'scale_dir', 'scale_time', 'gamma'] as const) close(got[t], p.params[t], 1e-7, t);
  const rec = optionsOf(run);
  assert.equal(rec.options.init, file);
  assert.equal(rec.resolved.init.kind, 'predictor');
  assert.equal(rec.resolved.init.file, resolve(file));
  assert.match(readFileSync(join(run, 'log.txt'), 'utf8'), /^init: predictor /m);
});

test('train --init N: an experiment number warm-starts from that run\'s newest snapshot', async () => {
  const outdir = join(dir, 'by-number');
  assert.equal(await cli(...args(outdir, '--init', 'neutral')), 0);
  const first = loadPredictor(latestSnapshot(runDirOf(outdir))!).params;
  assert.equal(await cli(...args(outdir, '--init', '0', '--desc', 'second')), 0);
  const second = readdirSync(outdir).find((d) => d.startsWith('00001-'))!;
  const got = loadPredictor(latestSnapshot(join(outdir, second))!).params;
  for (const t of ['r', 'scale_dir', 'scale_time', 'gamma'] as const) close(got[t], first[t], 1e-7, t);
  assert.equal(optionsOf(join(outdir, second)).resolved.init.kind, 'predictor');
});

test('train --init neutral: starts from r = 1/2, c = a = 1, gamma near its minimum', async () => {
  const outdir = join(dir, 'neutral');
  assert.equal(await cli(...args(outdir, '--init', 'neutral')), 0);
  const run = runDirOf(outdir);
  const got = loadPredictor(latestSnapshot(run)!).params;
  const fill = (v: number) => [[v], [v], [v]];
  close(got.r, fill(0), 1e-7, 'r');
  close(got.scale_dir, fill(0), 1e-7, 'scale_dir');
  close(got.scale_time, fill(0), 1e-7, 'scale_time');
  // gamma_0 is not in the graph; intervals 1, 2 start at the neutral value.
  close(got.gamma, fill(NEUTRAL_RAW_GAMMA), 1e-7, 'gamma');
  assert.equal(optionsOf(run).resolved.init.kind, 'neutral');
  // Without --init: the reference's random start (recorded as such).
  const rnd = join(dir, 'random');
  assert.equal(await cli(...args(rnd)), 0);
  assert.equal(optionsOf(runDirOf(rnd)).resolved.init.kind, 'random');
  assert.ok(Math.abs(loadPredictor(latestSnapshot(runDirOf(rnd))!).params.r[0]![0]!) > 1e-4);
});

test('train --init: a predictor of another shape or a missing one is one line, exit 2', () => {
  const file = join(dir, 'three-steps.json');
  writePredictor(3, file);
  const cases: [string, RegExp][] = [
    [file, /^adasde: error: --init: .*three-steps\.json has num_steps 3 \(this run 4\); expected a predictor with the same num_steps and num_points$/],
    ['77', /^adasde: error: --init: no experiment 00077-\* under /],
    [join(dir, 'nope.json'), /^adasde: error: --init: .*nope\.json does not exist \(expected an experiment number, a run folder or a predictor \.json file, or neutral\)$/],
  ];
  for (const [spec, pattern] of cases) {
    const r = spawnSync(process.execPath, [bin, ...args(join(dir, 'bad'), '--init', spec)], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr.trimEnd(), pattern);
  }
});

test('snapshots between whole kimg keep three decimals, and the newest is found by value', async () => {
  const { snapshotName } = await import('../../src/io/runs.js');
  assert.equal(snapshotName(0.256), 'network-snapshot-000000.256.json');
  assert.equal(snapshotName(1.5), 'network-snapshot-000001.500.json');
  assert.equal(snapshotName(10), 'network-snapshot-000010.json');
  const run = join(dir, 'names');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(run);
  for (const k of [0.256, 1, 1.5, 2, 0.5]) writeFileSync(join(run, snapshotName(k)), '{}');
  assert.equal(latestSnapshot(run), join(run, 'network-snapshot-000002.json'));
  writeFileSync(join(run, snapshotName(2.25)), '{}');
  assert.equal(latestSnapshot(run), join(run, 'network-snapshot-000002.250.json'));
});
