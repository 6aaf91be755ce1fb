/**
 * Blocked dense symmetric linear algebra for the Frechet distance (see frechet.ts for why
 * these particular steps). Everything works on column-major float64 matrices inside a
 * `Kernels` memory, reads and writes only the lower triangle of symmetric matrices, and
 * follows the corresponding LAPACK routines (DPSTRF, DSYTRD/DLATRD/DSYTD2, DLARFG) so that
 * their error analyses apply; the eigenvalue iteration is the implicit QL of EISPACK's
 * tql1 (as in JAMA). Addresses (`a`, `w`, ...) are byte offsets into the kernel memory and
 * `ld` counts doubles.
 *
 * Storage contract: every n x n matrix handed to these routines has ld >= roundUp4(n) + 4
 * and at least that many columns of storage, because the 4x4 tiles of the rank-k updates
 * may run up to 3 rows/columns past the end of a trailing block (they add exact zeros
 * there) and may write into the unused upper triangle inside diagonal blocks.
 */
import { MR, packN, packT, type Kernels } from './kernels.js';

/** Panel width of the pivoted Cholesky (columns factorised before each rank-k update). */
const NB_CHOL = 64;
/** Panel width of the tridiagonal reduction (LAPACK's default for DSYTRD). */
const NB_TRD = 32;
/** Depth of one packed gemm block (doubles per packed row). */
export const KC = 256;
/** Rows of packed A per gemm block: 256 x 256 doubles = 512 KiB, within L2. */
export const MCB = 256;

const EPS = 2 ** -52;

export const roundUp4 = (n: number): number => Math.ceil(n / MR) * MR;
/** Leading dimension to allocate for an n x n matrix (see the storage contract above). */
export const paddedLd = (n: number): number => roundUp4(n) + MR;

/** Doubles of packing space the routines below need for matrices of size <= n. */
export function packDoubles(n: number): { a: number; b: number } {
  const ldp = paddedLd(n);
  return {
    a: Math.max(MCB * KC, ldp * 2 * NB_TRD, ldp * NB_CHOL),
    b: Math.max(KC * ldp, ldp * 2 * NB_TRD, ldp * NB_CHOL),
  };
}

/** Scratch needed by the routines: packing buffers and vectors, as byte addresses. */
export interface Scratch {
  packA: number;
  packB: number;
  /** Panel for congruence(): paddedLd(n) x max(MCB, KC) doubles. */
  tmp: number;
  /** ld doubles each. */
  x: number;
  y: number;
  /** The DLATRD work panel: ld x NB_TRD. */
  wPanel: number;
}

export function scratchDoubles(n: number): number[] {
  const p = packDoubles(n);
  const ld = paddedLd(n);
  return [p.a, p.b, ld * Math.max(MCB, KC), ld, ld, ld * NB_TRD];
}

export function allocScratch(K: Kernels, n: number): Scratch {
  const [a, b, tmp, x, y, w] = scratchDoubles(n) as [number, number, number, number, number, number];
  return { packA: K.alloc(a), packB: K.alloc(b), tmp: K.alloc(tmp), x: K.alloc(x), y: K.alloc(y), wPanel: K.alloc(w) };
}

/**
 * C (m x m, lower part, at byte address c) += alpha * X Y^T where X and Y (m x kb) are
 * already packed into 4-row panels of depth kb at pa and pb. Whole 4x4 tiles are
 * computed, so tiles straddling the diagonal also write the strict upper triangle of the
 * diagonal blocks (harmless by the storage contract).
 */
export function lowerUpdate(
  K: Kernels,
  c: number,
  ldc: number,
  m: number,
  pa: number,
  pb: number,
  kb: number,
  alpha: number,
): void {
  for (let ic = 0; ic < m; ic += MCB) {
    const mb = Math.min(MCB, m - ic);
    const mt = Math.ceil(mb / MR);
    const nt = Math.ceil((ic + mb) / MR);
    K.k.mm(pa + ic * kb * 8, pb, kb, c + ic * 8, ldc, mt, nt, alpha);
  }
}

/**
 * Pivoted (semidefinite) Cholesky factorisation, LAPACK DPSTRF with its default tolerance:
 * P^T A P = L L^T where A (n x n, lower triangle at `a`) is overwritten by L, perm[k] is the
 * original index of row/column k, and the factorisation stops at the first pivot (the
 * largest remaining diagonal of the Schur complement) <= n * eps * max(diag A). Returns the
 * rank r. On return columns r.. of L and the strict upper triangle are zero, so `a` holds
 * exactly the n x r factor.
 *
 * Why pivoting: covariances from fewer samples than dimensions are singular (rank
 * samples - 1) and rounding makes them slightly indefinite; complete pivoting on the
 * diagonal makes the factorisation rank-revealing and backward stable for semidefinite
 * matrices, and the zero remainder is exactly the "clamp tiny negative eigenvalues to 0"
 * that the FID definition needs.
 */
export function pivotedCholesky(K: Kernels, s: Scratch, a: number, n: number, ld: number, perm: Int32Array): number {
  const f = K.f;
  const A = a / 8;
  for (let i = 0; i < n; i++) perm[i] = i;
  let dmax = 0;
  for (let i = 0; i < n; i++) dmax = Math.max(dmax, f[A + i + i * ld]!);
  const tol = n * EPS * dmax;
  // diag[i]: A(i,i) as of the start of the panel (read once per panel: the diagonal is a
  // cache miss per element); work[i]: sum of squares of row i over the panel's finished
  // columns. The Schur complement's diagonal is diag[i] - work[i] (the trailing matrix is
  // only updated once per panel).
  const diag = new Float64Array(n);
  const work = new Float64Array(n);
  let rank = n;
  const xv = s.x / 8;

  outer: for (let k = 0; k < n; k += NB_CHOL) {
    const jb = Math.min(NB_CHOL, n - k);
    work.fill(0, k, n);
    for (let i = k; i < n; i++) diag[i] = f[A + i + i * ld]!;
    for (let j = k; j < k + jb; j++) {
      let pvt = j;
      let ajj = -Infinity;
      const prev = A + (j - 1) * ld;
      for (let i = j; i < n; i++) {
        if (j > k) {
          const v = f[prev + i]!;
          work[i] = work[i]! + v * v;
        }
        const di = diag[i]! - work[i]!;
        if (di > ajj) {
          ajj = di;
          pvt = i;
        }
      }
      if (!(ajj > tol)) {
        rank = j;
        break outer;
      }
      if (pvt !== j) {
        // Symmetric interchange of rows/columns j and pvt in the lower triangle.
        f[A + pvt + pvt * ld] = f[A + j + j * ld]!;
        for (let c = 0; c < j; c++) {
          const p = A + c * ld;
          const t = f[p + j]!;
          f[p + j] = f[p + pvt]!;
          f[p + pvt] = t;
        }
        for (let i = pvt + 1; i < n; i++) {
          const t = f[A + i + j * ld]!;
          f[A + i + j * ld] = f[A + i + pvt * ld]!;
          f[A + i + pvt * ld] = t;
        }
        for (let i = j + 1; i < pvt; i++) {
          const t = f[A + i + j * ld]!;
          f[A + i + j * ld] = f[A + pvt + i * ld]!;
          f[A + pvt + i * ld] = t;
        }
        const tw = work[j]!;
        work[j] = work[pvt]!;
        work[pvt] = tw;
        const td = diag[j]!;
        diag[j] = diag[pvt]!;
        diag[pvt] = td;
        const tp = perm[j]!;
        perm[j] = perm[pvt]!;
        perm[pvt] = tp;
      }
      const ljj = Math.sqrt(ajj);
      f[A + j + j * ld] = ljj;
      const m = n - j - 1;
      if (m > 0) {
        if (j > k) {
          // A(j+1:n, j) -= A(j+1:n, k:j-1) * A(j, k:j-1)^T
          for (let c = k; c < j; c++) f[xv + c - k] = f[A + j + c * ld]!;
          K.k.gemvN(a + (j + 1 + k * ld) * 8, ld, m, j - k, s.x, a + (j + 1 + j * ld) * 8, -1);
        }
        const inv = 1 / ljj;
        const col = A + j * ld;
        for (let i = j + 1; i < n; i++) f[col + i] = f[col + i]! * inv;
      }
    }
    // Trailing update A(k+jb:n, k+jb:n) -= P P^T with P = A(k+jb:n, k:k+jb-1).
    const t0 = k + jb;
    const m = n - t0;
    if (m > 0) {
      packN(f, A + t0, ld, 0, m, k, jb, s.packA / 8, jb, 0);
      lowerUpdate(K, a + (t0 + t0 * ld) * 8, ld, m, s.packA, s.packA, jb, -1);
    }
  }
  // Clean up: strict upper triangle (holds input values and tile spill) and the unfinished
  // Schur complement in columns rank.. (rows >= rank) become zero.
  for (let j = 0; j < n; j++) {
    const col = A + j * ld;
    if (j < rank) f.fill(0, col, col + j);
    else f.fill(0, col, col + n);
  }
  return rank;
}

/**
 * M = L^T S L in place: on entry `t` holds T, the lower triangle of S (n x n) with its
 * diagonal halved and zeros above, so S = T + T^T; `l` holds L (n x r lower trapezoidal,
 * zero above the diagonal and right of column r). On return the lower triangle of the
 * leading r x r block of `t` is M, since
 *
 *   L^T S L = Y + Y^T,   Y = L^T X,   X = T L.
 *
 * X (n x r, lower trapezoidal: n r^2/3 flops at r = n) replaces T block row by block row
 * (a block row of X needs only the same block row of T), then Y (r x r, a full product
 * over k >= max(i, j): 2 r^3/3 flops) replaces X block column by block column (a block
 * column of Y needs only the same block column of X), each through the scratch panel
 * `s.tmp`. Total n^3 at full rank, against 4/3 n^3 for W = S L followed by the lower half
 * of L^T W, and no third n x n buffer: fresh memory is expensive on first touch of each
 * page (bench/RESULTS.md, section "Frechet distance").
 */
export function congruence(K: Kernels, s: Scratch, t: number, l: number, n: number, r: number, ld: number): void {
  const f = K.f;
  const T = t / 8;
  const C = s.tmp / 8;
  // X = T L, block row I = [i0, i0 + mb): X(I, j) = sum_{k <= i} T(I, k) L(k, j), j <= i.
  for (let i0 = 0; i0 < n; i0 += MCB) {
    const mb = Math.min(MCB, n - i0);
    const iEnd = i0 + mb;
    const cols = Math.min(r, iEnd);
    f.fill(0, C, C + MCB * roundUp4(cols));
    for (let pc = 0; pc < iEnd; pc += KC) {
      const kb = Math.min(KC, iEnd - pc);
      const colsB = Math.min(r, pc + kb);
      if (colsB <= 0) continue;
      packN(f, T, ld, i0, mb, pc, kb, s.packA / 8, kb, 0);
      packT(f, l / 8, ld, 0, colsB, pc, kb, s.packB / 8, kb, 0);
      K.k.mm(s.packA, s.packB, kb, s.tmp, MCB, Math.ceil(mb / MR), Math.ceil(colsB / MR), 1);
    }
    for (let j = 0; j < n; j++) {
      const dst = T + i0 + j * ld;
      if (j < cols) f.set(f.subarray(C + j * MCB, C + j * MCB + mb), dst);
      else f.fill(0, dst, dst + mb);
    }
  }
  // Y = L^T X, block column J = [j0, j0 + nb): Y(i, J) = sum_{k >= max(i, j0)} L(k, i) X(k, J).
  const rp = roundUp4(r);
  for (let j0 = 0; j0 < r; j0 += KC) {
    const nb = Math.min(KC, r - j0);
    f.fill(0, C, C + rp * roundUp4(nb));
    for (let pc = j0 - (j0 % KC); pc < n; pc += KC) {
      const kb = Math.min(KC, n - pc);
      const rows = Math.min(r, pc + kb);
      packT(f, T, ld, j0, nb, pc, kb, s.packB / 8, kb, 0);
      for (let ic = 0; ic < rows; ic += MCB) {
        const mb = Math.min(MCB, rows - ic);
        packT(f, l / 8, ld, ic, mb, pc, kb, s.packA / 8, kb, 0);
        K.k.mm(s.packA, s.packB, kb, s.tmp + ic * 8, rp, Math.ceil(mb / MR), Math.ceil(nb / MR), 1);
      }
    }
    for (let j = j0; j < j0 + nb; j++) f.set(f.subarray(C + (j - j0) * rp, C + (j - j0) * rp + r), T + j * ld);
  }
  // M = Y + Y^T, lower triangle in place (tiled: Y(j, i) is a strided read).
  forLowerTiles(r, (j0, j1, i0, i1) => {
    for (let j = j0; j < j1; j++) {
      for (let i = Math.max(i0, j); i < i1; i++) f[T + i + j * ld] = f[T + i + j * ld]! + f[T + j + i * ld]!;
    }
  });
}

/** Edge of the square tiles of `forLowerTiles`. */
const TILE = 64;

/**
 * Visits the lower triangle of an n x n matrix in 64 x 64 tiles: `tile(j0, j1, i0, i1)` for
 * column blocks left to right and, in each, row blocks from the diagonal down; the caller
 * covers j in [j0, j1), i in [max(i0, j), i1) (a diagonal tile is cut to its lower half). Why
 * tiles: loops that read or write element (i, j) and its transpose (j, i) together stride
 * through a whole column per element otherwise, and the cache and TLB misses cost several times
 * the arithmetic at n = 2048.
 */
export function forLowerTiles(n: number, tile: (j0: number, j1: number, i0: number, i1: number) => void): void {
  for (let j0 = 0; j0 < n; j0 += TILE) {
    const j1 = Math.min(n, j0 + TILE);
    for (let i0 = j0; i0 < n; i0 += TILE) tile(j0, j1, i0, Math.min(n, i0 + TILE));
  }
}

/** Euclidean norm of f[p .. p+len), scaled only when the plain sum of squares would misbehave. */
function nrm2(f: Float64Array, p: number, len: number): number {
  let ss = 0;
  for (let i = 0; i < len; i++) ss += f[p + i]! * f[p + i]!;
  if (ss > 1e-290 && ss < 1e290) return Math.sqrt(ss);
  let scale = 0;
  for (let i = 0; i < len; i++) scale = Math.max(scale, Math.abs(f[p + i]!));
  if (scale === 0 || !Number.isFinite(scale)) return scale;
  ss = 0;
  for (let i = 0; i < len; i++) {
    const t = f[p + i]! / scale;
    ss += t * t;
  }
  return scale * Math.sqrt(ss);
}

/**
 * LAPACK DLARFG: the Householder reflector H = I - tau v v^T with v = [1; x] such that
 * H [alpha; x] = [beta; 0]. alpha is f[pa], x is f[px .. px+len-1) (len = order - 1).
 * Overwrites alpha by beta and x by v(2:end); returns tau.
 */
function householder(f: Float64Array, pa: number, px: number, len: number): number {
  if (len <= 0) return 0;
  const xnorm = nrm2(f, px, len);
  if (xnorm === 0) return 0;
  const alpha = f[pa]!;
  const h = Math.hypot(alpha, xnorm);
  const beta = alpha >= 0 ? -h : h;
  const tau = (beta - alpha) / beta;
  const sc = 1 / (alpha - beta);
  for (let i = 0; i < len; i++) f[px + i] = f[px + i]! * sc;
  f[pa] = beta;
  return tau;
}

/**
 * Householder reduction of a symmetric matrix (n x n, lower triangle at `a`) to
 * tridiagonal form T = Q^T A Q, LAPACK DSYTRD('L'): panels of NB_TRD columns are reduced by
 * DLATRD (one symmetric matrix-vector product with the not-yet-updated trailing matrix per
 * column, the memory-bound half of the 4/3 n^3 flops), then the trailing matrix gets one
 * rank-2k update A -= V W^T + W V^T (the matrix-multiply half, at full kernel speed).
 * The last <= NB_TRD columns use the unblocked DSYTD2. Returns the diagonal d (n) and the
 * subdiagonal e (n - 1, e[i] = T(i+1, i)); Q is not formed (only eigenvalues are needed).
 */
export function tridiagonalize(
  K: Kernels,
  s: Scratch,
  a: number,
  n: number,
  ld: number,
): { d: Float64Array; e: Float64Array } {
  const f = K.f;
  const A = a / 8;
  const d = new Float64Array(n);
  const e = new Float64Array(Math.max(0, n - 1));
  const W = s.wPanel / 8;
  const ldw = ld;
  const xv = s.x / 8;
  const nb = NB_TRD;
  let st = 0;
  // Blocked part: while more than nb columns would remain after the panel.
  for (; n - st > 2 * nb; st += nb) {
    const N = n - st;
    const a0 = A + st + st * ld; // element (i, j) of the trailing matrix: f[a0 + i + j*ld]
    const ab = a0 * 8;
    f.fill(0, W, W + ldw * nb);
    for (let i = 0; i < nb; i++) {
      if (i > 0) {
        // A(i:N, i) -= A(i:N, 0:i) W(i, 0:i)^T + W(i:N, 0:i) A(i, 0:i)^T
        for (let c = 0; c < i; c++) f[xv + c] = f[W + i + c * ldw]!;
        K.k.gemvN(ab + i * 8, ld, N - i, i, s.x, ab + (i + i * ld) * 8, -1);
        for (let c = 0; c < i; c++) f[xv + c] = f[a0 + i + c * ld]!;
        K.k.gemvN(s.wPanel + i * 8, ldw, N - i, i, s.x, ab + (i + i * ld) * 8, -1);
      }
      // Reflector annihilating A(i+2:N, i).
      const col = a0 + i * ld;
      const tau = householder(f, col + i + 1, col + i + 2, N - i - 2);
      e[st + i] = f[col + i + 1]!;
      f[col + i + 1] = 1;
      const m = N - i - 1;
      const v = (col + i + 1) * 8;
      const wi = s.wPanel + (i + 1 + i * ldw) * 8; // W(i+1:N, i)
      const wTop = s.wPanel + i * ldw * 8; // W(0:i, i), scratch
      K.k.symvL(ab + (i + 1 + (i + 1) * ld) * 8, ld, m, v, wi);
      if (i > 0) {
        f.fill(0, W + i * ldw, W + i * ldw + i);
        K.k.gemvT(s.wPanel + (i + 1) * 8, ldw, m, i, v, wTop, 1);
        K.k.gemvN(ab + (i + 1) * 8, ld, m, i, wTop, wi, -1);
        f.fill(0, W + i * ldw, W + i * ldw + i);
        K.k.gemvT(ab + (i + 1) * 8, ld, m, i, v, wTop, 1);
        K.k.gemvN(s.wPanel + (i + 1) * 8, ldw, m, i, wTop, wi, -1);
      }
      const wv = wi / 8;
      const vv = v / 8;
      let dot = 0;
      for (let t = 0; t < m; t++) {
        f[wv + t] = f[wv + t]! * tau;
        dot += f[wv + t]! * f[vv + t]!;
      }
      const alpha = -0.5 * tau * dot;
      for (let t = 0; t < m; t++) f[wv + t] = f[wv + t]! + alpha * f[vv + t]!;
    }
    // A(nb:N, nb:N) -= V W^T + W V^T, as one rank-2nb product [V W] [W V]^T.
    const m = N - nb;
    const pa = s.packA / 8;
    const pb = s.packB / 8;
    packN(f, a0 + nb, ld, 0, m, 0, nb, pa, 2 * nb, 0);
    packN(f, W + nb, ldw, 0, m, 0, nb, pa, 2 * nb, nb);
    packN(f, W + nb, ldw, 0, m, 0, nb, pb, 2 * nb, 0);
    packN(f, a0 + nb, ld, 0, m, 0, nb, pb, 2 * nb, nb);
    lowerUpdate(K, ab + (nb + nb * ld) * 8, ld, m, s.packA, s.packB, 2 * nb, -1);
    for (let j = 0; j < nb; j++) {
      f[a0 + j + 1 + j * ld] = e[st + j]!;
      d[st + j] = f[a0 + j + j * ld]!;
    }
  }
  // Unblocked DSYTD2 on the remaining N x N block.
  const N = n - st;
  const a0 = A + st + st * ld;
  const y = s.y / 8;
  for (let i = 0; i < N - 1; i++) {
    const col = a0 + i * ld;
    const tau = householder(f, col + i + 1, col + i + 2, N - i - 2);
    e[st + i] = f[col + i + 1]!;
    if (tau !== 0) {
      f[col + i + 1] = 1;
      const m = N - i - 1;
      const vv = col + i + 1;
      K.k.symvL((a0 + i + 1 + (i + 1) * ld) * 8, ld, m, vv * 8, s.y);
      let dot = 0;
      for (let t = 0; t < m; t++) {
        f[y + t] = f[y + t]! * tau;
        dot += f[y + t]! * f[vv + t]!;
      }
      const alpha = -0.5 * tau * dot;
      for (let t = 0; t < m; t++) f[y + t] = f[y + t]! + alpha * f[vv + t]!;
      // A(i+1:N, i+1:N) -= v y^T + y v^T (lower)
      for (let c = 0; c < m; c++) {
        const vc = f[vv + c]!;
        const yc = f[y + c]!;
        const p = a0 + i + 1 + (i + 1 + c) * ld;
        for (let r = c; r < m; r++) f[p + r] = f[p + r]! - f[vv + r]! * yc - f[y + r]! * vc;
      }
      f[col + i + 1] = e[st + i]!;
    }
    d[st + i] = f[col + i]!;
  }
  if (N > 0) d[n - 1] = f[a0 + (N - 1) + (N - 1) * ld]!;
  return { d, e };
}

/**
 * Eigenvalues of the symmetric tridiagonal matrix (d, e) by the implicit QL method with
 * Wilkinson-type shifts (EISPACK tql1, as in JAMA's tql2 without vectors): O(n^2), absolute
 * error ~ eps * ||T||. d is overwritten by the (unsorted) eigenvalues. The matrix is scaled
 * to unit max-norm first so no intermediate can overflow or underflow.
 */
export function tridiagonalEigenvalues(d: Float64Array, eSub: Float64Array): Float64Array {
  const n = d.length;
  if (n === 0) return d;
  let scale = 0;
  for (let i = 0; i < n; i++) scale = Math.max(scale, Math.abs(d[i]!));
  for (let i = 0; i < n - 1; i++) scale = Math.max(scale, Math.abs(eSub[i]!));
  if (scale === 0) return d;
  const e = new Float64Array(n);
  for (let i = 0; i < n; i++) d[i] = d[i]! / scale;
  for (let i = 0; i < n - 1; i++) e[i] = eSub[i]! / scale;
  let f = 0;
  let tst1 = 0;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n && Math.abs(e[m]!) > EPS * tst1) m++;
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 100) throw new Error('tridiagonal QL iteration did not converge');
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = Math.sqrt(p * p + 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i] = d[i]! - h;
        f += h;
        p = d[m]!;
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1]!;
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.sqrt(p * p + e[i]! * e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
        }
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > EPS * tst1);
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
  for (let i = 0; i < n; i++) d[i] = d[i]! * scale;
  return d;
}
