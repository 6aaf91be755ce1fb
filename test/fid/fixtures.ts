/** Readers for test/fixtures/fid (written by tools/fid_fixtures.py); not a test file. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { readJson, repoRoot } from '../helpers.js';

export const FIXTURES = resolve(repoRoot, 'test', 'fixtures', 'fid');

export interface SetInfo {
  features: string;
  dtype: 'float32' | 'int8';
  rows: number;
  dim: number;
  rank: number;
  eig_min: number;
  eig_max: number;
  /** 64-d sets: statistics files (float64). */
  mu?: string;
  sigma?: string;
  /** 2048-d sets: rows of the gzip'd int8 file and checksums of np.mean / np.cov. */
  row_range?: [number, number];
  rows_total?: number;
  mu_sum?: number;
  mu_first?: number[];
  sigma_trace?: number;
  sigma_sum?: number;
  sigma_probe?: [number, number, number][];
}

export interface PairInfo {
  name: string;
  dim: number;
  a: string;
  b: string;
  kind: 'full' | 'near' | 'singular' | 'mixed';
  fid_scipy: number;
  trace_sqrt_scipy: number;
  sqrtm_errest: number;
  fid_exact: number;
  trace_sqrt_exact: number;
  mean_term: number;
  trace_a: number;
  trace_b: number;
}

export interface Expected {
  sets: Record<string, SetInfo>;
  pairs: PairInfo[];
}

export const expected: Expected = readJson<Expected>(resolve(FIXTURES, 'expected.json'));

export function set(name: string): SetInfo {
  const s = expected.sets[name];
  if (!s) throw new Error(`no fixture set ${name}`);
  return s;
}

export function pair(name: string): PairInfo {
  const p = expected.pairs.find((q) => q.name === name);
  if (!p) throw new Error(`no fixture pair ${name}`);
  return p;
}

function bytes(name: string): Buffer {
  return readFileSync(resolve(FIXTURES, name));
}

/** Raw little-endian float64 (copied so the result is aligned and owns its buffer). */
export function readF64(name: string): Float64Array {
  const b = bytes(name);
  const out = new Float64Array(b.length / 8);
  for (let i = 0; i < out.length; i++) out[i] = b.readDoubleLE(i * 8);
  return out;
}

/** Features of a set as float32, row-major [rows, dim]. */
export function features(name: string): Float32Array {
  const s = set(name);
  if (s.dtype === 'float32') {
    const b = bytes(s.features);
    const out = new Float32Array(b.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = b.readFloatLE(i * 4);
    return out;
  }
  const raw = gunzipSync(bytes(s.features));
  const [r0, r1] = s.row_range ?? [0, s.rows];
  const out = new Float32Array((r1 - r0) * s.dim);
  const i8 = new Int8Array(raw.buffer, raw.byteOffset + r0 * s.dim, out.length);
  out.set(i8);
  return out;
}

/** The float64 statistics stored for a 64-d set. */
export function storedStats(name: string): { mu: Float64Array; sigma: Float64Array; dim: number } {
  const s = set(name);
  if (!s.mu || !s.sigma) throw new Error(`set ${name} has no stored statistics`);
  return { mu: readF64(s.mu), sigma: readF64(s.sigma), dim: s.dim };
}

/** |a - b| / |b| */
export function rel(a: number, b: number): number {
  return Math.abs(a - b) / Math.abs(b);
}
