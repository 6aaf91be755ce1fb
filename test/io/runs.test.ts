/**
 * Run directories (src/io/runs.ts): numbering, claiming, lookup by number / folder / file and
 * the newest snapshot, checked on real folders in a temporary directory.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { UsageError } from '../../src/core/errors.js';
import {
  claimRunDir,
  experimentDirs,
  latestSnapshot,
  listRuns,
  nextRunDir,
  nextRunId,
  resolvePredictorPath,
  resolveRunDir,
  runDescOf,
  runsNumbered,
  snapshotName,
} from '../../src/io/runs.js';

const root = mkdtempSync(join(tmpdir(), 'adasde-runs-'));
const fresh = (name: string): string => {
  const d = join(root, name);
  mkdirSync(d, { recursive: true });
  return d;
};
const usage = (re: RegExp) => (e: unknown) => e instanceof UsageError && re.test(e.message) && !e.message.includes('\n');

test('numbering: one more than the largest numeric prefix; nothing numbered in a missing folder or a file', () => {
  const d = fresh('numbering');
  assert.equal(nextRunId(d), 0);
  assert.equal(nextRunId(join(d, 'missing')), 0);
  writeFileSync(join(d, 'plain-file'), '');
  assert.equal(nextRunId(join(d, 'plain-file')), 0);
  mkdirSync(join(d, '00004-a'));
  mkdirSync(join(d, '00002-b'));
  // Any entry with a numeric prefix takes its number, as EDM's train.py counts.
  writeFileSync(join(d, '7.txt'), '');
  assert.equal(nextRunId(d), 8);
  assert.equal(nextRunDir(d, 'cifar10-x'), join(d, '00008-cifar10-x'));
  assert.equal(runDescOf(join(d, '00008-cifar10-4-5-adasde')), 'cifar10-4-5-adasde');
});

test('claiming: each claim creates the next folder and leaves no claim file behind', () => {
  const d = join(root, 'claim', 'nested');
  const a = claimRunDir(d, 'first');
  const b = claimRunDir(d, 'second');
  assert.equal(a, join(d, '00000-first'));
  assert.equal(b, join(d, '00001-second'));
  assert.ok(existsSync(a) && existsSync(b));
  assert.deepEqual(readdirSync(d).filter((n) => n.startsWith('.claim-')), []);
});

test('listing and lookup by number: only NNNNN- folders, in number order; files with such names are not runs', () => {
  const d = fresh('list');
  for (const n of ['00010-c', '00002-a', '00003-b']) mkdirSync(join(d, n));
  writeFileSync(join(d, '00004-file'), '');
  mkdirSync(join(d, 'notes'));
  assert.deepEqual(listRuns(d).map((r) => [r.id, r.path]), [[2, join(d, '00002-a')], [3, join(d, '00003-b')], [10, join(d, '00010-c')]]);
  assert.deepEqual(listRuns(join(d, 'missing')), []);
  assert.deepEqual(runsNumbered(d, '3'), ['00003-b']);
  assert.deepEqual(runsNumbered(d, '00010'), ['00010-c']);
  assert.deepEqual(runsNumbered(d, '4'), []);
  assert.equal(resolveRunDir('2', d), join(d, '00002-a'));
  assert.equal(resolveRunDir(join(d, '00003-b'), d), join(d, '00003-b'));
  assert.throws(() => resolveRunDir('4', d), usage(/^--resume: no single run 00004-\* under /));
  assert.throws(() => resolveRunDir(join(d, 'gone'), d), usage(/^--resume: .*gone does not exist$/));
});

test('snapshots: whole and fractional kimg names sort by kimg; predictor.json only without snapshots', () => {
  const d = fresh('snaps');
  assert.equal(latestSnapshot(d), undefined);
  writeFileSync(join(d, 'predictor.json'), '{}');
  assert.equal(latestSnapshot(d), join(d, 'predictor.json'));
  for (const k of [0.5, 12, 3.25, 9]) writeFileSync(join(d, snapshotName(k)), '{}');
  assert.equal(snapshotName(3.25), 'network-snapshot-000003.250.json');
  // Lexical order would pick 000009 over 000012; numeric order picks 12.
  assert.equal(latestSnapshot(d), join(d, 'network-snapshot-000012.json'));
  writeFileSync(join(d, snapshotName(12.001)), '{}');
  assert.equal(latestSnapshot(d), join(d, 'network-snapshot-000012.001.json'));
});

test('predictor paths: exp falls back to exps beside it; ambiguous numbers and pickles are one-line usage errors', () => {
  const base = fresh('lookup');
  const exp = join(base, 'exp');
  const exps = join(base, 'exps');
  mkdirSync(join(exp, '00001-mine'), { recursive: true });
  writeFileSync(join(exp, '00001-mine', snapshotName(2)), '{}');
  mkdirSync(join(exps, '00005-reference'), { recursive: true });
  writeFileSync(join(exps, '00005-reference', 'network-snapshot-000004.pkl'), '');
  writeFileSync(join(exps, '00005-reference', 'network-snapshot-000010.pkl'), '');
  assert.deepEqual(experimentDirs(exp), [exp, exps]);
  assert.deepEqual(experimentDirs(exps), [exps]);
  assert.equal(resolvePredictorPath('1', exp), join(exp, '00001-mine', 'network-snapshot-000002.json'));
  // Found in exps/, holding only the reference's pickles: the message names the newest and the converter.
  assert.throws(() => resolvePredictorPath('5', exp), usage(/^--predictor_path: .*00005-reference holds the reference's network-snapshot-000010\.pkl .*convert_predictor\.py .*network-snapshot-000010\.pkl --out .*network-snapshot-000010\.json$/));
  assert.throws(() => resolvePredictorPath('5', exps, '--init'), usage(/^--init: /));
  const pkl = join(exps, '00005-reference', 'network-snapshot-000004.pkl');
  assert.throws(() => resolvePredictorPath(pkl, exp), usage(/is a reference PyTorch pickle; .*--out .*000004\.json, then pass the \.json$/));
  mkdirSync(join(exp, '00001-other'));
  assert.throws(() => resolvePredictorPath('1', exp), usage(/^--predictor_path: experiment 1 is ambiguous under .*exp: 00001-mine, 00001-other$/));
  assert.throws(() => resolvePredictorPath('7', exp), usage(/^--predictor_path: no experiment 00007-\* under .*exp or .*exps$/));
  mkdirSync(join(exp, '00002-empty'));
  assert.throws(() => resolvePredictorPath(join(exp, '00002-empty'), exp), usage(/holds no network-snapshot-\*\.json or predictor\.json$/));
  const file = join(base, 'p.json');
  writeFileSync(file, '{}');
  assert.equal(resolvePredictorPath(file, exp), file);
});
