/**
 * `--ref` and `--detector` given as http(s) URLs, as the reference's fid.py takes EDM's
 * published statistics (`https://nvlabs-fi-cdn.nvidia.com/edm/fid-refs/*.npz`): each URL is
 * downloaded once into a cache folder and reused. The bytes go to a temporary file beside
 * the cached name, are checked (the announced Content-Length, and a sha256 for a URL of
 * KNOWN_DOWNLOADS), and only then renamed into place, so the cache never holds a partial
 * or unverified file.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { RunError, UsageError } from '../core/errors.js';
import { tempPathFor, trackTempFile, untrackTempFile } from './atomic.js';

export const isUrl = (s: string): boolean => /^https?:\/\//i.test(s);

/** What is known of a published file: its size and sha256 (hex). */
export interface KnownDownload {
  bytes?: number;
  sha256?: string;
}

/**
 * Published files whose digests have been checked by this project. Empty for now: the
 * digests of EDM's fid-refs could not be verified from this project's offline machines, and
 * an unverified digest would be worse than none (their size is still checked against the
 * server's Content-Length). Add `url: { bytes, sha256 }` entries once verified.
 */
export const KNOWN_DOWNLOADS: Readonly<Record<string, KnownDownload>> = {};

/** `$ADASDE_CACHE_DIR`, else `$XDG_CACHE_HOME/adasde/downloads`, else `~/.cache/adasde/downloads`. */
export function cacheDir(): string {
  if (process.env.ADASDE_CACHE_DIR) return process.env.ADASDE_CACHE_DIR;
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'adasde', 'downloads');
}

/** The cache file of a URL: a digest of the whole URL (two URLs never share a file) and its basename. */
export function cachePath(url: string, dir = cacheDir()): string {
  const tag = createHash('sha256').update(url).digest('hex').slice(0, 16);
  const name = basename(new URL(url).pathname) || 'download';
  return join(dir, `${tag}-${name.replace(/[^\w.-]+/g, '_')}`);
}

export interface DownloadOptions {
  /** Called with (bytes so far, total or undefined) as data arrives. */
  onProgress?: (done: number, total: number | undefined) => void;
  known?: Readonly<Record<string, KnownDownload>>;
  dir?: string;
  /** Milliseconds without data before giving up (default 30 s). */
  idleTimeoutMs?: number;
  /** The flag named in error messages. */
  flag?: string;
}

const NETWORK_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ECONNRESET', 'ENETUNREACH', 'EHOSTUNREACH', 'ETIMEDOUT']);

function request(url: string, idleMs: number, flag: string, redirects = 5): Promise<IncomingMessage> {
  return new Promise((resolveRes, reject) => {
    const get = url.toLowerCase().startsWith('https:') ? httpsGet : httpGet;
    const req = get(url, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        if (redirects === 0) return reject(new RunError(`${flag}: ${url}: too many redirects`));
        return resolveRes(request(new URL(res.headers.location, url).toString(), idleMs, flag, redirects - 1));
      }
      if (status !== 200) {
        res.resume();
        return reject(new UsageError(`${flag}: ${url} answered HTTP ${status} (expected the file itself)`));
      }
      resolveRes(res);
    });
    req.setTimeout(idleMs, () => req.destroy(Object.assign(new Error('no answer'), { code: 'ETIMEDOUT' })));
    req.on('error', (e: NodeJS.ErrnoException) => reject(networkError(e, url, flag)));
  });
}

function networkError(e: NodeJS.ErrnoException, url: string, flag: string): Error {
  if (e instanceof RunError || e instanceof UsageError) return e;
  const why = e.code && NETWORK_CODES.has(e.code) ? `offline or unreachable (${e.code})` : `download failed (${e.code ?? e.message})`;
  return new RunError(`${flag}: cannot download ${url}: ${why}; download it yourself and pass the local file`);
}

/**
 * The local path of `url`: the cached copy, or a fresh download into the cache. Throws
 * RunError (one line) when the network fails or the bytes do not check out.
 */
export async function fetchToCache(url: string, opts: DownloadOptions = {}): Promise<string> {
  const flag = opts.flag ?? 'download';
  const dest = cachePath(url, opts.dir);
  if (existsSync(dest)) return dest;
  await mkdir(opts.dir ?? cacheDir(), { recursive: true });
  const res = await request(url, opts.idleTimeoutMs ?? 30_000, flag);
  const announced = res.headers['content-length'] !== undefined ? Number(res.headers['content-length']) : undefined;
  const tmp = tempPathFor(dest);
  trackTempFile(tmp);
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    await new Promise<void>((resolveDone, rejectDone) => {
      const out = createWriteStream(tmp, { flags: 'wx' });
      // A failed transfer also closes the half-written file.
      const reject = (e: unknown) => {
        out.destroy();
        rejectDone(e);
      };
      res.setTimeout(opts.idleTimeoutMs ?? 30_000, () => {
        // Reported first: destroying the response also fires 'aborted'.
        reject(networkError(Object.assign(new Error('stalled'), { code: 'ETIMEDOUT' }), url, flag));
        res.destroy();
      });
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
        opts.onProgress?.(bytes, announced);
      });
      res.on('error', (e) => reject(networkError(e, url, flag)));
      res.on('aborted', () => reject(new RunError(`${flag}: ${url}: the connection closed after ${bytes} bytes`)));
      out.on('error', reject);
      out.on('finish', () => resolveDone());
      res.pipe(out);
    });
    if (announced !== undefined && bytes !== announced) throw new RunError(`${flag}: ${url}: received ${bytes} bytes, the server announced ${announced}; nothing cached`);
    const known = (opts.known ?? KNOWN_DOWNLOADS)[url];
    if (known?.bytes !== undefined && bytes !== known.bytes) throw new RunError(`${flag}: ${url}: ${bytes} bytes, the published file has ${known.bytes}; nothing cached`);
    const digest = hash.digest('hex');
    if (known?.sha256 !== undefined && digest !== known.sha256.toLowerCase()) throw new RunError(`${flag}: ${url}: sha256 ${digest} is not the published ${known.sha256}; nothing cached`);
    await rename(tmp, dest);
    return dest;
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  } finally {
    untrackTempFile(tmp);
  }
}
