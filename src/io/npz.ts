/**
 * NumPy `.npz` archives: a zip of `<name>.npy` members, stored (`np.savez`) or deflated
 * (`np.savez_compressed`). Reading goes through the hostile-file-safe zip reader; every
 * problem with the user's file is a one-line UsageError naming the file and the member,
 * e.g. `ref.npz: member 'sigma' is Fortran-ordered; expected C order`.
 */
import { UsageError } from '../core/errors.js';
import { writeFileAtomic } from './atomic.js';
import { encodeNpyParts, formatShape, ndarray, parseNpy, toFloat64, type NdArray, type NpyLimits } from './npy.js';
import { buildZip, ZipReader } from './zip.js';

export interface NpzReadOptions extends NpyLimits {
  /** Names the archive in messages; defaults to the path (or `<buffer>`). */
  label?: string;
  /**
   * Read only these arrays (names without `.npy`); the others are not decompressed.
   * Missing ones are simply absent from the result.
   */
  names?: readonly string[];
}

/**
 * Default cap on one member's uncompressed bytes when the caller gives no `maxBytes`:
 * generous for real data (a 2048x2048 float64 covariance is 32 MiB), small enough that a
 * hostile archive cannot make us allocate most of the machine's memory.
 */
export const DEFAULT_NPZ_MEMBER_BYTES = 2 ** 30;

/** npy header bytes allowed on top of the data limit when sizing a member. */
const HEADER_SLACK = 1 << 20;

/**
 * Read every `.npy` member of an archive (keys without `.npy`, in archive order). Members
 * whose names do not end in `.npy` are ignored (np.load would hand them back as raw bytes);
 * directories too.
 */
export async function readNpz(src: string | Uint8Array, opts: NpzReadOptions = {}): Promise<Map<string, NdArray>> {
  const zip = await ZipReader.open(src, { ...(opts.label !== undefined ? { label: opts.label } : {}), entryWord: 'member' });
  try {
    const wanted = opts.names ? new Set(opts.names) : undefined;
    const maxData = opts.maxBytes ?? DEFAULT_NPZ_MEMBER_BYTES;
    const out = new Map<string, NdArray>();
    // Unique names with the last duplicate winning, as zip.get() resolves them.
    const names = [...new Set(zip.fileNames())];
    for (const member of names) {
      if (!member.endsWith('.npy')) continue;
      const key = member.slice(0, -4);
      if (wanted && !wanted.has(key)) continue;
      const limits: NpyLimits = { maxBytes: maxData };
      if (opts.maxElements !== undefined) limits.maxElements = opts.maxElements;
      const a = await readNpzMember(zip, key, limits);
      if (a) out.set(key, a);
    }
    return out;
  } finally {
    await zip.close();
  }
}

/**
 * Read one array (`key` without `.npy`) from an open archive, or undefined when absent.
 * The member's declared size is checked against `limits.maxBytes` before it is inflated.
 */
export async function readNpzMember(zip: ZipReader, key: string, limits: NpyLimits = {}): Promise<NdArray | undefined> {
  const member = `${key}.npy`;
  if (!zip.has(member)) return undefined;
  const maxData = limits.maxBytes ?? DEFAULT_NPZ_MEMBER_BYTES;
  const bytes = await zip.read(member, { maxBytes: maxData + HEADER_SLACK });
  return parseNpy(bytes, { ...limits, maxBytes: maxData, label: `${zip.label}: member '${key}'` });
}

/** The archive as chunks (see `writeNpz`). */
export async function encodeNpz(
  arrays: Record<string, NdArray>,
  opts: { compressed?: boolean; forceZip64?: boolean } = {},
): Promise<Uint8Array[]> {
  const members = Object.entries(arrays).map(([name, a]) => ({ name: `${name}.npy`, data: encodeNpyParts(a) }));
  return buildZip(members, opts);
}

/**
 * Write an archive that `np.load` reads like one from `np.savez` (or `np.savez_compressed`
 * with `compressed: true`), atomically. Member order follows the object's key order.
 */
export async function writeNpz(
  path: string,
  arrays: Record<string, NdArray>,
  opts: { compressed?: boolean; forceZip64?: boolean } = {},
): Promise<void> {
  await writeFileAtomic(path, await encodeNpz(arrays, opts));
}

/** FID reference statistics (ALGORITHM.md section 6). */
export interface FidStats {
  mu: Float64Array;
  /** dim x dim, row-major. */
  sigma: Float64Array;
  dim: number;
}

/** Inception pool features are 2048-d; allow far more, but not absurd covariance sizes. */
const MAX_STATS_DIM = 16384;

/**
 * Read FID statistics: `mu` of shape (dim,) and `sigma` of shape (dim, dim), float32 or
 * float64 (returned as float64). `sigma` is only read once `mu` fixed `dim`, with a limit of
 * dim*dim elements, so a hostile `sigma` header cannot claim more.
 */
export async function readStatsNpz(path: string): Promise<FidStats> {
  const zip = await ZipReader.open(path, { entryWord: 'member' });
  try {
    const missing = (name: string) =>
      new UsageError(`${path}: missing array '${name}' (FID statistics need 'mu' and 'sigma')`);
    const checkType = (name: string, a: NdArray): void => {
      if (a.dtype !== 'float32' && a.dtype !== 'float64') {
        throw new UsageError(`${path}: member '${name}' is ${a.dtype}; expected float32 or float64`);
      }
    };
    const mu = await readNpzMember(zip, 'mu', { maxElements: MAX_STATS_DIM, maxBytes: MAX_STATS_DIM * 8 });
    if (!mu) throw missing('mu');
    checkType('mu', mu);
    if (mu.shape.length !== 1 || mu.shape[0] === 0) {
      throw new UsageError(`${path}: member 'mu' has shape ${formatShape(mu.shape)}; expected (dim,)`);
    }
    const dim = mu.shape[0]!;
    if (!zip.has('sigma.npy')) throw missing('sigma');
    const sigma = await readNpzMember(zip, 'sigma', { maxElements: dim * dim, maxBytes: dim * dim * 8 });
    if (!sigma) throw missing('sigma');
    checkType('sigma', sigma);
    if (sigma.shape.length !== 2 || sigma.shape[0] !== dim || sigma.shape[1] !== dim) {
      throw new UsageError(`${path}: member 'sigma' has shape ${formatShape(sigma.shape)}; expected (${dim}, ${dim}) to match 'mu'`);
    }
    // Copy float64 data too, so the result never aliases the inflated member buffer.
    const mu64 = mu.dtype === 'float64' ? mu.data.slice() : toFloat64(mu);
    const sigma64 = sigma.dtype === 'float64' ? sigma.data.slice() : toFloat64(sigma);
    const bad = statsProblem(mu64, sigma64, dim);
    if (bad) throw new UsageError(`${path}: ${bad}`);
    return { mu: mu64, sigma: sigma64, dim };
  } finally {
    await zip.close();
  }
}

/**
 * Why `mu`, `sigma` cannot be a mean and a covariance, or undefined. O(dim^2): every value
 * finite, `sigma` symmetric (to float32 rounding of its scale), a non-negative diagonal and
 * every 2x2 principal minor non-negative (|s_ij| <= sqrt(s_ii s_jj)). These are necessary
 * for positive semi-definiteness, not sufficient; the Frechet distance catches the rest by
 * its sign (src/fid/frechet.ts checkDistance).
 */
export function statsProblem(mu: Float64Array, sigma: Float64Array, dim: number): string | undefined {
  for (let i = 0; i < dim; i++) if (!Number.isFinite(mu[i]!)) return `member 'mu' holds ${mu[i]} at index ${i}; expected finite means`;
  let scale = 0;
  for (let i = 0; i < dim * dim; i++) {
    const v = sigma[i]!;
    if (!Number.isFinite(v)) return `member 'sigma' holds ${v} at [${Math.floor(i / dim)}, ${i % dim}]; expected a finite covariance`;
    scale = Math.max(scale, Math.abs(v));
  }
  const tol = 1e-6 * scale;
  for (let i = 0; i < dim; i++) {
    const sii = sigma[i * dim + i]!;
    if (sii < -tol) return `member 'sigma' has the negative variance ${sii} at [${i}, ${i}]; a covariance is positive semi-definite`;
    for (let j = 0; j < i; j++) {
      const a = sigma[i * dim + j]!;
      const b = sigma[j * dim + i]!;
      if (Math.abs(a - b) > tol) return `member 'sigma' is not symmetric ([${i}, ${j}] = ${a}, [${j}, ${i}] = ${b}); expected a covariance`;
      const bound = Math.sqrt(Math.max(sii, 0) * Math.max(sigma[j * dim + j]!, 0));
      if (Math.abs(a) > bound + tol) return `member 'sigma' is not positive semi-definite (|[${i}, ${j}]| = ${Math.abs(a)} exceeds sqrt([${i}, ${i}] [${j}, ${j}]) = ${bound})`;
    }
  }
  return undefined;
}

/** Write FID statistics as float64 `mu` (dim,) and `sigma` (dim, dim), like the reference files. */
export async function writeStatsNpz(path: string, mu: Float64Array, sigma: Float64Array): Promise<void> {
  const dim = mu.length;
  if (sigma.length !== dim * dim) throw new Error(`writeStatsNpz: sigma has ${sigma.length} values; expected ${dim}x${dim}`);
  await writeNpz(path, { mu: ndarray('float64', [dim], mu), sigma: ndarray('float64', [dim, dim], sigma) });
}
