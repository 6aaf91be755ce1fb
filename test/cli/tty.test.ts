/**
 * On a terminal the progress bar runs a redraw timer; a run that fails after the bar started
 * must still exit (issue 14: `--latents` mistakes and a NaN model hung on a TTY). util-linux's
 * `script` gives the CLI a pseudo-terminal as stdout/stderr.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { saveModel } from '../../src/onnx/builder.js';
import { buildGaussModel, buildMixtureModel } from '../support/models.js';
import { repoRoot } from '../helpers.js';
import { MIX, SHAPE } from './sample-fixture.js';

const bin = resolve(repoRoot, 'bin', 'adasde.js');
const dir = mkdtempSync(join(tmpdir(), 'adasde-tty-'));
const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
saveModel(buildMixtureModel(MIX, SHAPE, { datasetName: 'gmm' }), join(dir, 'gmm.onnx'));
saveModel(buildGaussModel({ mu: new Float64Array(SHAPE[0] * SHAPE[1] * SHAPE[2]).fill(NaN), s: 0.5 }, SHAPE, { datasetName: 'nan' }), join(dir, 'nan.onnx'));

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
function onTty(args: string[]): { code: number | null; out: string; ms: number } {
  const started = Date.now();
  const cmd = [process.execPath, bin, ...args].map(quote).join(' ');
  // -e: script exits with the command's code; -q: no banner; the transcript goes nowhere.
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: r.stdout, ms: Date.now() - started };
}

test('tty: a failing run exits on a terminal (missing --latents: 2; a NaN model: 1)', { skip: hasScript ? false : 'util-linux script not installed' }, () => {
  const missing = onTty(['sample', '--model', join(dir, 'gmm.onnx'), '--solver', 'heun', '--num_steps', '3', '--seeds', '0-3', '--latents', join(dir, 'none.npy'), '--output_format', 'npy', '--outdir', join(dir, 'a')]);
  assert.equal(missing.code, 2, missing.out);
  assert.match(missing.out, /--latents/);
  assert.ok(missing.ms < 10_000, `exited after ${missing.ms} ms`);
  const nan = onTty(['sample', '--model', join(dir, 'nan.onnx'), '--solver', 'heun', '--num_steps', '3', '--seeds', '0-3', '--outdir', join(dir, 'b')]);
  assert.equal(nan.code, 1, nan.out);
  assert.match(nan.out, /non-finite/);
  assert.ok(nan.ms < 10_000, `exited after ${nan.ms} ms`);
});
