/**
 * Every command's process ends by itself once its work is done: bin/adasde.js has no exit
 * timer, so a timer, worker thread, session or socket left open would keep the process
 * alive. Each command here runs as a real process (with its progress and summary lines)
 * and must exit soon after its last line of output. The failing paths are covered by the
 * bad-input table (test/cli/bad-inputs.test.ts), whose rows must exit within their limit.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers.js';
import { makeModelDir } from './sample-fixture.js';

const bin = resolve(repoRoot, 'bin', 'adasde.js');
const out = mkdtempSync(join(tmpdir(), 'adasde-exit-'));
const tiny = resolve(repoRoot, 'models', 'cifar10-tiny-edm.onnx');
const features = resolve(repoRoot, 'models', 'cifar10-features.onnx');
const { model: gmm } = makeModelDir();

/** After its last output a process may take this long to close its sessions and exit. */
const EXIT_AFTER_OUTPUT_MS = 5000;
/** A process still running this long is stuck (the commands below take seconds). */
const KILL_AFTER_MS = 240_000;

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  /** From the last byte on stdout or stderr to the process's exit. */
  tailMs: number;
}

function runToExit(args: string[]): Promise<Ended> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [bin, ...args, '--threads', '1'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let last = Date.now();
    // Output seen so far; `last` stays at the start for a process that prints nothing.
    const take = (d: Buffer) => {
      output += d.toString();
      last = Date.now();
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const killer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
    child.on('exit', (code, signal) => {
      clearTimeout(killer);
      done({ code, signal, output, tailMs: Date.now() - last });
    });
  });
}

const commands: [string, string[]][] = [
  ['sample (PNG writer thread, grid)', ['sample', '--model', tiny, '--solver', 'euler', '--num_steps', '2', '--seeds', '0-3', '--batch', '2', '--grid', '--outdir', join(out, 'a')]],
  ['sample --nproc_per_node 2 (worker processes)', ['sample', '--model', tiny, '--solver', 'euler', '--num_steps', '2', '--seeds', '0-3', '--batch', '2', '--outdir', join(out, 'b'), '--nproc_per_node', '2']],
  ['fid ref (decode threads)', ['fid', 'ref', '--data', join(out, 'a'), '--dest', join(out, 'a.npz'), '--detector', features, '--batch', '2']],
  ['fid calc --nproc_per_node 2', ['fid', 'calc', '--images', join(out, 'b'), '--ref', join(out, 'a.npz'), '--detector', features, '--batch', '2', '--nproc_per_node', '2']],
  ['inspect (forward passes)', ['inspect', tiny]],
  ['train (all-reduce, teacher cache, chart)', ['train', '--model', gmm, '--outdir', join(out, 'runs'), '--num_steps', '3', '--M', '1', '--total_kimg', '0.016', '--batch', '8', '--tick', '0.008', '--seed', '1', '--teacher_cache', join(out, 'cache')]],
  ['train --nproc_per_node 2', ['train', '--model', gmm, '--outdir', join(out, 'runs'), '--num_steps', '3', '--M', '1', '--total_kimg', '0.016', '--batch', '8', '--seed', '1', '--teacher_cache', 'none', '--nproc_per_node', '2']],
];

for (const [what, args] of commands) {
  test(`${what}: the process exits by itself after its work`, async () => {
    const r = await runToExit(args);
    assert.equal(r.signal, null, `adasde ${args.join(' ')} was still running after ${KILL_AFTER_MS / 1000} s:\n${r.output.slice(-600)}`);
    assert.equal(r.code, 0, `adasde ${args.join(' ')} exited ${r.code}:\n${r.output.slice(-600)}`);
    // (train --nproc_per_node prints nothing of its own: its workers' output is not passed on.)
    if (r.output.length > 0) {
      assert.ok(r.tailMs < EXIT_AFTER_OUTPUT_MS, `adasde ${args[0]} exited ${r.tailMs} ms after its last output (limit ${EXIT_AFTER_OUTPUT_MS} ms): something held the process open`);
    }
  });
}
