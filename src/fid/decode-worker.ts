/**
 * Worker thread of the decode pool (decode.ts): opens the image set itself and turns
 * batches of indices into one CHW uint8 buffer each, transferred back to the main thread.
 * Running here, decoding continues while onnxruntime blocks the main thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { UsageError } from '../core/errors.js';
import { openImageSet, type ImageSet } from '../io/images.js';
import type { DecodeReply, DecodeRequest, DecodeWorkerData } from './decode.js';

const cfg = workerData as DecodeWorkerData;
const port = parentPort;
if (!port) throw new Error('decode-worker.js runs as a worker thread');

// Open the set right away, while the main thread decodes the first batch itself.
const setPromise: Promise<ImageSet> = openImageSet(cfg.path);
setPromise.catch(() => undefined); // reported with the first batch that needs it
const plane = cfg.width * cfg.height;

async function decodeBatch(set: ImageSet, indices: readonly number[]): Promise<Uint8Array> {
  const out = new Uint8Array(indices.length * 3 * plane);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < indices.length) {
      const k = next++;
      const img = await set.read(indices[k]!);
      if (img.width !== cfg.width || img.height !== cfg.height) {
        throw new UsageError(`${cfg.path}: images differ in size: '${cfg.firstName}' is ${cfg.width}x${cfg.height}, '${img.name}' is ${img.width}x${img.height}`);
      }
      out.set(img.data, k * 3 * plane);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(cfg.concurrency, indices.length)) }, lane));
  return out;
}

port.on('message', (msg: DecodeRequest) => {
  if (msg.type === 'close') {
    void setPromise
      .then((s) => s.close())
      .catch(() => undefined)
      .finally(() => port.close());
    return;
  }
  setPromise
    .then((set) => decodeBatch(set, msg.indices))
    .then(
      (data) => {
        const reply: DecodeReply = { type: 'batch', id: msg.id, data };
        port.postMessage(reply, [data.buffer as ArrayBuffer]);
      },
      (e: unknown) => {
        const reply: DecodeReply = {
          type: 'error',
          id: msg.id,
          usage: e instanceof UsageError,
          message: e instanceof Error ? e.message : String(e),
        };
        port.postMessage(reply);
      },
    );
});
