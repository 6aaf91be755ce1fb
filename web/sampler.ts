/**
 * A fused sampler (written by `adasde fuse`) as the page sees it: its `adasde.fused.*`
 * metadata, decoded from the fetched bytes with the project's own ONNX reader, and the
 * feeds of a list of seeds drawn from the project's own per-seed streams (src/rng), so the
 * page's images are those of `adasde sample` for the same seeds.
 */
import { decodeModelHeader, MemorySource } from '../src/onnx/proto.js';
import { oneHot, SeedNoise, seedClassIndices, seedLatents } from '../src/rng/streams.js';

const PREFIX = 'adasde.fused.';
const FORMAT = 'adasde-fused-sampler';

export interface SamplerInfo {
  solver: string;
  nfe: number;
  /** [C, H, W] of one latent. */
  sampleShape: [number, number, number];
  /** Intervals whose noise the `noise` input holds, in order. */
  noiseIntervals: number[];
  labelDim: number;
  inputs: string[];
  outputs: string[];
  sourceModel: string;
  datasetName: string;
}

export interface Feed {
  data: Float32Array;
  dims: number[];
}

/** Reads the metadata of a fused sampler; anything else is an Error naming what is missing. */
export function readSamplerInfo(name: string, bytes: Uint8Array): SamplerInfo {
  const header = decodeModelHeader(new MemorySource(bytes));
  const meta = new Map(header.metadataProps.map((e) => [e.key, e.value] as const));
  if (meta.get(PREFIX + 'format') !== FORMAT) throw new Error(`${name}: not a fused sampler (no ${PREFIX}format=${FORMAT}; write one with adasde fuse)`);
  const get = (k: string): string => {
    const v = meta.get(PREFIX + k);
    if (v === undefined) throw new Error(`${name}: fused sampler metadata ${PREFIX}${k} is missing`);
    return v;
  };
  const json = (k: string): unknown => {
    try {
      return JSON.parse(get(k));
    } catch {
      throw new Error(`${name}: fused sampler metadata ${PREFIX}${k}='${get(k)}' is not JSON`);
    }
  };
  const ints = (k: string, len?: number): number[] => {
    const v = json(k);
    if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x) && x >= 0) || (len !== undefined && v.length !== len)) {
      throw new Error(`${name}: fused sampler metadata ${PREFIX}${k}='${get(k)}' is not ${len ?? 'a list of'} non-negative integers`);
    }
    return v as number[];
  };
  const int = (k: string): number => {
    const v = Number(get(k));
    if (!Number.isInteger(v) || v < 0) throw new Error(`${name}: fused sampler metadata ${PREFIX}${k}='${get(k)}' is not a non-negative integer`);
    return v;
  };
  const [c, h, w] = ints('sample_shape', 3) as [number, number, number];
  const info: SamplerInfo = {
    solver: get('solver'),
    nfe: int('nfe'),
    sampleShape: [c, h, w],
    noiseIntervals: ints('noise_intervals'),
    labelDim: int('label_dim'),
    // The graph's own signature says which inputs exist (the metadata repeats it for people).
    inputs: (header.graph?.input ?? []).map((v) => v.name),
    outputs: (header.graph?.output ?? []).map((v) => v.name),
    sourceModel: get('source_model'),
    datasetName: get('dataset_name'),
  };
  if (info.inputs.includes('condition')) throw new Error(`${name}: a text-conditional sampler (input condition); the page samples from seeds only`);
  if (!info.inputs.includes('z')) throw new Error(`${name}: the sampler has no z input`);
  if (!info.outputs.includes('images')) throw new Error(`${name}: the sampler has no images output`);
  return info;
}

/**
 * The feeds of a list of seeds, as `adasde sample` draws them: z from each seed's latent
 * stream, the noise of every noisy interval in order from its SDE stream, and the class
 * label from its label stream (ALGORITHM.md 5 and 7).
 */
export function feedsFor(info: SamplerInfo, seeds: readonly number[]): Record<string, Feed> {
  const [C, H, W] = info.sampleShape;
  const n = seeds.length;
  const dim = C * H * W;
  const feeds: Record<string, Feed> = { z: { data: Float32Array.from(seedLatents(seeds, dim)), dims: [n, C, H, W] } };
  if (info.inputs.includes('noise')) {
    const S = info.noiseIntervals.length;
    const src = new SeedNoise(seeds);
    const noise = new Float32Array(S * n * dim);
    info.noiseIntervals.forEach((i, k) => noise.set(src.source(i, n, dim), k * n * dim));
    feeds['noise'] = { data: noise, dims: [S, n, C, H, W] };
  }
  if (info.inputs.includes('class_labels')) feeds['class_labels'] = { data: oneHot(seedClassIndices(seeds, info.labelDim), info.labelDim), dims: [n, info.labelDim] };
  return feeds;
}
