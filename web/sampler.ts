/**
 * A fused sampler (written by `adasde fuse`) as the page sees it: its metadata, decoded from
 * the fetched bytes with the project's own ONNX reader, and the feeds of a list of seeds,
 * both from src/fuse/info.ts, which `adasde sample --fused` uses too, so the page's images
 * are those of `adasde sample` for the same seeds.
 */
import { decodeModelHeader, MemorySource } from '../src/onnx/proto.js';
import { fusedFeeds, fusedInfo, type Feed, type FusedInfo } from '../src/fuse/info.js';

export type SamplerInfo = FusedInfo;
export type { Feed };

/** Reads the metadata of a fused sampler; anything else is an Error naming what is missing. */
export function readSamplerInfo(name: string, bytes: Uint8Array): SamplerInfo {
  const header = decodeModelHeader(new MemorySource(bytes));
  const meta = new Map(header.metadataProps.map((e) => [e.key, e.value] as const));
  const info = fusedInfo(
    name,
    meta,
    (header.graph?.input ?? []).map((v) => v.name),
    (header.graph?.output ?? []).map((v) => v.name),
  );
  if (info.inputs.includes('condition')) throw new Error(`${name}: a text-conditional sampler (input condition); the page samples from seeds only`);
  return info;
}

/** The feeds of a list of seeds, as `adasde sample` draws them. */
export function feedsFor(info: SamplerInfo, seeds: readonly number[]): Record<string, Feed> {
  return fusedFeeds(info, seeds);
}
