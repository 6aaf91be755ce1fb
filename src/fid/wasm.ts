/**
 * A minimal WebAssembly binary emitter, just large enough for the linear-algebra kernels
 * in kernels.ts.
 *
 * Why emit bytes from TypeScript instead of shipping a .wasm file or depending on a wasm
 * BLAS package: the kernels are ~300 lines of folded instructions, the source stays the
 * single truth (no generated blob to keep in sync, no build tool such as wabt), and the
 * module is compiled once per process. The same 4x4 micro-kernel in WebAssembly SIMD (f64x2)
 * runs several times faster than plain typed-array loops, the difference between seconds and
 * tens of seconds for a 2048-d Frechet distance (measured: bench/RESULTS.md, section
 * "Frechet distance").
 *
 * Instructions are built in folded form: every builder takes its operands' code and
 * returns the operands followed by its own opcode, so `i32.add(get(a), i32c(4))` reads
 * like the s-expression `(i32.add (local.get $a) (i32.const 4))`.
 */

export type Code = number[];
export type ValType = 'i32' | 'f64' | 'v128';

const VALTYPE: Record<ValType, number> = { i32: 0x7f, f64: 0x7c, v128: 0x7b };

export function uleb(value: number): Code {
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`uleb: ${value}`);
  const out: Code = [];
  let v = value;
  do {
    let byte = v % 128;
    v = Math.floor(v / 128);
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

export function sleb(value: number): Code {
  if (!Number.isInteger(value)) throw new RangeError(`sleb: ${value}`);
  const out: Code = [];
  let v = BigInt(value);
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    const signBit = (byte & 0x40) !== 0;
    if ((v === 0n && !signBit) || (v === -1n && signBit)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function name(s: string): Code {
  const bytes = Array.from(new TextEncoder().encode(s));
  return [...uleb(bytes.length), ...bytes];
}

function vec(items: Code[]): Code {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, body: Code): Code {
  return [id, ...uleb(body.length), ...body];
}

/** Concatenate instruction sequences (a block body). */
export function seq(...parts: Code[]): Code {
  return parts.flat();
}

// ---- locals and constants -------------------------------------------------------------

export const get = (i: number): Code => [0x20, ...uleb(i)];
export const set = (i: number, v: Code): Code => [...v, 0x21, ...uleb(i)];
export const tee = (i: number, v: Code): Code => [...v, 0x22, ...uleb(i)];
export const i32c = (v: number): Code => [0x41, ...sleb(v)];
export function f64c(v: number): Code {
  const b = new Uint8Array(new Float64Array([v]).buffer);
  return [0x44, ...Array.from(b)];
}

const bin =
  (...op: number[]) =>
  (a: Code, b: Code): Code => [...a, ...b, ...op];
const un =
  (...op: number[]) =>
  (a: Code): Code => [...a, ...op];

// memarg: alignment exponent (a hint only; unaligned access is legal) then offset.
const memarg = (align: number, offset: number): Code => [...uleb(align), ...uleb(offset)];

export const i32 = {
  add: bin(0x6a),
  sub: bin(0x6b),
  mul: bin(0x6c),
  and: bin(0x71),
  shl: bin(0x74),
  shrU: bin(0x76),
  eq: bin(0x46),
  ne: bin(0x47),
  ltU: bin(0x49),
  gtU: bin(0x4b),
  leU: bin(0x4d),
  geU: bin(0x4f),
  ltS: bin(0x48),
  geS: bin(0x4e),
  eqz: un(0x45),
};

export const f64 = {
  load: (addr: Code, offset = 0): Code => [...addr, 0x2b, ...memarg(3, offset)],
  store: (addr: Code, v: Code, offset = 0): Code => [...addr, ...v, 0x39, ...memarg(3, offset)],
  add: bin(0xa0),
  sub: bin(0xa1),
  mul: bin(0xa2),
  div: bin(0xa3),
  neg: un(0x9a),
  sqrt: un(0x9f),
};

/** SIMD opcodes are 0xfd followed by the LEB128-encoded sub-opcode. */
const simd = (op: number): Code => [0xfd, ...uleb(op)];

export const v128 = {
  load: (addr: Code, offset = 0): Code => [...addr, ...simd(0x00), ...memarg(3, offset)],
  store: (addr: Code, v: Code, offset = 0): Code => [...addr, ...v, ...simd(0x0b), ...memarg(3, offset)],
  zero: (): Code => [...simd(0x0c), ...new Array<number>(16).fill(0)],
};

export const f64x2 = {
  /** Load one double and broadcast it to both lanes. */
  loadSplat: (addr: Code, offset = 0): Code => [...addr, ...simd(0x0a), ...memarg(3, offset)],
  splat: (a: Code): Code => [...a, ...simd(0x14)],
  lane: (a: Code, lane: 0 | 1): Code => [...a, ...simd(0x21), lane],
  add: (a: Code, b: Code): Code => [...a, ...b, ...simd(0xf0)],
  sub: (a: Code, b: Code): Code => [...a, ...b, ...simd(0xf1)],
  mul: (a: Code, b: Code): Code => [...a, ...b, ...simd(0xf2)],
};

// ---- control --------------------------------------------------------------------------

export const block = (...body: Code[]): Code => [0x02, 0x40, ...body.flat(), 0x0b];
export const loop = (...body: Code[]): Code => [0x03, 0x40, ...body.flat(), 0x0b];
export const br = (depth: number): Code => [0x0c, ...uleb(depth)];
export const brIf = (depth: number, cond: Code): Code => [...cond, 0x0d, ...uleb(depth)];
export const ifThen = (cond: Code, ...body: Code[]): Code => [...cond, 0x04, 0x40, ...body.flat(), 0x0b];

/**
 * `while (cond) { body }` where cond is re-evaluated before every iteration. Inside body,
 * branch depth 0 continues and depth 1 breaks.
 */
export function whileLoop(cond: Code, ...body: Code[]): Code {
  return block(loop(brIf(1, i32.eqz(cond)), ...body, br(0)));
}

// ---- module ---------------------------------------------------------------------------

export interface FuncDef {
  name: string;
  params: ValType[];
  locals: ValType[];
  body: Code;
}

/**
 * A module importing one linear memory as env.mem (at least `minPages` 64 KiB pages,
 * not shared) and exporting the given functions, which return nothing.
 */
export function buildModule(funcs: FuncDef[], minPages = 1): Uint8Array {
  const types = funcs.map((f) => [0x60, ...vec(f.params.map((t) => [VALTYPE[t]])), ...vec([])]);
  const imports = vec([[...name('env'), ...name('mem'), 0x02, 0x00, ...uleb(minPages)]]);
  const funcSec = vec(funcs.map((_, i) => uleb(i)));
  const exportsSec = vec(funcs.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]));
  const bodies = funcs.map((f) => {
    // Locals are declared as runs of one type.
    const runs: Code[] = [];
    for (let i = 0; i < f.locals.length; ) {
      let j = i;
      while (j < f.locals.length && f.locals[j] === f.locals[i]) j++;
      runs.push([...uleb(j - i), VALTYPE[f.locals[i]!]]);
      i = j;
    }
    const body = [...vec(runs), ...f.body, 0x0b];
    return [...uleb(body.length), ...body];
  });
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, imports),
    ...section(3, funcSec),
    ...section(7, exportsSec),
    ...section(10, vec(bodies)),
  ]);
}

/**
 * Named parameters and locals for one function: `v.p('a', 'i32')` declares a parameter,
 * `v.l('acc', 'v128')` a local; both return the index to use with get/set.
 */
export class Vars {
  readonly params: ValType[] = [];
  readonly locals: ValType[] = [];
  private sealed = false;
  p(t: ValType): number {
    if (this.sealed) throw new Error('parameters must be declared before locals');
    this.params.push(t);
    return this.params.length - 1;
  }
  l(t: ValType): number {
    this.sealed = true;
    this.locals.push(t);
    return this.params.length + this.locals.length - 1;
  }
}
