/**
 * Shape arithmetic shared by every layer: tensors travel as flat row-major arrays, so each layer
 * needs the element count of a shape and the check that a flat array holds [B, ...shape].
 */

/** Number of elements of a tensor of shape `dims` (1 for a scalar's empty shape). */
export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/**
 * Throws a RangeError naming `what` unless `values` holds exactly `batch` rows of `dim`
 * elements, the flat layout of a [B, ...shape] tensor.
 */
export function checkBatchLength(what: string, values: ArrayLike<number>, batch: number, dim: number): void {
  if (values.length !== batch * dim) {
    throw new RangeError(`${what} holds ${values.length} values, expected ${batch * dim}`);
  }
}
