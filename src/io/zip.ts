/**
 * A small zip reader and writer (PKWARE APPNOTE 6.3), enough for EDM dataset zips and
 * NumPy `.npz` archives: stored and deflate members, zip64 sizes/offsets/counts.
 *
 * The reader reads the central directory once and then each entry on demand with
 * positioned reads, so a 50,000-image dataset zip is never loaded whole. Zip files come
 * from users and may be hostile, so every declared size is checked against the bytes that
 * exist and against limits before anything is allocated, inflation is capped at the
 * declared uncompressed size (a "zip bomb" is stopped while inflating, not after), and the
 * CRC-32 is verified. Such problems are UsageErrors naming the file and the entry.
 */
import { constants as bufferConstants } from 'node:buffer';
import { open, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { crc32, deflateRaw, inflateRaw } from 'node:zlib';
import { UsageError } from '../core/errors.js';

const inflateRawAsync = promisify(inflateRaw);
const deflateRawAsync = promisify(deflateRaw);

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const EOCD_SIZE = 22;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;

export const METHOD_STORED = 0;
export const METHOD_DEFLATE = 8;

/**
 * Deflate cannot expand more than 1032:1 (a 258-byte match coded in 2 bits); a member
 * declaring more is corrupt or hostile and is refused before reading it.
 */
const DEFLATE_MAX_RATIO = 1032;

export interface ZipEntry {
  /** Path inside the archive, `/`-separated; directories end with `/`. */
  name: string;
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  /** Offset of the local header from the start of the zip proper (see `ZipReader`). */
  localHeaderOffset: number;
  isDirectory: boolean;
}

export interface ZipOpenOptions {
  /** Names the archive in error messages; defaults to the path (or `<buffer>`). */
  label?: string;
  /** How entries are called in error messages (`entry`, or `member` for .npz). */
  entryWord?: string;
  /** Default cap on one entry's uncompressed size for `read` (default: Node's Buffer limit). */
  maxEntryBytes?: number;
}

export interface ZipReadOptions {
  /** Cap on this entry's uncompressed size, checked before reading. */
  maxBytes?: number;
}

/** Random access to the bytes of a zip: a file (positioned reads) or a buffer. */
interface ByteSource {
  readonly size: number;
  /** Exactly `len` bytes at `pos`, or fewer if the source ends first. */
  read(pos: number, len: number): Promise<Buffer>;
  close(): Promise<void>;
}

class BufferSource implements ByteSource {
  readonly size: number;
  constructor(private readonly buf: Uint8Array) {
    this.size = buf.byteLength;
  }
  async read(pos: number, len: number): Promise<Buffer> {
    const end = Math.min(this.size, pos + len);
    return Buffer.from(this.buf.buffer, this.buf.byteOffset + pos, Math.max(0, end - pos));
  }
  async close(): Promise<void> {}
}

class FileSource implements ByteSource {
  constructor(
    private readonly fh: FileHandle,
    readonly size: number,
  ) {}
  async read(pos: number, len: number): Promise<Buffer> {
    const n = Math.max(0, Math.min(len, this.size - pos));
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await this.fh.read(out, got, n - got, pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got === n ? out : out.subarray(0, got);
  }
  async close(): Promise<void> {
    await this.fh.close();
  }
}

function u64(buf: Buffer, off: number): number {
  const v = buf.readBigUInt64LE(off);
  // Anything beyond 2^53 cannot be a real offset or size of a file we can read.
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(v);
}

/** Names are UTF-8 when flag bit 11 says so; most tools write UTF-8 anyway, else CP437-ish. */
function decodeName(bytes: Buffer, flags: number): string {
  if (flags & 0x800) return bytes.toString('utf8');
  if (bytes.every((b) => b < 0x80)) return bytes.toString('latin1');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}

export class ZipReader {
  private readonly byName = new Map<string, ZipEntry>();

  private constructor(
    private readonly src: ByteSource,
    readonly label: string,
    /** Central-directory order. */
    readonly entries: readonly ZipEntry[],
    /** Bytes prepended before the zip proper (self-extractors, concatenations). */
    private readonly prefix: number,
    /** Where the central directory starts: every entry's data must end before it. */
    private readonly dataEnd: number,
    private readonly entryWord: string,
    private readonly maxEntryBytes: number,
  ) {
    // Later duplicates win, as in Python's zipfile (and so np.load).
    for (const e of entries) this.byName.set(e.name, e);
  }

  /** Open a zip file (path) or a zip held in memory, and read its central directory. */
  static async open(src: string | Uint8Array, opts: ZipOpenOptions = {}): Promise<ZipReader> {
    const label = opts.label ?? (typeof src === 'string' ? src : '<buffer>');
    let source: ByteSource;
    if (typeof src === 'string') {
      let fh: FileHandle;
      try {
        fh = await open(src, 'r');
      } catch (e) {
        throw openError(e, label);
      }
      try {
        const st = await fh.stat();
        if (st.isDirectory()) throw new UsageError(`${label}: is a directory, not a zip file`);
        source = new FileSource(fh, st.size);
      } catch (e) {
        await fh.close();
        throw e;
      }
    } else {
      source = new BufferSource(src);
    }
    try {
      return await ZipReader.readDirectory(source, label, opts);
    } catch (e) {
      await source.close();
      throw e;
    }
  }

  private static async readDirectory(src: ByteSource, label: string, opts: ZipOpenOptions): Promise<ZipReader> {
    const bad = (what: string) => new UsageError(`${label}: not a valid zip file (${what})`);
    const size = src.size;
    if (size < EOCD_SIZE) throw bad('too short');
    // The end record is in the last 22 bytes plus an optional comment of up to 65535 bytes.
    const tailLen = Math.min(size, EOCD_SIZE + U16_MAX);
    const tailStart = size - tailLen;
    const tail = await src.read(tailStart, tailLen);
    let eocd = -1;
    for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
      if (tail.readUInt32LE(i) === SIG_EOCD && i + EOCD_SIZE + tail.readUInt16LE(i + 20) <= tail.length) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw bad('no end-of-central-directory record');
    const eocdPos = tailStart + eocd;
    const diskNo = tail.readUInt16LE(eocd + 4);
    const cdDisk = tail.readUInt16LE(eocd + 6);
    let count = tail.readUInt16LE(eocd + 10);
    let cdSize: number = tail.readUInt32LE(eocd + 12);
    let cdOffset: number = tail.readUInt32LE(eocd + 16);
    let endOfCd = eocdPos;

    // zip64: a locator right before the end record points to the zip64 end record.
    if (eocdPos >= 20) {
      const loc = await src.read(eocdPos - 20, 20);
      if (loc.length === 20 && loc.readUInt32LE(0) === SIG_ZIP64_LOCATOR) {
        const recPosInZip = u64(loc, 8);
        // The zip64 record sits right before the locator; its stored offset omits any prefix.
        const recPos = eocdPos - 20 - 56;
        if (recPos < 0) throw bad('zip64 end record out of range');
        const rec = await src.read(recPos, 56);
        if (rec.length < 56 || rec.readUInt32LE(0) !== SIG_ZIP64_EOCD) throw bad('zip64 end record missing');
        if (rec.readUInt32LE(16) !== 0 || rec.readUInt32LE(20) !== 0) throw bad('multi-disk archives are not supported');
        count = u64(rec, 32);
        cdSize = u64(rec, 40);
        cdOffset = u64(rec, 48);
        endOfCd = recPos;
        if (recPosInZip > recPos) throw bad('zip64 end record offset out of range');
      }
    }
    if (diskNo !== 0 || cdDisk !== 0) throw bad('multi-disk archives are not supported');
    if (!Number.isFinite(cdSize) || !Number.isFinite(cdOffset) || cdSize > endOfCd) throw bad('central directory out of range');
    // Python's zipfile tolerates data prepended to the archive; so do we.
    const prefix = endOfCd - cdSize - cdOffset;
    if (prefix < 0) throw bad('central directory out of range');
    if (count * CENTRAL_SIZE > cdSize) throw bad(`central directory too small for ${count} entries`);

    const cd = await src.read(prefix + cdOffset, cdSize);
    if (cd.length !== cdSize) throw bad('truncated central directory');
    const entries: ZipEntry[] = [];
    let p = 0;
    for (let k = 0; k < count; k++) {
      if (p + CENTRAL_SIZE > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) throw bad(`bad central directory header #${k}`);
      const flags = cd.readUInt16LE(p + 8);
      const method = cd.readUInt16LE(p + 10);
      const crc = cd.readUInt32LE(p + 16);
      let csize: number = cd.readUInt32LE(p + 20);
      let usize: number = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let offset: number = cd.readUInt32LE(p + 42);
      const end = p + CENTRAL_SIZE + nameLen + extraLen + commentLen;
      if (end > cd.length) throw bad(`bad central directory header #${k}`);
      const name = decodeName(cd.subarray(p + CENTRAL_SIZE, p + CENTRAL_SIZE + nameLen), flags);
      // zip64 extra field: only the fields whose 32-bit value is saturated are present, in
      // the order uncompressed size, compressed size, local header offset.
      let x = p + CENTRAL_SIZE + nameLen;
      const xEnd = x + extraLen;
      while (x + 4 <= xEnd) {
        const id = cd.readUInt16LE(x);
        const len = cd.readUInt16LE(x + 2);
        if (x + 4 + len > xEnd) break;
        if (id === 0x0001) {
          let q = x + 4;
          const take = (): number => {
            if (q + 8 > x + 4 + len) throw bad(`bad zip64 field for '${name}'`);
            const v = u64(cd, q);
            q += 8;
            return v;
          };
          if (usize === U32_MAX) usize = take();
          if (csize === U32_MAX) csize = take();
          if (offset === U32_MAX) offset = take();
        }
        x += 4 + len;
      }
      entries.push({
        name,
        method,
        flags,
        crc32: crc,
        compressedSize: csize,
        uncompressedSize: usize,
        localHeaderOffset: offset,
        isDirectory: name.endsWith('/'),
      });
      p = end;
    }
    const maxEntry = Math.min(opts.maxEntryBytes ?? Infinity, bufferConstants.MAX_LENGTH);
    return new ZipReader(src, label, entries, prefix, prefix + cdOffset, opts.entryWord ?? 'entry', maxEntry);
  }

  /** The entry called `name` (exact, case-sensitive), if any. */
  get(name: string): ZipEntry | undefined {
    return this.byName.get(name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** Names of the file entries (no directories), in central-directory order. */
  fileNames(): string[] {
    return this.entries.filter((e) => !e.isDirectory).map((e) => e.name);
  }

  /** Decompress one entry, fully validated (sizes, CRC-32). */
  async read(entryOrName: ZipEntry | string, opts: ZipReadOptions = {}): Promise<Buffer> {
    const e = typeof entryOrName === 'string' ? this.byName.get(entryOrName) : entryOrName;
    if (e === undefined) throw new UsageError(`${this.label}: no ${this.entryWord} '${String(entryOrName)}'`);
    const what = `${this.label}: ${this.entryWord} '${e.name}'`;
    if (e.flags & 0x1) throw new UsageError(`${what} is encrypted; encrypted zips are not supported`);
    if (e.method !== METHOD_STORED && e.method !== METHOD_DEFLATE) {
      throw new UsageError(`${what} uses compression method ${e.method}; only stored (0) and deflate (8) are supported`);
    }
    if (e.method === METHOD_STORED && e.compressedSize !== e.uncompressedSize) {
      throw new UsageError(`${what} is corrupt (stored with ${e.compressedSize} bytes but declares ${e.uncompressedSize})`);
    }
    if (e.method === METHOD_DEFLATE && e.uncompressedSize > e.compressedSize * DEFLATE_MAX_RATIO + 1024) {
      throw new UsageError(
        `${what} declares ${e.uncompressedSize} bytes from ${e.compressedSize} compressed, more than deflate can produce (zip bomb?)`,
      );
    }
    const limit = Math.min(opts.maxBytes ?? Infinity, this.maxEntryBytes);
    if (e.uncompressedSize > limit) {
      throw new UsageError(`${what} declares ${e.uncompressedSize} bytes uncompressed, over the limit of ${limit}`);
    }
    const headerPos = this.prefix + e.localHeaderOffset;
    const local = await this.src.read(headerPos, LOCAL_SIZE);
    if (local.length < LOCAL_SIZE || local.readUInt32LE(0) !== SIG_LOCAL) {
      throw new UsageError(`${what} is corrupt (no local header at offset ${e.localHeaderOffset})`);
    }
    // The local name/extra lengths may differ from the central ones (NumPy writes a zip64
    // extra only locally), so the data offset comes from the local header.
    const dataPos = headerPos + LOCAL_SIZE + local.readUInt16LE(26) + local.readUInt16LE(28);
    if (dataPos + e.compressedSize > this.dataEnd) {
      throw new UsageError(`${what} is truncated (its ${e.compressedSize} bytes run past the end of the data)`);
    }
    const raw = await this.src.read(dataPos, e.compressedSize);
    if (raw.length !== e.compressedSize) throw new UsageError(`${what} is truncated`);
    let out: Buffer;
    if (e.method === METHOD_STORED) {
      out = raw;
    } else {
      try {
        // maxOutputLength makes zlib stop (with ERR_BUFFER_TOO_LARGE) as soon as the output
        // exceeds the declared size; it must be at least 1.
        out = await inflateRawAsync(raw, { maxOutputLength: Math.max(1, e.uncompressedSize) });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ERR_BUFFER_TOO_LARGE') {
          throw new UsageError(`${what} inflates beyond its declared size of ${e.uncompressedSize} bytes (zip bomb?)`);
        }
        if (typeof code === 'string' && code.startsWith('Z_')) {
          const msg = (err as Error).message;
          throw new UsageError(`${what} is corrupt (deflate: ${msg === 'unexpected end of file' ? 'truncated stream' : msg})`);
        }
        throw err;
      }
      if (out.length !== e.uncompressedSize) {
        throw new UsageError(`${what} inflates to ${out.length} bytes but declares ${e.uncompressedSize}`);
      }
    }
    const crc = crc32(out) >>> 0;
    if (crc !== e.crc32) {
      throw new UsageError(`${what} fails its CRC-32 check (stored ${hex8(e.crc32)}, computed ${hex8(crc)})`);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.src.close();
  }
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function openError(e: unknown, label: string): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new UsageError(`${label}: no such file`);
  if (code === 'EACCES') return new UsageError(`${label}: permission denied`);
  return e;
}

/** Convenience for `ZipReader.open`. */
export function openZip(src: string | Uint8Array, opts: ZipOpenOptions = {}): Promise<ZipReader> {
  return ZipReader.open(src, opts);
}

// ---------------------------------------------------------------------------
// Writing.

export interface ZipMemberInput {
  name: string;
  /** The member's bytes, as one or more chunks. */
  data: Uint8Array | readonly Uint8Array[];
}

export interface ZipWriteOptions {
  /** Deflate members (level 6, zlib's default as used by Python's zipfile) or store them. */
  compressed?: boolean;
  /** Use zip64 records even when nothing needs them (tests, and readers that expect them). */
  forceZip64?: boolean;
}

/**
 * DOS timestamp 1980-01-01 00:00:00 for every member: archives are then byte-for-byte
 * reproducible (NumPy stamps the current time, which nothing reads).
 */
const DOS_TIME = 0;
const DOS_DATE = (0 << 9) | (1 << 5) | 1;

/**
 * Build a zip archive as a list of chunks (header, data, header, data, ..., directory), so
 * large members are not copied into one buffer when stored.
 */
export async function buildZip(members: readonly ZipMemberInput[], opts: ZipWriteOptions = {}): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  const central: Buffer[] = [];
  let pos = 0;
  const seen = new Set<string>();
  for (const m of members) {
    if (seen.has(m.name)) throw new Error(`buildZip: duplicate member '${m.name}'`);
    seen.add(m.name);
    const parts = m.data instanceof Uint8Array ? [m.data] : m.data;
    let crc = 0;
    let usize = 0;
    for (const part of parts) {
      // Skip empty chunks: Node's crc32 returns 0 (dropping the running value) for a
      // zero-length view of a zero-length ArrayBuffer.
      if (part.byteLength > 0) crc = crc32(part, crc);
      usize += part.byteLength;
    }
    crc >>>= 0;
    let payload: readonly Uint8Array[] = parts;
    let csize = usize;
    const method = opts.compressed ? METHOD_DEFLATE : METHOD_STORED;
    if (opts.compressed) {
      const z = await deflateRawAsync(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
      payload = [z];
      csize = z.length;
    }
    const nameBytes = Buffer.from(m.name, 'utf8');
    const flags = /^[\x00-\x7f]*$/.test(m.name) ? 0 : 0x800;
    const zip64 = opts.forceZip64 === true || usize >= U32_MAX || csize >= U32_MAX || pos >= U32_MAX;
    const version = zip64 ? 45 : 20;

    const localExtra = zip64 ? Buffer.alloc(20) : Buffer.alloc(0);
    if (zip64) {
      localExtra.writeUInt16LE(0x0001, 0);
      localExtra.writeUInt16LE(16, 2);
      localExtra.writeBigUInt64LE(BigInt(usize), 4);
      localExtra.writeBigUInt64LE(BigInt(csize), 12);
    }
    const local = Buffer.alloc(LOCAL_SIZE);
    local.writeUInt32LE(SIG_LOCAL, 0);
    local.writeUInt16LE(version, 4);
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(DOS_TIME, 10);
    local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(zip64 ? U32_MAX : csize, 18);
    local.writeUInt32LE(zip64 ? U32_MAX : usize, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(localExtra.length, 28);
    chunks.push(local, nameBytes, localExtra, ...payload);

    const cenExtra = zip64 ? Buffer.alloc(28) : Buffer.alloc(0);
    if (zip64) {
      cenExtra.writeUInt16LE(0x0001, 0);
      cenExtra.writeUInt16LE(24, 2);
      cenExtra.writeBigUInt64LE(BigInt(usize), 4);
      cenExtra.writeBigUInt64LE(BigInt(csize), 12);
      cenExtra.writeBigUInt64LE(BigInt(pos), 20);
    }
    const cen = Buffer.alloc(CENTRAL_SIZE);
    cen.writeUInt32LE(SIG_CENTRAL, 0);
    cen.writeUInt16LE((3 << 8) | version, 4); // made by: Unix, so the permission bits below count
    cen.writeUInt16LE(version, 6);
    cen.writeUInt16LE(flags, 8);
    cen.writeUInt16LE(method, 10);
    cen.writeUInt16LE(DOS_TIME, 12);
    cen.writeUInt16LE(DOS_DATE, 14);
    cen.writeUInt32LE(crc, 16);
    cen.writeUInt32LE(zip64 ? U32_MAX : csize, 20);
    cen.writeUInt32LE(zip64 ? U32_MAX : usize, 24);
    cen.writeUInt16LE(nameBytes.length, 28);
    cen.writeUInt16LE(cenExtra.length, 30);
    cen.writeUInt32LE((0o100644 << 16) >>> 0, 38); // regular file, rw-r--r--
    cen.writeUInt32LE(zip64 ? U32_MAX : pos, 42);
    central.push(cen, nameBytes, cenExtra);

    pos += LOCAL_SIZE + nameBytes.length + localExtra.length + csize;
  }
  const cdOffset = pos;
  const cdSize = central.reduce((s, b) => s + b.length, 0);
  chunks.push(...central);
  const count = members.length;
  const zip64End = opts.forceZip64 === true || count >= U16_MAX || cdOffset >= U32_MAX || cdSize >= U32_MAX;
  if (zip64End) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(SIG_ZIP64_EOCD, 0);
    rec.writeBigUInt64LE(44n, 4); // size of the rest of this record
    rec.writeUInt16LE((3 << 8) | 45, 12);
    rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(count), 24);
    rec.writeBigUInt64LE(BigInt(count), 32);
    rec.writeBigUInt64LE(BigInt(cdSize), 40);
    rec.writeBigUInt64LE(BigInt(cdOffset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(SIG_ZIP64_LOCATOR, 0);
    loc.writeBigUInt64LE(BigInt(cdOffset + cdSize), 8);
    loc.writeUInt32LE(1, 16);
    chunks.push(rec, loc);
  }
  const end = Buffer.alloc(EOCD_SIZE);
  end.writeUInt32LE(SIG_EOCD, 0);
  end.writeUInt16LE(zip64End ? U16_MAX : count, 8);
  end.writeUInt16LE(zip64End ? U16_MAX : count, 10);
  end.writeUInt32LE(zip64End ? U32_MAX : cdSize, 12);
  end.writeUInt32LE(zip64End ? U32_MAX : cdOffset, 16);
  chunks.push(end);
  return chunks;
}
