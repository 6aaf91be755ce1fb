/**
 * WebAssembly SIMD kernels for the dense float64 linear algebra of FID (stats.ts and
 * linalg.ts), and the JavaScript packing routines that feed them.
 *
 * Conventions: matrices are column-major (LAPACK style; the symmetric covariances are the
 * same either way) and live in the instance's linear memory. Kernel arguments are byte
 * addresses; `ld` arguments count doubles. Only the operations that dominate the cost are
 * in WebAssembly:
 *
 *  - `mm`: C += alpha * A B over a grid of 4x4 tiles, from packed operands (GotoBLAS
 *    style: A in 4-row panels, B in 4-column panels, both k-major, so the inner loop
 *    reads two contiguous streams and keeps 8 f64x2 accumulators in registers). Every
 *    O(n^3) step (covariance accumulation, Cholesky update, the congruence L^T S L and
 *    the tridiagonal reduction's rank-2k update) is a sequence of `mm` calls.
 *  - `symvL`: y = A x for a symmetric matrix stored in its lower triangle; the memory
 *    bound half of the Householder tridiagonalisation.
 *  - `gemvN` / `gemvT`: y += alpha A x and y += alpha A^T x, used inside panels.
 *
 * Every `Kernels` instance owns its WebAssembly.Memory (see `Kernels.create`): each
 * FeatureStats has its own, released by the garbage collector with the object, and
 * frechet.ts keeps one workspace between calls (its header says why).
 */
import {
  block,
  brIf,
  buildModule,
  f64,
  f64c,
  f64x2,
  get,
  i32,
  i32c,
  ifThen,
  loop,
  seq,
  set,
  v128,
  Vars,
  whileLoop,
  type Code,
  type FuncDef,
} from './wasm.js';

/** Tile edge of the micro-kernel: packed panels hold 4 rows (or columns) per k. */
export const MR = 4;

const add = i32.add;
const inc = (v: number, by: number | Code): Code => set(v, add(get(v), typeof by === 'number' ? i32c(by) : by));

/**
 * mm(ap, bp, kc, cp, ldc, mt, nt, alpha): for jt < nt, it < mt:
 *   C[4it..4it+3, 4jt..4jt+3] += alpha * sum_k Ap[it][k][0..3] (x) Bp[jt][k][0..3]
 * Ap tile `it` starts at ap + it*kc*32 bytes, Bp tile `jt` at bp + jt*kc*32; C tile at
 * cp + (4it + 4jt*ldc)*8.
 */
function mmDef(): FuncDef {
  const v = new Vars();
  const ap = v.p('i32'), bp = v.p('i32'), kc = v.p('i32'), cp = v.p('i32'), ldc = v.p('i32');
  const mt = v.p('i32'), nt = v.p('i32'), alpha = v.p('f64');
  const a01 = v.l('v128'), a23 = v.l('v128'), b = v.l('v128'), al = v.l('v128');
  // c[j] holds rows 0,1 of tile column j; c[4+j] rows 2,3.
  const c = Array.from({ length: 8 }, () => v.l('v128'));
  const it = v.l('i32'), jt = v.l('i32'), pa = v.l('i32'), pb = v.l('i32'), end = v.l('i32');
  const tileB = v.l('i32'), ldcB = v.l('i32'), ct = v.l('i32'), pc = v.l('i32');

  const fma = (acc: number, x: number): Code => set(acc, f64x2.add(get(acc), f64x2.mul(get(x), get(b))));
  const kStep = seq(
    set(a01, v128.load(get(pa))),
    set(a23, v128.load(get(pa), 16)),
    ...[0, 1, 2, 3].map((j) => seq(set(b, f64x2.loadSplat(get(pb), 8 * j)), fma(c[j]!, a01), fma(c[4 + j]!, a23))),
    inc(pa, 32),
    inc(pb, 32),
  );
  const storeCol = (j: number): Code =>
    seq(
      v128.store(get(pc), f64x2.add(v128.load(get(pc)), f64x2.mul(get(al), get(c[j]!)))),
      v128.store(get(pc), f64x2.add(v128.load(get(pc), 16), f64x2.mul(get(al), get(c[4 + j]!))), 16),
      inc(pc, get(ldcB)),
    );
  const body = seq(
    set(tileB, i32.shl(get(kc), i32c(5))),
    set(ldcB, i32.shl(get(ldc), i32c(3))),
    set(al, f64x2.splat(get(alpha))),
    set(jt, i32c(0)),
    whileLoop(
      i32.ltU(get(jt), get(nt)),
      set(it, i32c(0)),
      whileLoop(
        i32.ltU(get(it), get(mt)),
        set(pa, add(get(ap), i32.mul(get(it), get(tileB)))),
        set(pb, add(get(bp), i32.mul(get(jt), get(tileB)))),
        set(end, add(get(pa), get(tileB))),
        ...c.map((x) => set(x, v128.zero())),
        block(brIf(0, i32.geU(get(pa), get(end))), loop(kStep, brIf(0, i32.ltU(get(pa), get(end))))),
        // C tile address: cp + 32*it + 4*jt*ldc*8
        set(ct, add(add(get(cp), i32.shl(get(it), i32c(5))), i32.mul(i32.shl(get(jt), i32c(2)), get(ldcB)))),
        set(pc, get(ct)),
        storeCol(0),
        storeCol(1),
        storeCol(2),
        storeCol(3),
        inc(it, 1),
      ),
      inc(jt, 1),
    ),
  );
  return { name: 'mm', params: v.params, locals: v.locals, body };
}

/** gemvN(a, lda, m, k, x, y, alpha): y[0:m] += alpha * A[0:m, 0:k] x[0:k]. */
function gemvNDef(): FuncDef {
  const v = new Vars();
  const a = v.p('i32'), lda = v.p('i32'), m = v.p('i32'), k = v.p('i32'), x = v.p('i32'), y = v.p('i32');
  const alpha = v.p('f64');
  const j = v.l('i32'), pa = v.l('i32'), py = v.l('i32'), end2 = v.l('i32'), endY = v.l('i32'), col = v.l('i32');
  const s = v.l('v128'), sd = v.l('f64');
  const body = seq(
    set(endY, add(get(y), i32.shl(get(m), i32c(3)))),
    // last address at which a pair still fits
    set(end2, add(get(y), i32.shl(i32.and(get(m), i32c(-2)), i32c(3)))),
    set(col, get(a)),
    set(j, i32c(0)),
    whileLoop(
      i32.ltU(get(j), get(k)),
      set(sd, f64.mul(get(alpha), f64.load(add(get(x), i32.shl(get(j), i32c(3)))))),
      set(s, f64x2.splat(get(sd))),
      set(pa, get(col)),
      set(py, get(y)),
      whileLoop(
        i32.ltU(get(py), get(end2)),
        v128.store(get(py), f64x2.add(v128.load(get(py)), f64x2.mul(v128.load(get(pa)), get(s)))),
        inc(pa, 16),
        inc(py, 16),
      ),
      ifThen(
        i32.ltU(get(py), get(endY)),
        f64.store(get(py), f64.add(f64.load(get(py)), f64.mul(f64.load(get(pa)), get(sd)))),
      ),
      inc(col, i32.shl(get(lda), i32c(3))),
      inc(j, 1),
    ),
  );
  return { name: 'gemvN', params: v.params, locals: v.locals, body };
}

/** gemvT(a, lda, m, k, x, y, alpha): y[j] += alpha * dot(A[0:m, j], x[0:m]) for j < k. */
function gemvTDef(): FuncDef {
  const v = new Vars();
  const a = v.p('i32'), lda = v.p('i32'), m = v.p('i32'), k = v.p('i32'), x = v.p('i32'), y = v.p('i32');
  const alpha = v.p('f64');
  const j = v.l('i32'), pa = v.l('i32'), px = v.l('i32'), end2 = v.l('i32'), endX = v.l('i32'), col = v.l('i32');
  const acc = v.l('v128'), t = v.l('f64'), py = v.l('i32');
  const body = seq(
    set(endX, add(get(x), i32.shl(get(m), i32c(3)))),
    set(end2, add(get(x), i32.shl(i32.and(get(m), i32c(-2)), i32c(3)))),
    set(col, get(a)),
    set(j, i32c(0)),
    whileLoop(
      i32.ltU(get(j), get(k)),
      set(acc, v128.zero()),
      set(pa, get(col)),
      set(px, get(x)),
      whileLoop(
        i32.ltU(get(px), get(end2)),
        set(acc, f64x2.add(get(acc), f64x2.mul(v128.load(get(pa)), v128.load(get(px))))),
        inc(pa, 16),
        inc(px, 16),
      ),
      set(t, f64.add(f64x2.lane(get(acc), 0), f64x2.lane(get(acc), 1))),
      ifThen(i32.ltU(get(px), get(endX)), set(t, f64.add(get(t), f64.mul(f64.load(get(pa)), f64.load(get(px)))))),
      set(py, add(get(y), i32.shl(get(j), i32c(3)))),
      f64.store(get(py), f64.add(f64.load(get(py)), f64.mul(get(alpha), get(t)))),
      inc(col, i32.shl(get(lda), i32c(3))),
      inc(j, 1),
    ),
  );
  return { name: 'gemvT', params: v.params, locals: v.locals, body };
}

/**
 * symvL(a, lda, m, x, y): y[0:m] = A x where A is symmetric and only its lower triangle
 * (rows >= columns) is read. Two columns per pass, so y is loaded and stored once per two
 * columns; every matrix element is read exactly once.
 */
function symvLDef(): FuncDef {
  const v = new Vars();
  const a = v.p('i32'), lda = v.p('i32'), m = v.p('i32'), x = v.p('i32'), y = v.p('i32');
  const j = v.l('i32'), ldaB = v.l('i32'), c0 = v.l('i32'), c1 = v.l('i32');
  const p0 = v.l('i32'), p1 = v.l('i32'), px = v.l('i32'), py = v.l('i32'), endY = v.l('i32'), end2 = v.l('i32');
  const xj = v.l('f64'), xj1 = v.l('f64'), a10 = v.l('f64'), t0 = v.l('f64'), t1 = v.l('f64');
  const sj = v.l('v128'), sj1 = v.l('v128'), acc0 = v.l('v128'), acc1 = v.l('v128');
  const va0 = v.l('v128'), va1 = v.l('v128'), vx = v.l('v128');
  const yj = v.l('i32'), xs = v.l('f64');

  const body = seq(
    set(ldaB, i32.shl(get(lda), i32c(3))),
    set(endY, add(get(y), i32.shl(get(m), i32c(3)))),
    // y = 0
    set(py, get(y)),
    whileLoop(i32.ltU(get(py), get(endY)), f64.store(get(py), f64c(0)), inc(py, 8)),
    set(j, i32c(0)),
    set(c0, get(a)),
    whileLoop(
      i32.ltU(add(get(j), i32c(1)), get(m)),
      set(c1, add(get(c0), get(ldaB))),
      set(yj, add(get(y), i32.shl(get(j), i32c(3)))),
      set(xj, f64.load(add(get(x), i32.shl(get(j), i32c(3))))),
      set(xj1, f64.load(add(get(x), i32.shl(get(j), i32c(3))), 8)),
      // 2x2 diagonal block: rows j, j+1 of columns j, j+1 (A[j+1,j] at c0 + 8(j+1)).
      set(p0, add(get(c0), i32.shl(get(j), i32c(3)))),
      set(p1, add(get(c1), i32.shl(get(j), i32c(3)))),
      set(a10, f64.load(get(p0), 8)),
      set(t0, f64.add(f64.mul(f64.load(get(p0)), get(xj)), f64.mul(get(a10), get(xj1)))),
      set(t1, f64.add(f64.mul(get(a10), get(xj)), f64.mul(f64.load(get(p1), 8), get(xj1)))),
      inc(p0, 16),
      inc(p1, 16),
      set(px, add(get(x), i32.shl(add(get(j), i32c(2)), i32c(3)))),
      set(py, add(get(yj), i32c(16))),
      set(end2, i32.sub(get(endY), i32c(8))),
      set(sj, f64x2.splat(get(xj))),
      set(sj1, f64x2.splat(get(xj1))),
      set(acc0, v128.zero()),
      set(acc1, v128.zero()),
      whileLoop(
        i32.ltU(get(py), get(end2)),
        set(va0, v128.load(get(p0))),
        set(va1, v128.load(get(p1))),
        set(vx, v128.load(get(px))),
        v128.store(
          get(py),
          f64x2.add(v128.load(get(py)), f64x2.add(f64x2.mul(get(va0), get(sj)), f64x2.mul(get(va1), get(sj1)))),
        ),
        set(acc0, f64x2.add(get(acc0), f64x2.mul(get(va0), get(vx)))),
        set(acc1, f64x2.add(get(acc1), f64x2.mul(get(va1), get(vx)))),
        inc(p0, 16),
        inc(p1, 16),
        inc(px, 16),
        inc(py, 16),
      ),
      set(t0, f64.add(get(t0), f64.add(f64x2.lane(get(acc0), 0), f64x2.lane(get(acc0), 1)))),
      set(t1, f64.add(get(t1), f64.add(f64x2.lane(get(acc1), 0), f64x2.lane(get(acc1), 1)))),
      ifThen(
        i32.ltU(get(py), get(endY)),
        set(xs, f64.load(get(px))),
        f64.store(
          get(py),
          f64.add(
            f64.load(get(py)),
            f64.add(f64.mul(f64.load(get(p0)), get(xj)), f64.mul(f64.load(get(p1)), get(xj1))),
          ),
        ),
        set(t0, f64.add(get(t0), f64.mul(f64.load(get(p0)), get(xs)))),
        set(t1, f64.add(get(t1), f64.mul(f64.load(get(p1)), get(xs)))),
      ),
      f64.store(get(yj), f64.add(f64.load(get(yj)), get(t0))),
      f64.store(get(yj), f64.add(f64.load(get(yj), 8), get(t1)), 8),
      inc(j, 2),
      inc(c0, i32.shl(get(ldaB), i32c(1))),
    ),
    // A last single column when m is odd: only its diagonal element remains.
    ifThen(
      i32.ltU(get(j), get(m)),
      set(yj, add(get(y), i32.shl(get(j), i32c(3)))),
      f64.store(
        get(yj),
        f64.add(
          f64.load(get(yj)),
          f64.mul(f64.load(add(get(c0), i32.shl(get(j), i32c(3)))), f64.load(add(get(x), i32.shl(get(j), i32c(3))))),
        ),
      ),
    ),
  );
  return { name: 'symvL', params: v.params, locals: v.locals, body };
}

/*
 * The project compiles against lib ES2023 + @types/node 20, neither of which declares the
 * WebAssembly namespace (it lives in lib.dom). Rather than adding global declarations that
 * could clash with other folders, describe the small part of the API used here and take it
 * from globalThis once; Node 20 always provides it.
 */
interface WasmModule {
  readonly __wasmModule?: never;
}
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: { env: { mem: WasmMemory } }) => { exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number }) => WasmMemory;
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

let compiled: WasmModule | undefined;

function kernelModule(): WasmModule {
  // Compiled once per process (synchronously: the module is a few kilobytes).
  compiled ??= new WA.Module(buildModule([mmDef(), gemvNDef(), gemvTDef(), symvLDef()]));
  return compiled;
}

export interface KernelExports {
  mm(ap: number, bp: number, kc: number, cp: number, ldc: number, mt: number, nt: number, alpha: number): void;
  gemvN(a: number, lda: number, m: number, k: number, x: number, y: number, alpha: number): void;
  gemvT(a: number, lda: number, m: number, k: number, x: number, y: number, alpha: number): void;
  symvL(a: number, lda: number, m: number, x: number, y: number): void;
}

function isKernelExports(e: Record<string, unknown>): e is Record<string, unknown> & KernelExports {
  return ['mm', 'gemvN', 'gemvT', 'symvL'].every((k) => typeof e[k] === 'function');
}

/**
 * One kernel instance with its own memory. Buffers are carved out of the memory with
 * `alloc` (a bump allocator: every user allocates what it needs up front, then works).
 * Addresses handed to the kernels are byte offsets; `f` views the memory as doubles, so
 * buffer `b` occupies f[b / 8 ...].
 */
export class Kernels {
  readonly f: Float64Array;
  readonly k: KernelExports;
  private top = 64;

  private constructor(
    readonly bytes: number,
    mem: WasmMemory,
    k: KernelExports,
  ) {
    this.f = new Float64Array(mem.buffer);
    this.k = k;
  }

  /** An instance whose memory holds at least `doubles` float64 values (plus alignment slack). */
  static create(doubles: number): Kernels {
    const bytes = doubles * 8 + 64 * 64;
    if (bytes > 2 ** 32 - 65536) throw new RangeError(`FID workspace of ${bytes} bytes exceeds WebAssembly's 4 GiB`);
    const pages = Math.ceil(bytes / 65536);
    const mem = new WA.Memory({ initial: pages });
    const inst = new WA.Instance(kernelModule(), { env: { mem } });
    if (!isKernelExports(inst.exports)) throw new Error('kernel module lacks its exports');
    return new Kernels(pages * 65536, mem, inst.exports);
  }

  /**
   * Reserve `doubles` float64 values, 64-byte aligned; returns the byte address. On a new
   * instance the memory is zero (a new WebAssembly.Memory is zero-filled); after `reset`
   * it holds whatever the previous user left.
   */
  alloc(doubles: number): number {
    const addr = this.top;
    const end = addr + Math.ceil((doubles * 8) / 64) * 64;
    if (end > this.bytes) throw new RangeError('kernel workspace exhausted');
    this.top = end;
    return addr;
  }

  /** Forget all allocations (the memory itself is kept, with its contents). */
  reset(): void {
    this.top = 64;
  }
}

/**
 * Pack X(i, k) = S[i + k*ld] (column-major source, "no transpose") for rows i0..i0+rows-1
 * and k0..k0+kb-1 into 4-row panels at double index `dst`, using panel depth KB and
 * starting at depth offset `koff` (so two sources can be concatenated along k). Rows past
 * `rows` up to the next multiple of 4 are zero.
 */
export function packN(
  f: Float64Array,
  src: number,
  ld: number,
  i0: number,
  rows: number,
  k0: number,
  kb: number,
  dst: number,
  KB: number,
  koff: number,
): void {
  const tiles = Math.ceil(rows / MR);
  for (let t = 0; t < tiles; t++) {
    const r0 = t * MR;
    const nr = Math.min(MR, rows - r0);
    let d = dst + (t * KB + koff) * MR;
    let s = src + i0 + r0 + k0 * ld;
    if (nr === MR) {
      for (let kk = 0; kk < kb; kk++, d += MR, s += ld) {
        f[d] = f[s]!;
        f[d + 1] = f[s + 1]!;
        f[d + 2] = f[s + 2]!;
        f[d + 3] = f[s + 3]!;
      }
    } else {
      for (let kk = 0; kk < kb; kk++, d += MR, s += ld) {
        for (let r = 0; r < MR; r++) f[d + r] = r < nr ? f[s + r]! : 0;
      }
    }
  }
}

/**
 * Pack X(i, k) = S[k + i*ld] (the transpose of a column-major source) for rows
 * i0..i0+rows-1 and k0..k0+kb-1, as packN.
 */
export function packT(
  f: Float64Array,
  src: number,
  ld: number,
  i0: number,
  rows: number,
  k0: number,
  kb: number,
  dst: number,
  KB: number,
  koff: number,
): void {
  const tiles = Math.ceil(rows / MR);
  for (let t = 0; t < tiles; t++) {
    const r0 = t * MR;
    const base = dst + (t * KB + koff) * MR;
    for (let r = 0; r < MR; r++) {
      let d = base + r;
      if (r0 + r < rows) {
        let s = src + k0 + (i0 + r0 + r) * ld;
        for (let kk = 0; kk < kb; kk++, d += MR, s++) f[d] = f[s]!;
      } else {
        for (let kk = 0; kk < kb; kk++, d += MR) f[d] = 0;
      }
    }
  }
}
