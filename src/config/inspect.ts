/** `adasde inspect FILE` options. */
import { z } from 'zod';
import { boolFlag, device, deviceOption, intFlag } from './common.js';
import { defineOptions, type OptionsOf } from './options.js';

export const inspectTable = defineOptions({
  forward: { flag: 'forward', schema: boolFlag, default: true, kind: 'bool', help: 'run the tiny forward passes (batch 1)', expect: 'True or False' },
  device: deviceOption,
  threads: { flag: 'threads', schema: intFlag(0, 1024), default: 0, help: 'intra-op threads (0: onnxruntime default)', expect: 'a non-negative integer' },
  prompt: { flag: 'prompt', schema: z.string(), default: 'a photograph of an astronaut riding a horse', help: 'prompt for the tokenizer and text-encoder checks', expect: 'a string' },
});
export type InspectOptions = OptionsOf<typeof inspectTable>;

