/**
 * What a fused sampler says about itself (its `adasde.fused.*` metadata and its signature)
 * and the feeds of a list of seeds: z from each seed's latent stream, the noise of every
 * noisy interval in order from its SDE stream, the class label from its label stream
 * (ALGORITHM.md 5 and 7), exactly as `adasde sample`'s host loop draws them. Shared by
 * `adasde sample --fused` and the browser page (web/), so both feed the same numbers.
 * No Node APIs here: the page bundles this file.
 */
import { oneHot, SeedNoise, seedClassIndices, seedLatents } from '../rng/streams.js';
import { FUSED_FORMAT, FUSED_FORMAT_KEY, FUSED_PREFIX } from './format.js';

export interface FusedInfo {
  solver: string;
  nfe: number;
  /** [C, H, W] of one latent (the z input's per-sample shape). */
  sampleShape: [number, number, number];
  /** Intervals whose noise the `noise` input holds, in order. */
  noiseIntervals: number[];
  labelDim: number;
  /** The graph's inputs and outputs, by name. */
  inputs: string[];
  outputs: string[];
  sourceModel: string;
  datasetName: string;
  /** The time grid, when recorded. */
  tSteps?: number[];
  /** `subgraphs`: every evaluation in an If of its own (adasde fuse --subgraphs), best loaded without graph optimisations. */
  layout: 'inline' | 'subgraphs';
  /** onnxruntime's rewrite level applied at fuse time (`adasde fuse --optimize`); absent in older files. */
  optimized?: string;
}

/** One input's values and dims (float32: the ONNX boundary type). */
export interface Feed {
  data: Float32Array;
  dims: number[];
}

/**
 * Reads the metadata of a fused sampler given its metadata entries and its inputs' and
 * outputs' names; anything else is an Error naming `name` and what is missing.
 */
export function fusedInfo(name: string, meta: ReadonlyMap<string, string>, inputs: readonly string[], outputs: readonly string[]): FusedInfo {
  if (meta.get(FUSED_FORMAT_KEY) !== FUSED_FORMAT) throw new Error(`${name}: not a fused sampler (no ${FUSED_FORMAT_KEY}=${FUSED_FORMAT}; write one with adasde fuse)`);
  const get = (k: string): string => {
    const v = meta.get(FUSED_PREFIX + k);
    if (v === undefined) throw new Error(`${name}: fused sampler metadata ${FUSED_PREFIX}${k} is missing`);
    return v;
  };
  const json = (k: string): unknown => {
    try {
      return JSON.parse(get(k));
    } catch {
      throw new Error(`${name}: fused sampler metadata ${FUSED_PREFIX}${k}='${get(k)}' is not JSON`);
    }
  };
  const ints = (k: string, len?: number): number[] => {
    const v = json(k);
    if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x) && x >= 0) || (len !== undefined && v.length !== len)) {
      throw new Error(`${name}: fused sampler metadata ${FUSED_PREFIX}${k}='${get(k)}' is not ${len ?? 'a list of'} non-negative integers`);
    }
    return v as number[];
  };
  const int = (k: string): number => {
    const v = Number(get(k));
    if (!Number.isInteger(v) || v < 0) throw new Error(`${name}: fused sampler metadata ${FUSED_PREFIX}${k}='${get(k)}' is not a non-negative integer`);
    return v;
  };
  const [c, h, w] = ints('sample_shape', 3) as [number, number, number];
  const t = meta.has(FUSED_PREFIX + 't_steps') ? json('t_steps') : undefined;
  const info: FusedInfo = {
    solver: get('solver'),
    nfe: int('nfe'),
    sampleShape: [c, h, w],
    noiseIntervals: ints('noise_intervals'),
    labelDim: int('label_dim'),
    // The graph's own signature says which inputs exist (the metadata repeats it for people).
    inputs: [...inputs],
    outputs: [...outputs],
    sourceModel: get('source_model'),
    datasetName: get('dataset_name'),
    tSteps: Array.isArray(t) && t.every((v) => typeof v === 'number') ? (t as number[]) : undefined,
    layout: meta.get(FUSED_PREFIX + 'layout') === 'subgraphs' ? 'subgraphs' : 'inline',
    optimized: meta.get(FUSED_PREFIX + 'optimized'),
  };
  if (!info.inputs.includes('z')) throw new Error(`${name}: the sampler has no z input`);
  if (!info.outputs.includes('images')) throw new Error(`${name}: the sampler has no images output`);
  if (info.inputs.includes('noise') !== info.noiseIntervals.length > 0) throw new Error(`${name}: its noise input and ${FUSED_PREFIX}noise_intervals disagree`);
  if (info.inputs.includes('class_labels') !== info.labelDim > 0) throw new Error(`${name}: its class_labels input and ${FUSED_PREFIX}label_dim=${info.labelDim} disagree`);
  return info;
}

/**
 * The feeds of a list of seeds, as `adasde sample` draws them (a fixed class for every seed
 * when `classIdx` is given, else each seed's own draw).
 */
export function fusedFeeds(info: FusedInfo, seeds: readonly number[], classIdx?: number): Record<string, Feed> {
  const [C, H, W] = info.sampleShape;
  const n = seeds.length;
  const dim = C * H * W;
  const feeds: Record<string, Feed> = { z: { data: Float32Array.from(seedLatents(seeds, dim)), dims: [n, C, H, W] } };
  if (info.inputs.includes('noise')) {
    const S = info.noiseIntervals.length;
    const src = new SeedNoise(seeds);
    const noise = new Float32Array(S * n * dim);
    // Intervals in order: each seed's SDE stream hands them out one after another.
    info.noiseIntervals.forEach((i, k) => noise.set(src.source(i, n, dim), k * n * dim));
    feeds['noise'] = { data: noise, dims: [S, n, C, H, W] };
  }
  if (info.inputs.includes('class_labels')) {
    const L = info.labelDim;
    feeds['class_labels'] = { data: oneHot(classIdx === undefined ? seedClassIndices(seeds, L) : seeds.map(() => classIdx), L), dims: [n, L] };
  }
  return feeds;
}
