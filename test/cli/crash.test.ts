/**
 * Crash safety under kill -9 (no signal handler runs, no temp file is cleaned up on the way
 * out): `adasde sample`, `train` and `table` are killed at random moments (three seeds of
 * kill times, each run killed twice), started again with the same command (`train`: with
 * `--resume` once a state exists), and their final outputs must be byte-identical to an
 * uninterrupted run's, with no temporary file left anywhere.
 *
 * Runs use relative output folders inside different working folders, so that the paths the
 * outputs record (table commands, training provenance) are the same for both runs.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeStatsNpz } from '../../src/io/npz.js';
import { saveModel } from '../../src/onnx/builder.js';
import { buildFeatureModel } from '../support/models.js';
import { bin } from './bad-inputs-fixture.js';
import { makeModelDir } from './sample-fixture.js';

const { dir, model } = makeModelDir();
const detector = join(dir, 'features.onnx');
saveModel(buildFeatureModel({ dim: 24, size: 16, seed: 3 }), detector);
const ref = join(dir, 'ref.npz');

/** Every file under `root` (relative path -> bytes). */
function tree(root: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      if (statSync(join(root, r)).isDirectory()) walk(r);
      else out.set(r, readFileSync(join(root, r)));
    }
  };
  walk('');
  return out;
}

/** A process of the CLI in `cwd`; resolves with its exit code, or 'killed' if killed after `killMs`. */
function runFor(args: string[], cwd: string, killMs?: number): Promise<number | 'killed'> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let killed = false;
    const timer = killMs === undefined ? undefined : setTimeout(() => ((killed = true), child.kill('SIGKILL')), killMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0 && !killed) process.stderr.write(stderr);
      resolve(killed && code === null ? 'killed' : (code ?? -1));
    });
  });
}

/** Park-Miller: reproducible kill times from a seed. */
function killTimes(seed: number, n: number, maxMs: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 48271) % 2147483647;
    return Math.round(150 + (s / 2147483647) * Math.max(maxMs - 150, 50));
  });
}

interface Scenario {
  name: string;
  /** The command, with output folder `out` relative to the working folder. */
  args: string[];
  /** The command that continues an interrupted run in `cwd` (default: the same command). */
  restart?: (cwd: string) => string[];
  /** Outputs compared byte for byte (relative path -> bytes, after `normalise`). */
  normalise?: (files: Map<string, Buffer>) => Map<string, Buffer>;
}

async function crashTest(s: Scenario): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), `adasde-crash-${s.name}-`));
  const clean = join(base, 'clean');
  mkdirSync(clean);
  const t0 = Date.now();
  assert.equal(await runFor(s.args, clean), 0, `${s.name}: the uninterrupted run`);
  const duration = Date.now() - t0;
  const norm = s.normalise ?? ((m) => m);
  const want = norm(tree(join(clean, 'out')));
  let kills = 0;
  for (const seed of [1, 2, 3]) {
    const cwd = join(base, `killed-${seed}`);
    mkdirSync(cwd);
    for (const ms of killTimes(seed, 2, duration)) {
      const args = existsSync(join(cwd, 'out')) && s.restart ? s.restart(cwd) : s.args;
      const r = await runFor(args, cwd, ms);
      if (r === 'killed') kills++;
      else assert.equal(r, 0, `${s.name} seed ${seed}: a run that was not killed failed`);
    }
    const args = existsSync(join(cwd, 'out')) && s.restart ? s.restart(cwd) : s.args;
    assert.equal(await runFor(args, cwd), 0, `${s.name} seed ${seed}: the final run`);
    const got = tree(join(cwd, 'out'));
    const temps = [...got.keys()].filter((k) => /\.tmp-\d+-[0-9a-f]{12}$/.test(k));
    assert.deepEqual(temps, [], `${s.name} seed ${seed}: temporary files left behind`);
    const g = norm(got);
    assert.deepEqual([...g.keys()].sort(), [...want.keys()].sort(), `${s.name} seed ${seed}: the same files`);
    for (const [k, v] of want) assert.ok(g.get(k)!.equals(v), `${s.name} seed ${seed}: ${k} differs from the uninterrupted run`);
  }
  // Kill times fall inside the clean run's duration; most land while the work is under way.
  assert.ok(kills >= 3, `${s.name}: only ${kills} of 6 runs were killed before finishing`);
}

test('kill -9: sample resumes to the PNGs and grid of an uninterrupted run, no temp files', async () => {
  await crashTest({
    name: 'sample',
    args: ['sample', '--model', model, '--solver', 'heun', '--num_steps', '16', '--seeds', '0-299', '--batch', '4', '--grid', '--outdir', 'out', '--quiet'],
  });
});

test('kill -9: train resumes (--resume) to the snapshot and state of an uninterrupted run', async () => {
  const args = ['train', '--model', model, '--detector', detector, '--num_steps', '3', '--M', '1', '--batch', '8', '--total_kimg', '0.096', '--tick', '0.008', '--snap', '1', '--seed', '3', '--lr', '0.2', '--nosubdir', '--outdir', 'out', '--quiet'];
  await crashTest({
    name: 'train',
    args,
    // Before the first snapshot there is nothing to resume: the same command starts over.
    restart: (cwd) => (existsSync(join(cwd, 'out', 'training-state.json')) ? ['train', '--resume', 'out', '--quiet'] : args),
    // log.txt and stats.jsonl are logs (a resumed run appends a "resumed" line and repeats the
    // lost batches' lines), loss.svg/png are drawn from stats.jsonl; the state's elapsed time
    // is wall-clock time.
    normalise: (m) => {
      const out = new Map<string, Buffer>();
      for (const [k, v] of m) {
        if (['log.txt', 'stats.jsonl', 'loss.svg', 'loss.png'].includes(k)) continue;
        if (k === 'training-state.json') {
          const st = JSON.parse(v.toString()) as Record<string, unknown>;
          delete st.elapsedSec;
          out.set(k, Buffer.from(JSON.stringify(st)));
        } else out.set(k, v);
      }
      return out;
    },
  });
});

test('kill -9: table resumes to the cells and table files of an uninterrupted run', async () => {
  const mu = new Float64Array(24);
  const sigma = new Float64Array(24 * 24);
  for (let i = 0; i < 24; i++) sigma[i * 24 + i] = 1;
  await writeStatsNpz(ref, mu, sigma);
  await crashTest({
    name: 'table',
    args: ['table', '--model', model, '--detector', detector, '--ref', ref, '--solvers', 'euler,heun,dpmpp', '--nfe', '3,5,7', '--seeds', '0-95', '--batch', '8', '--outdir', 'out', '--quiet'],
  });
});
