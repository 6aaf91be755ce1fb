/**
 * A whole model file in memory, weights included: the ONNX protobuf plus the payloads of
 * initializers kept as external data (`location`, `offset`, `length` relative to the model's
 * folder, as torch.onnx writes models over 2 GB), read into `rawData` so the model can be
 * rewritten as one file.
 */
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { firstLine, UsageError } from '../core/errors.js';
import { decodeModel, type ModelProto, type TensorProto } from './proto.js';

function externalPayload(file: string, t: TensorProto): Uint8Array {
  const entry = (k: string): string | undefined => t.externalData?.find((e) => e.key === k)?.value;
  const location = entry('location');
  if (!location || isAbsolute(location) || location.split(/[\\/]/).includes('..')) {
    throw new UsageError(`${file}: initializer '${t.name}' names external data '${location ?? ''}'; expected a file beside the model`);
  }
  const path = resolve(dirname(file), location);
  const offset = Number(entry('offset') ?? 0);
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    throw new UsageError(`${file}: external data file ${path} (initializer '${t.name}') does not exist`);
  }
  const length = entry('length') !== undefined ? Number(entry('length')) : size - offset;
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new UsageError(`${file}: initializer '${t.name}' wants bytes ${offset}..${offset + length} of ${path}, which has ${size}`);
  }
  const out = new Uint8Array(length);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, out, 0, length, offset);
  } finally {
    closeSync(fd);
  }
  return out;
}

/** Reads and decodes `file` with every tensor payload in memory (external data resolved). */
export function readModelWithData(file: string): ModelProto {
  let model: ModelProto;
  try {
    model = decodeModel(new Uint8Array(readFileSync(file)));
  } catch (e) {
    throw new UsageError(`${file}: not a readable ONNX model (${firstLine(e)})`);
  }
  const g = model.graph;
  if (g) {
    g.initializer = g.initializer.map((t) => {
      if (t.dataLocation !== 1 && !t.externalData) return t;
      const { externalData: _e, dataLocation: _d, ...rest } = t;
      return { ...rest, rawData: externalPayload(file, t) };
    });
  }
  return model;
}
