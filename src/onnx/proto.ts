/**
 * A minimal protobuf wire-format writer and reader for the subset of `onnx.proto` the
 * project needs: the runtime reads model contracts, src/graph/gradient.ts and the graph builder
 * (./builder.ts) write models. Written by hand (no protobufjs) because we only need a dozen messages and
 * because reading must work on multi-gigabyte files without loading them: the reader works
 * on a random-access `ByteSource` and can skip initializer payloads and node lists, so
 * reading the contract (metadata and input/output signatures) touches a few kilobytes.
 *
 * Field numbers follow onnx.proto (proto2). Repeated scalar fields are written unpacked
 * (the proto2 default that the reference `onnx` package writes) and read in both packed
 * and unpacked form. Unknown fields are skipped, never an error.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { elementCount } from '../core/shape.js';

// ---------------------------------------------------------------------------------------
// Message types (plain data; the same shapes are produced by the decoder)
// ---------------------------------------------------------------------------------------

/** TensorProto.DataType values used in this project. */
export const DataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  BFLOAT16: 16,
} as const;

const DATA_TYPE_NAMES: Record<number, string> = {
  0: 'undefined',
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  8: 'string',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  12: 'uint32',
  13: 'uint64',
  14: 'complex64',
  15: 'complex128',
  16: 'bfloat16',
};

/** Human-readable name of a TensorProto.DataType (`float32`, `int64`, ...). */
export function dataTypeName(t: number): string {
  return DATA_TYPE_NAMES[t] ?? `type#${t}`;
}

/** AttributeProto.AttributeType values. */
export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
} as const;

export interface StringStringEntry {
  key: string;
  value: string;
}

export interface OperatorSetId {
  domain: string;
  version: number;
}

export interface TensorProto {
  name: string;
  dims: number[];
  dataType: number;
  /** Little-endian element bytes. A view into the source buffer when decoded in memory. */
  rawData?: Uint8Array;
  /** Typed fields some exporters use instead of raw_data (decoded only when asked for data). */
  floatData?: number[];
  int64Data?: number[];
  int32Data?: number[];
  /** Present when the payload lives in an external file (data_location = EXTERNAL). */
  externalData?: StringStringEntry[];
  /** 0 = DEFAULT, 1 = EXTERNAL. */
  dataLocation?: number;
}

export interface AttributeProto {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProto;
  floats?: number[];
  ints?: number[];
  /** A subgraph (If branches, Loop/Scan bodies). */
  g?: GraphProto;
}

export interface NodeProto {
  input: string[];
  output: string[];
  name: string;
  opType: string;
  domain: string;
  attribute: AttributeProto[];
}

/** A tensor dimension: a fixed size, a symbolic name, or unknown (`null`). */
export type Dim = number | string | null;

/** TypeProto restricted to tensor_type; `elemType` 0 and `shape` undefined when absent. */
export interface TensorType {
  elemType: number;
  /** undefined = unknown rank. */
  shape?: Dim[];
}

export interface ValueInfoProto {
  name: string;
  /** undefined when the value is not a tensor (sequence, map, ...) or has no type. */
  type?: TensorType;
}

export interface GraphProto {
  name: string;
  node: NodeProto[];
  initializer: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  valueInfo: ValueInfoProto[];
}

export interface ModelProto {
  irVersion: number;
  opsetImport: OperatorSetId[];
  producerName: string;
  producerVersion: string;
  graph?: GraphProto;
  metadataProps: StringStringEntry[];
}

// ---------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8');

/** Growable byte buffer with protobuf primitives. */
export class ProtoWriter {
  private buf = new Uint8Array(256);
  private len = 0;

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
  }

  /** Unsigned varint for 0 <= n <= 2^53. */
  varint(n: number): this {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`varint out of range: ${n}`);
    this.reserve(10);
    while (n >= 0x80) {
      this.buf[this.len++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.len++] = n;
    return this;
  }

  /** int64/int32 field value: negative numbers take the 10-byte two's complement form. */
  int64(n: number): this {
    if (n >= 0) return this.varint(n);
    let v = BigInt.asUintN(64, BigInt(n));
    this.reserve(10);
    while (v >= 0x80n) {
      this.buf[this.len++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.len++] = Number(v);
    return this;
  }

  tag(field: number, wire: number): this {
    return this.varint(field * 8 + wire);
  }

  rawBytes(b: Uint8Array): this {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  bytesField(field: number, b: Uint8Array): this {
    return this.tag(field, WIRE_LEN).varint(b.length).rawBytes(b);
  }

  stringField(field: number, s: string): this {
    return this.bytesField(field, textEncoder.encode(s));
  }

  int64Field(field: number, n: number): this {
    return this.tag(field, WIRE_VARINT).int64(n);
  }

  floatField(field: number, f: number): this {
    this.tag(field, WIRE_I32);
    this.reserve(4);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.len, 4).setFloat32(0, f, true);
    this.len += 4;
    return this;
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

function encodeEntry(e: StringStringEntry): Uint8Array {
  return new ProtoWriter().stringField(1, e.key).stringField(2, e.value).finish();
}

export function encodeTensor(t: TensorProto): Uint8Array {
  const w = new ProtoWriter();
  for (const d of t.dims) w.int64Field(1, d);
  w.int64Field(2, t.dataType);
  if (t.floatData) for (const f of t.floatData) w.floatField(4, f);
  if (t.int32Data) for (const v of t.int32Data) w.int64Field(5, v);
  if (t.int64Data) for (const v of t.int64Data) w.int64Field(7, v);
  if (t.name) w.stringField(8, t.name);
  if (t.rawData) w.bytesField(9, t.rawData);
  if (t.externalData) for (const e of t.externalData) w.bytesField(13, encodeEntry(e));
  if (t.dataLocation !== undefined) w.int64Field(14, t.dataLocation);
  return w.finish();
}

function encodeAttribute(a: AttributeProto): Uint8Array {
  const w = new ProtoWriter();
  w.stringField(1, a.name);
  if (a.f !== undefined) w.floatField(2, a.f);
  if (a.i !== undefined) w.int64Field(3, a.i);
  if (a.s !== undefined) w.bytesField(4, a.s);
  if (a.t !== undefined) w.bytesField(5, encodeTensor(a.t));
  if (a.g !== undefined) w.bytesField(6, encodeGraph(a.g));
  if (a.floats) for (const f of a.floats) w.floatField(7, f);
  if (a.ints) for (const v of a.ints) w.int64Field(8, v);
  w.int64Field(20, a.type);
  return w.finish();
}

function encodeNode(n: NodeProto): Uint8Array {
  const w = new ProtoWriter();
  for (const s of n.input) w.stringField(1, s);
  for (const s of n.output) w.stringField(2, s);
  if (n.name) w.stringField(3, n.name);
  w.stringField(4, n.opType);
  for (const a of n.attribute) w.bytesField(5, encodeAttribute(a));
  if (n.domain) w.stringField(7, n.domain);
  return w.finish();
}

function encodeTensorType(t: TensorType): Uint8Array {
  const tt = new ProtoWriter();
  tt.int64Field(1, t.elemType);
  if (t.shape) {
    const sh = new ProtoWriter();
    for (const d of t.shape) {
      const dim = new ProtoWriter();
      if (typeof d === 'number') dim.int64Field(1, d);
      else if (typeof d === 'string') dim.stringField(2, d);
      sh.bytesField(1, dim.finish());
    }
    tt.bytesField(2, sh.finish());
  }
  return new ProtoWriter().bytesField(1, tt.finish()).finish();
}

function encodeValueInfo(v: ValueInfoProto): Uint8Array {
  const w = new ProtoWriter().stringField(1, v.name);
  if (v.type) w.bytesField(2, encodeTensorType(v.type));
  return w.finish();
}

export function encodeGraph(g: GraphProto): Uint8Array {
  const w = new ProtoWriter();
  for (const n of g.node) w.bytesField(1, encodeNode(n));
  w.stringField(2, g.name);
  for (const t of g.initializer) w.bytesField(5, encodeTensor(t));
  for (const v of g.input) w.bytesField(11, encodeValueInfo(v));
  for (const v of g.output) w.bytesField(12, encodeValueInfo(v));
  for (const v of g.valueInfo) w.bytesField(13, encodeValueInfo(v));
  return w.finish();
}

export function encodeModel(m: ModelProto): Uint8Array {
  const w = new ProtoWriter();
  w.int64Field(1, m.irVersion);
  if (m.producerName) w.stringField(2, m.producerName);
  if (m.producerVersion) w.stringField(3, m.producerVersion);
  if (m.graph) w.bytesField(7, encodeGraph(m.graph));
  for (const o of m.opsetImport) {
    const ow = new ProtoWriter();
    if (o.domain) ow.stringField(1, o.domain);
    ow.int64Field(2, o.version);
    w.bytesField(8, ow.finish());
  }
  for (const e of m.metadataProps) w.bytesField(14, encodeEntry(e));
  return w.finish();
}

// ---------------------------------------------------------------------------------------
// Byte sources
// ---------------------------------------------------------------------------------------

/** Random access to the bytes of a serialized message. */
export interface ByteSource {
  readonly length: number;
  byte(pos: number): number;
  /** `len` bytes at `pos`; a view (no copy) when the source is in memory. */
  bytes(pos: number, len: number): Uint8Array;
}

export class MemorySource implements ByteSource {
  constructor(private readonly buf: Uint8Array) {}
  get length(): number {
    return this.buf.length;
  }
  byte(pos: number): number {
    return this.buf[pos]!;
  }
  bytes(pos: number, len: number): Uint8Array {
    return this.buf.subarray(pos, pos + len);
  }
}

/**
 * A file read on demand through a small window, so decoding the header of a model whose
 * initializers fill gigabytes reads only the bytes the decoder actually visits.
 */
export class FileSource implements ByteSource {
  private readonly fd: number;
  readonly length: number;
  private win = new Uint8Array(0);
  private winStart = 0;
  private static readonly WINDOW = 64 * 1024;

  constructor(path: string) {
    this.fd = fs.openSync(path, 'r');
    this.length = fs.fstatSync(this.fd).size;
  }

  private load(pos: number): void {
    const n = Math.min(FileSource.WINDOW, this.length - pos);
    const buf = new Uint8Array(Math.max(n, 0));
    let got = 0;
    while (got < n) {
      const r = fs.readSync(this.fd, buf, got, n - got, pos + got);
      if (r <= 0) break;
      got += r;
    }
    this.win = buf.subarray(0, got);
    this.winStart = pos;
  }

  byte(pos: number): number {
    if (pos < this.winStart || pos >= this.winStart + this.win.length) {
      if (pos >= this.length) throw new RangeError('read past end of file');
      this.load(pos);
    }
    return this.win[pos - this.winStart]!;
  }

  bytes(pos: number, len: number): Uint8Array {
    if (pos + len > this.length) throw new RangeError('read past end of file');
    if (pos >= this.winStart && pos + len <= this.winStart + this.win.length) {
      return this.win.slice(pos - this.winStart, pos - this.winStart + len);
    }
    const out = new Uint8Array(len);
    let got = 0;
    while (got < len) {
      const r = fs.readSync(this.fd, out, got, len - got, pos + got);
      if (r <= 0) throw new RangeError('read past end of file');
      got += r;
    }
    return out;
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

// ---------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------

/** Thrown for bytes that are not a well-formed protobuf message. */
export class ProtoError extends Error {
  override readonly name = 'ProtoError';
}

export class ProtoReader {
  pos: number;
  constructor(
    readonly src: ByteSource,
    start = 0,
    readonly end = src.length,
  ) {
    this.pos = start;
    if (end > src.length) throw new ProtoError('message extends past the end of the data');
  }

  eof(): boolean {
    return this.pos >= this.end;
  }

  private next(): number {
    if (this.pos >= this.end) throw new ProtoError('truncated message');
    return this.src.byte(this.pos++);
  }

  /** Varint as an unsigned 64-bit value, returned as a number (exact up to 2^53). */
  private varintRaw(): bigint | number {
    let value = 0;
    let mul = 1;
    for (let i = 0; i < 7; i++) {
      const b = this.next();
      value += (b & 0x7f) * mul;
      if (b < 0x80) return value;
      mul *= 128;
    }
    // Rare long form (negative int64 or huge values): finish in BigInt.
    let big = BigInt(value);
    let shift = 49n;
    for (let i = 7; i < 10; i++) {
      const b = this.next();
      big |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return big;
      shift += 7n;
    }
    throw new ProtoError('malformed varint');
  }

  varint(): number {
    const v = this.varintRaw();
    return typeof v === 'number' ? v : Number(v);
  }

  /** int64/int32 field: two's complement interpretation of the 64-bit varint. */
  int64(): number {
    const v = this.varintRaw();
    return typeof v === 'number' ? v : Number(BigInt.asIntN(64, v));
  }

  float(): number {
    const b = this.bytesRaw(4);
    return new DataView(b.buffer, b.byteOffset, 4).getFloat32(0, true);
  }

  private bytesRaw(n: number): Uint8Array {
    if (this.pos + n > this.end) throw new ProtoError('truncated message');
    const out = this.src.bytes(this.pos, n);
    this.pos += n;
    return out;
  }

  /** Reads a tag; returns [field, wireType]. */
  tag(): [number, number] {
    const t = this.varint();
    const field = Math.floor(t / 8);
    const wire = t % 8;
    if (field === 0) throw new ProtoError('invalid field number 0');
    return [field, wire];
  }

  /** Length of a length-delimited field; leaves pos at its first byte. */
  lengthPrefix(): number {
    const n = this.varint();
    if (this.pos + n > this.end) throw new ProtoError('length-delimited field extends past its message');
    return n;
  }

  bytes(): Uint8Array {
    return this.bytesRaw(this.lengthPrefix());
  }

  string(): string {
    return textDecoder.decode(this.bytes());
  }

  /** A sub-reader over the next length-delimited field (no bytes are read). */
  sub(): ProtoReader {
    const n = this.lengthPrefix();
    const r = new ProtoReader(this.src, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }

  skip(wire: number): void {
    switch (wire) {
      case WIRE_VARINT:
        this.varintRaw();
        return;
      case WIRE_I64:
        this.advance(8);
        return;
      case WIRE_LEN:
        this.advance(this.lengthPrefix());
        return;
      case WIRE_I32:
        this.advance(4);
        return;
      default:
        // Groups (3, 4) are not used by onnx.proto; 6 and 7 do not exist.
        throw new ProtoError(`unsupported wire type ${wire}`);
    }
  }

  private advance(n: number): void {
    if (this.pos + n > this.end) throw new ProtoError('truncated message');
    this.pos += n;
  }

  /** Repeated int64 in either packed or unpacked form. */
  int64s(wire: number, out: number[]): void {
    if (wire === WIRE_LEN) {
      const r = this.sub();
      while (!r.eof()) out.push(r.int64());
    } else if (wire === WIRE_VARINT) out.push(this.int64());
    else throw new ProtoError(`wire type ${wire} for an integer field`);
  }

  /** Repeated float in either packed or unpacked form. */
  floats(wire: number, out: number[]): void {
    if (wire === WIRE_LEN) {
      const r = this.sub();
      while (!r.eof()) out.push(r.float());
    } else if (wire === WIRE_I32) out.push(this.float());
    else throw new ProtoError(`wire type ${wire} for a float field`);
  }

  expect(wire: number, want: number, what: string): void {
    if (wire !== want) throw new ProtoError(`wire type ${wire} for ${what}`);
  }
}

/** What the decoder materialises; skipping saves time and memory on large models. */
export interface DecodeOptions {
  /** Decode tensor payloads (raw_data, float_data, ...). Default true. */
  tensorData?: boolean;
  /** Decode graph nodes. Default true. */
  nodes?: boolean;
}

function decodeEntry(r: ProtoReader): StringStringEntry {
  const e: StringStringEntry = { key: '', value: '' };
  while (!r.eof()) {
    const [f, w] = r.tag();
    if (f === 1 && w === WIRE_LEN) e.key = r.string();
    else if (f === 2 && w === WIRE_LEN) e.value = r.string();
    else r.skip(w);
  }
  return e;
}

export function decodeTensor(r: ProtoReader, opts: DecodeOptions = {}): TensorProto {
  const withData = opts.tensorData !== false;
  const t: TensorProto = { name: '', dims: [], dataType: 0 };
  while (!r.eof()) {
    const [f, w] = r.tag();
    switch (f) {
      case 1:
        r.int64s(w, t.dims);
        break;
      case 2:
        r.expect(w, WIRE_VARINT, 'TensorProto.data_type');
        t.dataType = r.int64();
        break;
      case 4:
        if (withData) r.floats(w, (t.floatData ??= []));
        else r.skip(w);
        break;
      case 5:
        if (withData) r.int64s(w, (t.int32Data ??= []));
        else r.skip(w);
        break;
      case 7:
        if (withData) r.int64s(w, (t.int64Data ??= []));
        else r.skip(w);
        break;
      case 8:
        r.expect(w, WIRE_LEN, 'TensorProto.name');
        t.name = r.string();
        break;
      case 9:
        r.expect(w, WIRE_LEN, 'TensorProto.raw_data');
        if (withData) t.rawData = r.bytes();
        else r.skip(w);
        break;
      case 13:
        r.expect(w, WIRE_LEN, 'TensorProto.external_data');
        (t.externalData ??= []).push(decodeEntry(r.sub()));
        break;
      case 14:
        r.expect(w, WIRE_VARINT, 'TensorProto.data_location');
        t.dataLocation = r.int64();
        break;
      default:
        r.skip(w);
    }
  }
  return t;
}

function decodeAttribute(r: ProtoReader, opts: DecodeOptions): AttributeProto {
  const a: AttributeProto = { name: '', type: 0 };
  while (!r.eof()) {
    const [f, w] = r.tag();
    switch (f) {
      case 1:
        r.expect(w, WIRE_LEN, 'AttributeProto.name');
        a.name = r.string();
        break;
      case 2:
        r.expect(w, WIRE_I32, 'AttributeProto.f');
        a.f = r.float();
        break;
      case 3:
        r.expect(w, WIRE_VARINT, 'AttributeProto.i');
        a.i = r.int64();
        break;
      case 4:
        r.expect(w, WIRE_LEN, 'AttributeProto.s');
        a.s = r.bytes();
        break;
      case 5:
        r.expect(w, WIRE_LEN, 'AttributeProto.t');
        a.t = decodeTensor(r.sub(), opts);
        break;
      case 7:
        r.floats(w, (a.floats ??= []));
        break;
      case 6:
        // An If branch or a Loop/Scan body: kept, so that a model decoded and encoded again
        // keeps its control flow (and the gradient transform can inline a branch).
        r.expect(w, WIRE_LEN, 'AttributeProto.g');
        a.g = decodeGraph(r.sub(), opts);
        break;
      case 8:
        r.int64s(w, (a.ints ??= []));
        break;
      case 20:
        r.expect(w, WIRE_VARINT, 'AttributeProto.type');
        a.type = r.int64();
        break;
      default:
        // Lists of subgraphs, strings, tensors: not needed here.
        r.skip(w);
    }
  }
  return a;
}

function decodeNode(r: ProtoReader, opts: DecodeOptions): NodeProto {
  const n: NodeProto = { input: [], output: [], name: '', opType: '', domain: '', attribute: [] };
  while (!r.eof()) {
    const [f, w] = r.tag();
    if (w === WIRE_LEN && f === 1) n.input.push(r.string());
    else if (w === WIRE_LEN && f === 2) n.output.push(r.string());
    else if (w === WIRE_LEN && f === 3) n.name = r.string();
    else if (w === WIRE_LEN && f === 4) n.opType = r.string();
    else if (w === WIRE_LEN && f === 5) n.attribute.push(decodeAttribute(r.sub(), opts));
    else if (w === WIRE_LEN && f === 7) n.domain = r.string();
    else r.skip(w);
  }
  return n;
}

function decodeDim(r: ProtoReader): Dim {
  let d: Dim = null;
  while (!r.eof()) {
    const [f, w] = r.tag();
    if (f === 1 && w === WIRE_VARINT) d = r.int64();
    else if (f === 2 && w === WIRE_LEN) d = r.string();
    else r.skip(w);
  }
  return d;
}

function decodeTensorType(r: ProtoReader): TensorType {
  const t: TensorType = { elemType: 0 };
  while (!r.eof()) {
    const [f, w] = r.tag();
    if (f === 1 && w === WIRE_VARINT) t.elemType = r.int64();
    else if (f === 2 && w === WIRE_LEN) {
      const shape: Dim[] = [];
      const s = r.sub();
      while (!s.eof()) {
        const [sf, sw] = s.tag();
        if (sf === 1 && sw === WIRE_LEN) shape.push(decodeDim(s.sub()));
        else s.skip(sw);
      }
      t.shape = shape;
    } else r.skip(w);
  }
  return t;
}

function decodeValueInfo(r: ProtoReader): ValueInfoProto {
  const v: ValueInfoProto = { name: '' };
  while (!r.eof()) {
    const [f, w] = r.tag();
    if (f === 1 && w === WIRE_LEN) v.name = r.string();
    else if (f === 2 && w === WIRE_LEN) {
      // TypeProto: only tensor_type (field 1) is of interest.
      const tp = r.sub();
      while (!tp.eof()) {
        const [tf, tw] = tp.tag();
        if (tf === 1 && tw === WIRE_LEN) v.type = decodeTensorType(tp.sub());
        else tp.skip(tw);
      }
    } else r.skip(w);
  }
  return v;
}

export function decodeGraph(r: ProtoReader, opts: DecodeOptions = {}): GraphProto {
  const g: GraphProto = { name: '', node: [], initializer: [], input: [], output: [], valueInfo: [] };
  const withNodes = opts.nodes !== false;
  while (!r.eof()) {
    const [f, w] = r.tag();
    if (w !== WIRE_LEN) {
      r.skip(w);
      continue;
    }
    switch (f) {
      case 1:
        if (withNodes) g.node.push(decodeNode(r.sub(), opts));
        else r.skip(w);
        break;
      case 2:
        g.name = r.string();
        break;
      case 5:
        g.initializer.push(decodeTensor(r.sub(), opts));
        break;
      case 11:
        g.input.push(decodeValueInfo(r.sub()));
        break;
      case 12:
        g.output.push(decodeValueInfo(r.sub()));
        break;
      case 13:
        g.valueInfo.push(decodeValueInfo(r.sub()));
        break;
      default:
        r.skip(w);
    }
  }
  return g;
}

function decodeModelFrom(r: ProtoReader, opts: DecodeOptions): ModelProto {
  const m: ModelProto = { irVersion: 0, opsetImport: [], producerName: '', producerVersion: '', metadataProps: [] };
  while (!r.eof()) {
    const [f, w] = r.tag();
    if (f === 1 && w === WIRE_VARINT) m.irVersion = r.int64();
    else if (f === 2 && w === WIRE_LEN) m.producerName = r.string();
    else if (f === 3 && w === WIRE_LEN) m.producerVersion = r.string();
    else if (f === 7 && w === WIRE_LEN) m.graph = decodeGraph(r.sub(), opts);
    else if (f === 8 && w === WIRE_LEN) {
      const o: OperatorSetId = { domain: '', version: 0 };
      const s = r.sub();
      while (!s.eof()) {
        const [of, ow] = s.tag();
        if (of === 1 && ow === WIRE_LEN) o.domain = s.string();
        else if (of === 2 && ow === WIRE_VARINT) o.version = s.int64();
        else s.skip(ow);
      }
      m.opsetImport.push(o);
    } else if (f === 14 && w === WIRE_LEN) m.metadataProps.push(decodeEntry(r.sub()));
    else r.skip(w);
  }
  return m;
}

/** Decodes a ModelProto held in memory. Tensor payloads are views into `bytes`. */
export function decodeModel(bytes: Uint8Array, opts: DecodeOptions = {}): ModelProto {
  return decodeModelFrom(new ProtoReader(new MemorySource(bytes)), opts);
}

/** Decodes a model from any byte source without node lists and tensor payloads. */
export function decodeModelHeader(src: ByteSource): ModelProto {
  return decodeModelFrom(new ProtoReader(src), { tensorData: false, nodes: false });
}

/**
 * Decodes the header of a model file: everything but node lists and tensor payloads,
 * reading only the bytes it visits (initializer payloads are skipped by seeking).
 */
export function readModelHeader(path: string): ModelProto {
  const src = new FileSource(path);
  try {
    return decodeModelHeader(src);
  } finally {
    src.close();
  }
}

// ---------------------------------------------------------------------------------------
// Tensor payload helpers
// ---------------------------------------------------------------------------------------

// Tensor payloads are little-endian; reinterpreting typed-array memory is only valid on a
// little-endian host (every platform onnxruntime-node ships for).
const HOST_LE = os.endianness() === 'LE';

/** The little-endian bytes of a Float32Array (a view, no copy, on little-endian hosts). */
export function float32Bytes(a: Float32Array): Uint8Array {
  if (!HOST_LE) throw new Error('big-endian hosts are not supported');
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** float32 TensorProto. */
export function floatTensor(name: string, dims: number[], data: ArrayLike<number>): TensorProto {
  const n = elementCount(dims);
  if (data.length !== n) throw new RangeError(`tensor ${name}: ${data.length} values for dims [${dims.join(',')}]`);
  const f = data instanceof Float32Array ? data : Float32Array.from(data);
  return { name, dims: [...dims], dataType: DataType.FLOAT, rawData: float32Bytes(f) };
}

/** float64 TensorProto. */
export function doubleTensor(name: string, dims: number[], data: ArrayLike<number>): TensorProto {
  if (!HOST_LE) throw new Error('big-endian hosts are not supported');
  const n = elementCount(dims);
  if (data.length !== n) throw new RangeError(`tensor ${name}: ${data.length} values for dims [${dims.join(',')}]`);
  const f = Float64Array.from(data);
  return { name, dims: [...dims], dataType: DataType.DOUBLE, rawData: new Uint8Array(f.buffer) };
}

/** int64 TensorProto (values must be safe integers). */
export function int64Tensor(name: string, dims: number[], data: ArrayLike<number>): TensorProto {
  if (!HOST_LE) throw new Error('big-endian hosts are not supported');
  const b = new BigInt64Array(data.length);
  for (let i = 0; i < data.length; i++) b[i] = BigInt(data[i]!);
  return { name, dims: [...dims], dataType: DataType.INT64, rawData: new Uint8Array(b.buffer) };
}

/** The float32 values of a decoded tensor (raw_data or float_data). */
export function tensorFloats(t: TensorProto): Float32Array {
  if (t.dataType !== DataType.FLOAT) throw new Error(`tensor ${t.name} is ${dataTypeName(t.dataType)}, not float32`);
  if (t.rawData) {
    const copy = t.rawData.slice();
    return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
  }
  return Float32Array.from(t.floatData ?? []);
}
