/** Paths and small utilities shared by the tests. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (tests run from dist/test/...). */
export const repoRoot = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(resolve(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})();

/** `../shared` beside the checkout (CI puts it there); ADASDE_SHARED overrides. */
export const sharedDir = process.env.ADASDE_SHARED ?? resolve(repoRoot, '..', 'shared');

export function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

/** max_k |a_k - b_k| / max(|b_k|, floor) */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1e-12): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k]! - b[k]!) / Math.max(Math.abs(b[k]!), floor));
  return m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k]! - b[k]!));
  return m;
}

/**
 * Runs an in-process CLI call with stderr captured (not shown): its exit code and the
 * non-empty lines it wrote, for the one-line error checks.
 */
export async function captureStderr<T>(body: () => Promise<T>): Promise<{ value: T; lines: string[] }> {
  const chunks: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => {
    chunks.push(String(s));
    return true;
  }) as typeof process.stderr.write;
  try {
    const value = await body();
    return { value, lines: chunks.join('').trim().split('\n').filter(Boolean) };
  } finally {
    process.stderr.write = write;
  }
}
