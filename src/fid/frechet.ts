/**
 * Frechet distance between two Gaussians (ALGORITHM.md section 6):
 *
 *   FID = |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr (S1 S2)^(1/2)
 *
 * The reference takes the real part of the trace of `scipy.linalg.sqrtm(S1 @ S2)`: a
 * complex Schur decomposition and triangular square root of a non-symmetric matrix. Only
 * the trace is needed, and for positive semidefinite S1, S2 the eigenvalues of S1 S2 are
 * those of the symmetric semidefinite M = L^T S2 L for any factor S1 = L L^T, so
 *
 *   tr (S1 S2)^(1/2) = sum_i sqrt(max(lambda_i(M), 0)).
 *
 * Algorithm (float64 throughout; flop counts for full-rank n x n inputs):
 *  1. Pivoted (rank-revealing, semidefinite) Cholesky of S1, as LAPACK DPSTRF with its
 *     default tolerance n eps max(diag): P^T S1 P = L L^T, L n x r (n^3/3). It needs no
 *     positive definiteness: a singular covariance (fewer samples than dimensions) stops
 *     at its rank after O(n^2 r) work, and the discarded remainder is exactly the "clamp
 *     tiny negative eigenvalues to 0" the definition needs.
 *  2. M = L^T S2 L with S2 symmetrically permuted like L: written S2 = T + T^T (T its lower
 *     triangle with halved diagonal), M = Y + Y^T with X = T L (n^3/3, both triangular)
 *     and Y = L^T X (2 n^3/3) - n^3 in all, against 4/3 n^3 for the plain S2 L product.
 *  3. Householder tridiagonalisation of M, blocked as LAPACK DSYTRD (4/3 r^3: half in one
 *     memory-bound symmetric matrix-vector product per column, half in rank-64 updates);
 *     eigenvectors are never formed.
 *  4. Eigenvalues of the tridiagonal matrix by implicit QL (O(r^2)); sum of square roots.
 *  If M has eigenvalues at rounding level (|lambda| <= r eps max|lambda|), S2 is singular
 *  on the range of S1 and those eigenvalues are noise: the square roots of the ones that
 *  come out positive (~1e-8 relative each) would pollute the sum. Then S2 is factorised
 *  too and, if its rank is lower, steps 2-4 are redone with its factor outside
 *  (M = L2^T S1 L2 is then r2 x r2 and exactly of that rank). The common full-rank case
 *  pays for one factorisation only.
 *
 * ~2.7 n^3 flops in all, every O(n^3) part in the WebAssembly SIMD kernels of kernels.ts;
 * single-threaded, so the API is synchronous. Memory: two (n + 4)^2 float64 buffers and
 * ~2.5 n x 256 doubles of panels (77 MB at n = 2048), kept between calls because fresh
 * pages are expensive on first touch (releaseFrechetWorkspace drops them).
 *
 * For singular covariances scipy's sqrtm is itself off by ~1e-7 relative (square roots of
 * noise eigenvalues), so the committed fixtures also carry an exact value (the nuclear norm
 * of the sample-level cross product), which is what this implementation is checked against.
 *
 * Measured (times, kernel rates, accuracy per fixture, alternatives considered and why they
 * were not taken): bench/RESULTS.md, section "Frechet distance".
 */
import { Kernels } from './kernels.js';
import {
  allocScratch,
  congruence,
  forLowerTiles,
  paddedLd,
  pivotedCholesky,
  scratchDoubles,
  tridiagonalEigenvalues,
  tridiagonalize,
} from './linalg.js';

/** The distance and its parts, for diagnostics and tests. */
export interface FrechetDetails {
  fid: number;
  /** |mu1 - mu2|^2 */
  meanTerm: number;
  trace1: number;
  trace2: number;
  /** tr (S1 S2)^(1/2) */
  traceSqrt: number;
  /**
   * Numerical rank of S1 from its pivoted Cholesky factorisation, and of S2 when it was
   * factorised too (only when L1^T S2 L1 came out numerically singular; else null).
   */
  rank1: number;
  rank2: number | null;
  /** Eigenvalues of L^T S L that came out negative and were clamped to 0. */
  negativeEigenvalues: number;
  /**
   * The most negative eigenvalue of L^T S L over its largest |eigenvalue| (0 when none is
   * negative): rounding gives ~1e-13; a covariance that is not positive semi-definite, far more.
   */
  negativeRatio: number;
}

function checkInputs(mu1: Float64Array, s1: Float64Array, mu2: Float64Array, s2: Float64Array, dim: number): void {
  if (!Number.isInteger(dim) || dim < 0) throw new RangeError(`dim must be a non-negative integer, got ${dim}`);
  if (mu1.length !== dim || mu2.length !== dim) {
    throw new RangeError(`mean vectors must have length ${dim} (got ${mu1.length} and ${mu2.length})`);
  }
  if (s1.length !== dim * dim || s2.length !== dim * dim) {
    throw new RangeError(`covariances must have ${dim}x${dim} entries (got ${s1.length} and ${s2.length})`);
  }
  for (const [name, a] of [
    ['mu1', mu1],
    ['mu2', mu2],
    ['sigma1', s1],
    ['sigma2', s2],
  ] as const) {
    for (let i = 0; i < a.length; i++) {
      if (!Number.isFinite(a[i]!)) throw new RangeError(`${name} contains a non-finite value at index ${i}`);
    }
  }
}

/**
 * Copy the lower triangle of (S + S^T) / 2 of a row-major n x n matrix into column-major
 * storage (ld) at double index `dst` (the upper triangle is left alone). Averaging makes
 * the result independent of which triangle a slightly asymmetric input (rounding in
 * whatever produced it) would otherwise be read from; symmetric inputs are copied
 * exactly. Blocked so both the row and the column access stay in cache.
 */
function loadSymmetric(f: Float64Array, dst: number, ld: number, s: Float64Array, n: number): void {
  forLowerTiles(n, (j0, j1, i0, i1) => {
    for (let j = j0; j < j1; j++) {
      const rowJ = j * n;
      for (let i = Math.max(i0, j); i < i1; i++) f[dst + i + j * ld] = 0.5 * (s[i * n + j]! + s[rowJ + i]!);
    }
  });
}

/**
 * The working memory of the last call, kept for the next one. Why: the first touch of a
 * fresh page is slow (for the 77 MB a 2048-d distance needs, a sizeable part of the whole
 * computation; bench/RESULTS.md, section "Frechet distance"), and callers that compute
 * several distances (tests, benchmarks, periodic evaluation during training) would pay it
 * every time. Reused when large enough; releaseFrechetWorkspace() drops it.
 */
let cachedWorkspace: Kernels | undefined;

function workspaceFor(doubles: number): Kernels {
  if (cachedWorkspace && cachedWorkspace.bytes >= doubles * 8 + 64 * 64 && cachedWorkspace.bytes <= 2 * (doubles * 8) + (64 << 20)) {
    cachedWorkspace.reset();
    return cachedWorkspace;
  }
  cachedWorkspace = undefined; // let the old memory go before allocating the new one
  cachedWorkspace = Kernels.create(doubles);
  return cachedWorkspace;
}

/** Release the memory kept between frechetDistance calls (~77 MB after a 2048-d call). */
export function releaseFrechetWorkspace(): void {
  cachedWorkspace = undefined;
}

/** Eigenvalues of M with |lambda| <= r * eps * max|lambda| count as zero (rounding noise). */
const NOISE = 2 ** -52;

interface Workspace {
  K: Kernels;
  n: number;
  ld: number;
  mat: number;
  sc: ReturnType<typeof allocScratch>;
}

/**
 * T = lower triangle of S (row-major n x n), symmetrically permuted (T(i, j) =
 * S(perm[i], perm[j]), i > j), with the diagonal halved and zeros above, into column-major
 * storage at byte address `dst`. Two cache-friendly passes: column j of the buffer gathers
 * row perm[j] of S (contiguous), which is the transpose of the permuted matrix; then the
 * lower triangle averages itself with the upper in 64 x 64 blocks, so slightly asymmetric
 * input is symmetrised as in loadSymmetric.
 */
function loadPermutedLower(f: Float64Array, dst: number, ld: number, s: Float64Array, n: number, perm: Int32Array): void {
  const D = dst / 8;
  for (let j = 0; j < n; j++) {
    const row = perm[j]! * n;
    const col = D + j * ld;
    for (let i = 0; i < n; i++) f[col + i] = s[row + perm[i]!]!;
  }
  const B = 64;
  for (let jb = 0; jb < n; jb += B) {
    const je = Math.min(n, jb + B);
    for (let ib = jb; ib < n; ib += B) {
      const ie = Math.min(n, ib + B);
      for (let j = jb; j < je; j++) {
        for (let i = Math.max(ib, j + 1); i < ie; i++) {
          f[D + i + j * ld] = 0.5 * (f[D + i + j * ld]! + f[D + j + i * ld]!);
        }
      }
    }
  }
  for (let j = 0; j < n; j++) {
    const col = D + j * ld;
    f[col + j] = 0.5 * f[col + j]!;
    f.fill(0, col, col + j);
  }
}

/**
 * Steps 2-4 of the header: with the factor L (rank r, rows permuted by perm) in buffer
 * `lBuf`, build M = L^T S_other L in `mBuf` and return the sum of square roots of its
 * eigenvalues, with counts of the negative and the rounding-level ones.
 */
function sqrtTraceWithFactor(
  ws: Workspace,
  lBuf: number,
  perm: Int32Array,
  r: number,
  otherSigma: Float64Array,
  mBuf: number,
): { traceSqrt: number; negative: number; nearZero: number; negativeRatio: number } {
  const { K, n, ld, sc } = ws;
  loadPermutedLower(K.f, mBuf, ld, otherSigma, n, perm);
  congruence(K, sc, mBuf, lBuf, n, r, ld);
  const { d, e } = tridiagonalize(K, sc, mBuf, r, ld);
  const ev = tridiagonalEigenvalues(d, e);
  let max = 0;
  for (let i = 0; i < r; i++) max = Math.max(max, Math.abs(ev[i]!));
  const zeroTol = r * NOISE * max;
  let traceSqrt = 0;
  let negative = 0;
  let nearZero = 0;
  let minEv = 0;
  for (let i = 0; i < r; i++) {
    const v = ev[i]!;
    if (Math.abs(v) <= zeroTol) nearZero++;
    if (v > 0) traceSqrt += Math.sqrt(v);
    else if (v < 0) negative++;
    minEv = Math.min(minEv, v);
  }
  return { traceSqrt, negative, nearZero, negativeRatio: max > 0 ? -minEv / max : 0 };
}

/**
 * tr((S1 S2)^(1/2)) for symmetric positive semidefinite S1, S2 (row-major dim x dim), with
 * the ranks found on the way. See the file header for the method. Working memory: two
 * (dim + 4)^2 float64 buffers plus ~2.5 dim x 256 doubles of panels (77 MB at dim 2048).
 */
export function traceSqrtProduct(
  sigma1: Float64Array,
  sigma2: Float64Array,
  dim: number,
): { traceSqrt: number; rank1: number; rank2: number | null; negativeEigenvalues: number; negativeRatio: number } {
  const n = dim;
  if (n === 0) return { traceSqrt: 0, rank1: 0, rank2: null, negativeEigenvalues: 0, negativeRatio: 0 };
  const ld = paddedLd(n);
  const mat = ld * ld;
  const K = workspaceFor(2 * mat + scratchDoubles(n).reduce((a, b) => a + b, 0) + 8 * 64);
  const b1 = K.alloc(mat);
  const b2 = K.alloc(mat);
  const ws: Workspace = { K, n, ld, mat, sc: allocScratch(K, n) };
  // A reused workspace holds the previous call's data; padding must be zero (the scratch
  // buffers are always written before they are read).
  K.f.fill(0, b1 / 8, b1 / 8 + mat);
  K.f.fill(0, b2 / 8, b2 / 8 + mat);

  const perm1 = new Int32Array(n);
  loadSymmetric(K.f, b1 / 8, ld, sigma1, n);
  const rank1 = pivotedCholesky(K, ws.sc, b1, n, ld, perm1);
  if (rank1 === 0) return { traceSqrt: 0, rank1, rank2: null, negativeEigenvalues: 0, negativeRatio: 0 };
  const first = sqrtTraceWithFactor(ws, b1, perm1, rank1, sigma2, b2);
  if (first.nearZero === 0) {
    return { traceSqrt: first.traceSqrt, rank1, rank2: null, negativeEigenvalues: first.negative, negativeRatio: first.negativeRatio };
  }
  // M is numerically singular: S2 is rank-deficient on the range of S1, and the square
  // roots of M's noise eigenvalues (~sqrt(eps)) pollute the sum. If S2 has lower rank,
  // redo the computation with its factor outside, where that noise does not arise.
  const perm2 = new Int32Array(n);
  K.f.fill(0, b2 / 8, b2 / 8 + mat);
  loadSymmetric(K.f, b2 / 8, ld, sigma2, n);
  const rank2 = pivotedCholesky(K, ws.sc, b2, n, ld, perm2);
  if (rank2 >= rank1) {
    return { traceSqrt: first.traceSqrt, rank1, rank2, negativeEigenvalues: first.negative, negativeRatio: first.negativeRatio };
  }
  if (rank2 === 0) return { traceSqrt: 0, rank1, rank2, negativeEigenvalues: 0, negativeRatio: first.negativeRatio };
  K.f.fill(0, b1 / 8, b1 / 8 + mat);
  const second = sqrtTraceWithFactor(ws, b2, perm2, rank2, sigma1, b1);
  return { traceSqrt: second.traceSqrt, rank1, rank2, negativeEigenvalues: second.negative, negativeRatio: Math.max(first.negativeRatio, second.negativeRatio) };
}

/** The Frechet distance with its parts; see frechetDistance. */
export function frechetDetails(
  mu1: Float64Array,
  sigma1: Float64Array,
  mu2: Float64Array,
  sigma2: Float64Array,
  dim: number,
): FrechetDetails {
  checkInputs(mu1, sigma1, mu2, sigma2, dim);
  let meanTerm = 0;
  for (let i = 0; i < dim; i++) {
    const t = mu1[i]! - mu2[i]!;
    meanTerm += t * t;
  }
  let trace1 = 0;
  let trace2 = 0;
  for (let i = 0; i < dim; i++) {
    trace1 += sigma1[i * dim + i]!;
    trace2 += sigma2[i * dim + i]!;
  }
  const t = traceSqrtProduct(sigma1, sigma2, dim);
  return { fid: meanTerm + trace1 + trace2 - 2 * t.traceSqrt, meanTerm, trace1, trace2, ...t };
}

/**
 * Frechet distance between N(mu1, sigma1) and N(mu2, sigma2): means of length dim,
 * covariances row-major dim x dim (symmetric positive semidefinite, as from FeatureStats
 * or a reference .npz). Synchronous, single-threaded (timings: bench/RESULTS.md, "Frechet distance").
 * Throws RangeError on mismatched sizes or non-finite input.
 */
export function frechetDistance(
  mu1: Float64Array,
  sigma1: Float64Array,
  mu2: Float64Array,
  sigma2: Float64Array,
  dim: number,
): number {
  return frechetDetails(mu1, sigma1, mu2, sigma2, dim).fid;
}

/**
 * Negative eigenvalues of L^T S L beyond this fraction of the largest mean a covariance that
 * is not positive semi-definite. Rounding stays near 1e-13; float32-stored statistics at
 * n = 2048 below ~1e-5.
 */
export const NOT_PSD_RATIO = 1e-4;

/**
 * Why a computed distance cannot be trusted, or undefined: a significantly negative
 * eigenvalue of L^T S L or a negative distance beyond rounding both mean one of the
 * "covariances" is not positive semi-definite (a hand-made or corrupted statistics file).
 */
export function distanceProblem(d: FrechetDetails): string | undefined {
  const scale = d.meanTerm + d.trace1 + d.trace2;
  if (d.negativeRatio > NOT_PSD_RATIO || d.fid < -1e-6 * Math.max(scale, 1e-300)) {
    return `the covariances are not both positive semi-definite (an eigenvalue of relative size -${d.negativeRatio.toPrecision(3)}; the distance would be ${d.fid.toPrecision(6)})`;
  }
  return undefined;
}

/**
 * The most negative eigenvalue of a symmetric matrix over its largest |eigenvalue| (0 when
 * none is negative): the direct test that a reference `sigma` is a covariance, which the
 * distance itself cannot always make (a low-rank S1 hides the directions where S2 is
 * negative). Householder tridiagonalisation and QL as in the distance, ~4/3 n^3 flops
 * (about as long as one distance at n = 2048; once per reference file).
 */
export function negativeEigenvalueRatio(sigma: Float64Array, dim: number): number {
  const n = dim;
  if (n === 0) return 0;
  if (sigma.length !== n * n) throw new RangeError(`covariance must have ${n}x${n} entries (got ${sigma.length})`);
  const ld = paddedLd(n);
  const mat = ld * ld;
  const K = workspaceFor(2 * mat + scratchDoubles(n).reduce((a, b) => a + b, 0) + 8 * 64);
  const b1 = K.alloc(mat);
  K.f.fill(0, b1 / 8, b1 / 8 + mat);
  const sc = allocScratch(K, n);
  loadSymmetric(K.f, b1 / 8, ld, sigma, n);
  const { d, e } = tridiagonalize(K, sc, b1, n, ld);
  const ev = tridiagonalEigenvalues(d, e);
  let max = 0;
  let min = 0;
  for (let i = 0; i < n; i++) {
    max = Math.max(max, Math.abs(ev[i]!));
    min = Math.min(min, ev[i]!);
  }
  return max > 0 ? -min / max : 0;
}
