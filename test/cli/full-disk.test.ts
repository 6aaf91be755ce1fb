/**
 * A full disk: `adasde sample`, `fid ref` and `train` writing into a tiny tmpfs fail with
 * ENOSPC. Each must print one line and exit 1, leave no temporary file, and every file under
 * a final name must be complete (PNGs decode, nothing truncated). Mounting needs root (CI runs
 * as root); elsewhere the tests are skipped, visibly, with the reason.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { decodeImage } from '../../src/io/images.js';
import { writePng } from '../../src/io/png.js';
import { saveModel } from '../../src/onnx/builder.js';
import { buildFeatureModel } from '../support/models.js';
import { bin } from './bad-inputs-fixture.js';
import { makeModelDir } from './sample-fixture.js';

const { dir, model } = makeModelDir();
const detector = join(dir, 'features.onnx');
saveModel(buildFeatureModel({ dim: 24, size: 16, seed: 3 }), detector);

/** Mounts a tmpfs of `kib` KiB; undefined (with the reason) when this machine does not allow it. */
function smallDisk(kib: number): { path: string; release: () => void } | string {
  if (process.platform !== 'linux') return 'tmpfs mounts need Linux';
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root (CI runs as root)';
  const path = mkdtempSync(join(tmpdir(), 'adasde-full-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k`, 'tmpfs', path], { encoding: 'utf8' });
  if (r.status !== 0) return `mount -t tmpfs failed: ${(r.stderr || String(r.error)).trim()}`;
  return { path, release: () => void spawnSync('umount', [path]) };
}

function files(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const n of readdirSync(join(root, rel))) {
      const r = rel ? `${rel}/${n}` : n;
      if (statSync(join(root, r)).isDirectory()) walk(r);
      else out.push(r);
    }
  };
  walk('');
  return out;
}

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, err: r.stderr };
}

function assertOneLineEnospc(r: { code: number | null; err: string }, what: string): void {
  assert.equal(r.code, 1, `${what}: ${r.err}`);
  const lines = r.err.trimEnd().split('\n');
  assert.equal(lines.length, 1, `${what}: ${r.err}`);
  assert.match(lines[0]!, /^adasde: error: .*(no space left|ENOSPC)/i, what);
  assert.doesNotMatch(r.err, /^\s+at /m);
}

const skipReason = (() => {
  const probe = smallDisk(64);
  if (typeof probe === 'string') return probe;
  probe.release();
  return undefined;
})();

test('full disk: sample stops with one line, exit 1; no temp file, every PNG complete', { skip: skipReason }, async () => {
  const disk = smallDisk(96) as { path: string; release: () => void };
  try {
    const out = join(disk.path, 'samples');
    // 8x8 PNGs of a few hundred bytes each: 2000 of them do not fit in 96 KiB.
    const r = cli('sample', '--model', model, '--solver', 'euler', '--num_steps', '3', '--seeds', '0-1999', '--batch', '50', '--outdir', out, '--quiet');
    assertOneLineEnospc(r, 'sample');
    const written = files(out);
    assert.ok(written.length > 0 && written.length < 2000, `${written.length} files written`);
    assert.deepEqual(written.filter((f) => /\.tmp-/.test(f)), [], 'temporary files left on the full disk');
    for (const f of written) {
      // sample_options.json, written before the images, is complete JSON; every PNG decodes.
      if (f === 'sample_options.json') JSON.parse(readFileSync(join(out, f), 'utf8'));
      else await decodeImage(readFileSync(join(out, f)), f); // throws on a truncated PNG
    }
  } finally {
    disk.release();
  }
});

test('full disk: fid ref --dest fails with one line, exit 1, and leaves no partial .npz', { skip: skipReason }, async () => {
  const images = join(dir, 'images');
  mkdirSync(images, { recursive: true });
  for (let k = 0; k < 4; k++) await writePng(join(images, `${k}.png`), Uint8Array.from({ length: 192 }, (_, i) => (i * 7 + k * 50) % 256), 3, 8, 8);
  const disk = smallDisk(64) as { path: string; release: () => void };
  try {
    // Fill the disk but for a few bytes: the 24-d statistics (~5 KB) cannot be written.
    try {
      writeFileSync(join(disk.path, 'filler'), Buffer.alloc(64 * 1024));
    } catch {
      // Filled up to the last byte: that is the point.
    }
    const r = cli('fid', 'ref', '--data', images, '--dest', join(disk.path, 'r.npz'), '--detector', detector, '--quiet');
    assertOneLineEnospc(r, 'fid ref');
    assert.deepEqual(readdirSync(disk.path).filter((f) => f !== 'filler'), [], 'a partial or temporary file is left');
  } finally {
    disk.release();
  }
});

test('full disk: train stops with one line, exit 1; no temp file, no truncated snapshot', { skip: skipReason }, () => {
  const disk = smallDisk(32) as { path: string; release: () => void };
  try {
    const out = join(disk.path, 'run');
    // Each batch appends to log.txt and each tick writes a snapshot and the state: 32 KiB runs out.
    const r = cli('train', '--model', model, '--detector', detector, '--num_steps', '3', '--M', '1', '--batch', '4', '--total_kimg', '0.4', '--tick', '0.004', '--snap', '1', '--seed', '0', '--nosubdir', '--outdir', out, '--quiet');
    assertOneLineEnospc(r, 'train');
    const written = files(out);
    assert.deepEqual(written.filter((f) => /\.tmp-/.test(f)), [], 'temporary files left on the full disk');
    for (const f of written.filter((n) => n.endsWith('.json'))) JSON.parse(readFileSync(join(out, f), 'utf8')); // complete JSON
  } finally {
    disk.release();
  }
});
