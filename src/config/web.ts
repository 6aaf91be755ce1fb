/** `adasde web` options. */
import { z } from 'zod';
import { boolFlag, defineOptions, intFlag, optStr, type OptionsOf } from './options.js';

export const webTable = defineOptions({
  sampler: { flag: 'sampler', schema: optStr, help: "fused sampler ONNX file (adasde fuse)", expect: 'a file' },
  port: { flag: 'port', schema: intFlag(0, 65535), default: 8080, help: 'TCP port (0: any free port)', expect: 'an integer from 0 to 65535' },
  host: { flag: 'host', schema: z.string().min(1), default: '127.0.0.1', help: 'address to listen on', expect: 'an address such as 127.0.0.1' },
  quiet: { flag: 'quiet', schema: boolFlag, default: false, kind: 'switch', help: 'no progress output (the address line is still printed)', expect: 'a switch' },
});
export type WebOptions = OptionsOf<typeof webTable>;
