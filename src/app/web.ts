/**
 * `adasde web`: an HTTP server on one address for the browser page (web/, built into
 * dist/web/ by tools/build-web.mjs), onnxruntime-web's module, wasm and worker files (from
 * node_modules, unchanged) and one fused sampler at /sampler.onnx. Everything the page
 * computes it computes in the browser: the server only hands out files, so the same folder
 * layout works on any static host.
 *
 * Every response carries the cross-origin-isolation headers (COOP same-origin, COEP
 * require-corp): browsers give SharedArrayBuffer, and so onnxruntime-web's WASM threads, to
 * isolated pages only.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { basename, dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { firstLine, RunError, UsageError } from '../core/errors.js';
import { readModelHeader } from '../onnx/proto.js';
import { FUSED_FORMAT, FUSED_FORMAT_KEY } from '../fuse/format.js';


const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.png': 'image/png',
};

export interface WebPlan {
  /** The fused sampler served as /sampler.onnx. */
  sampler: string;
  host: string;
  port: number;
  /** The built page (index.html, page.js, page.css). */
  pageDir: string;
  /** onnxruntime-web's dist folder. */
  ortDir: string;
}

export interface WebServer {
  /** http://host:port/ */
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

/** dist/web beside this module's dist/src/app. */
export function defaultPageDir(): string {
  return fileURLToPath(new URL('../../web/', import.meta.url));
}

/** Where the installed onnxruntime-web keeps its browser files. */
export function ortWebDir(): string {
  try {
    // The package's `require` entry is dist/ort.min.js, beside the wasm files.
    return dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
  } catch {
    throw new RunError('onnxruntime-web is not installed (npm install onnxruntime-web)');
  }
}

/** Refuses a file that is not a fused sampler, in one line naming --sampler. */
export function checkSampler(file: string): void {
  if (!existsSync(file)) throw new UsageError(`--sampler ${file}: no such file`);
  if (!statSync(file).isFile()) throw new UsageError(`--sampler ${file}: expected a file, got a folder`);
  let format: string | undefined;
  try {
    format = readModelHeader(file).metadataProps.find((e) => e.key === FUSED_FORMAT_KEY)?.value;
  } catch (e) {
    throw new UsageError(`--sampler ${file}: not an ONNX file (${firstLine(e)})`);
  }
  if (format !== FUSED_FORMAT) throw new UsageError(`--sampler ${file}: not a fused sampler (no ${FUSED_FORMAT_KEY}=${FUSED_FORMAT}; write one with adasde fuse)`);
}

export function resolveWeb(opts: { sampler: string; host: string; port: number; pageDir?: string; ortDir?: string }): WebPlan {
  checkSampler(opts.sampler);
  const pageDir = opts.pageDir ?? defaultPageDir();
  if (!existsSync(join(pageDir, 'index.html')) || !existsSync(join(pageDir, 'page.js'))) {
    throw new RunError(`the page is not built: ${pageDir} lacks index.html or page.js (npm run build)`);
  }
  return { sampler: opts.sampler, host: opts.host, port: opts.port, pageDir, ortDir: opts.ortDir ?? ortWebDir() };
}

/** The file a request path names, or undefined (404). Only known names, never a path from the URL. */
function fileFor(plan: WebPlan, pathname: string): string | undefined {
  if (pathname === '/' || pathname === '/index.html') return join(plan.pageDir, 'index.html');
  if (pathname === '/sampler.onnx') return plan.sampler;
  const page = /^\/(page\.js|page\.js\.map|page\.css)$/.exec(pathname);
  if (page) return join(plan.pageDir, page[1]!);
  const ort = /^\/ort\/([A-Za-z0-9._-]+)$/.exec(pathname);
  if (ort && !ort[1]!.startsWith('.')) return join(plan.ortDir, ort[1]!);
  return undefined;
}

function handle(plan: WebPlan, req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
    return;
  }
  let pathname: string;
  try {
    pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
  } catch {
    res.writeHead(400, { 'Content-Type': 'text/plain' }).end('bad request\n');
    return;
  }
  const file = fileFor(plan, pathname);
  const st = file !== undefined && existsSync(file) ? statSync(file) : undefined;
  if (file === undefined || !st?.isFile()) {
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    return;
  }
  const type = file === plan.sampler ? TYPES['.onnx']! : (TYPES[extname(file)] ?? 'application/octet-stream');
  res.writeHead(200, { 'Content-Type': type, 'Content-Length': st.size, 'Cache-Control': 'no-cache' });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const stream = createReadStream(file);
  stream.on('error', () => res.destroy());
  stream.pipe(res);
}

/** Starts serving; resolves once the address is bound (port 0: any free port). */
export function startWeb(plan: WebPlan): Promise<WebServer> {
  const server = createServer((req, res) => handle(plan, req, res));
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') reject(new RunError(`--port ${plan.port}: ${plan.host}:${plan.port} is in use (another server; --port 0 picks a free one)`));
      else if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND') reject(new UsageError(`--host ${plan.host}: not an address of this machine`));
      else if (e.code === 'EACCES') reject(new UsageError(`--port ${plan.port}: not allowed to listen there (ports below 1024 need privileges)`));
      else reject(new RunError(`cannot listen on ${plan.host}:${plan.port}: ${e.message}`));
    });
    server.listen(plan.port, plan.host, () => {
      const addr = server.address() as AddressInfo;
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      resolve({
        url: `http://${host}:${addr.port}/`,
        server,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

/** A short description of what is served, for the address line. */
export function describeSampler(file: string): string {
  return `${basename(file)}, ${(statSync(file).size / 2 ** 20).toFixed(2)} MiB`;
}
