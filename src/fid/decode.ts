/**
 * Decoding image batches for the detector, off the main thread.
 *
 * onnxruntime-node runs a session synchronously on the main thread, so anything decoded
 * there (zip reads, sharp's pipeline set-up, the HWC -> CHW copy) waits while the model
 * runs, so the decode time adds to the model time.
 * `DecodePool` runs the decoding in worker threads instead, each with its own image set
 * and event loop and a few images in flight (sharp and zlib use libuv's thread pool), so
 * batch k+1 decodes while the detector works on batch k. `threads: 0` decodes on the main
 * thread (no overlap; for debugging and for environments without worker threads).
 */
import { Worker } from 'node:worker_threads';
import { UsageError } from '../core/errors.js';
import type { ImageSet } from '../io/images.js';

/** What the worker threads are started with. */
export interface DecodeWorkerData {
  path: string;
  width: number;
  height: number;
  /** Named as the reference size in the "images differ in size" error. */
  firstName: string;
  /** Images in flight per thread. */
  concurrency: number;
}

/**
 * The images `indices` of `set` as one CHW uint8 buffer [n, 3, H, W], `cfg.concurrency` reads in
 * flight; every image must have the first image's size. Runs on the main thread (the first
 * batch, `threads: 0`) and in each worker thread (decode-worker.ts).
 */
export async function decodeBatch(set: ImageSet, indices: readonly number[], cfg: DecodeWorkerData): Promise<Uint8Array> {
  const { width, height, firstName, concurrency } = cfg;
  const plane = width * height;
  const out = new Uint8Array(indices.length * 3 * plane);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < indices.length) {
      const k = next++;
      const img = await set.read(indices[k]!);
      if (img.width !== width || img.height !== height) {
        throw new UsageError(`${cfg.path}: images differ in size: '${firstName}' is ${width}x${height}, '${img.name}' is ${img.width}x${img.height}`);
      }
      out.set(img.data, k * 3 * plane);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, indices.length)) }, lane));
  return out;
}

export type DecodeRequest = { type: 'batch'; id: number; indices: number[] } | { type: 'close' };

export type DecodeReply =
  | { type: 'batch'; id: number; data: Uint8Array }
  | { type: 'error'; id: number; usage: boolean; message: string };

export interface DecodePoolOptions {
  /** Worker threads (default 1); 0 decodes on the main thread. */
  threads?: number;
  /** Images in flight per thread (default 8). */
  concurrency?: number;
}

interface Pending {
  resolve: (data: Uint8Array) => void;
  reject: (e: Error) => void;
}

export class DecodePool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly load: number[] = [];
  private nextId = 0;
  private failure: Error | undefined;

  constructor(
    private readonly set: ImageSet,
    private readonly cfg: DecodeWorkerData,
    threads: number,
  ) {
    for (let t = 0; t < threads; t++) {
      const w = new Worker(new URL('./decode-worker.js', import.meta.url), { workerData: cfg });
      w.on('message', (msg: DecodeReply) => this.onReply(t, msg));
      w.on('error', (e) => this.fail(e instanceof Error ? e : new Error(String(e))));
      w.on('exit', (code) => {
        if (code !== 0) this.fail(new Error(`decode worker thread exited with code ${code}`));
      });
      this.workers.push(w);
      this.load.push(0);
    }
  }

  static create(set: ImageSet, size: { width: number; height: number }, firstName: string, opts: DecodePoolOptions = {}): DecodePool {
    const cfg: DecodeWorkerData = {
      path: set.path,
      width: size.width,
      height: size.height,
      firstName,
      concurrency: Math.max(1, opts.concurrency ?? 8),
    };
    return new DecodePool(set, cfg, Math.max(0, opts.threads ?? 1));
  }

  private onReply(worker: number, msg: DecodeReply): void {
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    this.load[worker] = this.load[worker]! - 1;
    if (msg.type === 'batch') p.resolve(msg.data);
    else p.reject(msg.usage ? new UsageError(msg.message) : new Error(`decoding failed: ${msg.message}`));
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  /** Decode the images `indices` into one CHW uint8 buffer [n, 3, H, W]. */
  decode(indices: readonly number[]): Promise<Uint8Array> {
    if (this.failure) return Promise.reject(this.failure);
    // The first batch decodes here while the threads start (loading sharp in a fresh
    // thread takes a few hundred ms); the model cannot start before it anyway.
    if (this.workers.length === 0 || this.nextId++ === 0) return this.decodeHere(indices);
    // The least loaded thread takes the batch.
    let t = 0;
    for (let k = 1; k < this.load.length; k++) if (this.load[k]! < this.load[t]!) t = k;
    const id = this.nextId++;
    this.load[t] = this.load[t]! + 1;
    return new Promise<Uint8Array>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const req: DecodeRequest = { type: 'batch', id, indices: [...indices] };
      this.workers[t]!.postMessage(req);
    });
  }

  private decodeHere(indices: readonly number[]): Promise<Uint8Array> {
    return decodeBatch(this.set, indices, this.cfg);
  }

  /** Stop the threads: each closes its image set and exits (pending batches are rejected). */
  async close(): Promise<void> {
    const ws = this.workers.splice(0);
    this.failure ??= new Error('decode pool closed');
    this.fail(this.failure);
    await Promise.all(
      ws.map(
        (w) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => void w.terminate(), 5000);
            w.removeAllListeners('exit');
            w.removeAllListeners('error');
            w.on('error', () => undefined);
            w.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            const req: DecodeRequest = { type: 'close' };
            w.postMessage(req);
          }),
      ),
    );
  }
}
