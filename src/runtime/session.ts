/**
 * The only place the project touches onnxruntime-node: device selection, session options,
 * and a narrow run() on plain typed arrays. Signatures and the `adasde.*` metadata are
 * read from the file's protobuf (onnxruntime-node exposes neither custom metadata nor,
 * reliably, symbolic dimension names), so the model contract can be checked with clear
 * messages before onnxruntime ever sees the file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import * as ort from 'onnxruntime-node';
import { firstLine, UsageError } from '../core/errors.js';
import { ProtoError, dataTypeName, readModelHeader, type Dim, type ModelProto } from '../onnx/proto.js';

// ---------------------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------------------

export type Device = { kind: 'cpu' } | { kind: 'cuda'; deviceId: number };

/** Parses `cpu`, `cuda` or `cuda:N`. */
export function parseDevice(s: string): Device {
  const m = /^(cpu|cuda)(?::(\d+))?$/.exec(s.trim());
  if (!m || (m[1] === 'cpu' && m[2] !== undefined)) throw new UsageError(`--device '${s}': expected cpu, cuda or cuda:N`);
  if (m[1] === 'cpu') return { kind: 'cpu' };
  return { kind: 'cuda', deviceId: m[2] === undefined ? 0 : Number(m[2]) };
}

export function deviceName(d: Device): string {
  return d.kind === 'cpu' ? 'cpu' : `cuda:${d.deviceId}`;
}

const CUDA_HINT =
  'the CUDA execution provider of onnxruntime-node is not available; reinstall it with ' +
  'ONNXRUNTIME_NODE_INSTALL=cuda12 npm install onnxruntime-node (needs CUDA 12 and cuDNN 9) or use --device cpu';

/**
 * onnxruntime-node ships the CUDA provider as a separate download. Looking for its library
 * first avoids a native error log on stderr for the common "not installed" case.
 * Returns false only when we are sure it is missing; unknown layouts return true and let
 * session creation decide.
 */
export function cudaProviderPresent(): boolean {
  if (process.platform !== 'linux') return true;
  try {
    const req = createRequire(import.meta.url);
    const main = req.resolve('onnxruntime-node');
    const dir = path.join(path.dirname(main), '..', 'bin', 'napi-v6', process.platform, process.arch);
    if (!fs.existsSync(dir)) return true;
    return fs.existsSync(path.join(dir, 'libonnxruntime_providers_cuda.so'));
  } catch {
    return true;
  }
}

// ---------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------

export interface TensorSignature {
  name: string;
  /** TensorProto.DataType. */
  elemType: number;
  /** `float32`, `float16`, `int64`, ... */
  dtype: string;
  /** undefined: unknown rank. */
  dims?: Dim[];
}

export interface ModelSignature {
  /** The path as given. */
  path: string;
  irVersion: number;
  /** Version of the default ONNX domain. */
  opset: number;
  producerName: string;
  metadata: Record<string, string>;
  /** Graph inputs the caller feeds (initializers listed as inputs are excluded). */
  inputs: TensorSignature[];
  outputs: TensorSignature[];
  /** External data files referenced by initializers, relative to the model's folder. */
  externalFiles: string[];
}

/** Formats dims like `[N,3,32,32]` (`?` for unknown). */
export function formatDims(dims: readonly Dim[] | undefined): string {
  if (!dims) return '[?]';
  return `[${dims.map((d) => (d === null ? '?' : String(d))).join(',')}]`;
}

/**
 * Reads the contract-relevant header of an ONNX file without loading its weights.
 * Missing file, unreadable file and non-ONNX content are one-line UsageErrors.
 */
export function readModelSignature(file: string): ModelSignature {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new UsageError(`${file}: no such file`);
  }
  if (st.isDirectory()) throw new UsageError(`${file}: is a directory, not an ONNX model file`);
  let m: ModelProto;
  try {
    m = readModelHeader(file);
  } catch (e) {
    if (e instanceof ProtoError || e instanceof RangeError) throw new UsageError(`${file}: not an ONNX model (protobuf parse failed: ${e.message})`);
    throw new UsageError(`${file}: cannot read (${firstLine(e)})`);
  }
  const g = m.graph;
  if (!g || m.irVersion <= 0 || g.output.length === 0) throw new UsageError(`${file}: not an ONNX model (no ir_version, graph or graph outputs)`);
  const initNames = new Set(g.initializer.map((t) => t.name));
  const sig = (v: (typeof g.input)[number]): TensorSignature => {
    const s: TensorSignature = { name: v.name, elemType: v.type?.elemType ?? 0, dtype: dataTypeName(v.type?.elemType ?? 0) };
    if (v.type?.shape) s.dims = v.type.shape;
    return s;
  };
  const external = new Set<string>();
  for (const t of g.initializer) {
    if (t.dataLocation !== 1) continue;
    const loc = t.externalData?.find((e) => e.key === 'location')?.value;
    if (loc === undefined) throw new UsageError(`${file}: initializer '${t.name}' is external but has no location`);
    external.add(loc);
  }
  const metadata: Record<string, string> = {};
  for (const e of m.metadataProps) metadata[e.key] = e.value;
  return {
    path: file,
    irVersion: m.irVersion,
    opset: m.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 0,
    producerName: m.producerName,
    metadata,
    inputs: g.input.filter((v) => !initNames.has(v.name)).map(sig),
    outputs: g.output.map(sig),
    externalFiles: [...external],
  };
}

// ---------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------

export interface SessionOptions {
  /** `cpu` (default), `cuda` or `cuda:N`. */
  device?: string;
  /** intra-op threads; 0 or undefined lets onnxruntime choose (all cores). */
  threads?: number;
  /** Graph optimisation level (default `all`). */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * Let onnxruntime's intra-op threads busy-wait after a run (its default). Off by default
   * here: between two model calls the sampler's own work (solver arithmetic, float
   * conversion, latents, quantisation) runs on the JavaScript thread and PNG compression on
   * libuv's pool, and spinning pool threads take the cores they need (bench/RESULTS.md,
   * "Sampler overhead").
   */
  spin?: boolean;
}

/** Element types the runtime feeds and fetches. */
export type FeedType = 'float32' | 'float16' | 'uint8' | 'int32' | 'int64';

/** A tensor crossing the session boundary; float16 data are binary16 bit patterns. */
export type HostTensor =
  | { type: 'float32'; data: Float32Array; dims: readonly number[] }
  | { type: 'float16'; data: Uint16Array; dims: readonly number[] }
  | { type: 'uint8'; data: Uint8Array; dims: readonly number[] }
  | { type: 'int32'; data: Int32Array; dims: readonly number[] }
  | { type: 'int64'; data: BigInt64Array; dims: readonly number[] };

export interface OnnxSession {
  readonly path: string;
  readonly device: Device;
  readonly signature: ModelSignature;
  /**
   * Runs the model. `into` gives output tensors to fill in place (onnxruntime writes the
   * output straight into their arrays instead of allocating new ones).
   */
  run(feeds: Record<string, HostTensor>, fetches: readonly string[], into?: Record<string, HostTensor>): Promise<Record<string, HostTensor>>;
  dispose(): Promise<void>;
}

function toOrt(t: HostTensor): ort.Tensor {
  return new ort.Tensor(t.type, t.data, t.dims);
}

function fromOrt(name: string, t: ort.Tensor): HostTensor {
  const dims = [...t.dims];
  switch (t.type) {
    case 'float32':
      if (t.data instanceof Float32Array) return { type: 'float32', data: t.data, dims };
      break;
    case 'float16':
      if (t.data instanceof Uint16Array) return { type: 'float16', data: t.data, dims };
      break;
    case 'uint8':
      if (t.data instanceof Uint8Array) return { type: 'uint8', data: t.data, dims };
      break;
    case 'int32':
      if (t.data instanceof Int32Array) return { type: 'int32', data: t.data, dims };
      break;
    case 'int64':
      if (t.data instanceof BigInt64Array) return { type: 'int64', data: t.data, dims };
      break;
    default:
  }
  throw new Error(`output '${name}' has unsupported type ${t.type}`);
}

/**
 * Writes onnxruntime's own rewrite of a model at `level` to `out` (constant and shape folding,
 * redundant-node elimination; `extended` adds onnxruntime's fused operators, com.microsoft
 * domain), so a graph that is later loaded without optimisations still runs the rewritten
 * form. Weights go to `out`.data beside it when the model keeps its own in external files.
 */
export async function writeOptimizedModel(file: string, out: string, level: 'basic' | 'extended'): Promise<void> {
  const sig = readModelSignature(file);
  const extra: Record<string, string> = {};
  if (sig.externalFiles.length > 0) {
    // A protobuf holds at most 2 GB: keep large weights out of it, as the source did.
    extra['session.optimized_model_external_initializers_file_name'] = `${path.basename(out)}.data`;
    extra['session.optimized_model_external_initializers_min_size_in_bytes'] = '1024';
  }
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(path.resolve(file), {
      executionProviders: ['cpu'],
      graphOptimizationLevel: level,
      optimizedModelFilePath: path.resolve(out),
      logSeverityLevel: 3,
      extra,
    });
  } catch (e) {
    throw new UsageError(`${file}: onnxruntime cannot load the model: ${firstLine(e)}`);
  }
  await session.release();
}

/**
 * Opens an ONNX file with onnxruntime-node. The file is loaded by path so external data
 * (weights beside the model) resolve relative to it.
 */
export async function openSession(file: string, opts: SessionOptions = {}, signature?: ModelSignature): Promise<OnnxSession> {
  const sig = signature ?? readModelSignature(file);
  for (const loc of sig.externalFiles) {
    const p = path.resolve(path.dirname(file), loc);
    if (!fs.existsSync(p)) throw new UsageError(`${file}: external data file '${loc}' not found beside the model`);
  }
  const device = parseDevice(opts.device ?? 'cpu');
  if (device.kind === 'cuda' && !cudaProviderPresent()) throw new UsageError(`--device ${deviceName(device)}: ${CUDA_HINT}`);
  // 0 = onnxruntime's default (all cores), except inside workers started by --nproc_per_node,
  // where the launcher hands each worker its share of the cores (ADASDE_WORKER_THREADS) so
  // N workers do not each start one thread per core.
  const share = Number(process.env.ADASDE_WORKER_THREADS ?? 0);
  const threads = opts.threads || (Number.isInteger(share) && share > 0 ? share : 0);
  if (!Number.isInteger(threads) || threads < 0) throw new UsageError(`threads must be a non-negative integer, got ${threads}`);
  const so: ort.InferenceSession.SessionOptions = {
    executionProviders: device.kind === 'cuda' ? [{ name: 'cuda', deviceId: device.deviceId }, 'cpu'] : ['cpu'],
    graphOptimizationLevel: opts.optimization ?? 'all',
    executionMode: 'sequential',
    interOpNumThreads: 1,
    // Quiet native warnings (e.g. about unused initializers); errors still surface as exceptions.
    logSeverityLevel: 3,
    // A session config entry (onnxruntime's onnxruntime_session_options_config_keys.h).
    extra: { 'session.intra_op.allow_spinning': opts.spin === true ? '1' : '0' },
  };
  if (threads > 0) so.intraOpNumThreads = threads;
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(path.resolve(file), so);
  } catch (e) {
    const line = firstLine(e);
    if (device.kind === 'cuda' && /cuda|shared librar|provider/i.test(line)) {
      throw new UsageError(`--device ${deviceName(device)}: ${CUDA_HINT} (${line})`);
    }
    throw new UsageError(`${file}: onnxruntime cannot load the model: ${line}`);
  }
  return {
    path: file,
    device,
    signature: sig,
    async run(feeds, fetches, into) {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = toOrt(v);
      let res: ort.InferenceSession.ReturnType;
      if (into) {
        const ortFetches: Record<string, ort.Tensor | null> = {};
        for (const k of fetches) ortFetches[k] = into[k] ? toOrt(into[k]) : null;
        res = await session.run(ortFeeds, ortFetches);
      } else res = await session.run(ortFeeds, [...fetches]);
      const out: Record<string, HostTensor> = {};
      for (const k of fetches) {
        const t = res[k];
        if (!t) throw new Error(`${file}: run returned no output '${k}'`);
        out[k] = fromOrt(k, t);
      }
      return out;
    },
    async dispose() {
      await session.release();
    },
  };
}
