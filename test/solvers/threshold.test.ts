/** Dynamic thresholding against hand-computed quantiles (torch.quantile's linear interpolation). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { threshold } from '../../src/solvers/common.js';

test('threshold: values within [-1, 1] are untouched (s = max(q, 1) = 1)', () => {
  const d = Float64Array.of(0.3, -0.9, 1, -0.2);
  assert.deepEqual(threshold(d, 1), d);
});

test('threshold: per-sample quantile, clip and rescale', () => {
  // Sample 0: |D| sorted = 0..200 step 1 (201 values); q_0.995 at position 199 -> 199.
  const a = Float64Array.from({ length: 201 }, (_, k) => (k % 2 ? -k : k));
  // Sample 1: all within 1 -> unchanged.
  const b = Float64Array.from({ length: 201 }, (_, k) => (k / 400) * (k % 3 ? 1 : -1));
  const out = threshold(Float64Array.from([...a, ...b]), 2);
  for (let k = 0; k < 201; k++) {
    const want = Math.min(Math.max(a[k]!, -199), 199) / 199;
    assert.ok(Math.abs(out[k]! - want) < 1e-15, `k=${k}`);
    assert.equal(out[201 + k], b[k]);
  }
  // Interpolated position: 4 values 0,1,2,10 -> pos 0.995*3 = 2.985 -> 2 + 0.985*8 = 9.88.
  const c = threshold(Float64Array.of(0, -1, 2, 10), 1);
  assert.ok(Math.abs(c[3]! - 1) < 1e-15 && Math.abs(c[2]! - 2 / 9.88) < 1e-15);
});

/** torch.quantile with linear interpolation, from a full sort: the independent reference. */
function thresholdBySort(den: Float64Array, batch: number, ratio: number, maxVal = 1): Float64Array {
  const dim = den.length / batch;
  const out = new Float64Array(den.length);
  for (let b = 0; b < batch; b++) {
    const row = den.subarray(b * dim, (b + 1) * dim);
    const abs = Array.from(row, Math.abs).sort((p, q) => p - q);
    const pos = ratio * (dim - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(lo + 1, dim - 1);
    const s = Math.max(abs[lo]! + (abs[hi]! - abs[lo]!) * (pos - lo), maxVal);
    row.forEach((v, k) => (out[b * dim + k] = Math.min(Math.max(v, -s), s) / s));
  }
  return out;
}

test('threshold: both order-statistic paths (top-k for ratio 0.995, quickselect for 0.6) equal a full sort, ties included, in place or not', () => {
  const dim = 3072;
  const batch = 5;
  const den = Float64Array.from({ length: batch * dim }, (_, k) => 3 * Math.sin(k * 12.9898) * Math.cos(k * 0.37));
  // Sample 1: heavy ties among the largest values; sample 2 entirely within [-1, 1].
  for (let k = 0; k < dim; k++) den[dim + k] = k % 7 === 0 ? (k % 2 ? -2.5 : 2.5) : Math.round(den[dim + k]! * 4) / 4;
  for (let k = 0; k < dim; k++) den[2 * dim + k] = den[2 * dim + k]! / 4;
  for (const ratio of [0.995, 0.6, 1]) {
    const want = thresholdBySort(den, batch, ratio);
    assert.deepEqual(threshold(den, batch, ratio), want, `ratio ${ratio}`);
    const inPlace = den.slice();
    assert.equal(threshold(inPlace, batch, ratio, 1, inPlace), inPlace);
    assert.deepEqual(inPlace, want, `ratio ${ratio} in place`);
  }
});
