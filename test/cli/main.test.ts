/** The CLI frame: one-line errors naming the flag, exit code 2, help with defaults. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers.js';

const bin = resolve(repoRoot, 'bin', 'adasde.js');
function run(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: repoRoot });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const badFlags: [string[], RegExp][] = [
  [['sample', '--batch', '0'], /^adasde: error: --batch: expected an integer >= 1, got "0"$/],
  [['sample', '--seeds', '5-2'], /^adasde: error: --seeds: range 5-2 is empty/],
  [['sample', '--solver', 'rk4'], /^adasde: error: --solver: expected one of euler, heun, dpm, ipndm, ipndm_v, deis, dpmpp, unipc, adasde, got "rk4"$/],
  [['sample', '--afs=maybe'], /^adasde: error: --afs: expected True or False, got "maybe"$/],
  [['sample', '--t_steps', '[1,10]'], /^adasde: error: --t_steps: expected a list of decreasing positive numbers/],
  [['sample', '--device', 'tpu'], /^adasde: error: --device: expected cpu, cuda or cuda:N/],
  [['sample', '--unknown'], /^adasde: error: unknown option '--unknown'/],
  [['train', '--num_steps', '1'], /^adasde: error: --num_steps: expected an integer >= 2, got "1"$/],
  [['train', '--scale_dir', '2'], /^adasde: error: --scale_dir: expected a number in \[0, 0.99\], got "2"$/],
  [['fid', 'calc', '--batch', 'x', '--images', 'a', '--ref', 'b'], /^adasde: error: --batch: expected an integer >= 1, got "x"$/],
  [['nonsense'], /^adasde: error: unknown command 'nonsense'/],
];

for (const [args, pattern] of badFlags) {
  test(`cli: ${args.join(' ')} -> one line, exit 2`, () => {
    const r = run(...args);
    assert.equal(r.code, 2);
    const lines = r.err.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.err);
    assert.match(lines[0]!, pattern);
    assert.doesNotMatch(r.err, /\bat .*\.js:\d+/); // no stack trace
  });
}

test('cli: --help lists every flag with its default', () => {
  const r = run('sample', '--help');
  assert.equal(r.code, 0);
  for (const flag of ['--num_steps', '--schedule_type', '--predictor_path', '--seeds', '--batch', '--output_format', '--nproc_per_node', '--max_order']) assert.ok(r.out.includes(flag), flag);
  assert.match(r.out, /--seeds <value>\s+seed list, e\.g\. 0-49999 or 1,2,5-10 \(default:\s+0-63\)/);
  const t = run('train', '--help');
  assert.match(t.out, /--M <value>[\s\S]*\(default: 3\)/);
  assert.match(t.out, /-n, --dry-run/);
});

test('cli: help says only what each command has (no --dest in fid calc, no --no-nosubdir, the --json keys, --keep_images default)', () => {
  const calc = run('fid', 'calc', '--help');
  assert.equal(calc.code, 0);
  assert.doesNotMatch(calc.out, /--dest/);
  assert.match(calc.out.replace(/\s+/g, ' '), /--partial_dir <value> external launchers [^-]*\(default: the current folder\)/);
  assert.match(calc.out.replace(/\s+/g, ' '), /\{fid, \.\.\.\} with the Inception detector, \{fd_bundled, \.\.\.\} with the bundled features/);
  assert.match(run('fid', 'ref', '--help').out.replace(/\s+/g, ' '), /\(default: beside --dest\)/);
  const train = run('train', '--help');
  assert.match(train.out, /--nosubdir/);
  assert.doesNotMatch(train.out, /--no-nosubdir/);
  assert.match(train.out, /--no-afs/);
  assert.match(run('table', '--help').out.replace(/\s+/g, ' '), /--keep_images \[bool\] also write every cell's PNGs \(default: False, or the spec's keep_images\)/);
});
