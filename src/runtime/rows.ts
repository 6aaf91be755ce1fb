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
