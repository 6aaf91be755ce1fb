/** `adasde fid calc` and `adasde fid ref` options (reference fid.py spelling). */
import { z } from 'zod';
import { boolFlag, device, intFlag, optStr } from './common.js';
import { defineOptions, type OptionsOf } from './options.js';

const shared = {
  detector: { flag: 'detector', schema: z.string(), default: 'models/inception-2015-12-05.onnx', help: 'feature extractor ONNX (inception-2015-12-05 contract)', expect: 'a path to an .onnx file' },
  batch: { flag: 'batch', schema: intFlag(1, 1 << 16), default: 64, help: 'images per detector call', expect: 'an integer >= 1' },
  num: { flag: 'num', schema: intFlag(2).optional(), help: 'use a reproducible subset of this many images', expect: 'an integer >= 2' },
  seed: { flag: 'seed', schema: intFlag(0), default: 0, help: 'seed of the --num subset', expect: 'a non-negative integer' },
  device: { flag: 'device', schema: device, default: 'cpu', help: 'cpu, cuda or cuda:N', expect: 'cpu, cuda or cuda:N' },
  threads: { flag: 'threads', schema: intFlag(0, 1024), default: 0, help: 'intra-op threads per process (0: onnxruntime default)', expect: 'a non-negative integer' },
  nprocPerNode: { flag: 'nproc_per_node', schema: intFlag(1, 1024), default: 1, help: 'worker processes splitting feature extraction', expect: 'an integer >= 1' },
  quiet: { flag: 'quiet', schema: boolFlag, default: false, kind: 'switch', help: 'no progress output', expect: 'a switch' },
} as const;

export const fidCalcTable = defineOptions({
  images: { flag: 'images', schema: z.string(), help: 'image folder, zip, or a statistics .npz', expect: 'a folder, .zip or .npz' },
  ref: { flag: 'ref', schema: z.string(), help: 'reference statistics .npz (mu, sigma)', expect: 'a path to an .npz file' },
  json: { flag: 'json', schema: boolFlag, default: false, kind: 'switch', help: 'print a JSON record instead of the number', expect: 'a switch' },
  ...shared,
});

export const fidRefTable = defineOptions({
  data: { flag: 'data', schema: z.string(), help: 'image folder or zip', expect: 'a folder or .zip' },
  dest: { flag: 'dest', schema: z.string(), help: 'output statistics .npz', expect: 'a path to an .npz file' },
  ...shared,
});

export type FidCalcOptions = OptionsOf<typeof fidCalcTable>;
export type FidRefOptions = OptionsOf<typeof fidRefTable>;
