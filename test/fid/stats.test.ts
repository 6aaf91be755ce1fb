/** FeatureStats against NumPy's np.mean / np.cov (tools/fid_fixtures.py). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FeatureStats } from '../../src/fid/stats.js';
import { features, set, storedStats } from './fixtures.js';

/** max |a - b| / max |b|: covariance entries near zero make elementwise ratios meaningless. */
function normRel(a: Float64Array, b: Float64Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

function elemRel(a: Float64Array, b: Float64Array): number {
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i]! - b[i]!) / Math.abs(b[i]!));
  return e;
}

/** Add rows [r0, r1) of a row-major feature matrix. */
function addRows(s: FeatureStats, x: Float32Array, dim: number, r0: number, r1: number): void {
  s.add(x.subarray(r0 * dim, r1 * dim), r1 - r0);
}

const TOL = 1e-9;

describe('FeatureStats', () => {
  const name = 'a64';
  const info = set(name);
  const dim = info.dim;
  const x = features(name);
  const want = storedStats(name);

  it('uneven batches equal np.mean / np.cov', () => {
    const s = new FeatureStats(dim);
    const cuts = [0, 1, 8, 108, 111, 367, info.rows];
    for (let k = 0; k + 1 < cuts.length; k++) addRows(s, x, dim, cuts[k]!, cuts[k + 1]!);
    assert.equal(s.n, info.rows);
    assert.ok(elemRel(s.mu(), want.mu) < TOL, `mu ${elemRel(s.mu(), want.mu)}`);
    const sigma = s.sigma();
    assert.ok(normRel(sigma, want.sigma) < TOL, `sigma ${normRel(sigma, want.sigma)}`);
    // Diagonal entries are all well away from zero: check them elementwise as well.
    const dg = (m: Float64Array): Float64Array => Float64Array.from({ length: dim }, (_, i) => m[i * dim + i]!);
    assert.ok(elemRel(dg(sigma), dg(want.sigma)) < TOL);
    for (let i = 0; i < dim; i++) for (let j = 0; j < i; j++) assert.equal(sigma[i * dim + j], sigma[j * dim + i]);
  });

  it('one batch, and a batch larger than the internal block, agree with the batched result', () => {
    const one = new FeatureStats(dim);
    one.add(x, info.rows);
    const two = new FeatureStats(dim);
    addRows(two, x, dim, 0, 3);
    addRows(two, x, dim, 3, info.rows);
    assert.ok(normRel(one.sigma(), want.sigma) < TOL);
    assert.ok(normRel(two.sigma(), one.sigma()) < 1e-13);
  });

  it('merging two partial accumulators (different shifts) equals np.cov', () => {
    const a = new FeatureStats(dim);
    const b = new FeatureStats(dim);
    addRows(a, x, dim, 0, 150);
    addRows(b, x, dim, 150, 151); // b's shift is one sample, far from a's
    addRows(b, x, dim, 151, info.rows);
    a.merge(b);
    assert.equal(a.n, info.rows);
    assert.ok(elemRel(a.mu(), want.mu) < TOL);
    assert.ok(normRel(a.sigma(), want.sigma) < TOL);
    // merging into an empty accumulator adopts the other's state; merging an empty one is a no-op
    const c = new FeatureStats(dim);
    c.merge(a);
    c.merge(new FeatureStats(dim));
    assert.ok(normRel(c.sigma(), want.sigma) < TOL);
  });

  it('toPartial / fromPartial round trip, then continue accumulating', () => {
    const a = new FeatureStats(dim);
    addRows(a, x, dim, 0, 200);
    const p = a.toPartial();
    assert.equal(p.n, 200);
    assert.equal(p.sumOuter.length, dim * dim);
    const b = FeatureStats.fromPartial(p);
    addRows(b, x, dim, 200, info.rows);
    assert.ok(elemRel(b.mu(), want.mu) < TOL);
    assert.ok(normRel(b.sigma(), want.sigma) < TOL);
  });

  it('a dimension that is not a multiple of the 4-wide tiles', () => {
    // Drop the last 3 features: statistics of the first 61 columns.
    const d = 61;
    const y = new Float32Array(info.rows * d);
    for (let r = 0; r < info.rows; r++) y.set(x.subarray(r * dim, r * dim + d), r * d);
    const s = new FeatureStats(d);
    s.add(y, 97);
    s.add(y.subarray(97 * d), info.rows - 97);
    const sigma = s.sigma();
    let e = 0;
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < d; j++) e = Math.max(e, Math.abs(sigma[i * d + j]! - want.sigma[i * dim + j]!));
    }
    assert.ok(e / info.eig_max < TOL);
  });

  it('accumulates a 64 x 2048 batch well under a second', () => {
    const d = 2048;
    const s = new FeatureStats(d);
    const batch = new Float32Array(64 * d).map((_, i) => ((i * 2654435761) % 1000) / 100);
    s.add(batch, 64); // warm-up (JIT, first touch of the accumulator)
    const t0 = performance.now();
    s.add(batch, 64);
    const ms = performance.now() - t0;
    console.log(`64 x 2048 batch: ${ms.toFixed(1)} ms`);
    assert.ok(ms < 1000, `${ms} ms`);
  });

  it('rejects bad input', () => {
    const s = new FeatureStats(4);
    assert.throws(() => s.add(new Float32Array(7), 2), RangeError);
    assert.throws(() => s.mu(), RangeError);
    s.add(new Float32Array(4), 1);
    assert.throws(() => s.sigma(), RangeError);
    assert.throws(() => s.merge(new FeatureStats(5)), RangeError);
    assert.throws(() => new FeatureStats(0), RangeError);
  });
});
