/**
 * `adasde train` with the teacher cache on real CLI runs: a second training with other
 * lr / gamma / scale_dir options reads every teacher batch from the cache (no teacher rows in
 * stats.jsonl) and ends with exactly the coefficients of the same run without the cache.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { loadPredictor } from '../../src/config/predictor.js';
import { latestSnapshot } from '../../src/io/runs.js';
import { makeModelDir } from './sample-fixture.js';

const { dir, model } = makeModelDir();
const cli = (...args: string[]) => main(['node', 'adasde', ...args]);
const args = (outdir: string, cache: string, lr: string, gamma: string, scaleDir: string) => [
  'train', '--model', model, '--outdir', outdir, '--num_steps', '4', '--num_points', '1', '--M', '2', '--total_kimg', '0.08', '--batch', '16',
  '--seed', '7', '--lr', lr, '--coslr', 'True', '--scale_dir', scaleDir, '--scale_time', '0.2', '--gamma', gamma, '--schedule_type', 'time_uniform',
  '--schedule_rho', '1', '--afs', 'True', '--tick', '0.08', '--snap', '1', '--teacher_cache', cache, '--quiet',
];
const runDirOf = (outdir: string) => join(outdir, readdirSync(outdir).find((d) => /^\d{5}-/.test(d))!);
const lastStats = (run: string) => {
  const lines = readFileSync(join(run, 'stats.jsonl'), 'utf8').trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as { model_rows: { teacher: number; student: number }; teacher_cache_hits: number; batches: number };
};

test('train --teacher_cache: a second run with other options reuses every teacher batch and matches an uncached run', async () => {
  const cache = join(dir, 'cache');
  assert.equal(await cli(...args(join(dir, 'a'), cache, '0.2', '0.02', '0.05')), 0);
  const a = lastStats(runDirOf(join(dir, 'a')));
  assert.equal(a.teacher_cache_hits, 0);
  assert.equal(a.model_rows.teacher, 5 * 16 * 4 * 3 * 3, 'teacher rows: 4 (M + 1)(N - 1) per trajectory');

  assert.equal(await cli(...args(join(dir, 'b'), cache, '0.05', '0.01', '0.1')), 0);
  const runB = runDirOf(join(dir, 'b'));
  const b = lastStats(runB);
  assert.equal(b.teacher_cache_hits, b.batches);
  assert.equal(b.model_rows.teacher, 0);
  assert.ok(b.model_rows.student > 0);
  assert.match(readFileSync(join(runB, 'log.txt'), 'utf8'), /^teacher cache: /m);

  assert.equal(await cli(...args(join(dir, 'c'), 'none', '0.05', '0.01', '0.1')), 0);
  const runC = runDirOf(join(dir, 'c'));
  assert.equal(lastStats(runC).model_rows.teacher, a.model_rows.teacher);
  assert.doesNotMatch(readFileSync(join(runC, 'log.txt'), 'utf8'), /teacher cache/);
  assert.deepEqual(loadPredictor(latestSnapshot(runB)!).params, loadPredictor(latestSnapshot(runC)!).params);
});
