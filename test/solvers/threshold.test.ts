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
