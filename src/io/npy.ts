/**
 * NumPy `.npy` arrays (format versions 1.0, 2.0 and 3.0), read and written without Python.
 *
 * Format (numpy/lib/format.py): magic `\x93NUMPY`, major and minor version bytes, a
 * little-endian header length (uint16 for 1.0, uint32 for 2.0/3.0), then a header that is a
 * Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` padded
 * with spaces and a final `\n` so the data starts at a multiple of 64, then the raw data.
 *
 * Only little-endian, C-ordered, plain numeric arrays are accepted; everything else is
 * refused with a one-line UsageError (the file came from the user). Sizes are checked
 * against the bytes actually present and against caller limits before anything large is
 * allocated, so a hostile header cannot make us allocate gigabytes.
 */
import { open } from 'node:fs/promises';
import { endianness } from 'node:os';
import { UsageError } from '../core/errors.js';
import { elementCount } from '../core/shape.js';
import { writeFileAtomic } from './atomic.js';

// All typed-array views below assume the host is little-endian like the .npy data we accept.
// Every platform Node ships for is; fail loudly rather than silently byte-swapping wrong.
if (endianness() !== 'LE') throw new Error('adasde io: big-endian hosts are not supported');

/** The element storage of each supported dtype. */
export interface DataOf {
  float32: Float32Array;
  float64: Float64Array;
  int8: Int8Array;
  uint8: Uint8Array;
  int16: Int16Array;
  uint16: Uint16Array;
  int32: Int32Array;
  uint32: Uint32Array;
  int64: BigInt64Array;
  uint64: BigUint64Array;
  /** One byte per element, 0 or 1. */
  bool: Uint8Array;
}

export type DType = keyof DataOf;

export interface NdArrayOf<D extends DType> {
  dtype: D;
  /** C (row-major) order; `[]` for a scalar, which has one element. */
  shape: number[];
  data: DataOf[D];
}

/** A dense array; narrowing on `dtype` narrows `data`. */
export type NdArray = { [D in DType]: NdArrayOf<D> }[DType];

interface DTypeInfo {
  descr: string;
  size: number;
}

/** The descr written for each dtype (what NumPy writes for the same dtype). */
const DTYPE_INFO: Record<DType, DTypeInfo> = {
  float32: { descr: '<f4', size: 4 },
  float64: { descr: '<f8', size: 8 },
  int8: { descr: '|i1', size: 1 },
  uint8: { descr: '|u1', size: 1 },
  int16: { descr: '<i2', size: 2 },
  uint16: { descr: '<u2', size: 2 },
  int32: { descr: '<i4', size: 4 },
  uint32: { descr: '<u4', size: 4 },
  int64: { descr: '<i8', size: 8 },
  uint64: { descr: '<u8', size: 8 },
  bool: { descr: '|b1', size: 1 },
};

/** dtype on disk: every DType plus float16, which is widened to float32 when read. */
type DiskType = DType | 'float16';

const KIND_SIZE_TO_DTYPE: Record<string, DiskType> = {
  f2: 'float16',
  f4: 'float32',
  f8: 'float64',
  i1: 'int8',
  u1: 'uint8',
  i2: 'int16',
  u2: 'uint16',
  i4: 'int32',
  u4: 'uint32',
  i8: 'int64',
  u8: 'uint64',
  b1: 'bool',
};

export function itemSize(dtype: DType): number {
  return DTYPE_INFO[dtype].size;
}


/** Python's repr of a shape tuple: `()`, `(3,)`, `(2, 3)`. */
export function formatShape(shape: readonly number[]): string {
  if (shape.length === 1) return `(${shape[0]},)`;
  return `(${shape.join(', ')})`;
}

/**
 * Build an NdArray, checking that `data` has exactly `elementCount(shape)` elements
 * (a programming error otherwise, hence a plain Error).
 */
export function ndarray<D extends DType>(dtype: D, shape: readonly number[], data: DataOf[D]): NdArrayOf<D> {
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new Error(`ndarray: bad dimension ${d} in shape ${formatShape(shape)}`);
  }
  const n = elementCount(shape);
  if (data.length !== n) throw new Error(`ndarray: shape ${formatShape(shape)} needs ${n} elements, got ${data.length}`);
  return { dtype, shape: [...shape], data };
}

/** The values as float64 (int64/uint64 beyond 2^53 lose precision, as in NumPy's astype); float64 input is returned as is, not copied. */
export function toFloat64(a: NdArray): Float64Array {
  if (a.dtype === 'float64') return a.data;
  const out = new Float64Array(a.data.length);
  if (a.dtype === 'int64' || a.dtype === 'uint64') {
    for (let i = 0; i < out.length; i++) out[i] = Number(a.data[i]);
  } else {
    out.set(a.data);
  }
  return out;
}

/** The values as float32 (rounded to nearest, as in NumPy's astype); float32 input is returned as is, not copied. */
export function toFloat32(a: NdArray): Float32Array {
  if (a.dtype === 'float32') return a.data;
  const out = new Float32Array(a.data.length);
  if (a.dtype === 'int64' || a.dtype === 'uint64') {
    for (let i = 0; i < out.length; i++) out[i] = Number(a.data[i]);
  } else {
    out.set(a.data);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Header: a Python literal. A tiny recursive-descent parser for the subset NumPy writes
// (dicts, tuples, lists, strings, ints, True/False/None); never `eval`.

type PyValue =
  | { k: 'str'; v: string }
  | { k: 'int'; v: number }
  | { k: 'bool'; v: boolean }
  | { k: 'none' }
  | { k: 'float'; v: number }
  | { k: 'tuple'; v: PyValue[] }
  | { k: 'list'; v: PyValue[] }
  | { k: 'dict'; v: Map<string, PyValue> };

class LiteralError extends Error {}

/** Nesting deeper than this is refused, so `((((...` cannot overflow the stack. */
const MAX_DEPTH = 32;

class PyLiteralParser {
  private i = 0;
  constructor(private readonly s: string) {}

  parseTop(): PyValue {
    const v = this.value(0);
    this.ws();
    if (this.i !== this.s.length) throw new LiteralError(`unexpected '${this.s[this.i]}' at offset ${this.i}`);
    return v;
  }

  private ws(): void {
    while (this.i < this.s.length && /\s/.test(this.s[this.i]!)) this.i++;
  }

  private value(depth: number): PyValue {
    if (depth > MAX_DEPTH) throw new LiteralError('nested too deeply');
    this.ws();
    const c = this.s[this.i];
    if (c === undefined) throw new LiteralError('unexpected end');
    if (c === '{') return this.dict(depth);
    if (c === '(') return this.seq(depth, ')', 'tuple');
    if (c === '[') return this.seq(depth, ']', 'list');
    if (c === "'" || c === '"') return { k: 'str', v: this.str() };
    if ((c === 'u' || c === 'b' || c === 'U' || c === 'B') && (this.s[this.i + 1] === "'" || this.s[this.i + 1] === '"')) {
      this.i++;
      return { k: 'str', v: this.str() };
    }
    const num = /^[-+]?(\d+)(L?)(?![\w.])/.exec(this.s.slice(this.i, this.i + 64));
    if (num) {
      this.i += num[0].length;
      return { k: 'int', v: Number(num[0].replace(/L$/, '')) };
    }
    const flt = /^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?/.exec(this.s.slice(this.i, this.i + 64));
    if (flt && flt[0].length > 0) {
      this.i += flt[0].length;
      return { k: 'float', v: Number(flt[0]) };
    }
    const word = /^[A-Za-z_]\w*/.exec(this.s.slice(this.i, this.i + 16));
    if (word) {
      this.i += word[0].length;
      if (word[0] === 'True') return { k: 'bool', v: true };
      if (word[0] === 'False') return { k: 'bool', v: false };
      if (word[0] === 'None') return { k: 'none' };
      throw new LiteralError(`unexpected name '${word[0]}'`);
    }
    throw new LiteralError(`unexpected '${c}' at offset ${this.i}`);
  }

  private str(): string {
    const q = this.s[this.i++]!;
    let out = '';
    for (;;) {
      const c = this.s[this.i++];
      if (c === undefined) throw new LiteralError('unterminated string');
      if (c === q) return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = this.s[this.i++];
      if (e === undefined) throw new LiteralError('unterminated string');
      const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '0': '\0', '\\': '\\', "'": "'", '"': '"' };
      const hexLen = e === 'x' ? 2 : e === 'u' ? 4 : e === 'U' ? 8 : 0;
      if (hexLen > 0) {
        const hex = this.s.slice(this.i, this.i + hexLen);
        if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== hexLen) throw new LiteralError('bad string escape');
        out += String.fromCodePoint(parseInt(hex, 16));
        this.i += hexLen;
      } else if (simple[e] !== undefined) {
        out += simple[e];
      } else {
        out += '\\' + e;
      }
    }
  }

  private seq(depth: number, close: string, k: 'tuple' | 'list'): PyValue {
    this.i++;
    const items: PyValue[] = [];
    let sawComma = false;
    for (;;) {
      this.ws();
      if (this.s[this.i] === close) {
        this.i++;
        break;
      }
      if (items.length > 0 && !sawComma) throw new LiteralError(`expected ',' or '${close}' at offset ${this.i}`);
      items.push(this.value(depth + 1));
      this.ws();
      sawComma = this.s[this.i] === ',';
      if (sawComma) this.i++;
    }
    // `(5)` is just 5 in Python; only `(5,)` is a tuple.
    if (k === 'tuple' && items.length === 1 && !sawComma) return items[0]!;
    return { k, v: items };
  }

  private dict(depth: number): PyValue {
    this.i++;
    const m = new Map<string, PyValue>();
    let sawComma = true;
    for (;;) {
      this.ws();
      if (this.s[this.i] === '}') {
        this.i++;
        return { k: 'dict', v: m };
      }
      if (!sawComma) throw new LiteralError(`expected ',' or '}' at offset ${this.i}`);
      const key = this.value(depth + 1);
      if (key.k !== 'str') throw new LiteralError('dict keys must be strings');
      this.ws();
      if (this.s[this.i] !== ':') throw new LiteralError(`expected ':' at offset ${this.i}`);
      this.i++;
      m.set(key.v, this.value(depth + 1));
      this.ws();
      sawComma = this.s[this.i] === ',';
      if (sawComma) this.i++;
    }
  }
}

// ---------------------------------------------------------------------------
// Reading.

export interface NpyLimits {
  /** Refuse arrays with more elements than this (checked before allocating). */
  maxElements?: number;
  /** Refuse arrays whose data takes more bytes than this (checked before allocating). */
  maxBytes?: number;
}

export interface NpyParseOptions extends NpyLimits {
  /** Names the array in error messages, e.g. `ref.npz: member 'sigma'` or `latents.npy`. */
  label?: string;
}

/** What the header says, validated. */
export interface NpyHeader {
  version: [number, number];
  /** Offset of the first data byte from the start of the .npy bytes. */
  dataOffset: number;
  /** dtype on disk; float16 is reported as such here and widened to float32 when read. */
  diskType: DiskType;
  descr: string;
  shape: number[];
  count: number;
  /** Bytes of data the shape requires. */
  dataBytes: number;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/** Larger headers are refused; NumPy itself refuses over 10,000 bytes by default. */
const MAX_HEADER_LEN = 1 << 20;
/** Bytes needed before the header length is known: magic, version, 4-byte length. */
const PREAMBLE = 12;

/**
 * Parse the fixed preamble: returns version and the header's byte range. `head` must hold
 * at least the first 10 bytes (12 for version >= 2).
 */
function parsePreamble(head: Uint8Array, label: string, total: number): { version: [number, number]; start: number; len: number } {
  if (head.length < 10 || MAGIC.some((b, i) => head[i] !== b)) {
    throw new UsageError(`${label} is not a NumPy .npy array (missing the \\x93NUMPY magic)`);
  }
  const major = head[6]!;
  const minor = head[7]!;
  if (!((major === 1 || major === 2 || major === 3) && minor === 0)) {
    throw new UsageError(`${label} has unsupported .npy format version ${major}.${minor}; expected 1.0, 2.0 or 3.0`);
  }
  let start: number;
  let len: number;
  if (major === 1) {
    start = 10;
    len = head[8]! | (head[9]! << 8);
  } else {
    if (head.length < 12) throw new UsageError(`${label} is truncated inside the .npy header`);
    start = 12;
    len = (head[8]! | (head[9]! << 8) | (head[10]! << 16)) + head[11]! * 2 ** 24;
  }
  if (len > MAX_HEADER_LEN) throw new UsageError(`${label} has a .npy header of ${len} bytes (over the ${MAX_HEADER_LEN} byte limit)`);
  if (start + len > total) throw new UsageError(`${label} is truncated inside the .npy header`);
  return { version: [major, minor], start, len };
}

function describeDescr(descr: PyValue): string {
  return descr.k === 'str' ? `'${descr.v}'` : descr.k;
}

/** Validate the header dict text; checks sizes against `available` data bytes and limits. */
function parseHeaderText(
  text: string,
  version: [number, number],
  dataOffset: number,
  available: number,
  label: string,
  limits: NpyLimits,
): NpyHeader {
  let v: PyValue;
  try {
    v = new PyLiteralParser(text).parseTop();
  } catch (e) {
    if (e instanceof LiteralError) throw new UsageError(`${label} has a malformed .npy header (${e.message})`);
    throw e;
  }
  if (v.k !== 'dict') throw new UsageError(`${label} has a malformed .npy header (not a dict)`);
  const keys = [...v.v.keys()].sort();
  if (keys.join(',') !== 'descr,fortran_order,shape') {
    throw new UsageError(`${label} has a malformed .npy header (keys ${keys.join(', ')}; expected descr, fortran_order, shape)`);
  }
  const descrV = v.v.get('descr')!;
  const fortranV = v.v.get('fortran_order')!;
  const shapeV = v.v.get('shape')!;

  if (descrV.k === 'list') throw new UsageError(`${label} has a structured dtype; only plain numeric arrays are supported`);
  if (descrV.k !== 'str') throw new UsageError(`${label} has a malformed .npy header (descr is ${describeDescr(descrV)})`);
  const descr = descrV.v;
  const m = /^([<>|=]?)([A-Za-z])(\d*)(.*)$/.exec(descr);
  if (!m) throw new UsageError(`${label} has unsupported dtype '${descr}'`);
  const order = m[1]!;
  const kind = m[2]!;
  const sizeStr = m[3]!;
  const rest = m[4]!;
  if (kind === 'O') throw new UsageError(`${label} is an object array ('${descr}'); only numeric arrays can be read`);
  if (kind === 'V' && sizeStr !== '') throw new UsageError(`${label} has a structured dtype ('${descr}'); only plain numeric arrays are supported`);
  const diskType = rest === '' ? KIND_SIZE_TO_DTYPE[kind + sizeStr] : undefined;
  if (diskType === undefined) throw new UsageError(`${label} has unsupported dtype '${descr}'; expected a float, integer or bool dtype`);
  const size = diskType === 'float16' ? 2 : DTYPE_INFO[diskType].size;
  if (order === '>' && size > 1) throw new UsageError(`${label} is big-endian ('${descr}'); expected little-endian`);

  if (fortranV.k !== 'bool') throw new UsageError(`${label} has a malformed .npy header (fortran_order is not True/False)`);
  if (shapeV.k !== 'tuple' && shapeV.k !== 'list') throw new UsageError(`${label} has a malformed .npy header (shape is not a tuple)`);
  const shape: number[] = [];
  for (const d of shapeV.v) {
    if (d.k !== 'int' || !Number.isSafeInteger(d.v) || d.v < 0) {
      throw new UsageError(`${label} has a malformed .npy header (bad dimension in shape)`);
    }
    shape.push(d.v);
  }
  // Fortran order only matters when the layout differs from C order.
  if (fortranV.v && shape.filter((d) => d > 1).length > 1) {
    throw new UsageError(`${label} is Fortran-ordered; expected C order`);
  }

  // The product is computed in floating point: it may be inexact or even Infinity for a
  // hostile shape, but it is only trusted after being compared with the bytes present.
  const count = elementCount(shape);
  const shown = formatShape(shape);
  if (count * size > available) {
    throw new UsageError(`${label} is truncated: shape ${shown} of '${descr}' needs ${count * size} data bytes, only ${available} present`);
  }
  const dataBytes = count * size;
  if (limits.maxElements !== undefined && count > limits.maxElements) {
    throw new UsageError(`${label} has shape ${shown} with ${count} elements, over the limit of ${limits.maxElements}`);
  }
  if (limits.maxBytes !== undefined && dataBytes > limits.maxBytes) {
    throw new UsageError(`${label} has shape ${shown} needing ${dataBytes} bytes, over the limit of ${limits.maxBytes}`);
  }
  return { version, dataOffset, diskType, descr, shape, count, dataBytes };
}

function decodeHeaderText(bytes: Uint8Array, version: [number, number]): string {
  // 1.0 and 2.0 headers are latin1; 3.0 allows UTF-8 (for unicode field names).
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(version[0] === 3 ? 'utf8' : 'latin1');
}

/** Parse and validate the header of .npy bytes without touching the data. */
export function parseNpyHeader(bytes: Uint8Array, opts: NpyParseOptions = {}): NpyHeader {
  const label = opts.label ?? 'array';
  const { version, start, len } = parsePreamble(bytes.subarray(0, PREAMBLE), label, bytes.length);
  const text = decodeHeaderText(bytes.subarray(start, start + len), version);
  return parseHeaderText(text, version, start + len, bytes.length - start - len, label, opts);
}

/** IEEE half -> float. */
function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f === 0 ? s * Infinity : NaN;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/**
 * Typed array over exactly `bytes` (length = count * itemsize). Views when `bytes` is
 * suitably aligned for the element size; otherwise copies into a fresh (aligned) buffer,
 * because typed arrays cannot start at an unaligned offset.
 */
function alignedBuffer(bytes: Uint8Array, size: number): { buffer: ArrayBufferLike; offset: number } {
  if (bytes.byteOffset % size === 0) return { buffer: bytes.buffer, offset: bytes.byteOffset };
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return { buffer: copy.buffer, offset: 0 };
}

/** Interpret data bytes according to a validated header. */
function arrayFromData(h: NpyHeader, bytes: Uint8Array): NdArray {
  const n = h.count;
  const t = h.diskType;
  if (t === 'float16') {
    const { buffer, offset } = alignedBuffer(bytes, 2);
    const src = new Uint16Array(buffer, offset, n);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = halfToFloat(src[i]!);
    return { dtype: 'float32', shape: h.shape, data: out };
  }
  if (t === 'bool') {
    // NumPy treats any nonzero byte as True; normalise so consumers can rely on 0/1.
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = bytes[i] ? 1 : 0;
    return { dtype: 'bool', shape: h.shape, data: out };
  }
  const { buffer, offset } = alignedBuffer(bytes, DTYPE_INFO[t].size);
  switch (t) {
    case 'float32':
      return { dtype: t, shape: h.shape, data: new Float32Array(buffer, offset, n) };
    case 'float64':
      return { dtype: t, shape: h.shape, data: new Float64Array(buffer, offset, n) };
    case 'int8':
      return { dtype: t, shape: h.shape, data: new Int8Array(buffer, offset, n) };
    case 'uint8':
      return { dtype: t, shape: h.shape, data: new Uint8Array(buffer, offset, n) };
    case 'int16':
      return { dtype: t, shape: h.shape, data: new Int16Array(buffer, offset, n) };
    case 'uint16':
      return { dtype: t, shape: h.shape, data: new Uint16Array(buffer, offset, n) };
    case 'int32':
      return { dtype: t, shape: h.shape, data: new Int32Array(buffer, offset, n) };
    case 'uint32':
      return { dtype: t, shape: h.shape, data: new Uint32Array(buffer, offset, n) };
    case 'int64':
      return { dtype: t, shape: h.shape, data: new BigInt64Array(buffer, offset, n) };
    case 'uint64':
      return { dtype: t, shape: h.shape, data: new BigUint64Array(buffer, offset, n) };
  }
}

/**
 * Parse .npy bytes. The result may share memory with `bytes` (when the data is aligned);
 * pass a copy if `bytes` will be modified afterwards. float16 data is widened to float32.
 * Bytes after the data are ignored, as NumPy does.
 */
export function parseNpy(bytes: Uint8Array, opts: NpyParseOptions = {}): NdArray {
  const h = parseNpyHeader(bytes, opts);
  return arrayFromData(h, bytes.subarray(h.dataOffset, h.dataOffset + h.dataBytes));
}

/**
 * Read a .npy file. Only the header is read first; the data is read (into a buffer of
 * exactly the validated size) once shape, dtype, file size and limits are checked.
 */
export async function readNpy(path: string, limits: NpyLimits = {}): Promise<NdArray> {
  const label = path;
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EISDIR' || code === 'EACCES') {
      throw new UsageError(`${path}: cannot read (${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : 'permission denied'})`);
    }
    throw e;
  }
  try {
    const total = (await fh.stat()).size;
    const head = Buffer.alloc(Math.min(PREAMBLE, total));
    await fh.read(head, 0, head.length, 0);
    const { version, start, len } = parsePreamble(head, label, total);
    const hbuf = Buffer.alloc(len);
    await fh.read(hbuf, 0, len, start);
    const h = parseHeaderText(decodeHeaderText(hbuf, version), version, start + len, total - start - len, label, limits);
    const data = Buffer.alloc(h.dataBytes);
    let got = 0;
    while (got < h.dataBytes) {
      const { bytesRead } = await fh.read(data, got, h.dataBytes - got, h.dataOffset + got);
      if (bytesRead === 0) throw new UsageError(`${label} is truncated (file shrank while reading)`);
      got += bytesRead;
    }
    // A fresh Buffer.alloc of this size is not a pooled slice, so views are aligned.
    return arrayFromData(h, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------
// Writing.

/** NumPy's ARRAY_ALIGN: the data offset is a multiple of this. */
const ARRAY_ALIGN = 64;
/** NumPy (>= 1.24) pads the header so the first dimension can grow to this many digits in place. */
const GROWTH_AXIS_MAX_DIGITS = 21;

/**
 * The .npy header bytes for an array, byte-identical to what NumPy writes: keys sorted,
 * `repr` of the shape, growth-axis spaces, then spaces and `\n` up to a multiple of 64.
 * Version 1.0 unless the header needs more than 65535 bytes (then 2.0), as NumPy does.
 */
export function encodeNpyHeader(dtype: DType, shape: readonly number[]): Uint8Array {
  let dict = `{'descr': '${DTYPE_INFO[dtype].descr}', 'fortran_order': False, 'shape': ${formatShape(shape)}, }`;
  if (shape.length > 0) dict += ' '.repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(shape[0]).length));
  const build = (lenBytes: number, major: number): Uint8Array => {
    const hlen = dict.length + 1; // + '\n'
    const padlen = ARRAY_ALIGN - ((MAGIC.length + 2 + lenBytes + hlen) % ARRAY_ALIGN);
    const total = hlen + padlen;
    const out = Buffer.alloc(MAGIC.length + 2 + lenBytes + total, 0x20);
    out.set(MAGIC, 0);
    out[6] = major;
    out[7] = 0;
    if (lenBytes === 2) out.writeUInt16LE(total, 8);
    else out.writeUInt32LE(total, 8);
    out.write(dict, MAGIC.length + 2 + lenBytes, 'latin1');
    out[out.length - 1] = 0x0a;
    return out;
  };
  const v1 = build(2, 1);
  return v1.length - 10 <= 0xffff ? v1 : build(4, 2);
}

function dataBytesOf(a: NdArray): Uint8Array {
  return new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
}

/** Header and data as two chunks (no copy of the data). */
export function encodeNpyParts(a: NdArray): [Uint8Array, Uint8Array] {
  const n = elementCount(a.shape);
  if (a.data.length !== n) throw new Error(`encodeNpy: shape ${formatShape(a.shape)} needs ${n} elements, got ${a.data.length}`);
  return [encodeNpyHeader(a.dtype, a.shape), dataBytesOf(a)];
}

/** The complete .npy bytes of an array. */
export function encodeNpy(a: NdArray): Uint8Array {
  return Buffer.concat(encodeNpyParts(a));
}

/** Write a .npy file atomically. */
export async function writeNpy(path: string, a: NdArray): Promise<void> {
  await writeFileAtomic(path, encodeNpyParts(a));
}
