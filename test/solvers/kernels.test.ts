/** The fused element-wise kernels equal the two-pass formulas they replace. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { axmby, axpy, axpyCombine, diffOver, scale } from '../../src/solvers/common.js';

const n = 257;
const vec = (seed: number) => Float64Array.from({ length: n }, (_, k) => Math.sin(k * 1.3 + seed) * (1 + seed));

/** The two-pass form: sum_j c_j v_j into a temporary (left to right, from 0), then axpy. */
function combine(c: readonly number[], v: readonly Float64Array[]): Float64Array {
  const out = new Float64Array(n);
  v.forEach((vj, j) => vj.forEach((e, k) => (out[k] = out[k]! + c[j]! * e)));
  return out;
}

test('axpyCombine equals axpy(a, s, combine(c, v)) for 1 to 5 terms, also written over a or a term', () => {
  const a = vec(0);
  for (let m = 1; m <= 5; m++) {
    const v = Array.from({ length: m }, (_, j) => vec(j + 1));
    const c = Array.from({ length: m }, (_, j) => 0.5 - j * 0.3);
    const want = axpy(a, -0.7, combine(c, v));
    assert.deepEqual(axpyCombine(a, -0.7, c, v, new Float64Array(n)), want, `${m} terms`);
    const overA = a.slice();
    assert.deepEqual(axpyCombine(overA, -0.7, c, v, overA), want, `${m} terms over a`);
    const vs = v.map((x) => x.slice());
    assert.deepEqual(axpyCombine(a, -0.7, c, vs, vs[m - 1]!), want, `${m} terms over the last term`);
  }
});

test('axmby, diffOver and scale', () => {
  const x = vec(1);
  const y = vec(2);
  const out = new Float64Array(n);
  axmby(0.9, x, 1.7, y, out);
  x.forEach((v, k) => assert.equal(out[k], 0.9 * v - 1.7 * y[k]!));
  diffOver(x, y, 0.3, out);
  x.forEach((v, k) => assert.equal(out[k], (v - y[k]!) / 0.3));
  scale(x, 80, out);
  x.forEach((v, k) => assert.equal(out[k], v * 80));
});
