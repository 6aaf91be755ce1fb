/**
 * Writes batches of PNG images on a thread of their own. A sampler writes tens of thousands
 * of small files; per file, Node's asynchronous fs and zlib calls each hop to libuv's thread
 * pool and back, which costs several times the CPU of the same work done synchronously
 * (measured: bench/RESULTS.md, section "Sampler overhead", item 4). Here one message
 * per batch goes to a worker thread that compresses and writes every image synchronously, so
 * the main thread only quantises, and the writing overlaps the model run of the next batch.
 *
 * Every file is written atomically (temp name, then rename). The temp names are made and
 * tracked here, on the main thread, so that `removePendingTempFilesSync` (the Ctrl-C handler)
 * removes them; it first halts the worker, which then starts no further file.
 */
import { Worker } from 'node:worker_threads';
import { onRemovePendingTemps, tempPathFor, trackPendingTemp } from './atomic.js';
import { RunError } from '../core/errors.js';

export interface WriterRequest {
  id: number;
  paths: string[];
  temps: string[];
  /** The batch's images, CHW uint8, one after another. */
  data: Uint8Array;
  C: number;
  H: number;
  W: number;
}

export interface WriterReply {
  id: number;
  /** One line: what failed (the system error names the file). */
  error?: string;
}

interface Waiting {
  resolve: () => void;
  reject: (e: Error) => void;
  temps: string[];
}

export class ImageWriter {
  private readonly worker: Worker;
  private readonly flags: Int32Array;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 0;
  private failed: Error | undefined;
  private readonly unregister: () => void;

  constructor() {
    const shared = new SharedArrayBuffer(8);
    this.flags = new Int32Array(shared);
    this.worker = new Worker(new URL('./image-writer-worker.js', import.meta.url), { workerData: shared });
    // A failed write (a full disk, a folder made read-only) ends the run in one line, exit 1.
    this.worker.on('message', (r: WriterReply) => this.settle(r.id, r.error === undefined ? undefined : new RunError(r.error)));
    this.worker.on('error', (e) => this.failAll(e));
    this.worker.on('exit', (code) => this.failAll(new Error(`image writer thread exited (code ${code})`)));
    // The thread keeps the process alive only while a batch is in flight (an idle writer
    // someone forgot to close must not hang the exit; a pending one must not be cut off).
    this.worker.unref();
    this.unregister = onRemovePendingTemps(() => this.halt());
  }

  /**
   * Writes image k of `data` ([paths.length, C, H, W] uint8) to paths[k]; resolves once all are
   * on disk. `data` is handed over to the writer thread (the caller must not reuse it).
   */
  write(paths: readonly string[], data: Uint8Array, C: number, H: number, W: number): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    if (data.length !== paths.length * C * H * W) throw new RangeError(`image writer: ${data.length} bytes for ${paths.length} images of ${C}x${H}x${W}`);
    const id = this.nextId++;
    const temps = paths.map((p) => tempPathFor(p));
    for (const t of temps) trackPendingTemp(t);
    const done = new Promise<void>((resolve, reject) => this.waiting.set(id, { resolve, reject, temps }));
    if (this.waiting.size === 1) this.worker.ref();
    const req: WriterRequest = { id, paths: [...paths], temps, data, C, H, W };
    const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
    this.worker.postMessage(req, whole ? [data.buffer as ArrayBuffer] : []);
    return done;
  }

  /** Waits for nothing: call after the last write has been awaited. Stops the thread. */
  async close(): Promise<void> {
    this.unregister();
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
    this.failAll(new Error('image writer closed'));
  }

  /**
   * Synchronously stops the writer thread from starting another file and waits (at most a
   * second) for the file it is writing to be complete, so that removing the pending temp
   * files afterwards leaves nothing behind.
   */
  halt(): void {
    Atomics.store(this.flags, 0, 1);
    const until = Date.now() + 1000;
    while (Atomics.load(this.flags, 1) === 1 && Date.now() < until) Atomics.wait(this.flags, 1, 1, 50);
  }

  private settle(id: number, error: Error | undefined): void {
    const w = this.waiting.get(id);
    if (!w) return;
    this.waiting.delete(id);
    if (this.waiting.size === 0) this.worker.unref();
    for (const t of w.temps) trackPendingTemp(t, true);
    if (error) w.reject(error);
    else w.resolve();
  }

  private failAll(e: Error): void {
    this.failed ??= e;
    for (const id of [...this.waiting.keys()]) this.settle(id, e);
  }
}
