/** Shared helpers for the runtime tests. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UsageError } from '../../src/core/errors.js';
import { seededUniform } from '../support/models.js';

/** A fresh temporary directory, removed by the returned cleanup function. */
export function tempDir(): { dir: string; file: (name: string) => string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'adasde-runtime-'));
  return { dir, file: (name) => path.join(dir, name), cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Standard normal values from a seeded generator (Box-Muller). */
export function normals(n: number, seed: number): Float64Array {
  const u = seededUniform(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
  return out;
}

/** max |a - b| / max(1, max |b|): relative to the output's scale. */
export function scaledError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let err = 0;
  let scale = 1;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return err / scale;
}

/** Asserts that `p` rejects with a one-line UsageError whose message matches `re`. */
export async function rejectsUsage(p: Promise<unknown> | (() => Promise<unknown>), re: RegExp): Promise<string> {
  let caught: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof UsageError, `expected a UsageError, got ${caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught)}`);
  assert.ok(!caught.message.includes('\n'), `message is not one line: ${caught.message}`);
  assert.match(caught.message, re);
  return caught.message;
}
