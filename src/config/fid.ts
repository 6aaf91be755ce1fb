/** `adasde fid calc` and `adasde fid ref` options (reference fid.py spelling). */
import { z } from 'zod';
import { boolFlag, DEFAULT_DETECTOR, device, deviceOption, intFlag, numFlag, threadsOption } from './common.js';
import { defineOptions, type OptionsOf } from './options.js';

const shared = {
  detector: { flag: 'detector', schema: z.string().min(1), default: DEFAULT_DETECTOR, help: 'feature extractor ONNX (inception-2015-12-05 contract)', expect: 'a path to an .onnx file' },
  num: { flag: 'num', schema: intFlag(2).optional(), help: 'use a reproducible subset of this many images (default: all)', expect: 'an integer >= 2' },
  seed: { flag: 'seed', schema: intFlag(0), default: 0, help: 'seed of the --num subset', expect: 'a non-negative integer' },
  device: deviceOption,
  threads: threadsOption,
  decoders: { flag: 'decoders', schema: intFlag(0, 64), default: 1, help: 'decoding threads per process, working while the detector runs (0: decode on the main thread)', expect: 'a non-negative integer' },
  nprocPerNode: { flag: 'nproc_per_node', schema: intFlag(1, 1024), default: 1, help: 'worker processes splitting feature extraction', expect: 'an integer >= 1' },
  partialTimeout: { flag: 'partial_timeout', schema: numFlag(0), default: 3600, help: 'external launchers: seconds rank 0 waits for the other ranks after its own share', expect: 'a non-negative number of seconds' },
  quiet: { flag: 'quiet', schema: boolFlag, default: false, kind: 'switch', help: 'no progress bar or summary line', expect: 'a switch' },
} as const;

/** Where external launchers' ranks meet; the default differs between calc and ref. */
const partialDir = (where: string) =>
  ({ flag: 'partial_dir', schema: z.string().min(1).optional(), help: `external launchers (WORLD_SIZE > 1): folder shared by all ranks for partial sums (default: ${where})`, expect: 'a folder' }) as const;

export const fidCalcTable = defineOptions({
  images: { flag: 'images', schema: z.string().min(1), help: 'image folder, zip, or a statistics .npz', expect: 'a folder, .zip or .npz' },
  ref: { flag: 'ref', schema: z.string().min(1), help: 'reference statistics .npz (mu, sigma)', expect: 'a path to an .npz file' },
  batch: { flag: 'batch', schema: intFlag(1, 1 << 16), default: 250, help: 'images per detector call', expect: 'an integer >= 1' },
  json: { flag: 'json', schema: boolFlag, default: false, kind: 'switch', help: 'print one JSON record instead of the number: {fid, ...} with the Inception detector, {fd_bundled, ...} with the bundled features (metric, n, detector, ref, images, elapsed)', expect: 'a switch' },
  partialDir: partialDir('the current folder'),
  ...shared,
});

export const fidRefTable = defineOptions({
  data: { flag: 'data', schema: z.string().min(1), help: 'image folder or zip', expect: 'a folder or .zip' },
  dest: { flag: 'dest', schema: z.string().regex(/\.npz$/i), help: 'output statistics .npz (mu, sigma, float64)', expect: 'a path ending in .npz' },
  batch: { flag: 'batch', schema: intFlag(1, 1 << 16), default: 500, help: 'images per detector call', expect: 'an integer >= 1' },
  partialDir: partialDir('beside --dest'),
  ...shared,
});

export type FidCalcOptions = OptionsOf<typeof fidCalcTable>;
export type FidRefOptions = OptionsOf<typeof fidRefTable>;
/** What `fid calc` and `fid ref` share. */
export type FidCommonOptions = OptionsOf<typeof shared> & { batch: number };
