/**
 * Per-seed streams: the SDE noise a solver receives is each seed's own sequence, whatever the
 * timing of the requests and whatever else is in the batch; latents likewise.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import seedrandom from 'seedrandom';
import { SeedStream, SeedNoise, seedLatents } from '../../src/rng/streams.js';

const SEEDS = [3, 17, 4];
const DIM = 10;

/** The k-th draw of every seed, straight from fresh streams. */
function expected(draws: number): Float64Array[] {
  const streams = SEEDS.map((s) => new SeedStream(s, 'sde'));
  return Array.from({ length: draws }, () => {
    const out = new Float64Array(SEEDS.length * DIM);
    streams.forEach((st, b) => st.fillNormal(out, b * DIM, DIM));
    return out;
  });
}
const idle = () => new Promise<void>((r) => setTimeout(r, 5));

test('SeedNoise gives each seed its own sequence, back to back or with idle time between draws', async () => {
  const want = expected(5);
  // Back to back: no chance to draw ahead.
  const a = new SeedNoise(SEEDS);
  for (let k = 0; k < 5; k++) assert.deepEqual(a.source(k, SEEDS.length, DIM), want[k]);
  // Idle time between draws.
  const b = new SeedNoise(SEEDS);
  for (let k = 0; k < 5; k++) {
    assert.deepEqual(b.source(k, SEEDS.length, DIM), want[k]);
    await idle();
  }
  // Mixed.
  const c = new SeedNoise(SEEDS);
  const got = [c.source(0, 3, DIM), c.source(1, 3, DIM)];
  await idle();
  got.push(c.source(2, 3, DIM));
  await idle();
  await idle();
  got.push(c.source(3, 3, DIM), c.source(4, 3, DIM));
  assert.deepEqual(got, want);
  // A seed's noise does not depend on the other seeds of its batch.
  const single = new SeedNoise([17]).source(0, 1, DIM);
  assert.deepEqual(single, want[0]!.subarray(DIM, 2 * DIM));
});

test('SeedNoise refuses a batch of another size', () => {
  const n = new SeedNoise(SEEDS);
  n.source(0, 3, DIM);
  assert.throws(() => n.source(1, 2, DIM), /noise requested for 2 samples/);
});

test('seed latents are standard normal per seed, independent of the batch', () => {
  const z = seedLatents([5, 6], 4096);
  assert.deepEqual(seedLatents([6], 4096), z.subarray(4096));
  const mean = z.reduce((s, v) => s + v, 0) / z.length;
  const varc = z.reduce((s, v) => s + (v - mean) ** 2, 0) / z.length;
  assert.ok(Math.abs(mean) < 0.05 && Math.abs(varc - 1) < 0.05, `mean ${mean}, variance ${varc}`);
});

test('SeedStream steps Alea exactly as seedrandom does, and fillNormal equals normal() for any split', () => {
  // Uniforms: seedrandom's own double() on the same seed string is the reference.
  const ref = seedrandom.alea('adasde/latent/12345');
  const st = new SeedStream(12345, 'latent');
  for (let k = 0; k < 5000; k++) assert.equal(st.uniform(), ref.double(), `uniform ${k}`);
  // Normals: Box-Muller on seedrandom's doubles, both values of a pair in order.
  const r2 = seedrandom.alea('adasde/sde/7');
  const want: number[] = [];
  while (want.length < 1001) {
    const u1 = 1 - r2.double();
    const u2 = r2.double();
    const rad = Math.sqrt(-2 * Math.log(u1));
    want.push(rad * Math.cos(2 * Math.PI * u2), rad * Math.sin(2 * Math.PI * u2));
  }
  // Odd and even pieces, and single normal() calls in between, so a spare is carried over.
  const s = new SeedStream(7, 'sde');
  const got: number[] = [];
  for (const piece of [3, 1, 0, 2, 7, 250, 1, 1, 500, 235]) {
    if (piece === 1) got.push(s.normal());
    else {
      const buf = new Float64Array(piece + 2);
      s.fillNormal(buf, 1, piece);
      got.push(...buf.subarray(1, 1 + piece));
    }
  }
  assert.deepEqual(got, want.slice(0, got.length));
});

test('SeedNoise writes into a given buffer and refuses one of the wrong size', () => {
  const want = new SeedNoise(SEEDS).source(0, SEEDS.length, DIM);
  const buf = new Float64Array(SEEDS.length * DIM).fill(Number.NaN);
  assert.equal(new SeedNoise(SEEDS).source(0, SEEDS.length, DIM, buf), buf);
  assert.deepEqual(buf, want);
  assert.throws(() => new SeedNoise(SEEDS).source(0, SEEDS.length, DIM, new Float64Array(3)), /noise buffer holds 3 values/);
});
