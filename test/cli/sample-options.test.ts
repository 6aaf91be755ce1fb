/**
 * `adasde sample --dry-run` and `sample_options.json`, through real CLI processes: the dry
 * run prints the resolved plan and writes nothing; every run records what made its images
 * (model hash, solver, grid, options) beside them; resuming with more seeds adds them to the
 * record; resuming with anything that changes pixels is refused in one line naming the
 * first difference.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { getSchedule } from '../../src/solvers/schedule.js';
import { repoRoot } from '../helpers.js';
import { makeModelDir } from './sample-fixture.js';

const bin = resolve(repoRoot, 'bin', 'adasde.js');
const { dir, model } = makeModelDir();

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, 'sample', '--model', model, ...args], { encoding: 'utf8', cwd: dir });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

interface Record_ {
  version: number;
  seeds: string;
  pixels: { model_sha256: string; solver: string; nfe: number; t_steps: number[]; options: Record<string, unknown> };
}
const recordOf = (outdir: string) => JSON.parse(readFileSync(join(outdir, 'sample_options.json'), 'utf8')) as Record_;
const pngs = (outdir: string): string[] => readdirSync(outdir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.png')).sort();

test('sample --dry-run prints the resolved plan and writes nothing', () => {
  const outdir = join(dir, 'dry');
  const r = run('--solver', 'dpmpp', '--num_steps', '5', '--schedule_type', 'logsnr', '--max_order', '2', '--seeds', '0-9', '--outdir', outdir, '--dry-run');
  assert.equal(r.code, 0, r.err);
  const plan = JSON.parse(r.out.slice(0, r.out.lastIndexOf('}') + 1)) as Record<string, unknown>;
  assert.equal(plan.solver, 'dpmpp');
  assert.equal(plan.nfe, 4);
  assert.equal(plan.seeds, '0-9');
  // The grid is the closed-form logSNR schedule between the model's sigma_min and sigma_max.
  const want = getSchedule({ numSteps: 5, sigmaMin: 0.002, sigmaMax: 80, type: 'logsnr', rho: 7 });
  assert.deepEqual(plan.t_steps, Array.from(want));
  // The solver's own defaults are resolved (pixel model: thresholding on), the given order kept.
  assert.deepEqual(plan.options, { denoise_to_zero: false, max_order: 2, lower_order_final: true, predict_x0: true, thresholding: true, afs: false });
  assert.equal(existsSync(outdir), false, 'the dry run created the output folder');
  // A bad flag is still refused in a dry run.
  const bad = run('--solver', 'dpmpp', '--max_order', '4', '--outdir', outdir, '--dry-run');
  assert.equal(bad.code, 2);
  assert.equal(bad.err.trim(), 'adasde: error: --max_order: dpmpp supports orders 1 to 3, got 4');
});

test('sample_options.json: written beside the images; more seeds extend it; a different grid is refused, --resume=False replaces', () => {
  const outdir = join(dir, 'record');
  const first = run('--solver', 'heun', '--num_steps', '4', '--seeds', '0-3', '--batch', '3', '--outdir', outdir, '--quiet');
  assert.equal(first.code, 0, first.err);
  const rec = recordOf(outdir);
  assert.equal(rec.version, 1);
  assert.equal(rec.seeds, '0-3');
  assert.equal(rec.pixels.model_sha256, createHash('sha256').update(readFileSync(model)).digest('hex'));
  assert.equal(rec.pixels.solver, 'heun');
  assert.equal(rec.pixels.nfe, 6);
  assert.deepEqual(rec.pixels.t_steps, Array.from(getSchedule({ numSteps: 4, sigmaMin: 0.002, sigmaMax: 80, type: 'polynomial', rho: 7 })));
  const mtimes = new Map(pngs(outdir).map((f) => [f, statSync(join(outdir, f)).mtimeMs]));
  assert.equal(mtimes.size, 4);

  // More seeds, other batch size (pixels do not depend on it): resumes, adds to the record.
  const more = run('--solver', 'heun', '--num_steps', '4', '--seeds', '2-7,10', '--batch', '5', '--outdir', outdir);
  assert.equal(more.code, 0, more.err);
  assert.match(more.out, /sampled 5 images \(2 already present, skipped\)/);
  assert.equal(recordOf(outdir).seeds, '0-7,10');
  for (const [f, m] of mtimes) assert.equal(statSync(join(outdir, f)).mtimeMs, m, `${f} was rewritten`);
  assert.equal(pngs(outdir).length, 9);

  // A different number of steps changes the pixels: refused, one line, the folder untouched.
  const other = run('--solver', 'heun', '--num_steps', '5', '--seeds', '0-3', '--outdir', outdir, '--quiet');
  assert.equal(other.code, 2);
  const lines = other.err.trim().split('\n');
  assert.equal(lines.length, 1, other.err);
  assert.match(lines[0]!, /holds images made with nfe=6 \(sample_options\.json\), this run has nfe=8/);
  assert.equal(recordOf(outdir).seeds, '0-7,10');

  // Same NFE, other solver option: the first difference is named inside the options.
  const dir2 = join(dir, 'record-options');
  assert.equal(run('--solver', 'unipc', '--num_steps', '4', '--seeds', '0-1', '--outdir', dir2, '--quiet').code, 0);
  const variant = run('--solver', 'unipc', '--num_steps', '4', '--variant', 'bh1', '--seeds', '0-1', '--outdir', dir2, '--quiet');
  assert.equal(variant.code, 2);
  assert.match(variant.err, /made with options\.variant=bh2 .* this run has options\.variant=bh1/);

  // --resume=False: the new options replace the record, which then lists this run's seeds.
  const replace = run('--solver', 'heun', '--num_steps', '5', '--seeds', '0-3', '--outdir', outdir, '--resume=False', '--quiet');
  assert.equal(replace.code, 0, replace.err);
  const after = recordOf(outdir);
  assert.equal(after.pixels.nfe, 8);
  assert.equal(after.seeds, '0-3');
});
