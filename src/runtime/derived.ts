/**
 * Graphs derived from a model file (the classifier's gradient graph, a denoiser's or a feature
 * model's VJP graph), cached beside the source as `<name>.<suffix>.onnx`: written atomically,
 * rebuilt when the source's size or mtime or the transform version changes, and put in the
 * system temp folder when the model folder is read-only and the weights are inline (external
 * weights are referenced relative to the model, so their graph must sit beside them).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { UsageError } from '../core/errors.js';
import { writeFileAtomicSync } from '../io/atomic.js';
import { decodeModel, encodeModel, readModelHeader, type ModelProto } from '../onnx/proto.js';
import { readModelSignature } from './session.js';

/** Where the derived graph `suffix` of `source` is cached: `<dir>/<name>.<suffix>.onnx`. */
export function derivedCachePath(source: string, suffix: string): string {
  return path.join(path.dirname(source), `${path.basename(source).replace(/\.onnx$/i, '')}.${suffix}.onnx`);
}

function sourceStamp(source: string, version: string, prefix: string): Record<string, string> {
  const st = statSync(source);
  return {
    [`adasde.${prefix}_of`]: path.basename(source),
    [`adasde.${prefix}_source_bytes`]: String(st.size),
    [`adasde.${prefix}_source_mtime_ms`]: String(Math.floor(st.mtimeMs)),
    [`adasde.${prefix}_transform`]: version,
  };
}

function isFresh(file: string, stamp: Record<string, string>): boolean {
  if (!existsSync(file)) return false;
  try {
    const md = Object.fromEntries(readModelHeader(file).metadataProps.map((e) => [e.key, e.value]));
    return Object.entries(stamp).every(([k, v]) => md[k] === v);
  } catch {
    return false;
  }
}

export interface DerivedGraphSpec {
  /** File name suffix (`grad`, `vjp`, `vjp-32x32`). */
  suffix: string;
  /** Metadata key prefix of the stamp (`gradient`, `vjp`). */
  stampPrefix: string;
  /** Bumped when the transform changes. */
  version: string;
  /** Named in the error when the graph cannot be written. */
  what: string;
  /** The transform; it receives the stamp to record as metadata. */
  build: (model: ModelProto, stamp: Record<string, string>) => ModelProto;
}

/** The derived graph's file, built (or rebuilt) when its cache is missing or stale. */
export function prepareDerivedGraph(source: string, spec: DerivedGraphSpec): string {
  if (!existsSync(source)) throw new UsageError(`${source}: not found`);
  const stamp = sourceStamp(source, spec.version, spec.stampPrefix);
  const beside = derivedCachePath(source, spec.suffix);
  const tmp = path.join(os.tmpdir(), `adasde-${spec.suffix}-${createHash('sha256').update(path.resolve(source) + JSON.stringify(stamp)).digest('hex').slice(0, 16)}.onnx`);
  if (isFresh(beside, stamp)) return beside;
  if (isFresh(tmp, stamp)) return tmp;
  const sig = readModelSignature(source);
  const bytes = encodeModel(spec.build(decodeModel(new Uint8Array(readFileSync(source))), stamp));
  try {
    writeFileAtomicSync(beside, bytes);
    return beside;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (sig.externalFiles.length || (code !== 'EACCES' && code !== 'EROFS' && code !== 'EPERM')) {
      throw new UsageError(`${beside}: cannot write the ${spec.what} (${code ?? (e instanceof Error ? e.message : String(e))})`);
    }
    writeFileAtomicSync(tmp, bytes);
    return tmp;
  }
}
