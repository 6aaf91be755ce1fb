/**
 * Reverse-mode differentiation of an ONNX classifier graph, written as ONNX: from a
 * classifier companion `(x, sigma) -> log_probs [N, K]` it builds a graph with the extra
 * input `class_labels` [N, K] and the output
 *
 *   grad_x = d/dx sum_k class_labels[n, k] log_probs[n, k]
 *
 * (for one-hot labels the gradient of log p(y | x, sigma) that classifier guidance needs,
 * ALGORITHM.md section 8), keeping `log_probs`. Inference runtimes cannot differentiate, so
 * the backward pass is spelled out as ordinary ONNX operators that onnxruntime-node runs.
 *
 * Only protos are read and written here (no onnxruntime). The forward nodes are kept as
 * they are; the backward nodes follow in reverse topological order, one rule per
 * operator. Shapes that only the runtime knows (a dynamic batch) are read with Shape/Size
 * inside the graph, so the result works for every batch size the classifier takes; static
 * ranks (inferred here) are needed only where an attribute must be written (Transpose
 * perms, Pad/Slice of a known number of axes).
 *
 * Operators on the path from x to log_probs that have no rule are refused with the node's
 * name (UsageError): a wrong gradient must never be produced silently.
 */
import { UsageError } from '../core/errors.js';
import {
  AttributeType,
  DataType,
  dataTypeName,
  floatTensor,
  int64Tensor,
  tensorFloats,
  type AttributeProto,
  type Dim,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from '../onnx/proto.js';
import { elementCount } from '../core/shape.js';

/** Names in the gradient graph's signature. */
export const GRADIENT_IO = { x: 'x', sigma: 'sigma', labels: 'class_labels', logProbs: 'log_probs', grad: 'grad_x' } as const;

/** Bumped whenever a rule changes, so cached gradient graphs are rebuilt. */
export const GRADIENT_TRANSFORM_VERSION = '9';

/** Operators with a backward rule (shape-only and comparison operators pass as constants). */
export const DIFFERENTIABLE_OPS = [
  'Add', 'Sub', 'Mul', 'Div', 'Neg', 'Pow', 'Sqrt', 'Exp', 'Log', 'Reciprocal', 'Tanh', 'Sigmoid', 'Relu', 'Erf',
  'Identity', 'Cast', 'Where', 'Softmax', 'LogSoftmax', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Expand',
  'Transpose', 'Concat', 'Split', 'Slice', 'Gather', 'Pad', 'Conv', 'Gemm', 'MatMul', 'Einsum', 'AveragePool',
  'GlobalAveragePool', 'ReduceMean', 'ReduceSum', 'InstanceNormalization', 'Sin', 'Cos', 'Resize', 'MaxPool',
  'BatchNormalization', 'LayerNormalization', 'ConvTranspose', 'Clip', 'GridSample',
] as const;

/** Internal: the identity with a zero gradient (straight-through estimators); emitted as Identity. */
const STOP_GRADIENT = 'adasde.StopGradient';

/** Outputs of these never carry a gradient (integer/boolean results, or piecewise constant). */
const NON_DIFFERENTIABLE = new Set([
  'Shape', 'Size', 'Constant', 'ConstantOfShape', 'Range', 'NonZero', 'Equal', 'Less', 'Greater', 'LessOrEqual',
  'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'ArgMax', 'ArgMin', 'Floor', 'Ceil', 'Round', 'Sign', 'IsNaN', 'IsInf', 'OneHot',
  STOP_GRADIENT,
]);

const INT64_MAX = Number.MAX_SAFE_INTEGER;

// ---------------------------------------------------------------------------------------
// Reading constants and attributes
// ---------------------------------------------------------------------------------------

function attr(n: NodeProto, name: string): AttributeProto | undefined {
  return n.attribute.find((a) => a.name === name);
}
function attrInt(n: NodeProto, name: string, dflt: number): number {
  return attr(n, name)?.i ?? dflt;
}
function attrInts(n: NodeProto, name: string): number[] | undefined {
  const a = attr(n, name);
  return a?.ints ? [...a.ints] : undefined;
}
function attrString(n: NodeProto, name: string): string | undefined {
  const a = attr(n, name);
  return a?.s ? new TextDecoder().decode(a.s) : undefined;
}

/** Integer values of a tensor (int64/int32 raw or typed fields), or undefined. */
function tensorInts(t: TensorProto): number[] | undefined {
  if (t.dataType === DataType.INT64) {
    if (t.rawData) {
      const b = t.rawData.slice();
      return Array.from(new BigInt64Array(b.buffer, 0, b.byteLength / 8), (v) => Number(v));
    }
    return t.int64Data ? [...t.int64Data] : [];
  }
  if (t.dataType === DataType.INT32) {
    if (t.rawData) {
      const b = t.rawData.slice();
      return Array.from(new Int32Array(b.buffer, 0, b.byteLength / 4));
    }
    return t.int32Data ? [...t.int32Data] : [];
  }
  return undefined;
}

/** A Constant node's value as a tensor (value, value_int(s), value_float(s)). */
function constantNodeTensor(n: NodeProto): TensorProto | undefined {
  for (const a of n.attribute) {
    if (a.name === 'value' && a.t) return a.t;
    if (a.name === 'value_int' && a.i !== undefined) return int64Tensor('', [], [a.i]);
    if (a.name === 'value_ints' && a.ints) return int64Tensor('', [a.ints.length], a.ints);
    if (a.name === 'value_float' && a.f !== undefined) return floatTensor('', [], [a.f]);
    if (a.name === 'value_floats' && a.floats) return floatTensor('', [a.floats.length], a.floats);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Static shapes: ranks always, dims where they are cheap to know
// ---------------------------------------------------------------------------------------

type Dims = Dim[];

function broadcastDims(shapes: (Dims | undefined)[]): Dims | undefined {
  if (shapes.some((s) => s === undefined)) return undefined;
  const r = Math.max(...shapes.map((s) => s!.length));
  const out: Dims = [];
  for (let k = 0; k < r; k++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const e = s![k - (r - s!.length)];
      if (e === undefined || e === 1) continue;
      if (d === 1) d = e;
      else if (d !== e) d = null;
    }
    out.push(d);
  }
  return out;
}

const normAxis = (a: number, r: number): number => (a < 0 ? a + r : a);

/**
 * Infers the static dims (rank, plus sizes where cheap) of every value; unknown ranks stay
 * undefined and only matter to rules that need them.
 */
function inferDims(g: GraphProto, consts: Map<string, TensorProto>): Map<string, Dims> {
  const dims = new Map<string, Dims>();
  for (const v of g.input) if (v.type?.shape) dims.set(v.name, v.type.shape);
  for (const [name, t] of consts) dims.set(name, [...t.dims]);
  const ints = (name: string | undefined): number[] | undefined => {
    if (!name) return undefined;
    const t = consts.get(name);
    return t ? tensorInts(t) : undefined;
  };
  for (const n of g.node) {
    const d = (k: number): Dims | undefined => (n.input[k] ? dims.get(n.input[k]) : undefined);
    const set = (k: number, v: Dims | undefined) => {
      if (v !== undefined && n.output[k]) dims.set(n.output[k], v);
    };
    const x = d(0);
    const r = x?.length;
    switch (n.opType) {
      case 'Constant': {
        const t = constantNodeTensor(n);
        if (t) set(0, [...t.dims]);
        break;
      }
      case 'Identity': case 'Cast': case 'Neg': case 'Sqrt': case 'Exp': case 'Log': case 'Reciprocal': case 'Tanh': case 'BatchNormalization':
      case 'Sigmoid': case 'Relu': case 'Erf': case 'Softmax': case 'LogSoftmax': case 'InstanceNormalization':
      case 'Floor': case 'Ceil': case 'Round': case 'Sign': case 'Not': case 'Abs': case 'Sin': case 'Cos': case 'Clip':
        set(0, x);
        break;
      case 'Add': case 'Sub': case 'Mul': case 'Div': case 'Pow': case 'Equal': case 'Less': case 'Greater':
      case 'LessOrEqual': case 'GreaterOrEqual': case 'And': case 'Or': case 'Max': case 'Min': case 'Where': case 'Sum':
        set(0, broadcastDims(n.input.map((v) => dims.get(v))));
        break;
      case 'Shape': {
        if (r === undefined) break;
        const s = normAxis(attrInt(n, 'start', 0), r);
        const e = attr(n, 'end') ? normAxis(attrInt(n, 'end', r), r) : r;
        set(0, [Math.max(0, Math.min(e, r) - Math.max(0, s))]);
        break;
      }
      case 'Size':
        set(0, []);
        break;
      case 'ConstantOfShape': {
        const len = x?.[0];
        if (typeof len === 'number') {
          const v = ints(n.input[0]);
          set(0, v ? v : new Array<Dim>(len).fill(null));
        }
        break;
      }
      case 'Range':
        set(0, [null]);
        break;
      case 'NonZero':
        set(0, [r ?? null, null]);
        break;
      case 'Reshape': {
        const s = d(1);
        const v = ints(n.input[1]);
        if (v && x) set(0, v.map((e, k) => (e === 0 && attrInt(n, 'allowzero', 0) === 0 ? x[k] ?? null : e < 0 ? null : e)));
        else if (s && typeof s[0] === 'number') set(0, new Array<Dim>(s[0]).fill(null));
        break;
      }
      case 'Flatten':
        if (r !== undefined) set(0, [null, null]);
        break;
      case 'Unsqueeze': {
        const axes = ints(n.input[1]) ?? attrInts(n, 'axes');
        if (!x || !axes) break;
        const out: Dims = [];
        const R = x.length + axes.length;
        const ax = new Set(axes.map((a) => normAxis(a, R)));
        let j = 0;
        for (let k = 0; k < R; k++) out.push(ax.has(k) ? 1 : x[j++] ?? null);
        set(0, out);
        break;
      }
      case 'Squeeze': {
        const axes = ints(n.input[1]) ?? attrInts(n, 'axes');
        if (!x) break;
        if (axes) {
          const ax = new Set(axes.map((a) => normAxis(a, x.length)));
          set(0, x.filter((_, k) => !ax.has(k)));
        } else if (x.every((e) => e !== null && typeof e === 'number')) set(0, x.filter((e) => e !== 1));
        break;
      }
      case 'Expand': {
        const s = d(1);
        if (x && s && typeof s[0] === 'number') set(0, new Array<Dim>(Math.max(x.length, s[0])).fill(null));
        break;
      }
      case 'Transpose': {
        if (!x) break;
        const perm = attrInts(n, 'perm') ?? x.map((_, k) => x.length - 1 - k);
        set(0, perm.map((p) => x[p] ?? null));
        break;
      }
      case 'Concat': {
        const all = n.input.map((v) => dims.get(v));
        if (all.some((s) => !s)) break;
        const ax = normAxis(attrInt(n, 'axis', 0), all[0]!.length);
        const out = [...all[0]!];
        let total: Dim = 0;
        for (const s of all) {
          const e = s![ax];
          total = typeof total === 'number' && typeof e === 'number' ? total + e : null;
        }
        out[ax] = total;
        set(0, out);
        break;
      }
      case 'Split': {
        if (!x) break;
        const ax = normAxis(attrInt(n, 'axis', 0), x.length);
        const split = ints(n.input[1]) ?? attrInts(n, 'split');
        n.output.forEach((_, k) => {
          const out = [...x];
          out[ax] = split?.[k] ?? null;
          set(k, out);
        });
        break;
      }
      case 'Slice': {
        if (!x) break;
        // Exact sizes where the bounds are constants (shape arithmetic: Slice of Shape feeding a
        // Reshape decides the rank of what follows).
        const starts = ints(n.input[1]);
        const ends = ints(n.input[2]);
        const axes = n.input[3] ? ints(n.input[3]) : starts?.map((_, k) => k);
        const steps = n.input[4] ? ints(n.input[4]) : starts?.map(() => 1);
        const out: Dims = [...x];
        if (!starts || !ends || !axes || !steps) {
          set(0, x.map(() => null));
          break;
        }
        axes.forEach((axRaw, k) => {
          const ax = normAxis(axRaw, x.length);
          const dim = x[ax];
          const st = steps[k] ?? 1;
          if (typeof dim !== 'number' || st === 0) {
            out[ax] = null;
            return;
          }
          const wrap = (v: number) => (v < 0 ? v + dim : v);
          const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
          const b = st > 0 ? clamp(wrap(starts[k]!), 0, dim) : clamp(wrap(starts[k]!), 0, dim - 1);
          const e = st > 0 ? clamp(wrap(ends[k]!), 0, dim) : clamp(wrap(ends[k]!), -1, dim - 1);
          out[ax] = Math.max(0, Math.ceil((st > 0 ? e - b : b - e) / Math.abs(st)));
        });
        set(0, out);
        break;
      }
      case 'Pad': case 'Resize': case 'Tile':
        if (x) set(0, x.map(() => null));
        break;
      case 'Gather': {
        const idx = d(1);
        if (!x || !idx) break;
        const ax = normAxis(attrInt(n, 'axis', 0), x.length);
        set(0, [...x.slice(0, ax), ...idx, ...x.slice(ax + 1)]);
        break;
      }
      case 'Conv': case 'AveragePool': case 'MaxPool': case 'ConvTranspose': {
        const w = n.opType === 'Conv' || n.opType === 'ConvTranspose' ? d(1) : undefined;
        // The weights' rank gives the output's when the input's is unknown.
        const rank = x?.length ?? w?.length ?? (attrInts(n, 'kernel_shape')?.length ?? -2) + 2;
        if (rank < 3) break;
        const channels = n.opType === 'Conv' ? w?.[0] ?? null : n.opType === 'ConvTranspose' ? null : x?.[1] ?? null;
        set(0, [x?.[0] ?? null, channels, ...new Array<Dim>(rank - 2).fill(null)]);
        break;
      }
      case 'LayerNormalization': case 'Clip':
        set(0, x);
        break;
      case 'GridSample': {
        const gd = d(1);
        if (x && x.length === 4) set(0, [x[0] ?? null, x[1] ?? null, gd?.[1] ?? null, gd?.[2] ?? null]);
        break;
      }
      case 'ArgMax': case 'ArgMin': {
        if (!x) break;
        const ax = normAxis(attrInt(n, 'axis', 0), x.length);
        set(0, attrInt(n, 'keepdims', 1) === 1 ? x.map((e, k) => (k === ax ? 1 : e)) : x.filter((_, k) => k !== ax));
        break;
      }
      case 'GlobalAveragePool':
        if (x) set(0, [x[0] ?? null, x[1] ?? null, ...x.slice(2).map(() => 1)]);
        break;
      case 'Gemm': {
        const b = d(1);
        if (!x || !b) break;
        set(0, [attrInt(n, 'transA', 0) ? x[1] ?? null : x[0] ?? null, attrInt(n, 'transB', 0) ? b[0] ?? null : b[1] ?? null]);
        break;
      }
      case 'MatMul': {
        const b = d(1);
        if (!x || !b || x.length < 2 || b.length < 2) break;
        const batch = broadcastDims([x.slice(0, -2), b.slice(0, -2)]);
        if (batch) set(0, [...batch, x[x.length - 2] ?? null, b[b.length - 1] ?? null]);
        break;
      }
      case 'Einsum': {
        const eq = parseEinsum(attrString(n, 'equation') ?? '');
        if (!eq || eq.output.includes('.')) break;
        const size = new Map<string, Dim>();
        eq.inputs.forEach((term, k) => {
          const s = d(k);
          if (s && s.length === term.length) [...term].forEach((c, j) => size.set(c, s[j] ?? null));
        });
        set(0, [...eq.output].map((c) => size.get(c) ?? null));
        break;
      }
      case 'ReduceMean': case 'ReduceSum': case 'ReduceMax': case 'ReduceMin': case 'ReduceProd': case 'ReduceL2': {
        if (!x) break;
        const axes = attrInts(n, 'axes') ?? ints(n.input[1]);
        const keep = attrInt(n, 'keepdims', 1) === 1;
        const ax = axes && axes.length ? new Set(axes.map((a) => normAxis(a, x.length))) : new Set(x.map((_, k) => k));
        set(0, keep ? x.map((e, k) => (ax.has(k) ? 1 : e)) : x.filter((_, k) => !ax.has(k)));
        break;
      }
      case 'ArgMin': case 'ArgMax': {
        if (!x) break;
        const ax = normAxis(attrInt(n, 'axis', 0), x.length);
        set(0, attrInt(n, 'keepdims', 1) === 1 ? x.map((e, k) => (k === ax ? 1 : e)) : x.filter((_, k) => k !== ax));
        break;
      }
      default:
        break;
    }
  }
  return dims;
}

// ---------------------------------------------------------------------------------------
// Einsum equations
// ---------------------------------------------------------------------------------------

interface EinsumEq {
  inputs: string[];
  output: string;
}

/** Parses `ab,bc->ac` (spaces removed; '...' kept as the single token '.'); no '->' = implicit output. */
function parseEinsum(eq: string): EinsumEq | undefined {
  const s = eq.replace(/\s+/g, '').replace(/\.\.\./g, '.');
  const [lhs, rhs] = s.split('->');
  if (lhs === undefined) return undefined;
  const inputs = lhs.split(',');
  let output = rhs;
  if (output === undefined) {
    // Implicit mode: the letters that occur once, in alphabetical order.
    const count = new Map<string, number>();
    for (const c of inputs.join('')) if (c !== '.') count.set(c, (count.get(c) ?? 0) + 1);
    output = (inputs.join('').includes('.') ? '.' : '') + [...count].filter(([, k]) => k === 1).map(([c]) => c).sort().join('');
  }
  return { inputs, output };
}

const einsumText = (terms: string[], out: string): string => `${terms.join(',')}->${out}`.replace(/\./g, '...');

// ---------------------------------------------------------------------------------------
// Resize as a matrix (its gradient is the transpose)
// ---------------------------------------------------------------------------------------

/** ONNX Resize's source coordinate of output index o along one axis. */
function resizeSource(o: number, scale: number, inLen: number, outLen: number, mode: string): number | undefined {
  switch (mode) {
    case 'half_pixel': return (o + 0.5) / scale - 0.5;
    case 'pytorch_half_pixel': return outLen > 1 ? (o + 0.5) / scale - 0.5 : 0;
    case 'asymmetric': return o / scale;
    case 'align_corners': return outLen === 1 ? 0 : (o * (inLen - 1)) / (outLen - 1);
    case 'tf_half_pixel_for_nn': return (o + 0.5) / scale;
    default: return undefined;
  }
}

function nearestIndex(v: number, mode: string): number | undefined {
  const f = Math.floor(v);
  switch (mode) {
    case 'round_prefer_floor': return v - f === 0.5 ? f : Math.round(v);
    case 'round_prefer_ceil': return v - f === 0.5 ? f + 1 : Math.round(v);
    case 'floor': return f;
    case 'ceil': return Math.ceil(v);
    default: return undefined;
  }
}

/**
 * The [outLen, inLen] matrix A with y = A x along one axis for Resize's 'nearest' or
 * 'linear' mode (ONNX operator spec; sources clamped to the edge as onnxruntime does).
 */
function resizeMatrix(inLen: number, outLen: number, scale: number, mode: string, ctm: string, nearest: string): Float32Array | undefined {
  const A = new Float32Array(outLen * inLen);
  for (let o = 0; o < outLen; o++) {
    const src = resizeSource(o, scale, inLen, outLen, ctm);
    if (src === undefined) return undefined;
    if (mode === 'nearest') {
      const k = nearestIndex(src, nearest);
      if (k === undefined) return undefined;
      A[o * inLen + Math.min(Math.max(k, 0), inLen - 1)] = 1;
    } else {
      const c = Math.min(Math.max(src, 0), inLen - 1);
      const i0 = Math.floor(c);
      const i1 = Math.min(i0 + 1, inLen - 1);
      const w = c - i0;
      A[o * inLen + i0]! += 1 - w;
      A[o * inLen + i1]! += w;
    }
  }
  return A;
}

// ---------------------------------------------------------------------------------------
// If nodes decided by the input sizes
// ---------------------------------------------------------------------------------------

/** Initializers and Constant nodes' values, by name. */
function graphConstants(g: GraphProto): Map<string, TensorProto> {
  const consts = new Map<string, TensorProto>();
  for (const t of g.initializer) consts.set(t.name, t);
  for (const n of g.node) {
    if (n.opType === 'Constant' && n.output[0]) {
      const t = constantNodeTensor(n);
      if (t) consts.set(n.output[0], t);
    }
  }
  return consts;
}

/**
 * Integer (or boolean) values known without running the graph: constants, the Shape of a
 * value of static dims, and the shape arithmetic exports do on them (Gather, Slice, Concat,
 * Cast, Unsqueeze/Squeeze/Reshape, comparisons, Not/And/Or, Add/Sub/Mul). Undefined otherwise.
 */
function staticValues(g: GraphProto, consts = graphConstants(g), dims = inferDims(g, consts)): (name: string) => number[] | undefined {
  const producer = new Map<string, NodeProto>();
  for (const n of g.node) for (const o of n.output) if (o) producer.set(o, n);
  const memo = new Map<string, number[] | undefined>();
  const tensorValues = (t: TensorProto): number[] | undefined => {
    if (t.dataType === DataType.BOOL) return t.rawData ? Array.from(t.rawData) : t.int32Data ? [...t.int32Data] : undefined;
    return tensorInts(t);
  };
  const value = (name: string): number[] | undefined => {
    if (memo.has(name)) return memo.get(name);
    memo.set(name, undefined); // cycles cannot occur in a valid graph; this also bounds the recursion
    let out: number[] | undefined;
    const t = consts.get(name);
    if (t) out = tensorValues(t);
    else {
      const n = producer.get(name);
      const ins = (n?.input ?? []).map((v) => (v ? value(v) : undefined));
      const [x, y] = ins;
      const pair = (f: (p: number, q: number) => number) =>
        x && y && (x.length === y.length || x.length === 1 || y.length === 1)
          ? Array.from({ length: Math.max(x.length, y.length) }, (_, k) => {
              const [p, q] = [x[x.length === 1 ? 0 : k]!, y[y.length === 1 ? 0 : k]!];
              return Number.isNaN(p) || Number.isNaN(q) ? NaN : f(p, q);
            })
          : undefined;
      switch (n?.opType) {
        case 'Shape': {
          // Unknown sizes (a dynamic batch) are NaN, which every operation below carries along.
          const d = dims.get(n.input[0]!);
          if (d) {
            const r = d.length;
            const st = normAxis(attrInt(n, 'start', 0), r);
            const en = attr(n, 'end') ? normAxis(attrInt(n, 'end', r), r) : r;
            out = d.map((e) => (typeof e === 'number' ? e : NaN)).slice(Math.max(0, st), Math.min(en, r));
          }
          break;
        }
        case 'Gather':
          if (x && y && attrInt(n, 'axis', 0) === 0) out = y.map((i) => x[i < 0 ? i + x.length : i]!).filter((v) => v !== undefined);
          break;
        case 'Cast': case 'Identity': case 'Unsqueeze': case 'Squeeze': case 'Reshape': case 'Flatten':
          out = x;
          break;
        case 'Concat':
          if (ins.every(Boolean)) out = ins.flatMap((v) => v!);
          break;
        case 'Slice': {
          const starts = ins[1];
          const ends = ins[2];
          if (x && starts && ends && starts.length === 1 && (!ins[4] || ins[4][0] === 1)) {
            const wrap = (v: number) => Math.min(Math.max(v < 0 ? v + x.length : v, 0), x.length);
            out = x.slice(wrap(starts[0]!), wrap(ends[0]!));
          }
          break;
        }
        case 'Equal': out = pair((p, q) => Number(p === q)); break;
        case 'Less': out = pair((p, q) => Number(p < q)); break;
        case 'Greater': out = pair((p, q) => Number(p > q)); break;
        case 'LessOrEqual': out = pair((p, q) => Number(p <= q)); break;
        case 'GreaterOrEqual': out = pair((p, q) => Number(p >= q)); break;
        case 'And': out = pair((p, q) => Number(p && q)); break;
        case 'Or': out = pair((p, q) => Number(p || q)); break;
        case 'Add': out = pair((p, q) => p + q); break;
        case 'Sub': out = pair((p, q) => p - q); break;
        case 'Mul': out = pair((p, q) => p * q); break;
        case 'Not': out = x?.map((v) => (Number.isNaN(v) ? NaN : Number(!v))); break;
        default: break;
      }
    }
    memo.set(name, out);
    return out;
  };
  return value;
}

/** `g` with every If whose condition `staticValues` knows replaced by the branch it takes (repeated for nested Ifs). */
function inlineStaticIfs(g: GraphProto): GraphProto {
  for (let round = 0; round < 16; round++) {
    if (!g.node.some((n) => n.opType === 'If')) return g;
    const known = staticValues(g);
    const taken = new Set<string>();
    for (const n of g.node) {
      for (const o of n.output) taken.add(o);
      if (n.name) taken.add(n.name);
    }
    let changed = false;
    const nodes: NodeProto[] = [];
    const inits: TensorProto[] = [...g.initializer];
    let k = 0;
    const fresh = (hint: string) => {
      let name: string;
      do name = `inline/${hint}_${k++}`;
      while (taken.has(name));
      taken.add(name);
      return name;
    };
    for (const n of g.node) {
      const cond = n.opType === 'If' ? known(n.input[0] ?? '') : undefined;
      const branch = cond && cond.length === 1 && Number.isFinite(cond[0]) ? attr(n, cond[0] ? 'then_branch' : 'else_branch')?.g : undefined;
      if (!branch) {
        nodes.push(n);
        continue;
      }
      changed = true;
      // The branch's own values are renamed apart from the outer graph's; its inputs are none.
      const local = new Map<string, string>();
      for (const t of branch.initializer) local.set(t.name, fresh('init'));
      for (const bn of branch.node) for (const o of bn.output) if (o) local.set(o, fresh('v'));
      const ren = (v: string) => local.get(v) ?? v;
      for (const t of branch.initializer) inits.push({ ...t, name: local.get(t.name)! });
      for (const bn of branch.node) nodes.push({ ...bn, name: bn.name ? fresh(bn.name) : '', input: bn.input.map(ren), output: bn.output.map(ren) });
      branch.output.forEach((o, j) => {
        const target = n.output[j];
        if (target) nodes.push({ input: [ren(o.name)], output: [target], name: fresh('out'), opType: 'Identity', domain: '', attribute: [] });
      });
    }
    if (!changed) return g;
    g = { ...g, node: nodes, initializer: inits };
  }
  return g;
}

// ---------------------------------------------------------------------------------------
// The transform
// ---------------------------------------------------------------------------------------

export interface GradientModelOptions {
  /** Named in error messages. */
  file?: string;
  /** Extra metadata entries of the result. */
  metadata?: Record<string, string>;
}

/**
 * What a vector-Jacobian product graph differentiates: the new input `cotangent` (u, shaped
 * like `output`) and, per differentiated input v, the new output d/dv sum(u * output).
 */
export interface VjpSpec {
  /** The model's kind, in error messages ('classifier', 'denoiser', 'feature model'). */
  what: string;
  output: string;
  cotangent: string;
  /** Declared dims of the cotangent input (default: the output's). */
  cotangentShape?: Dim[];
  wrt: readonly { input: string; grad: string }[];
  /** Recorded as `adasde.role`. */
  role: string;
  /**
   * Static dims of graph inputs, overriding the declared ones (a symbolic H, W made known) so
   * that rules needing sizes (a linear Resize's interpolation matrices) can be written.
   */
  inputDims?: Record<string, Dim[]>;
}

/** Names in the denoiser VJP graph's signature (x, sigma, class_labels as the denoiser's). */
export const DENOISER_VJP_IO = { output: 'denoised', cotangent: 'cot_denoised', gradX: 'grad_x', gradSigma: 'grad_sigma' } as const;
/** Names in the feature model VJP graph's signature. */
export const FEATURE_VJP_IO = { cotangent: 'cot_features', grad: 'grad_images' } as const;
/** Names in the decoder VJP graph's signature (the latent input keeps the decoder's name). */
export const DECODER_VJP_IO = { cotangent: 'cot_image', grad: 'grad_z' } as const;

/** Builds new nodes with names that cannot collide with the source graph's. */
class Emitter {
  readonly nodes: NodeProto[] = [];
  readonly inits: TensorProto[] = [];
  private k = 0;
  private readonly scalars = new Map<string, string>();
  private readonly shapes = new Map<string, string>();

  constructor(private readonly taken: Set<string>) {}

  fresh(hint: string): string {
    let n: string;
    do n = `grad/${hint}_${this.k++}`;
    while (this.taken.has(n));
    this.taken.add(n);
    return n;
  }

  opN(op: string, inputs: string[], nOut: number, attrs: AttributeProto[] = []): string[] {
    const outs = Array.from({ length: nOut }, () => this.fresh(op.toLowerCase()));
    this.nodes.push({ input: inputs, output: outs, name: this.fresh(`node_${op}`), opType: op, domain: '', attribute: attrs });
    return outs;
  }

  op(op: string, inputs: string[], attrs: AttributeProto[] = []): string {
    return this.opN(op, inputs, 1, attrs)[0]!;
  }

  f32(v: number): string {
    const key = `f${v}`;
    let n = this.scalars.get(key);
    if (!n) {
      n = this.fresh('c');
      this.inits.push(floatTensor(n, [], [v]));
      this.scalars.set(key, n);
    }
    return n;
  }

  i64(values: readonly number[], scalar = false): string {
    const key = `i${scalar ? 's' : 'v'}${values.join(',')}`;
    let n = this.scalars.get(key);
    if (!n) {
      n = this.fresh('c');
      this.inits.push(int64Tensor(n, scalar ? [] : [values.length], values));
      this.scalars.set(key, n);
    }
    return n;
  }

  /** Shape(v), emitted once per value. */
  shape(v: string): string {
    let s = this.shapes.get(v);
    if (!s) {
      s = this.op('Shape', [v]);
      this.shapes.set(v, s);
    }
    return s;
  }
}

const intAttr = (name: string, i: number): AttributeProto => ({ name, type: AttributeType.INT, i });
const intsAttr = (name: string, ints: readonly number[]): AttributeProto => ({ name, type: AttributeType.INTS, ints: [...ints] });
const strAttr = (name: string, s: string): AttributeProto => ({ name, type: AttributeType.STRING, s: new TextEncoder().encode(s) });
const floatAttr = (name: string, f: number): AttributeProto => ({ name, type: AttributeType.FLOAT, f });

/**
 * The gradient graph of a classifier model (see the file comment). Throws a one-line
 * UsageError naming the node when the classifier uses an operator without a rule.
 */
export function classifierGradientModel(model: ModelProto, opts: GradientModelOptions = {}): ModelProto {
  const file = opts.file ?? 'classifier';
  const xIn = model.graph?.input.find((v) => v.name === GRADIENT_IO.x);
  const out = model.graph?.output.find((v) => v.name === GRADIENT_IO.logProbs);
  if (model.graph && (!xIn || !out)) throw new UsageError(`${file}: a classifier needs input 'x' and output 'log_probs' for the gradient transform`);
  const batch: Dim = out?.type?.shape?.[0] ?? 'N';
  const classes: Dim = out?.type?.shape?.[1] ?? 'K';
  return vjpModel(model, { what: 'classifier', output: GRADIENT_IO.logProbs, cotangent: GRADIENT_IO.labels, cotangentShape: [batch, classes], wrt: [{ input: GRADIENT_IO.x, grad: GRADIENT_IO.grad }], role: 'classifier_gradient' }, opts);
}

/**
 * The VJP graph of a denoiser (x, sigma[, class_labels]) -> denoised: the extra input
 * `cot_denoised` [N, C, H, W] and the outputs grad_x = J_x^T u, grad_sigma = J_sigma^T u
 * ([N]), keeping `denoised`. Training's reverse mode (src/train/tape.ts) runs it.
 */
export function denoiserVjpModel(model: ModelProto, opts: GradientModelOptions = {}): ModelProto {
  const IO = DENOISER_VJP_IO;
  return vjpModel(model, { what: 'denoiser', output: IO.output, cotangent: IO.cotangent, wrt: [{ input: 'x', grad: IO.gradX }, { input: 'sigma', grad: IO.gradSigma }], role: 'denoiser_vjp' }, opts);
}

/**
 * The VJP graph of a float32 feature model images [N, 3, H, W] -> features [N, D] at one
 * image size (`height` x `width`, made static so a linear Resize can be transposed): the
 * extra input `cot_features` [N, D] and the output grad_images, keeping the features.
 */
export function featureVjpModel(model: ModelProto, size: { height: number; width: number }, opts: GradientModelOptions = {}): ModelProto {
  const g = model.graph;
  const file = opts.file ?? 'feature model';
  const input = g?.input[0]?.name;
  const output = g?.output.find((v) => v.name === 'features')?.name ?? (g?.output.length === 1 ? g.output[0]!.name : undefined);
  if (g && (!input || !output)) throw new UsageError(`${file}: a feature model needs one input and an output 'features' for the gradient transform`);
  const decl = g?.input[0]?.type?.shape;
  const inputDims: Dim[] = [decl?.[0] ?? 'N', decl?.[1] ?? 3, size.height, size.width];
  return vjpModel(model.graph && input ? floatPixels(model, input, file) : model, { what: 'feature model', output: output ?? 'features', cotangent: FEATURE_VJP_IO.cotangent, wrt: [{ input: input ?? 'images', grad: FEATURE_VJP_IO.grad }], role: 'feature_vjp', inputDims: { [input ?? 'images']: inputDims } }, opts);
}

/**
 * The VJP graph of a float32 first-stage decoder z [N, C, h, w] -> image [N, 3, H, W] (latent
 * models' feature loss sees decoded images) at one latent size, made static as for the feature
 * model: the extra input `cot_image` and the output grad_z, keeping the image.
 */
export function decoderVjpModel(model: ModelProto, latent: readonly [number, number, number], opts: GradientModelOptions = {}): ModelProto {
  const g = model.graph;
  const file = opts.file ?? 'decoder';
  const input = g?.input.find((v) => v.name === 'z' || v.name === 'latents')?.name;
  const output = g?.output.find((v) => v.name === 'image' || v.name === 'images')?.name;
  if (g && (!input || !output)) throw new UsageError(`${file}: a decoder needs input 'z' and output 'image' for the gradient transform`);
  const decl = g?.input.find((v) => v.name === input)?.type?.shape;
  const inputDims: Dim[] = [decl?.[0] ?? 'N', ...latent];
  return vjpModel(model, { what: 'decoder', output: output ?? 'image', cotangent: DECODER_VJP_IO.cotangent, wrt: [{ input: input ?? 'z', grad: DECODER_VJP_IO.grad }], role: 'decoder_vjp', inputDims: { [input ?? 'z']: inputDims } }, opts);
}

/**
 * A uint8-input detector (FID's Inception takes pixels as bytes and casts them to float
 * first) with a float32 input instead, its casts of that input turned into identities: the
 * same function on integer pixels, and on the student's real-valued pixels the function the
 * rounding would be a step function of. Float32 inputs are returned unchanged.
 */
function floatPixels(model: ModelProto, input: string, file: string): ModelProto {
  const g = model.graph!;
  const v = g.input.find((i) => i.name === input);
  if (v?.type?.elemType !== DataType.UINT8) return model;
  const node = g.node.map((n) => {
    if (!n.input.includes(input)) return n;
    if (n.opType === 'Cast' && attrInt(n, 'to', 0) === DataType.FLOAT) return { ...n, opType: 'Identity', attribute: [] };
    throw new UsageError(`${file}: node '${n.name || n.output[0]}' (${n.opType}) reads the uint8 input '${input}' other than by a Cast to float; the gradient transform needs a float32 feature model`);
  });
  return { ...model, graph: { ...g, node, input: g.input.map((i) => (i.name === input ? { ...i, type: { ...i.type!, elemType: DataType.FLOAT } } : i)) } };
}

/**
 * Vector quantisers (taming's VectorQuantizer as exported: each latent vector replaced by its
 * nearest codebook row, Gather(codebook, ArgMin(distances))) are piecewise constant, so their
 * gradient is zero. The reference back-propagates through them with the straight-through
 * estimator, z_q = z + sg(z_q - z). Each such Gather becomes Add(v, Sub(Gather(...), sg(v))),
 * v the latent vectors its distances were computed from (the tensor of the Gather's shape
 * through which every differentiable path to the ArgMin passes, nearest to it): the same value
 * to rounding, and the identity as its gradient.
 */
function straightThroughQuantisers(g: GraphProto, wrt: readonly string[]): GraphProto {
  const producer = new Map<string, { n: NodeProto; k: number }>();
  g.node.forEach((n, k) => n.output.forEach((o) => o && producer.set(o, { n, k })));
  const consts = graphConstants(g);
  const activeFrom = (cut?: string): Set<string> => {
    const act = new Set(wrt.filter((w) => w !== cut));
    for (const n of g.node) {
      if (NON_DIFFERENTIABLE.has(n.opType) || (n.opType === 'Cast' && attrInt(n, 'to', 0) !== DataType.FLOAT)) continue;
      if (n.input.some((v) => act.has(v))) for (const o of n.output) if (o && o !== cut) act.add(o);
    }
    return act;
  };
  const active = activeFrom();
  const PASS = new Set(['Reshape', 'Squeeze', 'Unsqueeze', 'Flatten', 'Cast', 'Identity']);
  const rewrites = new Map<NodeProto, string>();
  let dims: Map<string, Dims> | undefined;
  for (const n of g.node) {
    if (n.opType !== 'Gather' || attrInt(n, 'axis', 0) !== 0 || !consts.has(n.input[0] ?? '') || active.has(n.input[1] ?? '')) continue;
    let idx = producer.get(n.input[1] ?? '')?.n;
    while (idx && PASS.has(idx.opType)) idx = producer.get(idx.input[0] ?? '')?.n;
    if (!idx || (idx.opType !== 'ArgMin' && idx.opType !== 'ArgMax') || !active.has(idx.input[0] ?? '')) continue;
    dims ??= inferDims(g, consts);
    const want = dims.get(n.output[0] ?? '');
    if (!want) continue;
    // Same rank, and equal sizes where both are known (the batch, and sizes computed from it, are not).
    const same = (v: string) => {
      const d = dims!.get(v);
      return !!d && d.length === want.length && d.every((x, k) => typeof x !== 'number' || typeof want[k] !== 'number' || x === want[k]);
    };
    // The differentiable cone of the distances, and in it the tensors of the quantised shape.
    const cone = new Set<string>();
    const stack = [idx.input[0]!];
    while (stack.length) {
      const v = stack.pop()!;
      if (cone.has(v) || !active.has(v)) continue;
      cone.add(v);
      for (const i of producer.get(v)?.n.input ?? []) if (i) stack.push(i);
    }
    const order = (v: string) => producer.get(v)?.k ?? -1;
    const source = [...cone]
      .filter(same)
      .sort((p, q) => order(q) - order(p))
      .find((c) => !activeFrom(c).has(idx!.input[0]!));
    if (source) rewrites.set(n, source);
  }
  if (!rewrites.size) return g;
  const node: NodeProto[] = [];
  for (const n of g.node) {
    const src = rewrites.get(n);
    if (!src) {
      node.push(n);
      continue;
    }
    const out = n.output[0]!;
    const base = `${n.name || out}_straight_through`;
    // v is reshaped to the quantised tensor's shape, so that a v of another size fails at run
    // time rather than broadcasting.
    const op = (opType: string, input: string[], output: string) => node.push({ name: `${base}/${output}`, opType, domain: '', input, output: [output === 'out' ? out : `${base}/${output}`], attribute: [] });
    node.push({ ...n, output: [`${base}/quantised`] });
    op('Shape', [`${base}/quantised`], 'shape');
    op('Reshape', [src, `${base}/shape`], 'v');
    op(STOP_GRADIENT, [`${base}/v`], 'sg');
    op('Sub', [`${base}/quantised`, `${base}/sg`], 'delta');
    op('Add', [`${base}/v`, `${base}/delta`], 'out');
  }
  return { ...g, node };
}

/** The VJP graph of `spec` (see the file comment and VjpSpec). */
export function vjpModel(model: ModelProto, spec: VjpSpec, opts: GradientModelOptions = {}): ModelProto {
  const what = spec.what;
  const file = opts.file ?? what;
  const g0 = model.graph;
  if (!g0) throw new UsageError(`${file}: no graph`);
  const opset = model.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 0;
  if (opset < 13 || opset > 17) {
    throw new UsageError(`${file}: opset ${opset}; the gradient transform handles opsets 13 to 17 (export the ${what} with opset 17)`);
  }
  const gIn: GraphProto = spec.inputDims
    ? { ...g0, input: g0.input.map((v) => (spec.inputDims![v.name] && v.type ? { ...v, type: { ...v.type, shape: [...spec.inputDims![v.name]!] } } : v)) }
    : g0;
  // Subgraphs read outer values implicitly, which the analysis below does not follow: an If
  // whose condition is known from the (static) input sizes, as TorchScript exports emit
  // around a resize, is replaced by its branch; any other control flow is refused.
  const g = straightThroughQuantisers(inlineStaticIfs(gIn), spec.wrt.map((w) => w.input));
  const control = g.node.find((n) => n.opType === 'If' || n.opType === 'Loop' || n.opType === 'Scan');
  if (control) {
    throw new UsageError(`${file}: node '${control.name || control.output[0]}' (${control.opType}) holds a subgraph whose branch is not known from the input sizes, which the gradient transform cannot differentiate (export the ${what} without data-dependent control flow, e.g. traced at a fixed input size)`);
  }
  const out = g.output.find((v) => v.name === spec.output);
  if (!out) throw new UsageError(`${file}: a ${what} needs output '${spec.output}' for the gradient transform`);
  const wrtIn = spec.wrt.map((w) => {
    const v = g.input.find((i) => i.name === w.input);
    if (!v) throw new UsageError(`${file}: a ${what} needs input '${w.input}' for the gradient transform`);
    return v;
  });
  for (const v of [...wrtIn, out]) {
    if (v.type?.elemType !== DataType.FLOAT) throw new UsageError(`${file}: '${v.name}' is ${dataTypeName(v.type?.elemType ?? 0)}; the gradient transform needs a float32 ${what} (export without --fp16-io)`);
  }
  for (const name of [spec.cotangent, ...spec.wrt.map((w) => w.grad)]) {
    if (g.input.some((v) => v.name === name) || g.output.some((v) => v.name === name)) throw new UsageError(`${file}: already has a value '${name}'`);
  }

  const consts = graphConstants(g);
  const dims = inferDims(g, consts);
  const constInts = (name: string | undefined): number[] | undefined => {
    if (!name) return undefined;
    const t = consts.get(name);
    return t ? tensorInts(t) : undefined;
  };
  const producer = new Map<string, NodeProto>();
  for (const n of g.node) for (const o of n.output) if (o) producer.set(o, n);
  const known = staticValues(g, consts, dims);
  /** The trailing `count` entries of an int vector computed from the (static) input sizes. */
  const knownTail = (name: string, count: number): number[] | undefined => {
    const v = known(name)?.slice(-count);
    return v && v.length === count && v.every(Number.isFinite) ? v : undefined;
  };
  /** The trailing `count` entries of an int vector: a constant, or a Concat ending in constants. */
  const trailingInts = (name: string, count: number): number[] | undefined => {
    const whole = constInts(name);
    if (whole) return whole.length >= count ? whole.slice(-count) : undefined;
    const p = producer.get(name);
    if (p?.opType !== 'Concat') return undefined;
    const tail: number[] = [];
    for (let k = p.input.length - 1; k >= 0 && tail.length < count; k--) {
      const v = constInts(p.input[k]);
      if (!v) return undefined;
      tail.unshift(...v);
    }
    return tail.length >= count ? tail.slice(-count) : undefined;
  };

  // Values that depend differentiably on the inputs, then those of them the output depends on.
  const active = new Set<string>(spec.wrt.map((w) => w.input));
  for (const n of g.node) {
    if (NON_DIFFERENTIABLE.has(n.opType)) continue;
    if (n.opType === 'Cast' && attrInt(n, 'to', 0) !== DataType.FLOAT) {
      if (n.input.some((v) => active.has(v)) && attrInt(n, 'to', 0) !== DataType.INT64 && attrInt(n, 'to', 0) !== DataType.INT32 && attrInt(n, 'to', 0) !== DataType.BOOL) {
        throw new UsageError(`${file}: node '${n.name || n.output[0]}' (Cast to ${dataTypeName(attrInt(n, 'to', 0))}) is on a differentiated path; the gradient transform needs a float32 ${what}`);
      }
      continue;
    }
    if (n.input.some((v) => active.has(v))) for (const o of n.output) if (o) active.add(o);
  }
  if (!active.has(spec.output)) {
    // E.g. a VQ decoder (ArgMin over codebook distances, then a Gather of the codebook): the
    // output is piecewise constant in the input and its gradient zero wherever it exists.
    const cut = g.node.find((n) => NON_DIFFERENTIABLE.has(n.opType) && !['Shape', 'Size'].includes(n.opType) && n.input.some((v) => active.has(v)));
    const via = cut ? `: it reaches '${spec.output}' only through node '${cut.name || cut.output[0]}' (${cut.opType}), which is piecewise constant` : '';
    throw new UsageError(`${file}: '${spec.output}' does not depend differentiably on ${spec.wrt.map((w) => `'${w.input}'`).join(', ')}${via}; its gradient is zero`);
  }
  const needed = new Set<string>([spec.output]);
  const backNodes: NodeProto[] = [];
  for (let k = g.node.length - 1; k >= 0; k--) {
    const n = g.node[k]!;
    if (!n.output.some((o) => needed.has(o) && active.has(o))) continue;
    const ins = n.input.filter((v) => v && active.has(v));
    if (!ins.length) continue;
    if (n.domain && n.domain !== 'ai.onnx') {
      throw new UsageError(`${file}: node '${n.name || n.output[0]}' (${n.domain}::${n.opType}) is on a differentiated path to ${spec.output}; the gradient transform handles only standard ONNX operators`);
    }
    if (!(DIFFERENTIABLE_OPS as readonly string[]).includes(n.opType)) {
      throw new UsageError(`${file}: node '${n.name || n.output[0]}' uses ${n.opType}, which the gradient transform does not support (it handles ${DIFFERENTIABLE_OPS.join(', ')})`);
    }
    for (const v of ins) needed.add(v);
    backNodes.push(n);
  }

  const taken = new Set<string>();
  for (const v of [...g.input, ...g.output, ...g.valueInfo]) taken.add(v.name);
  for (const t of g.initializer) taken.add(t.name);
  for (const n of g.node) {
    for (const o of n.output) taken.add(o);
    if (n.name) taken.add(n.name);
  }
  taken.add(spec.cotangent);
  for (const w of spec.wrt) taken.add(w.grad);
  const e = new Emitter(taken);

  // Cotangents, summed when a value feeds several nodes.
  const cot = new Map<string, string[]>();
  const acc = (v: string, grad: string) => {
    if (!active.has(v) || !needed.has(v)) return;
    const l = cot.get(v);
    if (l) l.push(grad);
    else cot.set(v, [grad]);
  };
  const cotOf = (v: string): string | undefined => {
    const l = cot.get(v);
    if (!l || !l.length) return undefined;
    const s = l.length === 1 ? l[0]! : e.op('Sum', l);
    cot.set(v, [s]);
    return s;
  };
  const rankOf = (v: string, n: NodeProto): number => {
    const d = dims.get(v);
    if (!d) throw new UsageError(`${file}: node '${n.name || n.output[0]}' (${n.opType}): the rank of '${v}' could not be inferred, which its gradient rule needs`);
    return d.length;
  };
  const needConst = (n: NodeProto, k: number, what: string): number[] => {
    const v = constInts(n.input[k]);
    if (!v) throw new UsageError(`${file}: node '${n.name || n.output[0]}' (${n.opType}): ${what} must be a constant for the gradient transform`);
    return v;
  };
  const refuse = (n: NodeProto, why: string): never => {
    throw new UsageError(`${file}: node '${n.name || n.output[0]}' (${n.opType}): ${why}; the gradient transform does not support this`);
  };

  /** Sums g down to the shape of a (undoing numpy broadcasting); a no-op when shapes match. */
  const unbroadcast = (grad: string, a: string, outName: string): string => {
    const da = dims.get(a);
    const dout = dims.get(outName);
    if (da && dout && da.length === dout.length && da.every((d, k) => d !== null && (d === dout[k] || (d !== 1 && dout[k] !== null)))) return grad;
    let r = grad;
    // Leading axes that a lacks: their count is rank(g) - rank(a).
    if (!da || !dout || dout.length > da.length) {
      const lead = e.op('Sub', [e.op('Size', [e.shape(grad)]), e.op('Size', [e.shape(a)])]);
      const axes = e.op('Range', [e.i64([0], true), lead, e.i64([1], true)]);
      r = e.op('ReduceSum', [r, axes], [intAttr('keepdims', 0), intAttr('noop_with_empty_axes', 1)]);
    }
    // Axes where a has size 1: summing where g has size 1 too changes nothing.
    const ones = e.op('Reshape', [e.op('NonZero', [e.op('Equal', [e.shape(a), e.i64([1])])]), e.i64([-1])]);
    r = e.op('ReduceSum', [r, ones], [intAttr('keepdims', 1), intAttr('noop_with_empty_axes', 1)]);
    return r;
  };
  const zerosLike = (v: string): string => e.op('ConstantOfShape', [e.shape(v)], [{ name: 'value', type: AttributeType.TENSOR, t: floatTensor('', [1], [0]) }]);
  /** dim k of v as a 1-element int64 vector. */
  const dimOf = (v: string, k: number): string => e.op('Gather', [e.shape(v), e.i64([k])], [intAttr('axis', 0)]);

  cot.set(spec.output, [spec.cotangent]);

  for (const n of backNodes) {
    const gy = n.output.map((o) => (o ? cotOf(o) : undefined));
    const g0 = gy[0];
    const [a, b] = [n.input[0] ?? '', n.input[1] ?? ''];
    const y = n.output[0]!;
    const isA = (v: string) => active.has(v);
    if (n.opType !== 'Split' && g0 === undefined) continue;
    const G = g0!;
    switch (n.opType) {
      case 'Identity':
        acc(a, G);
        break;
      case 'Cast':
        acc(a, G); // float32 -> float32 (other casts were refused or stop the gradient)
        break;
      case 'Add':
        if (isA(a)) acc(a, unbroadcast(G, a, y));
        if (isA(b)) acc(b, unbroadcast(G, b, y));
        break;
      case 'Sub':
        if (isA(a)) acc(a, unbroadcast(G, a, y));
        if (isA(b)) acc(b, unbroadcast(e.op('Neg', [G]), b, y));
        break;
      case 'Mul': {
        // SiLU, u * Sigmoid(u): d/du = s (1 + u (1 - s)) with s recomputed from u, so that the
        // forward pass's Sigmoid output feeds only its Mul and onnxruntime can still fuse the
        // pair (QuickGelu); the same count of elementwise operations in the backward pass.
        const sig = [a, b].findIndex((v, j) => producer.get(v)?.opType === 'Sigmoid' && producer.get(v)!.input[0] === [a, b][1 - j]);
        if (sig >= 0 && a !== b) {
          const u = [a, b][1 - sig]!;
          const s = e.op('Sigmoid', [u]);
          const d = e.op('Mul', [s, e.op('Add', [e.op('Mul', [u, e.op('Sub', [e.f32(1), s])]), e.f32(1)])]);
          acc(u, unbroadcast(e.op('Mul', [G, d]), u, y));
          break;
        }
        if (isA(a)) acc(a, unbroadcast(e.op('Mul', [G, b]), a, y));
        if (isA(b)) acc(b, unbroadcast(e.op('Mul', [G, a]), b, y));
        break;
      }
      case 'Div':
        // y = a / b: dy/da = 1/b, dy/db = -a/b^2 = -y/b.
        if (isA(a)) acc(a, unbroadcast(e.op('Div', [G, b]), a, y));
        if (isA(b)) acc(b, unbroadcast(e.op('Neg', [e.op('Div', [e.op('Mul', [G, y]), b])]), b, y));
        break;
      case 'Neg':
        acc(a, e.op('Neg', [G]));
        break;
      case 'Pow':
        if (isA(b)) refuse(n, 'the exponent depends on x');
        // d a^p / da = p a^(p-1)
        acc(a, unbroadcast(e.op('Mul', [G, e.op('Mul', [b, e.op('Pow', [a, e.op('Sub', [b, e.f32(1)])])])]), a, y));
        break;
      case 'Sqrt':
        acc(a, e.op('Div', [e.op('Mul', [G, e.f32(0.5)]), y]));
        break;
      case 'Exp':
        acc(a, e.op('Mul', [G, y]));
        break;
      case 'Log':
        acc(a, e.op('Div', [G, a]));
        break;
      case 'Reciprocal':
        acc(a, e.op('Neg', [e.op('Mul', [G, e.op('Mul', [y, y])])]));
        break;
      case 'Tanh':
        acc(a, e.op('Mul', [G, e.op('Sub', [e.f32(1), e.op('Mul', [y, y])])]));
        break;
      case 'Sigmoid':
        // s' = s (1 - s)
        acc(a, e.op('Mul', [G, e.op('Mul', [y, e.op('Sub', [e.f32(1), y])])]));
        break;
      case 'Relu':
        acc(a, e.op('Where', [e.op('Greater', [a, e.f32(0)]), G, e.f32(0)]));
        break;
      case 'Erf':
        // erf'(u) = 2/sqrt(pi) exp(-u^2)
        acc(a, e.op('Mul', [G, e.op('Mul', [e.f32(2 / Math.sqrt(Math.PI)), e.op('Exp', [e.op('Neg', [e.op('Mul', [a, a])])])])]));
        break;
      case 'Where': {
        const c = n.input[0]!;
        if (isA(n.input[1]!)) acc(n.input[1]!, unbroadcast(e.op('Where', [c, G, e.f32(0)]), n.input[1]!, y));
        if (isA(n.input[2]!)) acc(n.input[2]!, unbroadcast(e.op('Where', [c, e.f32(0), G]), n.input[2]!, y));
        break;
      }
      case 'Softmax': {
        // dx = y (g - sum(g y)) along the axis (opset >= 13: one axis)
        const ax = e.i64([attrInt(n, 'axis', -1)]);
        const s = e.op('ReduceSum', [e.op('Mul', [G, y]), ax], [intAttr('keepdims', 1)]);
        acc(a, e.op('Mul', [y, e.op('Sub', [G, s])]));
        break;
      }
      case 'LogSoftmax': {
        // dx = g - softmax(x) sum(g), softmax(x) = exp(y)
        const ax = e.i64([attrInt(n, 'axis', -1)]);
        const s = e.op('ReduceSum', [G, ax], [intAttr('keepdims', 1)]);
        acc(a, e.op('Sub', [G, e.op('Mul', [e.op('Exp', [y]), s])]));
        break;
      }
      case 'Reshape': case 'Flatten': case 'Squeeze': case 'Unsqueeze':
        acc(a, e.op('Reshape', [G, e.shape(a)]));
        break;
      case 'Expand':
        acc(a, unbroadcast(G, a, y));
        break;
      case 'Transpose': {
        const perm = attrInts(n, 'perm');
        if (!perm) acc(a, e.op('Transpose', [G]));
        else {
          const inv = new Array<number>(perm.length);
          perm.forEach((p, k) => (inv[p] = k));
          acc(a, e.op('Transpose', [G], [intsAttr('perm', inv)]));
        }
        break;
      }
      case 'Concat': {
        const ax = attrInt(n, 'axis', 0);
        const sizes = e.op('Concat', n.input.map((v) => dimOf(v, ax)), [intAttr('axis', 0)]);
        const parts = e.opN('Split', [G, sizes], n.input.length, [intAttr('axis', ax)]);
        n.input.forEach((v, k) => {
          if (isA(v)) acc(v, parts[k]!);
        });
        break;
      }
      case 'Split': {
        const ax = attrInt(n, 'axis', 0);
        const pieces = n.output.map((o, k) => gy[k] ?? zerosLike(o));
        acc(a, e.op('Concat', pieces, [intAttr('axis', ax)]));
        break;
      }
      case 'Slice': {
        // dx = g padded back to x's shape: before = start, after = dim - end (clamped as Slice
        // does); an axis read in full in reverse (step -1, as torch.flip exports) is reversed back.
        const r = rankOf(a, n);
        if (n.input.slice(1).some((v) => v && isA(v))) refuse(n, 'slice bounds depend on x');
        const nAx = dims.get(n.input[1]!)?.[0];
        const axes = n.input[3] ? needConst(n, 3, 'axes') : typeof nAx === 'number' ? Array.from({ length: nAx }, (_, k) => k) : refuse(n, 'the number of sliced axes is unknown');
        const steps = n.input[4] ? needConst(n, 4, 'steps') : axes.map(() => 1);
        const reversed: number[] = [];
        steps.forEach((st, k) => {
          if (st === 1) return;
          const starts = needConst(n, 1, 'starts with step -1');
          const ends = needConst(n, 2, 'ends with step -1');
          // Step -1 from the last element (start -1 or beyond the end) past the first (end below -2^31).
          if (st !== -1 || !(starts[k] === -1 || starts[k]! >= 2 ** 31) || !(ends[k]! <= -(2 ** 31))) refuse(n, 'steps other than 1, or -1 over a whole axis');
          reversed.push(k);
        });
        let Gs = G;
        if (reversed.length) {
          const rAxes = reversed.map((k) => normAxis(axes[k]!, r));
          Gs = e.op('Slice', [G, e.i64(rAxes.map(() => -1)), e.i64(rAxes.map(() => -INT64_MAX)), e.i64(rAxes), e.i64(rAxes.map(() => -1))]);
        }
        const before: string[] = Array.from({ length: r }, () => e.i64([0]));
        const after: string[] = Array.from({ length: r }, () => e.i64([0]));
        axes.forEach((axRaw, k) => {
          if (reversed.includes(k)) return;
          const ax = normAxis(axRaw, r);
          const dim = dimOf(a, ax);
          const pick = (v: string) => e.op('Gather', [v, e.i64([k])], [intAttr('axis', 0)]);
          const clampIdx = (v: string) => {
            const w = e.op('Where', [e.op('Less', [v, e.i64([0])]), e.op('Add', [v, dim]), v]);
            return e.op('Max', [e.op('Min', [w, dim]), e.i64([0])]);
          };
          const s = clampIdx(pick(n.input[1]!));
          const en = e.op('Max', [clampIdx(pick(n.input[2]!)), s]);
          before[ax] = s;
          after[ax] = e.op('Sub', [dim, en]);
        });
        if (reversed.length === axes.length) acc(a, Gs);
        else {
          const pads = e.op('Concat', [...before, ...after], [intAttr('axis', 0)]);
          acc(a, e.op('Pad', [Gs, pads], [strAttr('mode', 'constant')]));
        }
        break;
      }
      case 'Gather': {
        // dx = sum over the gathered positions: one-hot of the indices contracted with g.
        if (isA(b)) refuse(n, 'indices depend on x');
        const r = rankOf(a, n);
        const ri = rankOf(b, n);
        const ax = normAxis(attrInt(n, 'axis', 0), r);
        if (r + ri > 25) refuse(n, 'too many axes');
        const L = 'abcdefghijklmnopqrstuvwxy';
        const pre = L.slice(0, ax);
        const idx = L.slice(ax, ax + ri);
        const post = L.slice(ax + ri, r - 1 + ri);
        // OneHot needs indices of rank >= 1: a scalar index becomes [1] (a summed size-1 axis).
        const ind = ri === 0 ? e.op('Unsqueeze', [b, e.i64([0])]) : b;
        const oh = e.op('OneHot', [ind, dimOf(a, ax), e.op('Cast', [e.i64([0, 1])], [intAttr('to', DataType.FLOAT)])], [intAttr('axis', -1)]);
        const ohIdx = ri === 0 ? L[r - 1]! : idx;
        acc(a, e.op('Einsum', [G, oh], [strAttr('equation', `${pre}${idx}${post},${ohIdx}z->${pre}z${post}`)]));
        break;
      }
      case 'Pad': {
        const mode = attrString(n, 'mode') ?? 'constant';
        if (mode !== 'constant') refuse(n, `mode '${mode}'`);
        if (n.input[3]) refuse(n, 'the axes input');
        const pads = needConst(n, 1, 'pads');
        if (pads.some((p) => p < 0)) refuse(n, 'negative pads');
        const r = pads.length / 2;
        const starts = pads.slice(0, r);
        const ends = e.op('Add', [e.shape(a), e.i64(starts)]);
        acc(a, e.op('Slice', [G, e.i64(starts), ends, e.i64(Array.from({ length: r }, (_, k) => k))]));
        break;
      }
      case 'Conv': {
        if (isA(b) || (n.input[2] && isA(n.input[2]))) refuse(n, 'weights that depend on x');
        const autoPad = attrString(n, 'auto_pad') ?? 'NOTSET';
        const wd = dims.get(b);
        if (!wd || wd.length < 3) refuse(n, 'weights of unknown rank');
        const k = wd!.length - 2;
        if (autoPad !== 'NOTSET' && autoPad !== 'VALID') refuse(n, `auto_pad ${autoPad}`);
        const pads = autoPad === 'VALID' ? new Array<number>(2 * k).fill(0) : attrInts(n, 'pads') ?? new Array<number>(2 * k).fill(0);
        const strides = attrInts(n, 'strides') ?? new Array<number>(k).fill(1);
        const dil = attrInts(n, 'dilations') ?? new Array<number>(k).fill(1);
        const group = attrInt(n, 'group', 1);
        // Stride 1 with constant weights: the input's gradient is itself a convolution, of g
        // with the weights flipped in space and transposed per group, padded by
        // (effective kernel - 1 - pad) on each side. onnxruntime runs Conv through its fast
        // (NCHWc) kernels, ConvTranspose far slower (bench/RESULTS.md, "Training cost").
        const wt = consts.get(b);
        const ke = wd!.slice(2).map((kk, j) => (typeof kk === 'number' ? dil[j]! * (kk - 1) + 1 : -1));
        const backPads = [...pads.slice(0, k).map((p, j) => ke[j]! - 1 - p), ...pads.slice(k).map((p, j) => ke[j]! - 1 - p)];
        if (wt && wt.dataType === DataType.FLOAT && strides.every((v) => v === 1) && ke.every((v) => v > 0) && backPads.every((p) => p >= 0)) {
          const w = tensorFloats(wt);
          const [co, cig, ...ks] = wt.dims.map(Number) as [number, number, ...number[]];
          const area = elementCount(ks);
          const cog = co / group;
          const ci = cig * group;
          const flipped = new Float32Array(w.length);
          for (let q = 0; q < group; q++) {
            for (let o = 0; o < cog; o++) {
              for (let a2 = 0; a2 < cig; a2++) {
                const src = ((q * cog + o) * cig + a2) * area;
                const dst = ((q * cig + a2) * cog + o) * area;
                for (let t = 0; t < area; t++) flipped[dst + area - 1 - t] = w[src + t]!;
              }
            }
          }
          const wf = e.fresh('conv_wt');
          e.inits.push(floatTensor(wf, [ci, cog, ...ks], flipped));
          acc(a, e.op('Conv', [G, wf], [intsAttr('pads', backPads), intsAttr('dilations', dil), intAttr('group', group), intsAttr('kernel_shape', ks)]));
          break;
        }
        // The transposed convolution without padding spans the padded input (up to s - 1
        // rows a strided window never reached, added as zeros); the input's gradient is
        // that span less the padding.
        let full = e.op('ConvTranspose', [G, b], [intsAttr('strides', strides), intsAttr('dilations', dil), intAttr('group', group)]);
        const trailingZeros = strides.map((s, j) => Math.max(0, s - 1 - pads[k + j]!));
        if (trailingZeros.some((v) => v > 0)) full = e.op('Pad', [full, e.i64([...new Array<number>(k + 2).fill(0), 0, 0, ...trailingZeros])], [strAttr('mode', 'constant')]);
        const begin = pads.slice(0, k);
        const spatial = e.op('Slice', [e.shape(a), e.i64([2]), e.i64([INT64_MAX])]);
        const ends = e.op('Add', [spatial, e.i64(begin)]);
        acc(a, e.op('Slice', [full, e.i64(begin), ends, e.i64(Array.from({ length: k }, (_, j) => j + 2))]));
        break;
      }
      case 'AveragePool': {
        const ks = attrInts(n, 'kernel_shape');
        if (!ks) refuse(n, 'no kernel_shape');
        const k = ks!.length;
        const autoPad = attrString(n, 'auto_pad') ?? 'NOTSET';
        if (autoPad !== 'NOTSET' && autoPad !== 'VALID') refuse(n, `auto_pad ${autoPad}`);
        if (attrInt(n, 'ceil_mode', 0) !== 0) refuse(n, 'ceil_mode 1');
        const pads = autoPad === 'VALID' ? new Array<number>(2 * k).fill(0) : attrInts(n, 'pads') ?? new Array<number>(2 * k).fill(0);
        const strides = attrInts(n, 'strides') ?? new Array<number>(k).fill(1);
        const area = elementCount(ks!);
        // y = window sum / count; count = the window area, or (count_include_pad = 0) its
        // cells inside the input: area * AveragePool(ones) with padding counted.
        let gs: string;
        if (pads.some((p) => p > 0) && attrInt(n, 'count_include_pad', 0) === 0) {
          const ones = e.op('ConstantOfShape', [e.shape(a)], [{ name: 'value', type: AttributeType.TENSOR, t: floatTensor('', [1], [1]) }]);
          const frac = e.op('AveragePool', [ones], [intsAttr('kernel_shape', ks!), intsAttr('pads', pads), intsAttr('strides', strides), intAttr('count_include_pad', 1)]);
          gs = e.op('Div', [G, e.op('Mul', [frac, e.f32(area)])]);
        } else gs = e.op('Mul', [G, e.f32(1 / area)]);
        // Window sums' transpose, one channel at a time: fold channels into the batch.
        const spatialG = e.op('Slice', [e.shape(G), e.i64([2]), e.i64([INT64_MAX])]);
        const g1 = e.op('Reshape', [gs, e.op('Concat', [e.i64([-1, 1]), spatialG], [intAttr('axis', 0)])]);
        const ones = e.fresh('pool_w');
        e.inits.push(floatTensor(ones, [1, 1, ...ks!], new Float32Array(area).fill(1)));
        let full = e.op('ConvTranspose', [g1, ones], [intsAttr('strides', strides)]);
        const trailingZeros = strides.map((s, j) => Math.max(0, s - 1 - pads[k + j]!));
        if (trailingZeros.some((v) => v > 0)) full = e.op('Pad', [full, e.i64([...new Array<number>(k + 2).fill(0), 0, 0, ...trailingZeros])], [strAttr('mode', 'constant')]);
        const begin = pads.slice(0, k);
        const spatial = e.op('Slice', [e.shape(a), e.i64([2]), e.i64([INT64_MAX])]);
        const cut = e.op('Slice', [full, e.i64(begin), e.op('Add', [spatial, e.i64(begin)]), e.i64(Array.from({ length: k }, (_, j) => j + 2))]);
        acc(a, e.op('Reshape', [cut, e.shape(a)]));
        break;
      }
      case 'GlobalAveragePool': {
        const count = e.op('Cast', [e.op('Div', [e.op('Size', [a]), e.op('Size', [y])])], [intAttr('to', DataType.FLOAT)]);
        acc(a, e.op('Div', [e.op('Expand', [G, e.shape(a)]), count]));
        break;
      }
      case 'ReduceMean': case 'ReduceSum': {
        if (n.input[1] && isA(n.input[1])) refuse(n, 'axes depend on x');
        const axes = attrInts(n, 'axes') ?? (n.input[1] ? needConst(n, 1, 'axes') : undefined);
        const keep = attrInt(n, 'keepdims', 1) === 1;
        if (n.opType === 'ReduceSum' && attrInt(n, 'noop_with_empty_axes', 0) === 1 && (!axes || !axes.length)) {
          acc(a, G);
          break;
        }
        let gk = G;
        if (!keep && axes && axes.length) gk = e.op('Unsqueeze', [G, e.i64(axes)]);
        let dx = e.op('Expand', [gk, e.shape(a)]);
        if (n.opType === 'ReduceMean') {
          const count = e.op('Cast', [e.op('Div', [e.op('Size', [a]), e.op('Size', [y])])], [intAttr('to', DataType.FLOAT)]);
          dx = e.op('Div', [dx, count]);
        }
        acc(a, dx);
        break;
      }
      case 'LayerNormalization': {
        // Over the axes from `axis` to the last: xh = (x - mean) rstd, y = scale xh + B;
        // dx = rstd (gh - mean(gh) - xh mean(gh xh)), gh = g scale (as InstanceNormalization).
        if (n.input.slice(1).some((v) => v && isA(v))) refuse(n, 'scale or bias that depend on the inputs');
        if (n.output.slice(1).some((o) => o && needed.has(o))) refuse(n, 'its Mean or InvStdDev outputs on a differentiated path');
        if (attrInt(n, 'stash_type', 1) !== 1) refuse(n, 'stash_type other than float32');
        const axis = attrInt(n, 'axis', -1);
        const axes = axis < 0 ? Array.from({ length: -axis }, (_, k) => axis + k) : Array.from({ length: rankOf(a, n) - axis }, (_, k) => axis + k);
        const eps = attr(n, 'epsilon')?.f ?? 1e-5;
        const mean = (v: string) => e.op('ReduceMean', [v], [intsAttr('axes', axes), intAttr('keepdims', 1)]);
        const xc = e.op('Sub', [a, mean(a)]);
        const rstd = e.op('Reciprocal', [e.op('Sqrt', [e.op('Add', [mean(e.op('Mul', [xc, xc])), e.f32(eps)])])]);
        const xh = e.op('Mul', [xc, rstd]);
        const gh = e.op('Mul', [G, b]);
        const inner = e.op('Sub', [e.op('Sub', [gh, mean(gh)]), e.op('Mul', [xh, mean(e.op('Mul', [gh, xh]))])]);
        acc(a, e.op('Mul', [rstd, inner]));
        break;
      }
      case 'Clip': {
        // Passes the gradient where min < x < max (PyTorch's clamp passes it at the bounds too;
        // the two differ only on a set of measure zero).
        if (n.input.slice(1).some((v) => v && isA(v))) refuse(n, 'bounds that depend on the inputs');
        let pass = '';
        if (n.input[1]) pass = e.op('GreaterOrEqual', [a, n.input[1]]);
        if (n.input[2]) {
          const hi = e.op('LessOrEqual', [a, n.input[2]]);
          pass = pass ? e.op('And', [pass, hi]) : hi;
        }
        acc(a, pass ? e.op('Where', [pass, G, e.f32(0)]) : G);
        break;
      }
      case 'ConvTranspose': {
        // The adjoint of a transposed convolution is the convolution with the same weights,
        // strides, pads, dilations and groups (output_padding only adds rows Conv does not reach).
        if (isA(b) || (n.input[2] && isA(n.input[2]))) refuse(n, 'weights that depend on x');
        const autoPad = attrString(n, 'auto_pad') ?? 'NOTSET';
        if (autoPad !== 'NOTSET' && autoPad !== 'VALID') refuse(n, `auto_pad ${autoPad}`);
        if (attr(n, 'output_shape')) refuse(n, 'output_shape');
        const wd = dims.get(b);
        if (!wd || wd.length < 3) refuse(n, 'weights of unknown rank');
        const k = wd!.length - 2;
        const attrs = [
          intsAttr('strides', attrInts(n, 'strides') ?? new Array<number>(k).fill(1)),
          intsAttr('pads', autoPad === 'VALID' ? new Array<number>(2 * k).fill(0) : attrInts(n, 'pads') ?? new Array<number>(2 * k).fill(0)),
          intsAttr('dilations', attrInts(n, 'dilations') ?? new Array<number>(k).fill(1)),
          intAttr('group', attrInt(n, 'group', 1)),
        ];
        const ks = wd!.slice(2);
        if (ks.every((v) => typeof v === 'number')) attrs.push(intsAttr('kernel_shape', ks as number[]));
        acc(a, e.op('Conv', [G, b], attrs));
        break;
      }
      case 'InstanceNormalization': {
        // Per (n, c) over the remaining axes: xh = (x - mean) / sqrt(var + eps), y = scale xh + bias;
        // dx = rstd (gh - mean(gh) - xh mean(gh xh)), gh = g scale.
        if (isA(b) || (n.input[2] && isA(n.input[2]))) refuse(n, 'scale or bias depend on x');
        const eps = attr(n, 'epsilon')?.f ?? 1e-5;
        const flat = e.i64([0, 0, -1]);
        const x3 = e.op('Reshape', [a, flat]);
        const mean = (v: string) => e.op('ReduceMean', [v], [intsAttr('axes', [2]), intAttr('keepdims', 1)]);
        const xc = e.op('Sub', [x3, mean(x3)]);
        const rstd = e.op('Reciprocal', [e.op('Sqrt', [e.op('Add', [mean(e.op('Mul', [xc, xc])), e.f32(eps)])])]);
        const xh = e.op('Mul', [xc, rstd]);
        const gh = e.op('Mul', [e.op('Reshape', [G, flat]), e.op('Reshape', [b, e.i64([-1, 1])])]);
        const inner = e.op('Sub', [e.op('Sub', [gh, mean(gh)]), e.op('Mul', [xh, mean(e.op('Mul', [gh, xh]))])]);
        acc(a, e.op('Reshape', [e.op('Mul', [rstd, inner]), e.shape(a)]));
        break;
      }
      case 'Gemm': {
        // Y = alpha A' B' + beta C with A' = transA ? A^T : A, B' likewise.
        const alpha = attr(n, 'alpha')?.f ?? 1;
        const beta = attr(n, 'beta')?.f ?? 1;
        const tA = attrInt(n, 'transA', 0);
        const tB = attrInt(n, 'transB', 0);
        if (isA(a)) {
          const dAp = e.op('Gemm', [G, b], [floatAttr('alpha', alpha), intAttr('transB', 1 - tB)]); // alpha g B'^T
          acc(a, tA ? e.op('Transpose', [dAp], [intsAttr('perm', [1, 0])]) : dAp);
        }
        if (isA(b)) {
          const dBp = e.op('Gemm', [a, G], [floatAttr('alpha', alpha), intAttr('transA', 1 - tA)]); // alpha A'^T g
          acc(b, tB ? e.op('Transpose', [dBp], [intsAttr('perm', [1, 0])]) : dBp);
        }
        const c = n.input[2];
        if (c && isA(c)) acc(c, unbroadcast(beta === 1 ? G : e.op('Mul', [G, e.f32(beta)]), c, y));
        break;
      }
      case 'MatMul': {
        const ra = rankOf(a, n);
        const rb = rankOf(b, n);
        if (ra < 2 || rb < 2) refuse(n, 'one-dimensional operands');
        const swap = (r: number) => [...Array.from({ length: r - 2 }, (_, k) => k), r - 1, r - 2];
        if (isA(a)) acc(a, unbroadcast(e.op('MatMul', [G, e.op('Transpose', [b], [intsAttr('perm', swap(rb))])]), a, y));
        if (isA(b)) acc(b, unbroadcast(e.op('MatMul', [e.op('Transpose', [a], [intsAttr('perm', swap(ra))]), G]), b, y));
        break;
      }
      case 'Einsum': {
        const eq = parseEinsum(attrString(n, 'equation') ?? '');
        if (!eq || eq.inputs.length !== n.input.length) refuse(n, 'an equation that could not be read');
        n.input.forEach((v, k) => {
          if (!isA(v)) return;
          const term = eq!.inputs[k]!;
          // The gradient of operand k contracts g with the other operands into its subscripts;
          // a letter of operand k seen nowhere else (summed out) or twice in it (a diagonal)
          // would need an Expand or a scatter, which exported attention never uses.
          const others = eq!.inputs.filter((_, j) => j !== k);
          for (const c of term) {
            if (term.split(c).length > 2) refuse(n, `repeated subscript '${c}' in operand ${k}`);
            if (!eq!.output.includes(c) && !others.some((t) => t.includes(c))) refuse(n, `subscript '${c}' summed within operand ${k}`);
          }
          const ins = [G, ...n.input.filter((_, j) => j !== k)];
          acc(v, e.op('Einsum', ins, [strAttr('equation', einsumText([eq!.output, ...others], term))]));
        });
        break;
      }
      case 'Sin':
        acc(a, e.op('Mul', [G, e.op('Cos', [a])]));
        break;
      case 'Cos':
        acc(a, e.op('Neg', [e.op('Mul', [G, e.op('Sin', [a])])]));
        break;
      case 'BatchNormalization': {
        // Inference form: y = scale (x - mean) / sqrt(var + eps) + B per channel (axis 1).
        if (attrInt(n, 'training_mode', 0) !== 0) refuse(n, 'training_mode 1');
        if (n.input.slice(1).some((v) => v && isA(v))) refuse(n, 'statistics that depend on the inputs');
        const r = rankOf(a, n);
        if (r < 2) refuse(n, 'inputs of rank below 2');
        const eps = attr(n, 'epsilon')?.f ?? 1e-5;
        const coef = e.op('Div', [b, e.op('Sqrt', [e.op('Add', [n.input[4]!, e.f32(eps)])])]);
        const shaped = r > 2 ? e.op('Reshape', [coef, e.i64([-1, ...new Array<number>(r - 2).fill(1)])]) : coef;
        acc(a, e.op('Mul', [G, shaped]));
        break;
      }
      case 'MaxPool': {
        // The gradient goes to each window's maximum: the same MaxPool run again for its
        // Indices output (positions in the flattened input, batch and channel included), then
        // G scattered onto them with addition, so overlapping windows sum (as PyTorch does; a
        // tie goes to the one element onnxruntime reports).
        if (attrInt(n, 'storage_order', 0) !== 0) refuse(n, 'storage_order 1');
        const [, idx] = e.opN('MaxPool', [a], 2, n.attribute.filter((at) => at.name !== 'storage_order'));
        const flat = e.i64([-1]);
        const zeros = e.op('Reshape', [zerosLike(a), flat]);
        const scattered = e.op('ScatterElements', [zeros, e.op('Reshape', [idx!, flat]), e.op('Reshape', [G, flat])], [intAttr('axis', 0), strAttr('reduction', 'add')]);
        acc(a, e.op('Reshape', [scattered, e.shape(a)]));
        break;
      }
      case 'GridSample': {
        // Bilinear sampling is linear in X for a fixed grid: its transpose scatters g, times each
        // corner's weight, onto the four corners' positions (ONNX GridSample-16; border padding
        // clamps the source coordinates, zeros padding drops the corners outside).
        if (isA(b)) refuse(n, 'a grid that depends on the inputs');
        const mode = attrString(n, 'mode') ?? 'bilinear';
        const padding = attrString(n, 'padding_mode') ?? 'zeros';
        const corners = attrInt(n, 'align_corners', 0) === 1;
        if (mode !== 'bilinear') refuse(n, `mode '${mode}'`);
        if (padding !== 'zeros' && padding !== 'border') refuse(n, `padding_mode '${padding}'`);
        if (rankOf(a, n) !== 4) refuse(n, 'inputs of rank other than 4');
        const toF = (v: string) => e.op('Cast', [v], [intAttr('to', DataType.FLOAT)]);
        const Hs = dimOf(a, 2);
        const Ws = dimOf(a, 3);
        const [H, W] = [toF(Hs), toF(Ws)];
        const coord = (c: number, size: string) => {
          const g1 = e.op('Gather', [b, e.i64([c], true)], [intAttr('axis', 3)]); // [N, Ho, Wo]
          // align_corners 1: (g + 1) / 2 (size - 1); 0: ((g + 1) size - 1) / 2.
          const u = corners ? e.op('Mul', [e.op('Mul', [e.op('Add', [g1, e.f32(1)]), e.f32(0.5)]), e.op('Sub', [size, e.f32(1)])]) : e.op('Mul', [e.op('Sub', [e.op('Mul', [e.op('Add', [g1, e.f32(1)]), size]), e.f32(1)]), e.f32(0.5)]);
          return padding === 'border' ? e.op('Min', [e.op('Max', [u, e.f32(0)]), e.op('Sub', [size, e.f32(1)])]) : u;
        };
        const ix = coord(0, W);
        const iy = coord(1, H);
        const x0 = e.op('Floor', [ix]);
        const y0 = e.op('Floor', [iy]);
        const wx1 = e.op('Sub', [ix, x0]);
        const wy1 = e.op('Sub', [iy, y0]);
        const wx0 = e.op('Sub', [e.f32(1), wx1]);
        const wy0 = e.op('Sub', [e.f32(1), wy1]);
        const x1 = e.op('Add', [x0, e.f32(1)]);
        const y1 = e.op('Add', [y0, e.f32(1)]);
        const inside = (v: string, size: string) => e.op('And', [e.op('GreaterOrEqual', [v, e.f32(0)]), e.op('LessOrEqual', [v, e.op('Sub', [size, e.f32(1)])])]);
        const clampTo = (v: string, size: string) => e.op('Min', [e.op('Max', [v, e.f32(0)]), e.op('Sub', [size, e.f32(1)])]);
        const N = dimOf(a, 0);
        const C = dimOf(a, 1);
        const flat3 = e.op('Concat', [N, e.i64([1]), e.i64([-1])], [intAttr('axis', 0)]);
        const full3 = e.op('Concat', [N, C, e.i64([-1])], [intAttr('axis', 0)]);
        const G3 = e.op('Reshape', [G, full3]);
        let dx = e.op('Reshape', [zerosLike(a), full3]);
        const cornersList: [string, string, string, string][] = [[y0, x0, wy0, wx0], [y0, x1, wy0, wx1], [y1, x0, wy1, wx0], [y1, x1, wy1, wx1]];
        for (const [yk, xk, wy, wx] of cornersList) {
          const w = e.op('Where', [e.op('And', [inside(yk, H), inside(xk, W)]), e.op('Mul', [wy, wx]), e.f32(0)]);
          const idxF = e.op('Add', [e.op('Mul', [clampTo(yk, H), W]), clampTo(xk, W)]);
          const idx = e.op('Expand', [e.op('Reshape', [e.op('Cast', [idxF], [intAttr('to', DataType.INT64)]), flat3]), e.shape(G3)]);
          const contrib = e.op('Mul', [G3, e.op('Reshape', [w, flat3])]);
          dx = e.op('ScatterElements', [dx, idx, contrib], [intAttr('axis', 2), strAttr('reduction', 'add')]);
        }
        acc(a, e.op('Reshape', [dx, e.shape(a)]));
        break;
      }
      case 'Resize': {
        if (n.input.slice(1).some((v) => v && isA(v))) refuse(n, 'roi, scales or sizes that depend on the inputs');
        const mode = attrString(n, 'mode') ?? 'nearest';
        const ctm = attrString(n, 'coordinate_transformation_mode') ?? 'half_pixel';
        const nearest = attrString(n, 'nearest_mode') ?? 'round_prefer_floor';
        if (mode !== 'nearest' && mode !== 'linear') refuse(n, `mode '${mode}'`);
        if (ctm === 'tf_crop_and_resize') refuse(n, "coordinate_transformation_mode 'tf_crop_and_resize'");
        if (attrInt(n, 'antialias', 0) !== 0) refuse(n, 'antialias');
        if (rankOf(a, n) !== 4) refuse(n, 'inputs of rank other than 4');
        const scalesT = n.input[2] ? consts.get(n.input[2]) : undefined;
        const scales = scalesT && elementCount(scalesT.dims) > 0 ? [...tensorFloats(scalesT)] : undefined;
        const sizes = !scales && n.input[3] ? (trailingInts(n.input[3], 2) ?? knownTail(n.input[3], 2)) : undefined;
        if (scales && (scales.length !== 4 || scales[0] !== 1 || scales[1] !== 1)) refuse(n, 'scales on the batch or channel axis');
        if (!scales && !sizes) refuse(n, 'scales or sizes that are not constants');
        const xd = dims.get(a);
        const inLen = [xd?.[2], xd?.[3]];
        // Integer upscaling whose nearest source is floor(o / s) (asymmetric + floor, half_pixel
        // + round_prefer_*, ...): sums over s x s blocks, at any input size.
        const blockOf = (s: number | undefined): boolean =>
          s !== undefined && Number.isInteger(s) && s >= 1 && mode === 'nearest' &&
          Array.from({ length: 4 * s }, (_, o) => o).every((o) => {
            const src = resizeSource(o, s, 64, 64 * s, ctm);
            return src !== undefined && nearestIndex(src, nearest) === Math.floor(o / s);
          });
        if (scales && blockOf(scales[2]) && blockOf(scales[3])) {
          const [sh, sw] = [scales[2]!, scales[3]!];
          const in6 = e.op('Concat', [dimOf(a, 0), dimOf(a, 1), dimOf(a, 2), e.i64([sh]), dimOf(a, 3), e.i64([sw])], [intAttr('axis', 0)]);
          acc(a, e.op('ReduceSum', [e.op('Reshape', [G, in6]), e.i64([3, 5])], [intAttr('keepdims', 0)]));
          break;
        }
        // Otherwise y = A_h x A_w^T with the interpolation matrices, which need static sizes.
        if (typeof inLen[0] !== 'number' || typeof inLen[1] !== 'number') refuse(n, 'a resize whose input size is not static (only integer nearest upscaling works at any size)');
        const mats = [0, 1].map((j) => {
          const I = inLen[j] as number;
          const O = sizes ? sizes[j]! : Math.floor(I * scales![j + 2]!);
          const sc = sizes ? O / I : scales![j + 2]!;
          const A = resizeMatrix(I, O, sc, mode, ctm, nearest);
          if (!A) refuse(n, `coordinate_transformation_mode '${ctm}' or nearest_mode '${nearest}'`);
          return { A: A!, I, O };
        });
        const [mh, mw] = mats as [{ A: Float32Array; I: number; O: number }, { A: Float32Array; I: number; O: number }];
        // dx = A_h^T g A_w: A_h^T is [I_h, O_h]; A_w [O_w, I_w] as stored.
        const AhT = new Float32Array(mh.I * mh.O);
        for (let o = 0; o < mh.O; o++) for (let i = 0; i < mh.I; i++) AhT[i * mh.O + o] = mh.A[o * mh.I + i]!;
        const ah = e.fresh('resize_ah');
        const aw = e.fresh('resize_aw');
        e.inits.push(floatTensor(ah, [mh.I, mh.O], AhT), floatTensor(aw, [mw.O, mw.I], mw.A));
        acc(a, e.op('MatMul', [e.op('MatMul', [ah, G]), aw]));
        break;
      }
      default:
        refuse(n, 'no gradient rule');
    }
  }

  const gradOuts: ValueInfoProto[] = spec.wrt.map((w, k) => {
    const gv = cotOf(w.input) ?? zerosLike(w.input);
    e.nodes.push({ input: [gv], output: [w.grad], name: e.fresh('node_out'), opType: 'Identity', domain: '', attribute: [] });
    const shape = wrtIn[k]!.type?.shape;
    return { name: w.grad, type: { elemType: DataType.FLOAT, shape: shape ? [...shape] : undefined } };
  });
  const cotShape = spec.cotangentShape ?? out.type?.shape;
  const cotIn: ValueInfoProto = { name: spec.cotangent, type: { elemType: DataType.FLOAT, shape: cotShape ? [...cotShape] : undefined } };
  const metadata = [...model.metadataProps.filter((m) => m.key !== 'adasde.role'), { key: 'adasde.role', value: spec.role }];
  for (const [key, value] of Object.entries(opts.metadata ?? {})) metadata.push({ key, value });
  return {
    ...model,
    producerName: 'adasde',
    graph: {
      ...g,
      node: [...g.node.map((n) => (n.opType === STOP_GRADIENT ? { ...n, opType: 'Identity' } : n)), ...e.nodes],
      initializer: [...g.initializer, ...e.inits],
      input: [...g.input, cotIn],
      output: [...gradOuts, ...g.output],
    },
    metadataProps: metadata,
  };
}
