/**
 * Atomic file writes. Every file the toolkit produces goes through `writeFileAtomic`: the
 * bytes are written to a temporary name in the destination directory and renamed over the
 * final name only once complete. A rename within one directory is atomic on POSIX file
 * systems (and replaces the target on Windows), so an interrupted run (Ctrl-C, crash, full
 * disk) never leaves a partial file under the final name; at worst a `*.tmp-<pid>-<hex>`
 * file remains, which `removeStaleTempFiles` cleans up.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, openSync, closeSync, writeSync, fsyncSync, renameSync, rmSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { RunError } from '../core/errors.js';
import { describeFsError } from './outdir.js';

/** What can be written: bytes, text (UTF-8), or a list of byte chunks written in order. */
export type FileData = Uint8Array | string | readonly Uint8Array[];

export interface AtomicWriteOptions {
  /**
   * Flush the data to disk before the rename. Off by default: the rename alone already
   * guarantees "old file or complete new file" against process interruption, and an fsync
   * per file would make writing 50,000 PNGs much slower. Turn it on for files whose loss on
   * a power failure would be costly (checkpoints).
   */
  fsync?: boolean;
}

/** Matches the temporary names made by `tempPathFor`, capturing the writer's pid. */
const TEMP_RE = /\.tmp-(\d+)-[0-9a-f]{12}$/;

/**
 * Temporary files currently being written by this process, so that a signal handler can
 * remove them synchronously before exiting (`removePendingTempFilesSync`).
 */
const pending = new Set<string>();

/** Streams written outside writeFileAtomic (downloads) register their temp file here too. */
export function trackTempFile(tmp: string): void {
  pending.add(tmp);
}

export function untrackTempFile(tmp: string): void {
  pending.delete(tmp);
}

/** `<dir>/<name>.tmp-<pid>-<12 hex>`: same directory as `path`, so the rename stays atomic. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
}

function chunksOf(data: FileData): readonly Uint8Array[] {
  if (typeof data === 'string') return [Buffer.from(data, 'utf8')];
  if (data instanceof Uint8Array) return [data];
  return data;
}

/** Write `data` to `path` atomically, creating parent directories as needed. */
export async function writeFileAtomic(path: string, data: FileData, opts: AtomicWriteOptions = {}): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  pending.add(tmp);
  try {
    // 'wx': never follow or clobber something already at the temp name.
    const fh = await open(tmp, 'wx');
    try {
      for (const chunk of chunksOf(data)) {
        let off = 0;
        // FileHandle.write may write less than asked for large buffers; loop until done.
        while (off < chunk.byteLength) {
          const { bytesWritten } = await fh.write(chunk, off, chunk.byteLength - off);
          off += bytesWritten;
        }
      }
      if (opts.fsync) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw namedWriteError(e, path);
  } finally {
    pending.delete(tmp);
  }
}

/** Synchronous twin of `writeFileAtomic`, for exit paths where awaiting is not possible. */
export function writeFileAtomicSync(path: string, data: FileData, opts: AtomicWriteOptions = {}): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  pending.add(tmp);
  try {
    writeViaTempSync(path, tmp, data, opts);
  } finally {
    pending.delete(tmp);
  }
}

/**
 * Writes `data` to `tmp` (which must not exist) and renames it to `path`; on failure the temp
 * file is removed and the error rethrown. The parent directory must exist. For writers on
 * other threads, whose temp names the main thread tracks (`trackPendingTemp`).
 */
export function writeViaTempSync(path: string, tmp: string, data: FileData, opts: AtomicWriteOptions = {}): void {
  try {
    const fd = openSync(tmp, 'wx');
    try {
      for (const chunk of chunksOf(data)) {
        let off = 0;
        while (off < chunk.byteLength) off += writeSync(fd, chunk, off, chunk.byteLength - off);
      }
      if (opts.fsync) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // The original error matters more than a failed cleanup.
    }
    throw namedWriteError(e, path);
  }
}

/**
 * A failed write as one line naming the file: FileHandle.write and close errors carry no
 * path, and a full disk or a read-only folder is the machine's state, not a bug (exit 1).
 */
function namedWriteError(e: unknown, path: string): unknown {
  const d = describeFsError(e);
  return d ? new RunError(`cannot write ${path}: ${d.text} (${d.code})`) : e;
}

/**
 * Appends text to a log (log.txt, stats.jsonl): not atomic, since a log line cut short by a
 * full disk harms nothing, but its failure is one line naming the file like the atomic writes.
 */
export function appendLog(path: string, text: string): void {
  try {
    appendFileSync(path, text);
  } catch (e) {
    throw namedWriteError(e, path);
  }
}

/** Registers (or, with `done`, unregisters) a temp file another thread is writing for us. */
export function trackPendingTemp(tmp: string, done = false): void {
  if (done) pending.delete(tmp);
  else pending.add(tmp);
}

/**
 * Stops writers on other threads before their temp files are removed: each returns once its
 * thread will create no further temp file (src/io/image-writer.ts).
 */
const haltWriters = new Set<() => void>();

/** Registers a writer's halt function for `removePendingTempFilesSync`; returns its removal. */
export function onRemovePendingTemps(halt: () => void): () => void {
  haltWriters.add(halt);
  return () => haltWriters.delete(halt);
}

/**
 * Remove the temporary files this process is writing right now. Meant for a SIGINT/SIGTERM
 * handler that exits immediately afterwards (the interrupted writes never finish, so their
 * temp files would otherwise stay behind).
 */
export function removePendingTempFilesSync(): void {
  for (const halt of haltWriters) halt();
  for (const tmp of pending) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // Best effort on the way out.
    }
  }
  pending.clear();
}

/** Whether a process of this machine is running (a lock or temp file's owner). */
export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove leftovers of interrupted atomic writes in `dir` (not recursive): temp files whose
 * writing process no longer exists, or that are older than `maxAgeMs` (default one day, in
 * case the pid was reused). Files of live writers, including this process, are kept.
 * Returns the removed paths. A missing directory is not an error. With `owns`, only temp files
 * of final names it accepts are considered (ranks on other machines sharing the folder have
 * pids this machine cannot check, so each rank cleans up only after its own files).
 */
export async function removeStaleTempFiles(dir: string, maxAgeMs = 24 * 3600 * 1000, owns?: (finalName: string) => boolean): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_RE.exec(name);
    if (!m || (owns && !owns(name.slice(0, m.index)))) continue;
    const full = join(dir, name);
    const pid = Number(m[1]);
    let stale = !processAlive(pid);
    if (!stale && pid !== process.pid) {
      const st = await stat(full).catch(() => undefined);
      stale = st !== undefined && Date.now() - st.mtimeMs > maxAgeMs;
    }
    if (stale && !pending.has(full)) {
      await rm(full, { force: true });
      removed.push(full);
    }
  }
  return removed;
}
