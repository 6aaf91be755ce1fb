/**
 * Batches at the ONNX boundary: a request of n rows runs in pieces of at most `cap` rows, and
 * a model exported with a fixed batch gets every piece padded to it by repeating the piece's
 * first row (the padded rows' outputs are dropped). One split for the denoiser's companions,
 * the classifier gradient and the feature extractor.
 */

/** Calls `run` for consecutive pieces [from, from+rows), each fed as `padded` rows. */
export async function inRuns(n: number, cap: number, fixedBatch: number | undefined, run: (from: number, rows: number, padded: number) => Promise<void>): Promise<void> {
  const step = fixedBatch ?? cap;
  for (let s = 0; s < n; s += step) {
    const b = Math.min(step, n - s);
    await run(s, b, fixedBatch ?? b);
  }
}

/** What `rowsOf` needs of a typed array (Float64Array, Int32Array, BigInt64Array, ...). */
export interface RowArray<T> {
  set(src: T, offset?: number): void;
  subarray(begin: number, end: number): T;
  copyWithin(target: number, start: number, end: number): unknown;
}

/** Rows [from, from+rows) of `src` (row width `w`), padded to `total` rows with the first row. */
export function rowsOf<T extends RowArray<T>>(src: T, from: number, rows: number, total: number, w: number, make: (n: number) => T): T {
  const out = make(total * w);
  out.set(src.subarray(from * w, (from + rows) * w), 0);
  for (let r = rows; r < total; r++) out.copyWithin(r * w, 0, w);
  return out;
}

/** Float rows as the runtime's callers hold them. */
export type Rows = Float64Array | Float32Array;

/** Concatenates row ranges of `width` values, padded to `total` rows by repeating row 0. */
export function gatherRows(parts: readonly { src: Rows; from: number; rows: number }[], width: number, total: number): Float64Array {
  const out = new Float64Array(total * width);
  let r = 0;
  for (const p of parts) {
    out.set(p.src.subarray(p.from * width, (p.from + p.rows) * width), r * width);
    r += p.rows;
  }
  for (; r < total; r++) out.copyWithin(r * width, 0, width);
  return out;
}
