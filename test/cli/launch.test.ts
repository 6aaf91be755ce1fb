/**
 * launch.sh's sections for the models this repository bundles, run as written with every
 * `adasde` call turned into a `--dry-run` of the same command line (so each one's flags,
 * model, detector, --init predictor and run folder resolve exactly as they would for the
 * real run) and `sleep` made instant. Background jobs' exit codes are lost to a bare `wait`,
 * so the stand-in records each call's outcome itself.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers.js';

const bin = resolve(repoRoot, 'bin', 'adasde.js');
const dir = mkdtempSync(join(tmpdir(), 'adasde-launch-'));
const wrapper = join(dir, 'adasde-dry');
writeFileSync(
  wrapper,
  [
    '#!/bin/sh',
    'err=$(node "$ADASDE_BIN" "$@" --dry-run 2>&1 >/dev/null)',
    'if [ $? -eq 0 ]; then echo "ok $1" >> "$ADASDE_LOG"; else echo "FAIL $* :: $err" >> "$ADASDE_LOG"; fi',
    '',
  ].join('\n'),
);
chmodSync(wrapper, 0o755);
const shims = join(dir, 'shims');
mkdirSync(shims);
writeFileSync(join(shims, 'sleep'), '#!/bin/sh\nexit 0\n');
chmodSync(join(shims, 'sleep'), 0o755);

function runSection(section: string): string[] {
  const log = join(dir, `${section}.log`);
  writeFileSync(log, '');
  const r = spawnSync('bash', [join(repoRoot, 'launch.sh'), section], {
    encoding: 'utf8',
    env: { ...process.env, ADASDE: wrapper, ADASDE_BIN: bin, ADASDE_LOG: log, PATH: `${shims}:${process.env.PATH ?? ''}`, TEACHER_CACHE: join(dir, 'cache') },
    timeout: 120_000,
  });
  assert.equal(r.status, 0, `launch.sh ${section}: ${r.stderr}`);
  return readFileSync(log, 'utf8').split('\n').filter((l) => l !== '');
}

// section -> number of `adasde train` calls it makes
const SECTIONS: Record<string, number> = { bundled: 10, 'bundled-hybrid': 1, 'bundled-poly': 2, 'bundled-short': 8, small: 5 };

for (const [section, calls] of Object.entries(SECTIONS)) {
  test(`launch.sh ${section}: every train command resolves (--dry-run)`, () => {
    const before = readdirSync(join(repoRoot, 'exp')).sort();
    const lines = runSection(section);
    assert.deepEqual(lines.filter((l) => !l.startsWith('ok ')), [], 'every call resolves');
    assert.deepEqual(lines, Array.from({ length: calls }, () => 'ok train'));
    // a dry run writes nothing: no run folder appears
    assert.deepEqual(readdirSync(join(repoRoot, 'exp')).sort(), before);
  });
}

test('launch.sh with no section prints its usage naming every section above', () => {
  const r = spawnSync('bash', [join(repoRoot, 'launch.sh')], { encoding: 'utf8' });
  assert.equal(r.status, 0);
  for (const section of Object.keys(SECTIONS)) assert.match(r.stdout, new RegExp(`[|\\s]${section}[|\\s]`));
});
