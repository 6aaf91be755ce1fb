/**
 * The tangent-carrying array operations (src/train/dual.ts) against independent truth: every
 * op's values equal the eager implementation's bit for bit, and its tangents equal central
 * differences of those values along the inputs' tangents; zero tangents stay undefined (free).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mixtureDenoise, mixtureJvp, type MixtureParams } from '../../src/solvers/analytic.js';
import { EagerOps } from '../../src/solvers/ops.js';
import { DualOps, dualScalars, type DualArray, type DualScalar } from '../../src/train/dual.js';
import type { JvpFn } from '../../src/train/jvp.js';

const batch = 2;
const dim = 4;
const n = batch * dim;
const P = 2;
const vec = (seed: number, len = n) => Float64Array.from({ length: len }, (_, k) => Math.sin(k * 1.3 + seed) * (1 + 0.3 * seed));
const mix: MixtureParams = { weights: Float64Array.of(0.7, 0.3), means: vec(9, 2 * dim), stds: Float64Array.of(0.4, 0.2) };
const exactJvp: JvpFn = async (x, sigma, rows, tangents) => {
  const req = { x, sigma, batch: rows };
  const zx = new Float64Array(x.length);
  const zs = new Float64Array(rows);
  return { D: mixtureDenoise(mix, req), dD: tangents.map((t) => mixtureJvp(mix, req, t.dx ?? zx, t.ds ?? zs)), rows };
};

/** Tangent 0 of every input is set, tangent 1 is zero everywhere. */
const dual = (seed: number, len = n): DualArray => ({ v: vec(seed, len), t: [vec(seed + 0.5, len), undefined] });
const dScalar = (v: number, d0: number): DualScalar => ({ v, d: Float64Array.of(d0, 0) });
/** The value moved by e along tangent 0. */
const moved = (a: DualArray, e: number) => a.v.map((v, k) => v + e * a.t[0]![k]!);
const movedS = (s: DualScalar, e: number) => s.v + e * s.d![0]!;

function close(a: Float64Array, b: Float64Array, tol: number, what: string): void {
  let num = 0;
  let den = 0;
  a.forEach((v, k) => {
    num += (v - b[k]!) ** 2;
    den += b[k]! ** 2;
  });
  assert.ok(Math.sqrt(num / den) < tol, `${what}: relative error ${Math.sqrt(num / den)}`);
}

test('dual scalars: values as plain numbers, derivatives as central differences', () => {
  const s = dualScalars(P);
  const a = dScalar(1.7, 0.3);
  const b = dScalar(0.45, -1.2);
  const h = 1e-6;
  const cases: [string, (x: number, y: number) => number, (x: DualScalar, y: DualScalar) => DualScalar][] = [
    ['add', (x, y) => x + y, s.add],
    ['sub', (x, y) => x - y, s.sub],
    ['mul', (x, y) => x * y, s.mul],
    ['div', (x, y) => x / y, s.div],
    ['pow', (x, y) => x ** y, s.pow],
    ['sqrt', (x) => Math.sqrt(x), (x) => s.sqrt(x)],
  ];
  for (const [name, f, g] of cases) {
    const r = g(a, b);
    assert.equal(r.v, f(a.v, b.v), name);
    const cd = (f(movedS(a, h), movedS(b, h)) - f(movedS(a, -h), movedS(b, -h))) / (2 * h);
    assert.ok(Math.abs(r.d![0]! - cd) < 1e-7 * Math.max(1, Math.abs(cd)), `${name}: ${r.d![0]} vs ${cd}`);
    assert.equal(r.d![1], 0, `${name}: a zero direction stays zero`);
  }
  assert.equal(s.mul(s.of(2), s.of(3)).d, undefined, 'constants carry no derivative');
});

test('dual ops: values equal EagerOps bit for bit, tangents equal central differences, zero tangents stay free', async () => {
  const o = new DualOps({ jvp: exactJvp, batch, dim, tangents: P });
  const e = new EagerOps({ denoise: async (req) => mixtureDenoise(mix, req), batch, dim });
  const x = dual(1);
  const y = dual(2);
  const s = dScalar(0.8, 0.25);
  const r = dScalar(1.9, -0.4);
  const steps = [dScalar(-0.3, 0.1), dScalar(-1.1, 0.7)];
  const stacked = dual(3, 2 * n);
  const stackedD = dual(4, 2 * n);
  const f = [dScalar(0.6, 0.2), dScalar(-0.9, 0.05)];
  const rs = [dScalar(1.3, 0.3), dScalar(2.2, -0.2)];
  const sig = [dScalar(1.5, 0.4), dScalar(0.7, -0.1)];
  const h = 1e-6;
  // [name, dual op, the same op on values moved by eps along tangent 0]
  const cases: [string, () => DualArray | Promise<DualArray>, (eps: number) => Float64Array | Promise<Float64Array>][] = [
    ['axpy', () => o.axpy(x, s, y), (d) => e.axpy(moved(x, d), movedS(s, d), moved(y, d))],
    ['diffOver', () => o.diffOver(x, y, r), (d) => e.diffOver(moved(x, d), moved(y, d), movedS(r, d))],
    ['scale', () => o.scale(x, s), (d) => e.scale(moved(x, d), movedS(s, d))],
    ['stackPoints', () => o.stackPoints(x, steps, y), (d) => e.stackPoints(moved(x, d), steps.map((st) => movedS(st, d)), moved(y, d))],
    ['addStackedDirections', () => o.addStackedDirections(x, f, stacked, stackedD, rs), (d) => e.addStackedDirections(moved(x, d), f.map((v) => movedS(v, d)), moved(stacked, d), moved(stackedD, d), rs.map((v) => movedS(v, d)))],
    ['denoise', () => o.denoise(stacked, sig), (d) => e.denoise(moved(stacked, d), sig.map((v) => movedS(v, d)))],
  ];
  for (const [name, run, values] of cases) {
    const out = await run();
    assert.deepEqual(out.v, await values(0), `${name}: values`);
    const plus = await values(h);
    const minus = await values(-h);
    close(out.t[0]!, plus.map((v, k) => (v - minus[k]!) / (2 * h)), 1e-6, name);
    assert.equal(out.t[1], undefined, `${name}: a tangent that is zero in every input is not computed`);
  }
  assert.equal(o.nfe, 1);
});
