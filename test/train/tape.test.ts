/**
 * Reverse mode in training (src/train/tape.ts, gradient-plan.ts) against independent truth:
 *   - the mixture denoiser's closed-form VJP satisfies the adjoint identity with its
 *     closed-form JVP (<u, J v> = <J^T u, v>, in x and in sigma);
 *   - with both closed forms, every hybrid split k gives the gradients of forward mode, interval
 *     by interval, for the L2 and the feature loss, with one and with two points per interval;
 *   - the tape's gradient of one interval's loss matches a central difference of the eager
 *     sampler (no forward-mode code involved);
 *   - the rows the loop sends (forward and VJP) are the ones gradient-plan.ts counts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mixtureDenoiser, mixtureJvp, mixtureVjp } from '../../src/solvers/analytic.js';
import { adasdeStep, sampleAdasde } from '../../src/solvers/adasde.js';
import { effectiveCoefficients, liveParams, type CoefficientBounds, type RawParams } from '../../src/solvers/coefficients.js';
import { getSchedule, type ScheduleSpec } from '../../src/solvers/schedule.js';
import { bestReverseFrom, hybridCost } from '../../src/train/gradient-plan.js';
import { initState, trainBatch, type FeatureFn, type FeatureVjpFn, type TrainSetup } from '../../src/train/loop.js';
import { dualCoefficients } from '../../src/train/student.js';
import { TapeOps } from '../../src/train/tape.js';
import { SeedStream } from '../../src/rng/streams.js';
import { MIX, MIX_DIM, mixtureExactJvp, mixtureExactVjp } from '../support/mixture.js';

const dim = MIX_DIM;
const mix = MIX;
const exactJvp = mixtureExactJvp;
const exactVjp = mixtureExactVjp;

/**
 * A stand-in detector, features = q + q^2 / 4 with q = W img / 255 - 0.5, and its closed-form VJP.
 * Quadratic on purpose: forward mode's central differences of it are exact, so the reference
 * gradient carries only float32 rounding, not truncation error.
 */
const FD = 7;
const Wf = (() => {
  const g = new SeedStream(3, 'init');
  return Float64Array.from({ length: FD * dim }, () => g.normal() / Math.sqrt(dim));
})();
const pre = (images: Float32Array, b: number, f: number) => {
  let s = 0;
  for (let k = 0; k < dim; k++) s += Wf[f * dim + k]! * images[b * dim + k]!;
  return s / 255 - 0.5;
};
const features: FeatureFn = async (images, n) => ({ features: Float32Array.from({ length: n * FD }, (_, q) => {
    const p = pre(images, Math.floor(q / FD), q % FD);
    return p + (p * p) / 4;
  }), dim: FD });
const featureVjp: FeatureVjpFn = async (images, n, cot) => {
  const grad = new Float64Array(n * dim);
  for (let b = 0; b < n; b++) {
    for (let f = 0; f < FD; f++) {
      const c = (cot[b * FD + f]! * (1 + pre(images, b, f) / 2)) / 255;
      for (let k = 0; k < dim; k++) grad[b * dim + k] = grad[b * dim + k]! + c * Wf[f * dim + k]!;
    }
  }
  return { grad, rows: n };
};

const dotOf = (a: Float64Array, b: Float64Array) => a.reduce((s, v, k) => s + v * b[k]!, 0);
const normal = (seed: number, n: number, scale = 1) => {
  const g = new SeedStream(seed, 'init');
  return Float64Array.from({ length: n }, () => scale * g.normal());
};

test('mixture VJP: adjoint of the closed-form JVP in x and in sigma', () => {
  const rows = 3;
  const x = normal(1, rows * dim, 0.8);
  const sigma = Float64Array.of(0.3, 1.1, 4);
  const req = { x, sigma, batch: rows };
  const u = normal(2, rows * dim);
  const v = normal(3, rows * dim);
  const ds = Float64Array.of(0.7, -1.3, 0.4);
  const { gx, gs } = mixtureVjp(mix, req, u);
  const lhs = dotOf(u, mixtureJvp(mix, req, v, new Float64Array(rows)));
  assert.ok(Math.abs(lhs - dotOf(gx, v)) <= 1e-10 * Math.abs(lhs), `x: ${lhs} vs ${dotOf(gx, v)}`);
  const jvpS = mixtureJvp(mix, req, new Float64Array(rows * dim), ds);
  const lhsS = dotOf(u, jvpS);
  const rhsS = gs.reduce((s, g, b) => s + g * ds[b]!, 0);
  assert.ok(Math.abs(lhsS - rhsS) <= 1e-10 * Math.abs(lhsS), `sigma: ${lhsS} vs ${rhsS}`);
});

interface Case {
  name: string;
  N: number;
  K: number;
  afs: boolean;
  bounds: CoefficientBounds;
  features: boolean;
}
const cases: Case[] = [
  { name: 'K=1, AFS, gamma, feature loss', N: 5, K: 1, afs: true, bounds: { scaleDir: 0.05, scaleTime: 0.2, gamma: 0.05, gammaMin: 2e-4, fcn: false }, features: true },
  { name: 'K=1, AFS, gamma, L2 only', N: 5, K: 1, afs: true, bounds: { scaleDir: 0.05, scaleTime: 0.2, gamma: 0.05, gammaMin: 2e-4, fcn: false }, features: false },
  { name: 'K=2, no AFS, fcn, no noise, feature loss', N: 4, K: 2, afs: false, bounds: { scaleDir: 0.1, scaleTime: 0.2, gamma: 0, gammaMin: 2e-4, fcn: true }, features: true },
  { name: 'K=2, no AFS, gamma, L2 only', N: 4, K: 2, afs: false, bounds: { scaleDir: 0.1, scaleTime: 0.2, gamma: 0.05, gammaMin: 2e-4, fcn: false }, features: false },
];

function setupFor(c: Case, reverseFrom: number, jvp?: { relStep: number }): { setup: TrainSetup; grads: Float64Array[] } {
  const grads: Float64Array[] = [];
  const schedule: ScheduleSpec = { numSteps: c.N, sigmaMin: 0.002, sigmaMax: 80, type: 'polynomial', rho: 7 };
  const setup: TrainSetup = {
    denoise: mixtureDenoiser(mix),
    sampleShape: [3, 4, 4],
    labelDim: 0,
    schedule,
    M: 1,
    teacher: 'dpm',
    afs: c.afs,
    bounds: c.bounds,
    numPoints: c.K,
    lr: 0.2,
    coslr: false,
    totalKimg: 1,
    batch: 4,
    seed: 5,
    alpha: 20,
    features: c.features ? features : undefined,
    jvpRelStep: jvp?.relStep ?? 1e-5,
    jvpScheme: 'forward',
    rank: 0,
    worldSize: 1,
    reduce: async (v) => {
      grads.push(Float64Array.from(v));
      return v;
    },
    reverseFrom,
    vjp: exactVjp,
    featureVjp: c.features ? featureVjp : undefined,
  };
  return { setup, grads };
}

describe('hybrid reverse mode equals forward mode (closed-form JVP and VJP of the mixture model)', () => {
  for (const c of cases) {
    test(c.name, async () => {
      const run = async (k: number, reverseFeatures = true) => {
        const { setup, grads } = setupFor(c, k);
        // The closed-form JVP replaces finite differences, so forward mode is exact too.
        const state = initState(7, c.N, c.K);
        // Forward mode differentiates the (float32) detector by central differences, exact for
        // the quadratic detector up to rounding, and up to pixels whose step straddles the clip
        // at 0 or 255: the EDM schedule (rho 7) keeps nearly all of the student's pixels inside.
        const s = { ...setup, jvp: exactJvp, jvpScheme: 'central' as const, featureRelStep: 1e-2, featureVjp: reverseFeatures ? setup.featureVjp : undefined };
        await trainBatch(s, state);
        // Two batches: the second starts from coefficients moved by the first's Adam steps.
        await trainBatch(s, state);
        return grads;
      };
      // The reference: forward mode throughout, the feature loss by finite differences.
      const ref = await run(c.N - 1, false);
      // Forward mode with the feature loss through the detector's VJP (dotted with the tangents)
      // is the hybrid's arithmetic for that loss: equal to the all-reverse split to rounding.
      if (c.features) {
        const fwdVjp = await run(c.N - 1);
        const all = await run(0);
        fwdVjp.forEach((g, q) => {
          const scale = Math.max(...all[q]!.map(Math.abs));
          g.forEach((v, p) => assert.ok(Math.abs(v - all[q]![p]!) <= 1e-8 * scale, `forward + feature VJP, reduction ${q}, entry ${p}: ${v} vs ${all[q]![p]}`));
        });
      }
      for (let k = 0; k < c.N - 1; k++) {
        const got = await run(k);
        assert.equal(got.length, ref.length);
        got.forEach((g, q) => {
          const r = ref[q]!;
          const scale = Math.max(...r.map(Math.abs));
          assert.ok(scale > 0);
          // Forward mode's feature gradient is a float32 finite difference (~1e-4 off), and the
          // Adam steps after it carry that difference into every later reduction.
          const tol = c.features && q >= c.N - 2 ? 1e-3 : 1e-8;
          r.forEach((v, p) => assert.ok(Math.abs(g[p]! - v) <= tol * scale, `k=${k}, reduction ${q}, entry ${p}: ${g[p]} vs ${v}`));
        });
      }
    });
  }
});

test("tape: one interval's loss gradient matches a central difference of the eager sampler", async () => {
  const N = 4;
  const bounds: CoefficientBounds = { scaleDir: 0.1, scaleTime: 0.2, gamma: 0.05, gammaMin: 2e-4, fcn: false };
  const tSteps = getSchedule({ numSteps: N, sigmaMin: 0.002, sigmaMax: 80, type: 'time_uniform', rho: 1 });
  const B = 3;
  const x0 = normal(9, B * dim, 80);
  const eps = [undefined, normal(10, B * dim), normal(11, B * dim)];
  const y = normal(12, B * dim, 0.5);
  const raw: RawParams = initState(3, N, 1).raw;
  // loss(raw) = |x_3 - y|^2 with x_3 from the plain sampler's step.
  const lossOf = async (r: RawParams) => {
    const coeffs = effectiveCoefficients(r, bounds);
    let x: Float64Array = x0;
    for (let i = 0; i < N - 1; i++) {
      const { EagerOps } = await import('../../src/solvers/ops.js');
      const o = new EagerOps({ batch: B, dim, denoise: mixtureDenoiser(mix), noise: () => Float64Array.from(eps[i]!) });
      const c = { r: coeffs.r[i]!, scaleDir: coeffs.scaleDir[i]!, scaleTime: coeffs.scaleTime[i]!, weight: coeffs.weight[i]!, gamma: coeffs.gamma[i]! };
      x = await adasdeStep(o, x, { i, tCur: tSteps[i]!, tNext: tSteps[i + 1]!, afs: true }, c);
    }
    return x.reduce((s, v, k) => s + (v - y[k]!) ** 2, 0);
  };
  const refs = [0, 1, 2].flatMap((i) => liveParams(i, 1, N - 1, bounds));
  const ops = new TapeOps({ denoise: mixtureDenoiser(mix), vjp: exactVjp, batch: B, dim, params: refs.length });
  const coeffs = effectiveCoefficients(raw, bounds);
  const input = ops.leaf(x0);
  let x = input;
  for (let i = 0; i < N - 1; i++) {
    ops.setNoise(eps[i]);
    x = await adasdeStep(ops, x, { i, tCur: tSteps[i]!, tNext: tSteps[i + 1]!, afs: true }, dualCoefficients(refs, i, raw, coeffs, bounds));
  }
  const seed = x.v.map((v, k) => 2 * (v - y[k]!));
  const back = await ops.backward([[x, seed]], [input]);
  assert.equal(ops.nfe, 5);
  for (const [p, ref] of refs.entries()) {
    const h = 1e-5;
    const plus = structuredClone(raw);
    const minus = structuredClone(raw);
    plus[ref.name][ref.i]![ref.j]! += h;
    minus[ref.name][ref.i]![ref.j]! -= h;
    const fd = ((await lossOf(plus)) - (await lossOf(minus))) / (2 * h);
    const got = back.paramGrad[p]!;
    assert.ok(Math.abs(got - fd) <= 1e-5 * Math.max(1, Math.abs(fd)), `${ref.name}[${ref.i}]: tape ${got}, central difference ${fd}`);
  }
});

test('row counts: the loop sends the rows gradient-plan.ts counts, forward and VJP', async () => {
  for (const c of cases) {
    for (let k = 0; k < c.N; k++) {
      const { setup } = setupFor(c, k);
      const state = initState(7, c.N, c.K);
      // Real finite differences (forward scheme) so every copy reaches the model.
      const stats = await trainBatch({ ...setup, jvpRelStep: 1e-4 }, state);
      const cost = hybridCost({ intervals: c.N - 1, numPoints: c.K, afs: c.afs, bounds: c.bounds }, k, 3);
      assert.equal(stats.studentVjpRows, setup.batch * cost.vjpRows, `${c.name}, k=${k}: VJP rows`);
      assert.equal(stats.studentRows - stats.studentVjpRows, setup.batch * cost.forwardRows, `${c.name}, k=${k}: forward rows`);
    }
  }
});

test('gradient plan: the released settings (NFE 3/5/7/9) tape their last intervals and beat forward mode', () => {
  const bounds: CoefficientBounds = { scaleDir: 0.1, scaleTime: 0.2, gamma: 0.01, gammaMin: 2e-4, fcn: false };
  // Forward mode alone (k = intervals) reproduces the counts measured before reverse mode
  // existed (bench/RESULTS.md, "Training cost": 15, 35, 63, 99 rows per trajectory).
  const expected = [15, 35, 63, 99];
  [3, 4, 5, 6].forEach((N, q) => {
    const s = { intervals: N - 1, numPoints: 1, afs: true, bounds };
    assert.equal(hybridCost(s, N - 1, 3).total, expected[q]);
    const k = bestReverseFrom(s, 3);
    assert.ok(k < N - 1 && hybridCost(s, k, 3).total < expected[q]!, `N=${N}: k=${k}`);
  });
});
