/** Shared paths and assertions for the io tests (not a test file itself). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../../src/core/errors.js';

/** Repository root (this file runs from dist/test/io/). */
export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const FIXTURES = join(REPO, 'test', 'fixtures', 'npz');
export const SHARED_DATA = join(REPO, '..', 'shared', 'data');

export function fixture(name: string): string {
  return join(FIXTURES, name);
}

/** JSON cannot hold inf/nan, so the fixture script writes them as strings. */
export type JsonNum = number | 'inf' | '-inf' | 'nan';

export function num(v: JsonNum): number {
  if (v === 'inf') return Infinity;
  if (v === '-inf') return -Infinity;
  if (v === 'nan') return NaN;
  return v;
}

export interface ExpectedArray {
  dtype: string;
  diskDtype: string;
  shape: number[];
  size: number;
  sum: JsonNum;
  /** Numbers (inf/nan as strings) or booleans. */
  values: Array<JsonNum | boolean>;
}

/** Expected values with inf/nan decoded. */
export function expectedValues(e: ExpectedArray): Array<number | boolean> {
  return e.values.map((v) => (typeof v === 'boolean' ? v : num(v)));
}

export interface Expected {
  numpy: string;
  arrays: Record<string, ExpectedArray>;
  files: Record<string, string[]>;
  npyHex: Record<string, string>;
  stats: { dim: number; mu: number[]; sigma: number[]; mu32: number[]; sigma32: number[] };
  subsets: Array<{ count: number; num: number; seed: number; picked: number[] }>;
  quantize: { x: JsonNum[]; float32: number[]; float64: number[]; disagreeing: number };
}

let cached: Expected | undefined;
/** The values NumPy computed when it wrote the fixtures (tools/fixtures/make_npz_fixtures.py). */
export function expected(): Expected {
  cached ??= JSON.parse(readFileSync(join(FIXTURES, 'expected.json'), 'utf8')) as Expected;
  return cached;
}

/**
 * Assert that `p` rejects with a UsageError whose message is one line, mentions `file`,
 * and matches every pattern. Returns the message.
 */
export async function rejectsUsage(p: Promise<unknown> | (() => unknown), file: string, ...patterns: RegExp[]): Promise<string> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  assert.ok(err !== undefined, `expected a UsageError mentioning ${file}, but nothing was thrown`);
  assert.ok(err instanceof UsageError, `expected UsageError, got ${String(err)}`);
  const msg = err.message;
  assert.ok(!msg.includes('\n'), `message should be one line: ${JSON.stringify(msg)}`);
  assert.ok(msg.includes(file), `message should name ${file}: ${msg}`);
  for (const re of patterns) assert.match(msg, re);
  return msg;
}
