/**
 * The distillation loop (ALGORITHM.md 4.3): the final-interval feature loss's gradient
 * against a central difference of the whole loss, Adam/cosine schedule against closed forms,
 * and data parallelism: two ranks with a summing reducer give the coefficients of one, in forward
 * mode and with hybrid gradients.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mixtureDenoiser } from '../../src/solvers/analytic.js';
import { sampleAdasde } from '../../src/solvers/adasde.js';
import { effectiveCoefficients, type CoefficientBounds } from '../../src/solvers/coefficients.js';
import { getSchedule } from '../../src/solvers/schedule.js';
import { adamInit, adamStep, cosineLr, sanitizeGrad } from '../../src/train/adam.js';
import { featureLoss, initState, trainBatch, type FeatureFn, type TrainSetup } from '../../src/train/loop.js';
import { studentStepJvp, type Tangent } from '../../src/train/student.js';
import { SeedStream, SeedNoise, seedLatents } from '../../src/rng/streams.js';
import { MIX, MIX_DIM, mixtureExactJvp, mixtureExactVjp } from '../support/mixture.js';

const shape = [3, 4, 4];
const dim = MIX_DIM;
const mix = MIX;
const exactJvp = mixtureExactJvp;

/** A smooth stand-in detector: features = tanh(W img / 255 - 0.5), W fixed and random. */
const FD = 7;
const Wf = (() => {
  const g = new SeedStream(3, 'init');
  return Float64Array.from({ length: FD * dim }, () => g.normal() / Math.sqrt(dim));
})();
const features: FeatureFn = async (images, n) => {
  const out = new Float32Array(n * FD);
  for (let b = 0; b < n; b++) {
    for (let f = 0; f < FD; f++) {
      let s = 0;
      for (let k = 0; k < dim; k++) s += Wf[f * dim + k]! * images[b * dim + k]!;
      out[b * FD + f] = Math.tanh(s / 255 - 0.5);
    }
  }
  return { features: out, dim: FD };
};
const featuresF64 = (x: Float64Array, n: number): Float64Array => {
  const out = new Float64Array(n * FD);
  for (let b = 0; b < n; b++) {
    for (let f = 0; f < FD; f++) {
      let s = 0;
      for (let k = 0; k < dim; k++) s += Wf[f * dim + k]! * Math.min(Math.max(127.5 * x[b * dim + k]! + 128, 0), 255);
      out[b * FD + f] = Math.tanh(s / 255 - 0.5);
    }
  }
  return out;
};

/** A smooth stand-in first-stage decoder for latent models: images = 0.8 tanh(1.3 z + 0.1). */
const decodeFn = async (z: Float64Array, n: number) => ({ images: z.map((v) => 0.8 * Math.tanh(1.3 * v + 0.1)), shape: [3, 4, 4] as [number, number, number] });
const decodeF64 = (z: Float64Array) => z.map((v) => 0.8 * Math.tanh(1.3 * v + 0.1));

for (const [latent, scheme] of [[false, 'central'], [true, 'central'], [false, 'forward'], [true, 'forward']] as const) test(`feature loss${latent ? ' through a decoder (latent models)' : ''}, ${scheme} differences: gradient matches a central difference of the whole loss`, async () => {
  const N = 3;
  const bounds: CoefficientBounds = { scaleDir: 0.05, scaleTime: 0.2, gamma: 0.05, gammaMin: 2e-4, fcn: false };
  const tSteps = getSchedule({ numSteps: N, sigmaMin: 0.002, sigmaMax: 80, type: 'time_uniform', rho: 1 });
  const seeds = [1, 2, 3, 4];
  const B = seeds.length;
  const state = initState(11, N, 1);
  const z = seedLatents(seeds, dim);
  const y = await sampleAdasde(z.map((v) => v * 80), { denoise: mixtureDenoiser(mix), tSteps: getSchedule({ numSteps: 6, sigmaMin: 0.002, sigmaMax: 80, type: 'time_uniform', rho: 1 }), batch: B, dim }, {
    coeffs: { r: [[0.5], [0.5], [0.5], [0.5], [0.5]], scaleDir: [[1], [1], [1], [1], [1]], scaleTime: [[1], [1], [1], [1], [1]], weight: [[1], [1], [1], [1], [1]], gamma: [[0], [0], [0], [0], [0]] },
  });
  const alpha = 20;
  const lossOf = async (raw: typeof state.raw): Promise<number> => {
    const x = await sampleAdasde(z.map((v) => v * tSteps[0]!), { denoise: mixtureDenoiser(mix), tSteps, batch: B, dim, noise: new SeedNoise(seeds).source }, { afs: true, coeffs: effectiveCoefficients(raw, bounds) });
    const fx = featuresF64(latent ? decodeF64(x) : x, B);
    const fy = featuresF64(latent ? decodeF64(y) : y, B);
    let s = 0;
    for (let q = 0; q < fx.length; q++) s += (fx[q]! - fy[q]!) ** 2;
    return (alpha * dim * s) / (B * FD);
  };
  // Forward-mode tangents through the trajectory, then the feature loss's gradient.
  const noise = new SeedNoise(seeds);
  let x: Float64Array = z.map((v) => v * tSteps[0]!);
  let tangents: Tangent[] = [];
  const coeffs = effectiveCoefficients(state.raw, bounds);
  for (let i = 0; i < N - 1; i++) {
    const eps = i > 0 ? noise.source(i, B, dim) : undefined;
    const out = await studentStepJvp({ jvp: exactJvp, i, x, tangents, tCur: tSteps[i]!, tNext: tSteps[i + 1]!, raw: state.raw, coeffs, bounds, afs: true, batch: B, eps });
    x = out.x;
    tangents = out.tangents;
  }
  // float32 features: the forward step sits near sqrt(2^-24) (jvp.ts).
  const fl = await featureLoss(features, x, y, tangents, B, dim, B, alpha, scheme === 'central' ? 1e-3 : 3e-4, latent ? decodeFn : undefined, scheme);
  assert.equal(fl.rows, (2 + (scheme === 'central' ? 2 : 1) * tangents.length) * B, 'detector rows');
  assert.ok(Math.abs(fl.loss - (await lossOf(state.raw))) / fl.loss < 1e-5, 'loss value');
  const h = 1e-5;
  for (const [p, t] of tangents.entries()) {
    const plus = structuredClone(state.raw);
    plus[t.ref.name][t.ref.i]![t.ref.j]! += h;
    const minus = structuredClone(state.raw);
    minus[t.ref.name][t.ref.i]![t.ref.j]! -= h;
    const cd = ((await lossOf(plus)) - (await lossOf(minus))) / (2 * h);
    const g = fl.grad[p]!;
    // float32 features limit agreement to ~1e-3 relative of the gradient's scale.
    const scale = Math.max(...fl.grad.map(Math.abs));
    assert.ok(Math.abs(g - cd) <= 2e-3 * scale, `${JSON.stringify(t.ref)}: forward ${g} vs central ${cd} (scale ${scale})`);
  }
});

test('adam: matches the closed form of the first two steps', () => {
  const p = [[1]];
  const st = adamInit(p);
  adamStep(p, [[0.5]], st, 0.1);
  // Step 1: m_hat = g, v_hat = g^2 -> p -= lr * g / (|g| + eps) = lr.
  assert.ok(Math.abs(p[0]![0]! - (1 - 0.1 * (0.5 / (0.5 + 1e-8)))) < 1e-15);
  adamStep(p, [[0]], st, 0.1);
  const m = 0.9 * 0.05;
  const v = 0.999 * 0.00025;
  const expected = 1 - 0.1 * (0.5 / (0.5 + 1e-8)) - ((0.1 / (1 - 0.81)) * m) / (Math.sqrt(v) / Math.sqrt(1 - 0.999 ** 2) + 1e-8);
  assert.ok(Math.abs(p[0]![0]! - expected) < 1e-15, 'zero gradient still moves the parameter through momentum');
  assert.equal(cosineLr(0.2, 0.01, 0, 10), 0.2);
  assert.ok(Math.abs(cosineLr(0.2, 0.01, 5, 10) - 0.105) < 1e-15);
  assert.ok(Math.abs(cosineLr(0.2, 0.01, 10, 10) - 0.01) < 1e-15);
  assert.deepEqual([NaN, Infinity, -Infinity, 3].map(sanitizeGrad), [0, 1e5, -1e5, 3]);
});

function baseSetup(over: Partial<TrainSetup> = {}): TrainSetup {
  return {
    denoise: mixtureDenoiser(mix),
    sampleShape: shape,
    labelDim: 0,
    schedule: { numSteps: 4, sigmaMin: 0.002, sigmaMax: 80, type: 'time_uniform', rho: 1 },
    M: 2,
    teacher: 'dpm',
    afs: true,
    bounds: { scaleDir: 0.05, scaleTime: 0.2, gamma: 0.02, gammaMin: 2e-4, fcn: false },
    numPoints: 1,
    lr: 0.2,
    coslr: true,
    totalKimg: 0.05,
    batch: 10,
    seed: 5,
    alpha: 20,
    jvpRelStep: 1e-5,
    rank: 0,
    worldSize: 1,
    reduce: async (v) => v,
    ...over,
  };
}

/** An in-memory all-reduce for `world` concurrent ranks, summing in rank order. */
function sharedReducer(world: number) {
  let pending: (Float64Array | undefined)[] = [];
  let waiters: ((v: Float64Array) => void)[] = [];
  return (rank: number) => (v: Float64Array) =>
    new Promise<Float64Array>((resolve) => {
      pending[rank] = v;
      waiters[rank] = resolve;
      if (pending.filter(Boolean).length === world) {
        const sum = Float64Array.from(pending[0]!);
        for (let r = 1; r < world; r++) pending[r]!.forEach((x, k) => (sum[k] = sum[k]! + x));
        const ws = waiters;
        pending = [];
        waiters = [];
        ws.forEach((w) => w(Float64Array.from(sum)));
      }
    });
}

for (const [mode, over] of [
  ['forward mode', {}],
  ['hybrid gradients from interval 1', { reverseFrom: 1, vjp: mixtureExactVjp }],
] as const) {
  test(`data parallel, ${mode}: two ranks give the coefficients of one process (up to rounding)`, async () => {
    const one = initState(5, 4, 1);
    for (let b = 0; b < 4; b++) await trainBatch(baseSetup(over), one);
    const shared = sharedReducer(2);
    const ranks = [initState(5, 4, 1), initState(5, 4, 1)];
    for (let b = 0; b < 4; b++) {
      await Promise.all(ranks.map((st, rank) => trainBatch(baseSetup({ ...over, rank, worldSize: 2, reduce: shared(rank) }), st)));
    }
    assert.deepEqual(ranks[0]!.raw, ranks[1]!.raw, 'ranks stay in lockstep');
    // Per-rank partial sums group the per-sample gradient terms differently from one process;
    // Adam's normalisation by sqrt(v) amplifies those ~1e-16 differences to ~1e-9 after a few
    // steps, so "equal up to float rounding" is checked at 1e-7.
    for (const table of ['r', 'scaleDir', 'scaleTime', 'gamma'] as const) {
      one.raw[table].forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v - ranks[0]!.raw[table][i]![j]!) < 1e-7, `${table}[${i}][${j}]: ${v} vs ${ranks[0]!.raw[table][i]![j]}`)));
    }
  });
}

test('training: same seed, same coefficients bit for bit; another seed differs', async () => {
  const a = initState(5, 4, 1);
  const b = initState(5, 4, 1);
  const c = initState(6, 4, 1);
  for (let k = 0; k < 3; k++) {
    await trainBatch(baseSetup(), a);
    await trainBatch(baseSetup(), b);
    await trainBatch(baseSetup({ seed: 6 }), c);
  }
  assert.deepEqual(a.raw, b.raw);
  assert.notDeepEqual(a.raw, c.raw);
});
