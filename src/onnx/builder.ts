/**
 * The ONNX graph builder and model serialisation: value naming, initializers, nodes and the
 * ModelProto around them (opset 17, IR version 8), saved with optional external data. Not test
 * code: src/graph/gradient.ts writes the classifier-gradient graph with the proto writer and the
 * fused samplers are emitted with it; the test and bench model definitions built on it live in
 * test/support/models.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  AttributeType,
  doubleTensor,
  encodeModel,
  floatTensor,
  int64Tensor,
  type AttributeProto,
  type Dim,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type OperatorSetId,
  type TensorProto,
  type ValueInfoProto,
} from './proto.js';

export const OPSET = 17;
export const IR_VERSION = 8;
export const PRODUCER = 'adasde';

export type AttrValue =
  | { f: number }
  | { i: number }
  | { s: string }
  | { floats: readonly number[] }
  | { ints: readonly number[] }
  | { t: TensorProto };

function toAttribute(name: string, v: AttrValue): AttributeProto {
  if ('f' in v) return { name, type: AttributeType.FLOAT, f: v.f };
  if ('i' in v) return { name, type: AttributeType.INT, i: v.i };
  if ('s' in v) return { name, type: AttributeType.STRING, s: new TextEncoder().encode(v.s) };
  if ('floats' in v) return { name, type: AttributeType.FLOATS, floats: [...v.floats] };
  if ('ints' in v) return { name, type: AttributeType.INTS, ints: [...v.ints] };
  return { name, type: AttributeType.TENSOR, t: v.t };
}

/** Builds one GraphProto; value names are generated unique from hints. */
export class GraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly inits: TensorProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly names = new Set<string>();
  private readonly scalarCache = new Map<number, string>();
  private readonly doubleCache = new Map<number, string>();
  private counter = 0;

  constructor(readonly name = 'adasde') {}

  /** A new unique value name. */
  fresh(hint = 'v'): string {
    let n = `${hint}_${this.counter++}`;
    while (this.names.has(n)) n = `${hint}_${this.counter++}`;
    this.names.add(n);
    return n;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`graph value '${name}' defined twice`);
    this.names.add(name);
    return name;
  }

  input(name: string, elemType: number, shape: Dim[]): string {
    this.inputs.push({ name: this.claim(name), type: { elemType, shape: [...shape] } });
    return name;
  }

  /** Declares graph output `name` computed as `value` (an Identity node renames it). */
  output(value: string, name: string, elemType: number, shape: Dim[]): void {
    if (value !== name) this.nodes.push({ input: [value], output: [this.claim(name)], name: `out_${name}`, opType: 'Identity', domain: '', attribute: [] });
    this.outputs.push({ name, type: { elemType, shape: [...shape] } });
  }

  /** An initializer as it is (a model's weights carried over under their own name). */
  initializer(t: TensorProto): string {
    this.inits.push({ ...t, name: this.claim(t.name) });
    return t.name;
  }

  /** A node as it is (a model's node carried over, its values already renamed by the caller). */
  node(n: NodeProto): void {
    this.nodes.push(n);
  }

  /** float32 initializer. */
  constant(data: ArrayLike<number>, dims: number[], hint = 'const'): string {
    const n = this.fresh(hint);
    this.inits.push(floatTensor(n, dims, data));
    return n;
  }

  /** float64 initializer. */
  constantDouble(data: ArrayLike<number>, dims: number[], hint = 'const_f64'): string {
    const n = this.fresh(hint);
    this.inits.push(doubleTensor(n, dims, data));
    return n;
  }

  constantInt64(data: ArrayLike<number>, dims: number[], hint = 'const_i64'): string {
    const n = this.fresh(hint);
    this.inits.push(int64Tensor(n, dims, data));
    return n;
  }

  /** A float32 scalar initializer (shared between uses). */
  scalar(v: number): string {
    const c = this.scalarCache.get(v);
    if (c !== undefined) return c;
    const n = this.constant([v], [], 'scalar');
    this.scalarCache.set(v, n);
    return n;
  }

  /** A float64 scalar initializer (shared between uses). */
  scalarDouble(v: number): string {
    const c = this.doubleCache.get(v);
    if (c !== undefined) return c;
    const n = this.constantDouble([v], [], 'scalar_f64');
    this.doubleCache.set(v, n);
    return n;
  }

  /** Adds a node with one output; returns the output's name. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, hint?: string): string {
    return this.opN(opType, inputs, 1, attrs, hint)[0]!;
  }

  opN(opType: string, inputs: string[], nOut: number, attrs: Record<string, AttrValue> = {}, hint?: string): string[] {
    const outs: string[] = [];
    for (let k = 0; k < nOut; k++) outs.push(this.fresh(hint ?? opType.toLowerCase()));
    this.nodes.push({
      input: inputs,
      output: outs,
      name: `${opType}_${this.nodes.length}`,
      opType,
      domain: '',
      attribute: Object.entries(attrs).map(([k, v]) => toAttribute(k, v)),
    });
    return outs;
  }

  graph(): GraphProto {
    return { name: this.name, node: [...this.nodes], initializer: [...this.inits], input: [...this.inputs], output: [...this.outputs], valueInfo: [] };
  }

  /**
   * The ModelProto; `opsetImport` replaces the default opset list (a graph that carries
   * another model's nodes keeps that model's opsets, custom domains included).
   */
  model(metadata: Record<string, string> = {}, opts: { opset?: number; irVersion?: number; opsetImport?: OperatorSetId[] } = {}): ModelProto {
    return {
      irVersion: opts.irVersion ?? IR_VERSION,
      opsetImport: opts.opsetImport ? opts.opsetImport.map((o) => ({ ...o })) : [{ domain: '', version: opts.opset ?? OPSET }],
      producerName: PRODUCER,
      producerVersion: '',
      graph: this.graph(),
      metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
    };
  }
}

// ---------------------------------------------------------------------------------------
// Saving
// ---------------------------------------------------------------------------------------

export interface SaveOptions {
  /**
   * Write initializers of at least `threshold` bytes (default 1024) to this file, beside
   * the model, as ONNX external data (relative `location`).
   */
  externalData?: string;
  threshold?: number;
}

/** Serialises a model to `file` (and its external data file when asked). */
export function saveModel(model: ModelProto, file: string, opts: SaveOptions = {}): void {
  if (!opts.externalData || !model.graph) {
    fs.writeFileSync(file, encodeModel(model));
    return;
  }
  const threshold = opts.threshold ?? 1024;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const initializer = model.graph.initializer.map((t): TensorProto => {
    if (!t.rawData || t.rawData.length < threshold) return t;
    const pad = (64 - (offset % 64)) % 64; // keep payloads aligned for memory mapping
    if (pad) chunks.push(new Uint8Array(pad));
    offset += pad;
    chunks.push(t.rawData);
    const entry: TensorProto = {
      name: t.name,
      dims: t.dims,
      dataType: t.dataType,
      dataLocation: 1,
      externalData: [
        { key: 'location', value: opts.externalData! },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(t.rawData.length) },
      ],
    };
    offset += t.rawData.length;
    return entry;
  });
  fs.writeFileSync(path.join(path.dirname(file), opts.externalData), Buffer.concat(chunks));
  fs.writeFileSync(file, encodeModel({ ...model, graph: { ...model.graph, initializer } }));
}

/** Serialised bytes of a model (for sessions created from memory and for tests). */
export function modelBytes(model: ModelProto): Uint8Array {
  return encodeModel(model);
}
