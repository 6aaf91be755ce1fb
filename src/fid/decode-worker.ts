/**
 * Worker thread of the decode pool (decode.ts): opens the image set itself and turns
 * batches of indices into one CHW uint8 buffer each, transferred back to the main thread.
 * Running here, decoding continues while onnxruntime blocks the main thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { UsageError } from '../core/errors.js';
import { openImageSet, type ImageSet } from '../io/images.js';
import { decodeBatch, type DecodeReply, type DecodeRequest, type DecodeWorkerData } from './decode.js';

const cfg = workerData as DecodeWorkerData;
const port = parentPort;
if (!port) throw new Error('decode-worker.js runs as a worker thread');

// Open the set right away, while the main thread decodes the first batch itself.
const setPromise: Promise<ImageSet> = openImageSet(cfg.path);
setPromise.catch(() => undefined); // reported with the first batch that needs it

port.on('message', (msg: DecodeRequest) => {
  if (msg.type === 'close') {
    void setPromise
      .then((s) => s.close())
      .catch(() => undefined)
      .finally(() => port.close());
    return;
  }
  setPromise
    .then((set) => decodeBatch(set, msg.indices, cfg))
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
