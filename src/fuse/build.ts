/**
 * One ONNX graph that runs a whole sampler (issue 16): latents and SDE noise in, final
 * states and 8-bit images out. The solver's own `solve` (src/solvers/) runs on `GraphOps`,
 * so the graph is that solver's arithmetic; every model evaluation inlines the denoiser's
 * nodes under a prefix of its own, while the denoiser's weights are stored once and shared
 * by every copy, so the file is about the model's size. Latent models add their first-stage
 * decoder after the last step.
 *
 * Signature (the README's fused-sampler contract):
 *   z            float32 [N, C, H, W]     standard-normal latents (x_0 = t_0 z inside)
 *   noise        float32 [S, N, C, H, W]  the SDE noise of each noisy interval (only when S > 0)
 *   class_labels float32 [N, L]           class-conditional models
 *   condition    float32 [N, Lt, E]       text-conditional models (uncondition [N, Lt, E] with CFG)
 *   -> x         float32 [N, C, H, W]     the final state (a latent for latent models)
 *   -> images    uint8   [N, H', W', C']  clip(127.5 x + 128, 0, 255) truncated, as the PNGs
 *
 * Pure: protos in, a proto out. Reading files (and their external data) is the caller's.
 */
import { UsageError } from '../core/errors.js';
import { GraphBuilder } from '../onnx/builder.js';
import { AttributeType, DataType, floatTensor, int64Tensor, type GraphProto, type ModelProto, type NodeProto, type OperatorSetId, type TensorProto } from '../onnx/proto.js';
import type { SolverOps } from '../solvers/ops.js';
import { GraphOps } from './graph-ops.js';

import { FUSED_FORMAT, FUSED_FORMAT_KEY, FUSED_PREFIX } from './format.js';

/** The sampler to emit: a solver's `solve` with its options bound. */
export type BoundSolve = <A>(o: SolverOps<A>, x0: A, t: Float64Array) => Promise<A>;

export interface FuseSpec {
  solve: BoundSolve;
  tSteps: Float64Array;
  /** [C, H, W] of the denoiser's samples. */
  sampleShape: readonly [number, number, number];
  /** Classes of a class-conditional denoiser (0: none). */
  labelDim: number;
  /** Text-conditional denoiser: the fixed or symbolic [L, E] of its `condition` input. */
  condition?: readonly [number | string, number | string];
  /** Classifier-free guidance weight w: D = D_u + w (D_c - D_u). */
  cfgRate?: number;
  /** First-stage decoder of a latent model (input `z` or `latents`, output `image`). */
  decoder?: ModelProto;
  /** Extra metadata (solver, grid, hashes, source model), stored under `adasde.fused.*`. */
  metadata: Record<string, string>;
  /** Names the model in one-line errors. */
  modelName: string;
  decoderName?: string;
  /**
   * Each model evaluation as the branch of an If instead of inline: loads several times
   * faster (onnxruntime's initialisation is superlinear in a graph's node count) and runs
   * somewhat slower; recorded as `adasde.fused.layout`.
   */
  subgraphs?: boolean;
}

export interface FusedSampler {
  model: ModelProto;
  /** Model evaluations per sample (CFG's two halves run as one evaluation of twice the rows). */
  nfe: number;
  /** Intervals whose noise the `noise` input holds, in order. */
  noiseIntervals: number[];
  inputs: string[];
  outputs: string[];
}

const OPS_WITH_SUBGRAPHS = new Set(['If', 'Loop', 'Scan', 'SequenceMap']);
const CARRIED_ATTRIBUTES = new Set<number>([AttributeType.FLOAT, AttributeType.INT, AttributeType.STRING, AttributeType.TENSOR, AttributeType.FLOATS, AttributeType.INTS]);
/** Clip's min/max inputs and TopK's k input need opset 11. */
const MIN_OPSET = 11;

function defaultOpset(m: ModelProto): number {
  return m.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 0;
}

/**
 * Refuses what the project's ONNX reader cannot carry over faithfully: subgraphs, attribute
 * kinds it does not decode, tensor payloads in fields it does not read, unresolved external data.
 */
function checkCarriable(name: string, g: GraphProto, opset: number): void {
  if (opset < MIN_OPSET) throw new UsageError(`${name}: opset ${opset}; fusing needs opset ${MIN_OPSET} or later (re-export the model with a newer opset)`);
  for (const n of g.node) {
    const where = `${name}: node '${n.name || n.opType}' (${n.opType})`;
    if (OPS_WITH_SUBGRAPHS.has(n.opType)) throw new UsageError(`${where} holds a subgraph; fusing supports graphs without control flow`);
    for (const a of n.attribute) if (!CARRIED_ATTRIBUTES.has(a.type)) throw new UsageError(`${where}: attribute '${a.name}' of type ${a.type} cannot be carried into a fused graph`);
  }
  for (const t of g.initializer) {
    if (t.dataLocation === 1 || t.externalData) throw new UsageError(`${name}: initializer '${t.name}' keeps its data in an external file that was not read`);
    const count = t.dims.reduce((a, d) => a * d, 1);
    const has = t.rawData !== undefined || (t.floatData?.length ?? 0) > 0 || (t.int32Data?.length ?? 0) > 0 || (t.int64Data?.length ?? 0) > 0;
    if (count > 0 && !has) throw new UsageError(`${name}: initializer '${t.name}' stores its values in a field the fuser does not read (double, uint64 or string data)`);
  }
}

/** The value of a Constant node as a tensor (its `value`, `value_float(s)` or `value_int(s)` attribute). */
function constantTensor(n: NodeProto): TensorProto | undefined {
  const a = n.attribute[0];
  if (n.attribute.length !== 1 || !a) return undefined;
  const name = n.output[0]!;
  if (a.name === 'value' && a.t) return { ...a.t, name };
  if (a.name === 'value_float' && a.f !== undefined) return floatTensor(name, [], [a.f]);
  if (a.name === 'value_floats' && a.floats) return floatTensor(name, [a.floats.length], a.floats);
  if (a.name === 'value_int' && a.i !== undefined) return int64Tensor(name, [], [a.i]);
  if (a.name === 'value_ints' && a.ints) return int64Tensor(name, [a.ints.length], a.ints);
  return undefined;
}

/** A model graph carried into the builder: weights once, nodes once per `call`. */
class Inliner {
  private readonly inits = new Map<string, string>();
  private copies = 0;
  private cond: string | undefined;
  private readonly nodes: NodeProto[];
  readonly graph: GraphProto;
  readonly inputs: ReadonlyMap<string, number>;
  readonly outputs: ReadonlyMap<string, number>;

  constructor(
    private readonly g: GraphBuilder,
    model: ModelProto,
    private readonly tag: string,
    /** Prefix of the inlined copies' value names. */
    private readonly short: string,
    /** Each copy inside an If of its own (faster session creation) instead of inline. */
    private readonly subgraphs = false,
  ) {
    const graph = model.graph;
    if (!graph) throw new UsageError(`${tag}: the file holds no graph`);
    this.graph = graph;
    for (const t of graph.initializer) this.inits.set(t.name, g.initializer({ ...t, name: `${tag}/w/${t.name}` }));
    // Constant nodes are weights too (exporters write many): stored once as initializers
    // instead of once per inlined copy.
    this.nodes = [];
    for (const n of graph.node) {
      const t = n.opType === 'Constant' && n.domain === '' && n.output.length === 1 ? constantTensor(n) : undefined;
      if (t && !this.inits.has(n.output[0]!)) this.inits.set(n.output[0]!, g.initializer({ ...t, name: `${tag}/c/${n.output[0]}` }));
      else this.nodes.push(n);
    }
    // Older exporters list initializers among the inputs as well: those are weights, not inputs.
    this.inputs = new Map(graph.input.filter((v) => !this.inits.has(v.name)).map((v) => [v.name, v.type?.elemType ?? DataType.FLOAT]));
    this.outputs = new Map(graph.output.map((v) => [v.name, v.type?.elemType ?? DataType.FLOAT]));
  }

  /** One copy of the graph's nodes with its inputs bound to float32 values; returns its outputs as float32. */
  call(bindings: Readonly<Record<string, string>>, wanted: readonly string[]): Record<string, string> {
    const g = this.g;
    // Short value names (`d3_17`): a model's own names can be long paths, and every copy
    // stores each of them again.
    const prefix = `${this.short}${this.copies++}_`;
    let counter = 0;
    const names = new Map<string, string>(this.inits);
    for (const [input, type] of this.inputs) {
      const v = bindings[input];
      if (v === undefined) throw new Error(`${this.tag}: input '${input}' is not bound`);
      // float16 exports get their inputs rounded at the boundary, as the host loop feeds them.
      names.set(input, type === DataType.FLOAT16 ? g.op('Cast', [v], { to: { i: DataType.FLOAT16 } }, 'to_half') : v);
    }
    const rename = (v: string): string => {
      if (v === '') return v;
      const known = names.get(v);
      if (known !== undefined) return known;
      const n = prefix + counter++;
      names.set(v, n);
      return n;
    };
    const nodes = this.nodes.map((n, k): NodeProto => ({ ...n, name: `${prefix}n${k}`, input: n.input.map(rename), output: n.output.map(rename) }));
    const types = wanted.map((w) => {
      const type = this.outputs.get(w);
      if (type === undefined) throw new Error(`${this.tag}: has no output '${w}'`);
      return type;
    });
    let values = wanted.map(rename);
    if (this.subgraphs) values = this.asSubgraph(`${prefix}eval`, nodes, values, types);
    else nodes.forEach((n) => g.node(n));
    const out: Record<string, string> = {};
    wanted.forEach((w, j) => {
      const v = values[j]!;
      out[w] = types[j] === DataType.FLOAT ? v : g.op('Cast', [v], { to: { i: DataType.FLOAT } }, 'to_float');
    });
    return out;
  }

  /**
   * One copy as the then-branch of an always-true If: onnxruntime initialises a graph in
   * time that grows faster than its node count, so nine small subgraphs load several times
   * faster than one graph of nine copies (bench/RESULTS.md, "Fused samplers"). The copy reads
   * the weights and its inputs from the enclosing graph by name; the else branch (never
   * taken) returns a one-element constant of each output's type.
   */
  private asSubgraph(name: string, nodes: NodeProto[], values: string[], types: number[]): string[] {
    const g = this.g;
    this.cond ??= g.initializer({ name: `${this.tag}/always`, dims: [], dataType: DataType.BOOL, rawData: Uint8Array.of(1) });
    const branch = (n: string, body: NodeProto[], outs: string[]): GraphProto => ({
      name: n,
      node: body,
      initializer: [],
      input: [],
      output: outs.map((o, j) => ({ name: o, type: { elemType: types[j]! } })),
      valueInfo: [],
    });
    const elseOuts = values.map((v) => `${v}_else`);
    const elseNodes = elseOuts.map((o, j): NodeProto => ({
      input: [],
      output: [o],
      name: `${o}_const`,
      opType: 'Constant',
      domain: '',
      attribute: [{ name: 'value', type: AttributeType.TENSOR, t: { name: '', dims: [1], dataType: types[j]!, rawData: new Uint8Array(types[j] === DataType.FLOAT16 ? 2 : types[j] === DataType.DOUBLE ? 8 : 4) } }],
    }));
    const outs = values.map(() => g.fresh(`${name}_out`));
    g.node({
      input: [this.cond],
      output: outs,
      name,
      opType: 'If',
      domain: '',
      attribute: [
        { name: 'then_branch', type: AttributeType.GRAPH, g: branch(`${name}_then`, nodes, values) },
        { name: 'else_branch', type: AttributeType.GRAPH, g: branch(`${name}_else`, elseNodes, elseOuts) },
      ],
    });
    return outs;
  }
}

/** The opsets of the fused graph: the denoiser's, which the decoder must share. */
function mergedOpsets(spec: FuseSpec, model: ModelProto): OperatorSetId[] {
  const out = model.opsetImport.map((o) => ({ domain: o.domain === 'ai.onnx' ? '' : o.domain, version: o.version }));
  if (spec.decoder) {
    for (const o of spec.decoder.opsetImport) {
      const domain = o.domain === 'ai.onnx' ? '' : o.domain;
      const have = out.find((x) => x.domain === domain);
      if (!have) out.push({ domain, version: o.version });
      else if (have.version !== o.version) {
        throw new UsageError(`${spec.decoderName ?? 'decoder'}: opset ${domain || 'ai.onnx'} ${o.version} differs from the denoiser's ${have.version}; export both with one opset to fuse them`);
      }
    }
  }
  return out;
}

/** Emits the fused sampler for `model` (the denoiser, its weights decoded). */
export async function buildFusedSampler(model: ModelProto, spec: FuseSpec): Promise<FusedSampler> {
  const opset = defaultOpset(model);
  checkCarriable(spec.modelName, model.graph ?? { name: '', node: [], initializer: [], input: [], output: [], valueInfo: [] }, opset);
  if (spec.decoder) checkCarriable(spec.decoderName ?? 'decoder', spec.decoder.graph ?? { name: '', node: [], initializer: [], input: [], output: [], valueInfo: [] }, defaultOpset(spec.decoder));
  const opsetImport = mergedOpsets(spec, model);
  const [C, H, W] = spec.sampleShape;
  const g = new GraphBuilder('adasde_fused_sampler');
  const denoiser = new Inliner(g, model, 'denoiser', 'e', spec.subgraphs);

  const z = g.input('z', DataType.FLOAT, ['N', C, H, W]);
  const labels = spec.labelDim > 0 ? g.input('class_labels', DataType.FLOAT, ['N', spec.labelDim]) : undefined;
  const cond = spec.condition ? g.input('condition', DataType.FLOAT, ['N', ...spec.condition]) : undefined;
  const cfg = spec.cfgRate;
  if (cfg !== undefined && !labels && !cond) throw new UsageError(`${spec.modelName}: classifier-free guidance needs a conditional model (no 'condition' or 'class_labels' input)`);
  const uncond = cfg !== undefined && cond ? g.input('uncondition', DataType.FLOAT, ['N', ...spec.condition!]) : undefined;
  const batchShape = g.op('Slice', [g.op('Shape', [z]), g.constantInt64([0], [1], 'start'), g.constantInt64([1], [1], 'end')], {}, 'batch');

  const wantsLabels = denoiser.inputs.has('class_labels');
  const wantsCond = denoiser.inputs.has('condition');
  /** Per-sample conditioning repeated for `blocks` stacked copies of the batch. */
  const repeat = (v: string, blocks: number, rank: number): string =>
    blocks === 1 ? v : g.op('Tile', [v, g.constantInt64([blocks, ...Array<number>(rank - 1).fill(1)], [rank], 'repeats')], {}, 'tiled');
  const concat2 = (a: string, b: string): string => g.op('Concat', [a, b], { axis: { i: 0 } }, 'cfg_rows');

  const denoise = (x: string, sigma: string, blocks: number): string => {
    const b: Record<string, string> = { x, sigma };
    let l = wantsLabels && labels ? repeat(labels, blocks, 2) : undefined;
    let c = wantsCond && cond ? repeat(cond, blocks, 3) : undefined;
    if (cfg === undefined) {
      if (l) b['class_labels'] = l;
      if (c) b['condition'] = c;
      return denoiser.call(b, ['denoised'])['denoised']!;
    }
    // CFG in one evaluation of twice the rows (as the host's loader runs it): the conditional
    // half first, then the unconditional one (zero labels, or the empty prompt's states).
    b['x'] = concat2(x, x);
    b['sigma'] = concat2(sigma, sigma);
    if (l) b['class_labels'] = l = concat2(l, g.op('Sub', [l, l], {}, 'no_label'));
    if (c) b['condition'] = c = concat2(c, repeat(uncond!, blocks, 3));
    const both = denoiser.call(b, ['denoised'])['denoised']!;
    const halves = g.op('Reshape', [both, g.constantInt64([2, -1, C, H, W], [5], 'shape')], {}, 'cfg_halves');
    const dc = g.op('Gather', [halves, g.constantInt64([0], [], 'index')], { axis: { i: 0 } }, 'd_cond');
    const du = g.op('Gather', [halves, g.constantInt64([1], [], 'index')], { axis: { i: 0 } }, 'd_uncond');
    // D = D_u + w (D_c - D_u), the loader's order of operations.
    return g.op('Add', [du, g.op('Mul', [g.op('Sub', [dc, du]), g.scalar(cfg)])], {}, 'd_cfg');
  };

  const ops = new GraphOps({ g, sampleShape: [C, H, W], batchShape, denoise, noiseInput: 'noise' });
  // EDM: x_0 = t_0 z (ALGORITHM.md 1), the first point of the grid.
  const x0 = g.op('Mul', [z, g.scalar(spec.tSteps[0]!)], {}, 'x0');
  const x = await spec.solve(ops, x0, spec.tSteps);
  if (ops.noiseIntervals.length > 0) g.input('noise', DataType.FLOAT, [ops.noiseIntervals.length, 'N', C, H, W]);

  let image = x;
  let imageShape: [number | string, number | string, number | string] = [C, H, W];
  if (spec.decoder) {
    const dec = new Inliner(g, spec.decoder, 'decoder', 'd');
    const input = dec.inputs.has('z') ? 'z' : 'latents';
    const output = dec.outputs.has('image') ? 'image' : [...dec.outputs.keys()][0]!;
    image = dec.call({ [input]: x }, [output])[output]!;
    const shape = spec.decoder.graph?.output.find((o) => o.name === output)?.type?.shape;
    imageShape = [shape?.[1] ?? 3, shape?.[2] ?? 'H', shape?.[3] ?? 'W'].map((d) => (d === null ? '?' : d)) as typeof imageShape;
  }
  // The PNG quantisation (src/io/png.ts): trunc(clip(127.5 x + 128, 0, 255)); Floor equals
  // trunc on the clipped, non-negative values.
  const scaled = g.op('Add', [g.op('Mul', [image, g.scalar(127.5)]), g.scalar(128)], {}, 'pixels');
  const clipped = g.op('Clip', [scaled, g.scalar(0), g.scalar(255)]);
  const bytes = g.op('Cast', [g.op('Floor', [clipped])], { to: { i: DataType.UINT8 } }, 'bytes');
  const hwc = g.op('Transpose', [bytes], { perm: { ints: [0, 2, 3, 1] } }, 'hwc');
  g.output(x, 'x', DataType.FLOAT, ['N', C, H, W]);
  g.output(hwc, 'images', DataType.UINT8, ['N', imageShape[1], imageShape[2], imageShape[0]]);

  const inputs = ['z', ...(ops.noiseIntervals.length ? ['noise'] : []), ...(labels ? ['class_labels'] : []), ...(cond ? ['condition'] : []), ...(uncond ? ['uncondition'] : [])];
  const outputs = ['x', 'images'];
  const meta: Record<string, string> = {
    [FUSED_FORMAT_KEY]: FUSED_FORMAT,
    [FUSED_PREFIX + 'nfe']: String(ops.nfe),
    [FUSED_PREFIX + 'noise_intervals']: JSON.stringify(ops.noiseIntervals),
    [FUSED_PREFIX + 'sample_shape']: JSON.stringify([C, H, W]),
    [FUSED_PREFIX + 'image_shape']: JSON.stringify(imageShape),
    [FUSED_PREFIX + 'label_dim']: String(spec.labelDim),
    [FUSED_PREFIX + 'inputs']: inputs.join(','),
    [FUSED_PREFIX + 'outputs']: outputs.join(','),
    [FUSED_PREFIX + 'layout']: spec.subgraphs ? 'subgraphs' : 'inline',
  };
  for (const [k, v] of Object.entries(spec.metadata)) meta[FUSED_PREFIX + k] = v;
  const irVersion = Math.max(model.irVersion, spec.decoder?.irVersion ?? 0, 7);
  return { model: g.model(meta, { irVersion, opsetImport }), nfe: ops.nfe, noiseIntervals: [...ops.noiseIntervals], inputs, outputs };
}
