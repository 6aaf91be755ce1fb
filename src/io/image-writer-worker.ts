/**
 * The image-writer thread (src/io/image-writer.ts): encodes each image of a batch as PNG and
 * writes it atomically, all synchronously on this thread, then reports the batch done.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { writeViaTempSync } from './atomic.js';
import { encodePngSync } from './png.js';
import type { WriterReply, WriterRequest } from './image-writer.js';

if (!parentPort) throw new Error('image-writer-worker runs as a worker thread');
const port = parentPort;
/** [stop, busy]: the halt handshake with the main thread (image-writer.ts `halt`). */
const flags = new Int32Array(workerData as SharedArrayBuffer);
const STOP = 0;
const BUSY = 1;
/** Directories this thread has created or seen, so each costs one mkdir per run. */
const made = new Set<string>();

function writeBatch(m: WriterRequest): void {
  const n = m.C * m.H * m.W;
  for (let k = 0; k < m.paths.length; k++) {
    // Busy first, then the stop check: the main thread either sees us busy and waits for the
    // file to finish, or we see its stop and write nothing more.
    Atomics.store(flags, BUSY, 1);
    try {
      if (Atomics.load(flags, STOP) === 1) throw new Error(`image writer halted before ${m.paths[k]}`);
      const path = m.paths[k]!;
      const dir = dirname(path);
      if (!made.has(dir)) {
        mkdirSync(dir, { recursive: true });
        made.add(dir);
      }
      try {
        writeViaTempSync(path, m.temps[k]!, encodePngSync(m.data.subarray(k * n, (k + 1) * n), m.C, m.H, m.W));
      } catch (e) {
        // Errors of write() and close() do not name the file; this one line does.
        throw new Error(`${path}: ${e instanceof Error ? e.message : String(e)}`);
      }
    } finally {
      Atomics.store(flags, BUSY, 0);
      Atomics.notify(flags, BUSY);
    }
  }
}

port.on('message', (m: WriterRequest) => {
  let reply: WriterReply;
  try {
    writeBatch(m);
    reply = { id: m.id };
  } catch (e) {
    reply = { id: m.id, error: e instanceof Error ? e.message : String(e) };
  }
  port.postMessage(reply);
});
