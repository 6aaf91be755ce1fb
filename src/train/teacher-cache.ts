/**
 * Teacher targets on disk (ALGORITHM.md 4.2). The teacher costs 4 (M + 1)(N - 1) model
 * evaluations per trajectory and its targets do not depend on anything the student learns, so
 * a second training with other lr / gamma / scale options, a resumed run or a sweep can reuse
 * them. An entry holds the N - 1 targets of the trajectories [g0, g0 + n) of one batch shard;
 * entries live under a folder named by a hash of everything the targets depend on (the key).
 *
 * Safety:
 *  - entries are written atomically (temporary name + rename): a reader sees a complete file
 *    or none, and a file whose header or size disagrees with the key is ignored;
 *  - concurrent runs needing the same entry: the first takes `<entry>.lock` exclusively and
 *    computes, the others wait for the entry (a lock whose process is gone, or older than an
 *    hour on another host, is taken over);
 *  - bounded: after each write the oldest entries (by last use) are removed until the cache
 *    is within 90% of its byte bound; a reader that loses an entry to eviction recomputes.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { processAlive, writeFileAtomic } from '../io/atomic.js';

/** Bumped whenever the teacher's arithmetic or the file layout changes. */
export const TEACHER_CACHE_VERSION = 1;
const MAGIC = 'ADASDETC';

/** Everything the teacher targets depend on; JSON-serialisable. */
export type TeacherKey = Record<string, unknown>;

export interface TeacherStore {
  /** The targets of trajectories [g0, g0 + n): stored ones, or `compute()`'s (then stored). */
  targets(g0: number, n: number, compute: () => Promise<Float64Array[]>): Promise<{ targets: Float64Array[]; hit: boolean }>;
}

export interface TeacherCacheOptions {
  /** Upper bound of the whole cache folder's entries, in bytes. */
  maxBytes: number;
  /** Poll interval while another process computes an entry (ms). */
  pollMs?: number;
}


/** Stable JSON (sorted keys), so equal keys hash equally whatever their construction order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class TeacherCache implements TeacherStore {
  readonly dir: string;
  readonly keyHash: string;
  private readonly keyText: string;
  private readonly pollMs: number;

  constructor(
    readonly root: string,
    key: TeacherKey,
    private readonly opts: TeacherCacheOptions,
  ) {
    this.keyText = canonical({ version: TEACHER_CACHE_VERSION, ...key });
    this.keyHash = createHash('sha256').update(this.keyText).digest('hex').slice(0, 24);
    this.dir = join(root, this.keyHash);
    this.pollMs = opts.pollMs ?? 200;
  }

  private entry(g0: number, n: number): string {
    return join(this.dir, `${g0}-${n}.bin`);
  }

  /** The stored targets, or undefined (missing, evicted, or not written for this key). */
  read(g0: number, n: number): Float64Array[] | undefined {
    const file = this.entry(g0, n);
    let buf: Buffer;
    try {
      buf = readFileSync(file);
    } catch {
      return undefined;
    }
    if (buf.length < 16 || buf.toString('latin1', 0, 8) !== MAGIC) return undefined;
    const headerLen = buf.readUInt32LE(8);
    const dataOff = 16 + headerLen + ((8 - ((16 + headerLen) % 8)) % 8);
    let header: { key: string; g0: number; n: number; count: number; len: number };
    try {
      header = JSON.parse(buf.toString('utf8', 16, 16 + headerLen)) as typeof header;
    } catch {
      return undefined;
    }
    if (header.key !== this.keyText || header.g0 !== g0 || header.n !== n) return undefined;
    if (buf.length !== dataOff + header.count * header.len * 8) return undefined;
    // Copy into an aligned buffer (a Buffer's offset inside its pool need not be a multiple of 8).
    const data = new Float64Array(buf.buffer.slice(buf.byteOffset + dataOff, buf.byteOffset + buf.length));
    const out = Array.from({ length: header.count }, (_, i) => data.slice(i * header.len, (i + 1) * header.len));
    try {
      // Last use, for eviction.
      const now = new Date();
      utimesSync(file, now, now);
    } catch {
      // Evicted meanwhile: the bytes are already read.
    }
    return out;
  }

  async write(g0: number, n: number, targets: Float64Array[]): Promise<void> {
    const len = targets[0]?.length ?? 0;
    const header = Buffer.from(JSON.stringify({ key: this.keyText, g0, n, count: targets.length, len }), 'utf8');
    const pad = (8 - ((16 + header.length) % 8)) % 8;
    const size = 16 + header.length + pad + targets.length * len * 8;
    // An entry larger than the whole bound is not kept (it would evict everything, itself last).
    if (size > this.opts.maxBytes) return;
    const head = Buffer.alloc(16 + header.length + pad);
    head.write(MAGIC, 0, 'latin1');
    head.writeUInt32LE(header.length, 8);
    header.copy(head, 16);
    const chunks: Uint8Array[] = [head, ...targets.map((t) => new Uint8Array(t.buffer, t.byteOffset, t.byteLength))];
    if (!existsSync(join(this.dir, 'key.json'))) await writeFileAtomic(join(this.dir, 'key.json'), JSON.stringify(JSON.parse(this.keyText), null, 2) + '\n');
    await writeFileAtomic(this.entry(g0, n), chunks);
    this.evict(this.entry(g0, n));
  }

  /** Remove the least recently used entries of the whole cache root until it is within 90% of the bound. */
  private evict(keep: string): void {
    const files: { path: string; size: number; mtime: number }[] = [];
    let total = 0;
    for (const d of readdirSync(this.root)) {
      const sub = join(this.root, d);
      let names: string[];
      try {
        names = readdirSync(sub);
      } catch {
        continue;
      }
      for (const f of names) {
        if (!f.endsWith('.bin')) continue;
        try {
          const st = statSync(join(sub, f));
          files.push({ path: join(sub, f), size: st.size, mtime: st.mtimeMs });
          total += st.size;
        } catch {
          // Removed by another process meanwhile.
        }
      }
    }
    if (total <= this.opts.maxBytes) return;
    files.sort((a, b) => a.mtime - b.mtime);
    for (const f of files) {
      if (total <= 0.9 * this.opts.maxBytes) break;
      if (f.path === keep) continue;
      rmSync(f.path, { force: true });
      total -= f.size;
    }
  }

  /** Take the entry's lock; false if a live process holds it. */
  private tryLock(lock: string): boolean {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, `${hostname()} ${process.pid}\n`);
      closeSync(fd);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    // Held: is the holder still there?
    let stale = false;
    try {
      const [host, pid] = readFileSync(lock, 'utf8').trim().split(' ');
      const age = Date.now() - statSync(lock).mtimeMs;
      stale = host === hostname() ? !processAlive(Number(pid)) : age > 3600_000;
    } catch {
      // Released meanwhile (or not yet written by its creator): try again at the next poll.
      return false;
    }
    if (stale) rmSync(lock, { force: true });
    return false;
  }

  async targets(g0: number, n: number, compute: () => Promise<Float64Array[]>): Promise<{ targets: Float64Array[]; hit: boolean }> {
    const cached = this.read(g0, n);
    if (cached) return { targets: cached, hit: true };
    mkdirSync(this.dir, { recursive: true });
    const lock = this.entry(g0, n).replace(/\.bin$/, '.lock');
    while (!this.tryLock(lock)) {
      await sleep(this.pollMs);
      const done = this.read(g0, n);
      if (done) return { targets: done, hit: true };
    }
    try {
      // Written by the previous holder between our read and our lock.
      const done = this.read(g0, n);
      if (done) return { targets: done, hit: true };
      const targets = await compute();
      await this.write(g0, n, targets);
      return { targets, hit: false };
    } finally {
      rmSync(lock, { force: true });
    }
  }
}
