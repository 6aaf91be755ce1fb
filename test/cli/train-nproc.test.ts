/**
 * `adasde train --nproc_per_node 2` shows what one process shows: the feature-loss notice and
 * the progress bar on stderr, the summary line naming the run folder on stdout (the workers'
 * own output is not shown; they report to the launcher), and nothing with --quiet.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers.js';
import { makeModelDir } from './sample-fixture.js';

const bin = resolve(repoRoot, 'bin', 'adasde.js');
const { dir, model } = makeModelDir();
// Two batches of 16: a run of a second or two.
const train = (outdir: string, ...extra: string[]) =>
  spawnSync(process.execPath, [bin, 'train', '--model', model, '--outdir', outdir, '--num_steps', '4', '--M', '2', '--total_kimg', '0.032', '--batch', '16', '--seed', '1', '--tick', '0.016', ...extra], {
    encoding: 'utf8',
  });

const SUMMARY = /^trained 0\.032 kimg \(2 batches\) in \d+\.\d s; final loss (\S+) -> (\S+)\n$/;

test('train --nproc_per_node 2: the progress bar, the notice and the summary line of one process', () => {
  const one = train(join(dir, 'one'));
  const two = train(join(dir, 'two'), '--nproc_per_node', '2');
  assert.equal(one.status, 0, one.stderr);
  assert.equal(two.status, 0, two.stderr);
  const m1 = SUMMARY.exec(one.stdout);
  const m2 = SUMMARY.exec(two.stdout);
  assert.ok(m1, `one process: ${JSON.stringify(one.stdout)}`);
  assert.ok(m2, `two processes: ${JSON.stringify(two.stdout)}`);
  // The run folder the line names is the one the workers wrote, with its snapshot.
  assert.ok(m2[2]!.startsWith(resolve(dir, 'two') + '/'), m2[2]);
  assert.ok(existsSync(join(m2[2]!, 'network-snapshot-000000.032.json')), `${m2[2]} has no snapshot`);
  // Data parallel gives the coefficients of one process up to rounding, so the same loss.
  const [l1, l2] = [Number(m1[1]), Number(m2[1])];
  assert.ok(Number.isFinite(l1) && Math.abs(l1 - l2) <= 1e-3 * Math.abs(l1), `final loss ${l1} vs ${l2}`);
  for (const [name, r] of [['one process', one], ['two processes', two]] as const) {
    assert.match(r.stderr, /warning: no detector .* L2 loss/, `${name}: ${r.stderr}`);
    assert.match(r.stderr, /0\.03\/0\.032 kimg \| [\d.]+ s\/kimg \| loss \S+/, `${name}: ${r.stderr}`);
  }
});

test('train --nproc_per_node 2 --quiet prints nothing', () => {
  const r = train(join(dir, 'quiet'), '--nproc_per_node', '2', '--quiet');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, '');
});
