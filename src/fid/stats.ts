/**
 * Streaming feature statistics for FID (ALGORITHM.md section 6), in float64:
 *
 *   mu = mean(f),   sigma = (sum f f^T - n mu mu^T) / (n - 1).
 *
 * That is the reference's formula, kept as is, with one change allowed by the spec: the
 * sums are taken around a fixed shift s (the mean of the first batch), i.e. over g = f - s.
 * Covariance is shift invariant, so the formula is unchanged:
 * sigma = (sum g g^T - n m m^T) / (n - 1), m = mean(g), mu = s + m. Why: Inception pool
 * features are non-negative with means comparable to their spread, and sum f f^T - n mu mu^T
 * subtracts two nearly equal numbers (losing log10(mean^2/var) digits); around a shift
 * near the mean nothing cancels. Results agree with NumPy's two-pass np.cov to ~3e-16
 * (normwise) on the committed fixture.
 *
 * The O(n^2) per sample accumulation sum g g^T runs on the packed 4x4 WebAssembly kernel
 * (kernels.ts) over blocks of up to 256 samples, lower triangle only (symmetry). Pass
 * batches: each `add` call pays one sweep over the n x n accumulator, so one sample at a
 * time costs several times more per sample (measured: bench/RESULTS.md, section "Frechet
 * distance").
 */
import { Kernels, MR } from './kernels.js';
import { forLowerTiles, lowerUpdate, paddedLd } from './linalg.js';

/** Samples packed per kernel sweep. */
const BLOCK = 256;

/**
 * Serializable accumulator state (e.g. to combine statistics computed by several
 * processes). All sums are over g = f - shift.
 */
export interface FeatureStatsPartial {
  dim: number;
  n: number;
  /** The shift s, length dim (all zeros for an empty accumulator). */
  shift: Float64Array;
  /** sum g, length dim. */
  sum: Float64Array;
  /** sum g g^T, dim x dim, row-major, symmetric (both triangles filled). */
  sumOuter: Float64Array;
}

export class FeatureStats {
  readonly dim: number;
  private count = 0;
  private readonly K: Kernels;
  /** Column-major ld x ld accumulator of sum g g^T (lower triangle meaningful). */
  private readonly outer: number;
  private readonly ld: number;
  private readonly pack: number;
  private shift: Float64Array;
  private readonly sum: Float64Array;

  constructor(dim: number) {
    if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`feature dimension must be a positive integer, got ${dim}`);
    this.dim = dim;
    this.ld = paddedLd(dim);
    const packDoubles = Math.ceil(dim / MR) * MR * BLOCK;
    this.K = Kernels.create(this.ld * this.ld + packDoubles + 64);
    this.outer = this.K.alloc(this.ld * this.ld);
    this.pack = this.K.alloc(packDoubles);
    this.shift = new Float64Array(dim);
    this.sum = new Float64Array(dim);
  }

  /** Number of samples accumulated. */
  get n(): number {
    return this.count;
  }

  /**
   * Accumulate `count` feature vectors, row-major (`count` x dim) at the start of
   * `features`.
   */
  add(features: Float32Array | Float64Array, count: number): void {
    const dim = this.dim;
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer, got ${count}`);
    if (features.length < count * dim) {
      throw new RangeError(`features holds ${features.length} values, fewer than count x dim = ${count * dim}`);
    }
    if (count === 0) return;
    if (this.count === 0) {
      // Shift = mean of the first batch (any value near the mean avoids cancellation).
      const s = new Float64Array(dim);
      for (let k = 0; k < count; k++) {
        const row = k * dim;
        for (let i = 0; i < dim; i++) s[i] = s[i]! + features[row + i]!;
      }
      for (let i = 0; i < dim; i++) s[i] = s[i]! / count;
      this.shift = s;
    }
    for (let k0 = 0; k0 < count; k0 += BLOCK) {
      const kb = Math.min(BLOCK, count - k0);
      this.packBlock(features, k0, kb);
      lowerUpdate(this.K, this.outer, this.ld, dim, this.pack, this.pack, kb, 1);
    }
    this.count += count;
  }

  /**
   * Pack g = f - shift for samples k0..k0+kb-1 as 4-row panels of the dim x kb matrix G
   * (G(i, k) = g_k[i]) and add them to `sum`. Tile by tile: the 4 consecutive values a
   * panel row needs from each sample are one cache line shared by 4 neighbouring tiles.
   */
  private packBlock(features: Float32Array | Float64Array, k0: number, kb: number): void {
    const dim = this.dim;
    const f = this.K.f;
    const shift = this.shift;
    const sum = this.sum;
    const base = this.pack / 8;
    const tiles = Math.ceil(dim / MR);
    for (let t = 0; t < tiles; t++) {
      const i0 = t * MR;
      let d = base + t * kb * MR;
      if (i0 + MR <= dim) {
        const s0 = shift[i0]!, s1 = shift[i0 + 1]!, s2 = shift[i0 + 2]!, s3 = shift[i0 + 3]!;
        let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        let src = k0 * dim + i0;
        for (let k = 0; k < kb; k++, d += MR, src += dim) {
          const g0 = features[src]! - s0;
          const g1 = features[src + 1]! - s1;
          const g2 = features[src + 2]! - s2;
          const g3 = features[src + 3]! - s3;
          f[d] = g0;
          f[d + 1] = g1;
          f[d + 2] = g2;
          f[d + 3] = g3;
          a0 += g0;
          a1 += g1;
          a2 += g2;
          a3 += g3;
        }
        sum[i0] = sum[i0]! + a0;
        sum[i0 + 1] = sum[i0 + 1]! + a1;
        sum[i0 + 2] = sum[i0 + 2]! + a2;
        sum[i0 + 3] = sum[i0 + 3]! + a3;
      } else {
        for (let k = 0; k < kb; k++, d += MR) {
          const src = (k0 + k) * dim;
          for (let r = 0; r < MR; r++) {
            const i = i0 + r;
            if (i < dim) {
              const g = features[src + i]! - shift[i]!;
              f[d + r] = g;
              sum[i] = sum[i]! + g;
            } else {
              f[d + r] = 0;
            }
          }
        }
      }
    }
  }

  /**
   * Add another accumulator's samples to this one (the other is unchanged). Its sums are
   * re-expressed around this accumulator's shift: with d = s_other - s_this,
   * sum (g + d)(g + d)^T = sum g g^T + (sum g) d^T + d (sum g)^T + n d d^T.
   */
  merge(other: FeatureStats): void {
    if (other.dim !== this.dim) throw new RangeError(`cannot merge dim ${other.dim} statistics into dim ${this.dim}`);
    // The other's accumulator is column-major with its ld: lower triangle (i >= j) at i + j*ld.
    this.mergeRaw(other.count, other.shift, other.sum, other.K.f, other.outer / 8, other.ld);
  }

  /**
   * Merge sums whose lower triangle (i >= j) of sum g g^T is src[base + i + j*ld] (a
   * column-major accumulator, or a row-major symmetric matrix read as its transpose).
   */
  private mergeRaw(no: number, shiftO: Float64Array, sumO: Float64Array, src: Float64Array, base: number, srcLd: number): void {
    if (no === 0) return;
    const dim = this.dim;
    const f = this.K.f;
    const O = this.outer / 8;
    const ld = this.ld;
    const first = this.count === 0;
    const d = new Float64Array(dim);
    if (first) {
      this.shift = Float64Array.from(shiftO);
      this.sum.fill(0);
    } else {
      for (let i = 0; i < dim; i++) d[i] = shiftO[i]! - this.shift[i]!;
    }
    for (let j = 0; j < dim; j++) {
      const dj = d[j]!;
      const sj = sumO[j]!;
      const col = O + j * ld;
      const scol = base + j * srcLd;
      if (first) {
        f.set(src.subarray(scol + j, scol + dim), col + j);
      } else {
        for (let i = j; i < dim; i++) {
          f[col + i] = f[col + i]! + src[scol + i]! + sumO[i]! * dj + d[i]! * sj + no * d[i]! * dj;
        }
      }
    }
    for (let i = 0; i < dim; i++) this.sum[i] = this.sum[i]! + sumO[i]! + no * d[i]!;
    this.count += no;
  }

  /** Mean feature vector (length dim). Throws if no samples were added. */
  mu(): Float64Array {
    if (this.count === 0) throw new RangeError('no samples accumulated');
    const out = new Float64Array(this.dim);
    for (let i = 0; i < this.dim; i++) out[i] = this.shift[i]! + this.sum[i]! / this.count;
    return out;
  }

  /**
   * Covariance, dim x dim row-major (symmetric, both triangles), normalised by n - 1 as
   * np.cov. Throws for fewer than 2 samples.
   */
  sigma(): Float64Array {
    const n = this.count;
    if (n < 2) throw new RangeError(`a covariance needs at least 2 samples, have ${n}`);
    const sum = this.sum;
    // (sum g g^T - n m m^T)_ij / (n - 1), m = sum / n
    return this.symmetricOut((i, j, v) => (v - (sum[i]! * sum[j]!) / n) / (n - 1));
  }

  /**
   * The accumulator's lower triangle mapped through fn, as a full row-major symmetric
   * matrix, written tile by tile (forLowerTiles: the transpose is written too).
   */
  private symmetricOut(fn: (i: number, j: number, v: number) => number): Float64Array {
    const dim = this.dim;
    const f = this.K.f;
    const O = this.outer / 8;
    const ld = this.ld;
    const out = new Float64Array(dim * dim);
    forLowerTiles(dim, (j0, j1, i0, i1) => {
      for (let j = j0; j < j1; j++) {
        const col = O + j * ld;
        for (let i = Math.max(i0, j); i < i1; i++) {
          const v = fn(i, j, f[col + i]!);
          out[i * dim + j] = v;
          out[j * dim + i] = v;
        }
      }
    });
    return out;
  }

  toPartial(): FeatureStatsPartial {
    return {
      dim: this.dim,
      n: this.count,
      shift: Float64Array.from(this.shift),
      sum: Float64Array.from(this.sum),
      sumOuter: this.symmetricOut((_i, _j, v) => v),
    };
  }

  static fromPartial(p: FeatureStatsPartial): FeatureStats {
    const dim = p.dim;
    if (!Number.isInteger(p.n) || p.n < 0) throw new RangeError(`invalid sample count ${p.n}`);
    if (p.shift.length !== dim || p.sum.length !== dim || p.sumOuter.length !== dim * dim) {
      throw new RangeError(`partial statistics arrays do not match dim ${dim}`);
    }
    const s = new FeatureStats(dim);
    // Row-major symmetric: its element (i, j) = (j, i) sits at i + j*dim, as column-major.
    s.mergeRaw(p.n, p.shift, p.sum, p.sumOuter, 0, dim);
    return s;
  }
}
