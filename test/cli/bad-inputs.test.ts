/**
 * The bad-input table (test/cli/bad-inputs.json): every row is a real `adasde` process with a
 * mistake a user makes, the exit code it must end with (2: bad input, 1: a run that cannot
 * continue) and a fragment of the one line it must print. For each row: that exit code, exactly
 * one `adasde:` line on stderr besides the progress bar's own lines (no `    at ` frames, no
 * "internal error"), the fragment in it, and an exit within 10 s (the hangs of issue 14 are
 * timeouts here; see rowTimeoutMs for a loaded machine). Rows with `noRunDir` also check that no numbered run folder was left behind.
 *
 * `{D}` is the fixture folder (bad-inputs-fixture.ts), `{O}` a fresh output folder per row,
 * `{R}` the repository. Rows run two at a time (the CI machine has 2 cores).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers.js';
import { bin, buildBadInputFixtures } from './bad-inputs-fixture.js';

interface Row {
  args: string[];
  code: 1 | 2;
  message: string;
  env?: Record<string, string>;
  noRunDir?: boolean;
}

const rows = JSON.parse(readFileSync(join(repoRoot, 'test', 'cli', 'bad-inputs.json'), 'utf8')) as Row[];
const TIMEOUT_MS = 10_000;

/**
 * The 10 s are for a machine of our own (CI). On a machine whose run queue is already k times
 * its core count (a shared development box), every process gets about 1/k of a core, and a
 * one-second flag error legitimately takes k seconds: the limit stretches by that factor,
 * taken when the row starts. A hang never exits, so it is still caught.
 */
function rowTimeoutMs(): number {
  return TIMEOUT_MS * Math.max(1, loadavg()[0]! / availableParallelism());
}
const CONCURRENCY = 2;

/** Lines cli-progress draws on a non-TTY stderr (the bar, then a blank line at stop). */
const isProgressLine = (l: string) => l.trim() === '' || /[░█]/.test(l);

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  ms: number;
}

function run(args: string[], env: Record<string, string>, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    // The launcher variables of an outer environment must not leak into the rows.
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(RANK|WORLD_SIZE|LOCAL_RANK|SLURM_\w+|ADASDE_WORKER)$/.test(k)));
    const child = spawn(process.execPath, [bin, ...args], { cwd: repoRoot, env: { ...base, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr, ms: Date.now() - t0 });
    });
  });
}

test(`bad-input table: ${rows.length} invocations, each one line with its exit code within ${TIMEOUT_MS / 1000} s`, async (t) => {
  assert.ok(rows.length >= 80, `the table has ${rows.length} rows`);
  const D = await buildBadInputFixtures();
  const fill = (s: string, k: number) => s.replaceAll('{D}', D).replaceAll('{O}', join(D, 'out', String(k))).replaceAll('{R}', repoRoot);
  const failures: string[] = [];
  let next = 0;
  const times: [number, string][] = [];
  const worker = async () => {
    for (;;) {
      const k = next++;
      if (k >= rows.length) return;
      const row = rows[k]!;
      const args = row.args.map((a) => fill(a, k));
      const what = `row ${k + 2} (adasde ${row.args.join(' ')}${row.env ? ` with ${JSON.stringify(row.env)}` : ''})`;
      const limit = rowTimeoutMs();
      const r = await run(args, row.env ?? {}, limit);
      times.push([r.ms, what]);
      const lines = r.stderr.split('\n').filter((l) => !isProgressLine(l));
      const problems: string[] = [];
      if (r.signal) problems.push(`did not exit within ${(limit / 1000).toFixed(1)} s`);
      else if (r.code !== row.code) problems.push(`exit ${r.code}, expected ${row.code}`);
      if (lines.length !== 1) problems.push(`${lines.length} stderr lines`);
      if (/^\s+at /m.test(r.stderr) || /internal error/.test(r.stderr)) problems.push('a stack trace');
      const message = fill(row.message, k);
      if (!lines.some((l) => l.includes(message))) problems.push(`no line contains ${JSON.stringify(message)}`);
      if (row.noRunDir) {
        const out = fill('{O}', k);
        const left = existsSync(out) ? readdirSync(out).filter((n) => /^\d{5}/.test(n)) : [];
        if (left.length) problems.push(`left ${left.join(', ')} behind`);
      }
      if (problems.length) failures.push(`${what}: ${problems.join('; ')}\n    stderr: ${JSON.stringify(r.stderr.slice(0, 600))}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const byCode = (c: number) => rows.filter((r) => r.code === c).length;
  t.diagnostic(`${rows.length} rows: ${byCode(2)} exit 2 (bad input), ${byCode(1)} exit 1 (cannot continue)`);
  t.diagnostic(`slowest: ${times.sort((a, b) => b[0] - a[0]).slice(0, 3).map(([ms, w]) => `${(ms / 1000).toFixed(1)} s ${w}`).join('; ')}`);
  assert.equal(failures.length, 0, `${failures.length} of ${rows.length} rows failed:\n${failures.join('\n')}`);
});
