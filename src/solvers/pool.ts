/**
 * Recycled float64 state arrays. A sampling run at batch 64 works on arrays of B x C x H x W
 * values (1.5 MB for CIFAR-10, far more for larger images); a fresh one is zero-filled memory
 * the kernel has to map page by page on first touch, several times the cost of a pass over a
 * reused one (measured: bench/RESULTS.md, section "Sampler overhead", item 1).
 * Solvers therefore take their temporaries from a pool and give them back once nothing reads
 * them; a pool kept across batches (src/sample/pipeline.ts) makes a long run allocate its
 * working set once.
 *
 * Ownership is explicit: an array given back must not be read or written by the giver
 * afterwards. Arrays taken from the pool hold stale values; every user overwrites them.
 */
export class ArrayPool {
  private readonly free = new Map<number, Float64Array[]>();

  /**
   * @param maxPerLength how many idle arrays of one length are kept; the rest are left to the
   *   garbage collector (a solver's working set is a handful of arrays).
   */
  constructor(private readonly maxPerLength = 16) {}

  /** An array of `length` values with unspecified contents. */
  take(length: number): Float64Array {
    return this.free.get(length)?.pop() ?? new Float64Array(length);
  }

  /** Hands arrays back. Views into larger buffers and arrays already in the pool are ignored. */
  give(...arrays: (Float64Array | undefined)[]): void {
    for (const a of arrays) {
      // A view shares memory with something else; giving it back would let two owners write it.
      if (!a || a.byteOffset !== 0 || a.byteLength !== a.buffer.byteLength) continue;
      let list = this.free.get(a.length);
      if (!list) this.free.set(a.length, (list = []));
      // Giving the same array twice would hand it to two takers.
      if (list.includes(a) || list.length >= this.maxPerLength) continue;
      list.push(a);
    }
  }

  /** Idle arrays held (for tests). */
  get size(): number {
    let n = 0;
    for (const l of this.free.values()) n += l.length;
    return n;
  }
}
