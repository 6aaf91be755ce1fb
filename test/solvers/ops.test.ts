/**
 * The eager implementation of the array operations (src/solvers/ops.ts) keeps the interface's
 * contract: every op means the formula it documents, whether or not its result is written
 * over a given-up input (`reuse`); a denoiser call sends each block at its own noise level
 * with the conditioning repeated per block and counts one evaluation; the noise of an
 * interval is the per-seed noise source's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EagerOps } from '../../src/solvers/ops.js';
import { ArrayPool } from '../../src/solvers/pool.js';
import { threshold } from '../../src/solvers/common.js';
import type { DenoiseRequest } from '../../src/core/denoiser.js';
import { SeedNoise } from '../../src/rng/streams.js';

const batch = 3;
const dim = 5;
const n = batch * dim;
const vec = (seed: number) => Float64Array.from({ length: n }, (_, k) => Math.sin(k * 1.3 + seed) * (1 + seed));
const noDenoiser = async (): Promise<Float64Array> => {
  throw new Error('not called');
};
const ops = () => new EagerOps({ denoise: noDenoiser, batch, dim, pool: new ArrayPool() });

test('eager ops: each op is its formula, into a fresh array or over a given-up input alike', () => {
  const x = vec(1);
  const y = vec(2);
  const cases: [string, (o: EagerOps, reuse?: Float64Array) => Float64Array, (k: number) => number, Float64Array][] = [
    ['axpy', (o, r) => o.axpy(x, 0.7, y, r), (k) => x[k]! + 0.7 * y[k]!, y],
    ['diffOver', (o, r) => o.diffOver(x, y, 0.3, r), (k) => (x[k]! - y[k]!) / 0.3, y],
    ['scale', (o, r) => o.scale(x, 80, r), (k) => x[k]! * 80, x],
    ['axmby', (o, r) => o.axmby(0.9, x, 1.7, y, r), (k) => 0.9 * x[k]! - 1.7 * y[k]!, x],
    ['combine', (o, r) => o.combine(x, -0.5, [0.25, 2], [x, y], r), (k) => x[k]! + -0.5 * (0.25 * x[k]! + 2 * y[k]!), y],
  ];
  for (const [name, run, formula, victim] of cases) {
    const fresh = run(ops());
    fresh.forEach((v, k) => assert.equal(v, formula(k), `${name}[${k}]`));
    assert.ok(fresh !== x && fresh !== y, `${name} must not write over an input it was not offered`);
    const saved = victim.slice();
    const over = run(ops(), victim);
    assert.equal(over, victim, `${name} writes over the offered input`);
    assert.deepEqual(over, fresh, `${name}: the same values over its input`);
    victim.set(saved);
  }
  const big = Float64Array.from(vec(3), (v) => v * 3);
  assert.deepEqual(ops().threshold(big), threshold(big, batch));
  assert.deepEqual(big, Float64Array.from(vec(3), (v) => v * 3), 'threshold without reuse leaves its input alone');
});

test('eager ops: stacked points and their combined directions are the per-block formulas', () => {
  const o = ops();
  const x = vec(1);
  const d = vec(2);
  const steps = [-0.4, -1.1, 0.3];
  const stacked = o.stackPoints(x, steps, d);
  assert.equal(stacked.length, steps.length * n);
  steps.forEach((s, j) => x.forEach((v, k) => assert.equal(stacked[j * n + k], v + s * d[k]!)));
  const den = Float64Array.from(stacked, (v, k) => v * 0.5 + Math.cos(k));
  const f = [0.2, -0.7, 1.3];
  const r = [2.5, 0.8, 1.7];
  const out = o.addStackedDirections(x, f, stacked, den, r);
  x.forEach((v, k) => {
    let want = v;
    for (let j = 0; j < 3; j++) want = want + (f[j]! * (stacked[j * n + k]! - den[j * n + k]!)) / r[j]!;
    assert.equal(out[k], want);
  });
});

test('eager ops: one denoiser call per evaluation, each block at its sigma, conditioning repeated, D never aliasing x', async () => {
  const seen: DenoiseRequest[] = [];
  const labels = Float32Array.of(1, 0, 0, 1, 0, 1);
  const o = new EagerOps({
    denoise: async (req) => {
      seen.push(req);
      return req.x; // an identity denoiser handing x itself back
    },
    batch,
    dim,
    cond: { classLabels: labels, labelDim: 2 },
  });
  const x = new Float64Array(2 * n).fill(1);
  const den = await o.denoise(x, [0.5, 7]);
  assert.equal(o.nfe, 1);
  assert.equal(seen.length, 1);
  assert.deepEqual([...seen[0]!.sigma], [0.5, 0.5, 0.5, 7, 7, 7]);
  assert.equal(seen[0]!.batch, 2 * batch);
  assert.deepEqual([...seen[0]!.cond!.classLabels!], [...labels, ...labels]);
  assert.notEqual(den, x);
  assert.deepEqual(den, x);
  await o.denoise(vec(0), [2]);
  assert.equal(o.nfe, 2);
  assert.equal(seen[1]!.cond!.classLabels, labels);
});

test('eager ops: the noise of interval i is the per-seed source, and its absence is a one-line error', () => {
  const seeds = [4, 8, 15];
  const o = new EagerOps({ denoise: noDenoiser, batch, dim, noise: new SeedNoise(seeds).source });
  const want = new SeedNoise(seeds).source(1, batch, dim);
  assert.deepEqual(o.noise(1), want);
  assert.throws(() => ops().noise(1), /needs a per-seed noise source/);
});
