/**
 * The WebAssembly kernels and the blocked factorisations behind frechet.ts, checked
 * against naive JavaScript on sizes that are not multiples of the 4x4 tiles or the
 * panel widths.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Kernels, packN, packT } from '../../src/fid/kernels.js';
import {
  allocScratch,
  congruence,
  paddedLd,
  pivotedCholesky,
  scratchDoubles,
  tridiagonalEigenvalues,
  tridiagonalize,
} from '../../src/fid/linalg.js';
import { sleb, uleb } from '../../src/fid/wasm.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

/** Symmetric PSD n x n (column-major = row-major) of rank <= k, plus shift * I. */
function psd(n: number, k: number, shift: number, seed: number): Float64Array {
  const r = rng(seed);
  const x = Float64Array.from({ length: n * k }, r);
  const s = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let t = 0;
      for (let c = 0; c < k; c++) t += x[i * k + c]! * x[j * k + c]!;
      if (i === j) t += shift;
      s[i * n + j] = t;
      s[j * n + i] = t;
    }
  }
  return s;
}

function workspace(n: number, matrices: number): { K: Kernels; ld: number; bufs: number[]; sc: ReturnType<typeof allocScratch> } {
  const ld = paddedLd(n);
  const K = Kernels.create(matrices * ld * ld + scratchDoubles(n).reduce((a, b) => a + b, 0) + 64 * 16);
  const bufs = Array.from({ length: matrices }, () => K.alloc(ld * ld));
  return { K, ld, bufs, sc: allocScratch(K, n) };
}

function put(K: Kernels, addr: number, ld: number, s: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) for (let i = 0; i < n; i++) K.f[addr / 8 + i + j * ld] = s[i * n + j]!;
}

describe('wasm emitter', () => {
  it('LEB128 encodings', () => {
    assert.deepEqual(uleb(0), [0]);
    assert.deepEqual(uleb(624485), [0xe5, 0x8e, 0x26]);
    assert.deepEqual(sleb(-1), [0x7f]);
    assert.deepEqual(sleb(-123456), [0xc0, 0xbb, 0x78]);
    assert.deepEqual(sleb(64), [0xc0, 0x00]);
  });
});

describe('kernels', () => {
  it('mm on packed panels equals the naive product (odd sizes, alpha)', () => {
    const K = Kernels.create(20000);
    const f = K.f;
    const r = rng(1);
    const m = 13, n = 10, k = 7, ld = 17;
    const A = K.alloc(ld * k);
    const B = K.alloc(ld * n); // B stored transposed-readable: X(j, kk) = B[kk + j*ld]
    const C = K.alloc(ld * 16);
    for (let i = 0; i < ld * k; i++) f[A / 8 + i] = r();
    for (let i = 0; i < ld * n; i++) f[B / 8 + i] = r();
    const pa = K.alloc(16 * k);
    const pb = K.alloc(12 * k);
    packN(f, A / 8, ld, 0, m, 0, k, pa / 8, k, 0);
    packT(f, B / 8, ld, 0, n, 0, k, pb / 8, k, 0);
    K.k.mm(pa, pb, k, C, ld, 4, 3, -0.5);
    let err = 0;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let t = 0;
        for (let c = 0; c < k; c++) t += f[A / 8 + i + c * ld]! * f[B / 8 + c + j * ld]!;
        err = Math.max(err, Math.abs(f[C / 8 + i + j * ld]! + 0.5 * t));
      }
    }
    assert.ok(err < 1e-15, `${err}`);
  });

  it('gemvN, gemvT and symvL equal naive loops for every small length', () => {
    const K = Kernels.create(20000);
    const f = K.f;
    const r = rng(2);
    const ld = 11;
    const A = K.alloc(ld * 11);
    for (let i = 0; i < ld * 11; i++) f[A / 8 + i] = r();
    const x = K.alloc(16);
    const y = K.alloc(16);
    for (let m = 0; m <= 11; m++) {
      for (let i = 0; i < 16; i++) {
        f[x / 8 + i] = r();
        f[y / 8 + i] = r();
      }
      const y0 = f.slice(y / 8, y / 8 + 16);
      K.k.gemvN(A, ld, m, 5, x, y, 0.75);
      for (let i = 0; i < 16; i++) {
        let t = y0[i]!;
        if (i < m) for (let j = 0; j < 5; j++) t += 0.75 * f[A / 8 + i + j * ld]! * f[x / 8 + j]!;
        assert.ok(Math.abs(f[y / 8 + i]! - t) < 1e-15, `gemvN m=${m} i=${i}`);
      }
      const y1 = f.slice(y / 8, y / 8 + 16);
      K.k.gemvT(A, ld, m, 6, x, y, -1.5);
      for (let j = 0; j < 16; j++) {
        let t = y1[j]!;
        if (j < 6) {
          let dot = 0;
          for (let i = 0; i < m; i++) dot += f[A / 8 + i + j * ld]! * f[x / 8 + i]!;
          t += -1.5 * dot;
        }
        assert.ok(Math.abs(f[y / 8 + j]! - t) < 1e-15, `gemvT m=${m} j=${j}`);
      }
      const tail = f[y / 8 + m]!;
      K.k.symvL(A, ld, m, x, y);
      for (let i = 0; i < m; i++) {
        let t = 0;
        for (let j = 0; j < m; j++) t += f[A / 8 + Math.max(i, j) + Math.min(i, j) * ld]! * f[x / 8 + j]!;
        assert.ok(Math.abs(f[y / 8 + i]! - t) < 1e-15, `symvL m=${m} i=${i}`);
      }
      assert.equal(f[y / 8 + m], tail, 'symvL writes only y[0:m]');
    }
  });
});

describe('pivoted Cholesky', () => {
  for (const [n, k] of [
    [1, 1],
    [7, 7],
    [70, 70],
    [130, 57],
    [133, 1],
  ] as const) {
    it(`n=${n}, rank ${k}: P^T A P = L L^T and the rank is found`, () => {
      const a = psd(n, k, 0, n * 31 + k);
      const { K, ld, bufs, sc } = workspace(n, 1);
      const b = bufs[0]!;
      put(K, b, ld, a, n);
      const perm = new Int32Array(n);
      const r = pivotedCholesky(K, sc, b, n, ld, perm);
      assert.equal(r, k);
      assert.deepEqual([...perm].sort((p, q) => p - q), Array.from({ length: n }, (_, i) => i));
      const L = (i: number, j: number): number => K.f[b / 8 + i + j * ld]!;
      let err = 0;
      let scale = 0;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          if (j > i || j >= r) assert.equal(L(i, j), 0);
          let t = 0;
          for (let c = 0; c < r; c++) t += L(i, c) * L(j, c);
          err = Math.max(err, Math.abs(t - a[perm[i]! * n + perm[j]!]!));
          scale = Math.max(scale, Math.abs(a[i * n + j]!));
        }
      }
      assert.ok(err < 1e-12 * scale * n, `reconstruction error ${err}`);
      // Diagonal pivoting: the diagonal of L is non-increasing.
      for (let j = 1; j < r; j++) assert.ok(L(j, j) <= L(j - 1, j - 1) * (1 + 1e-12));
    });
  }
  it('stops at an indefinite remainder (clamps negative curvature to zero)', () => {
    const n = 5;
    const a = new Float64Array(n * n);
    [4, 1, -1, 2, -3].forEach((v, i) => (a[i * n + i] = v));
    const { K, ld, bufs, sc } = workspace(n, 1);
    put(K, bufs[0]!, ld, a, n);
    const perm = new Int32Array(n);
    assert.equal(pivotedCholesky(K, sc, bufs[0]!, n, ld, perm), 3);
    assert.deepEqual([...perm.slice(0, 3)], [0, 3, 1]);
  });
});

describe('congruence and tridiagonalisation', () => {
  it('L^T S L in place, tridiagonal invariants and eigenvalues (n=300: several blocks and panels)', () => {
    const n = 300;
    const s1 = psd(n, n + 3, 0.1, 5);
    const s2 = psd(n, n, 0.2, 6);
    const { K, ld, bufs, sc } = workspace(n, 2);
    const [b1, b2] = bufs as [number, number];
    const f = K.f;
    put(K, b1, ld, s1, n);
    const perm = new Int32Array(n);
    const r = pivotedCholesky(K, sc, b1, n, ld, perm);
    assert.equal(r, n);
    // T = lower(S2 permuted) with halved diagonal
    for (let j = 0; j < n; j++) {
      f[b2 / 8 + j + j * ld] = 0.5 * s2[perm[j]! * n + perm[j]!]!;
      for (let i = j + 1; i < n; i++) f[b2 / 8 + i + j * ld] = s2[perm[i]! * n + perm[j]!]!;
    }
    congruence(K, sc, b2, b1, n, r, ld);
    // Naive M = L^T Sp L
    const L = (i: number, j: number): number => f[b1 / 8 + i + j * ld]!;
    const sp = (i: number, j: number): number => s2[perm[i]! * n + perm[j]!]!;
    const w = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let t = 0;
        for (let k = 0; k < n; k++) t += sp(i, k) * L(k, j);
        w[i * n + j] = t;
      }
    }
    let trace = 0;
    let frob = 0;
    let err = 0;
    let scale = 0;
    for (let j = 0; j < n; j++) {
      for (let i = j; i < n; i++) {
        let t = 0;
        for (let k = 0; k < n; k++) t += L(k, i) * w[k * n + j]!;
        err = Math.max(err, Math.abs(f[b2 / 8 + i + j * ld]! - t));
        scale = Math.max(scale, Math.abs(t));
        if (i === j) trace += t;
        frob += (i === j ? 1 : 2) * t * t;
      }
    }
    assert.ok(err < 1e-12 * scale, `congruence error ${err / scale}`);
    const { d, e } = tridiagonalize(K, sc, b2, n, ld);
    let tr2 = 0;
    let fr2 = 0;
    for (let i = 0; i < n; i++) {
      tr2 += d[i]!;
      fr2 += d[i]! * d[i]!;
    }
    for (let i = 0; i < n - 1; i++) fr2 += 2 * e[i]! * e[i]!;
    assert.ok(Math.abs(tr2 - trace) < 1e-12 * Math.abs(trace), 'trace preserved');
    assert.ok(Math.abs(fr2 - frob) < 1e-12 * frob, 'Frobenius norm preserved');
    const ev = tridiagonalEigenvalues(d, e);
    let sum = 0;
    let sq = 0;
    for (const v of ev) {
      assert.ok(v > 0, 'M is positive definite');
      sum += v;
      sq += v * v;
    }
    assert.ok(Math.abs(sum - trace) < 1e-12 * trace && Math.abs(sq - frob) < 1e-12 * frob);
  });

  it('tridiagonal QL reproduces the second-difference spectrum 2 - 2 cos(k pi / (n + 1))', () => {
    for (const n of [1, 2, 5, 200]) {
      const d = new Float64Array(n).fill(2);
      const e = new Float64Array(Math.max(0, n - 1)).fill(-1);
      const ev = [...tridiagonalEigenvalues(d, e)].sort((a, b) => a - b);
      ev.forEach((v, k) => assert.ok(Math.abs(v - (2 - 2 * Math.cos(((k + 1) * Math.PI) / (n + 1)))) < 1e-13));
    }
  });
});
