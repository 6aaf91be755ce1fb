/**
 * URL inputs (`--ref`, `--detector` as http(s) URLs) against a local HTTP server on 127.0.0.1
 * that stops itself: one download into the cache, then reuse; size and sha256 checks leave
 * nothing cached; an unreachable host is one line with exit 1; a missing file exit 2.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { cachePath, fetchToCache } from '../../src/io/download.js';
import { writeStatsNpz } from '../../src/io/npz.js';
import { saveModel } from '../../src/onnx/builder.js';
import { buildFeatureModel, buildMixtureModel } from '../support/models.js';
import { MIX, SHAPE } from '../cli/sample-fixture.js';
import { repoRoot } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'adasde-download-'));
const bin = resolve(repoRoot, 'bin', 'adasde.js');
const D = 8;
let server: Server;
let base = '';
const hits = new Map<string, number>();
let body = Buffer.alloc(0);

before(async () => {
  // Two statistics files: b is served, a stays local.
  const eye = (s: number) => Float64Array.from({ length: D * D }, (_, k) => (k % (D + 1) === 0 ? s : 0));
  await writeStatsNpz(join(dir, 'a.npz'), new Float64Array(D).fill(0.5), eye(1));
  await writeStatsNpz(join(dir, 'b.npz'), new Float64Array(D).fill(0), eye(2));
  body = readFileSync(join(dir, 'b.npz'));
  saveModel(buildMixtureModel(MIX, SHAPE, { datasetName: 'gmm' }), join(dir, 'gmm.onnx'));
  saveModel(buildFeatureModel({ dim: 12, size: 16, seed: 4 }), join(dir, 'features.onnx'));
  const features = readFileSync(join(dir, 'features.onnx'));
  server = createServer((req, res) => {
    const path = req.url ?? '/';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    if (path === '/fid-refs/b.npz' || path === '/other/b.npz') {
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
    } else if (path === '/models/features.onnx') {
      res.writeHead(200, { 'content-length': features.length });
      res.end(features);
    } else if (path === '/moved') {
      res.writeHead(302, { location: '/fid-refs/b.npz' });
      res.end();
    } else if (path === '/short.npz') {
      // Announces the whole file, sends half of it, then drops the connection.
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, body.length >> 1), () => res.destroy());
    } else if (path === '/stall.npz') {
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, 10)); // then nothing
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // Bounded: the server closes itself even if a test hangs.
  setTimeout(() => server.close(), 120_000).unref();
});

after(() => {
  server.closeAllConnections();
  server.close();
});

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [bin, ...args], { env: { ...process.env, ADASDE_CACHE_DIR: join(dir, 'cache'), ...env }, timeout: 60_000 }, (e, out, err) =>
      res({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out, err }),
    );
  });
}

test('download: fid calc --ref URL downloads once into the cache and reuses it', async () => {
  const url = `${base}/fid-refs/b.npz`;
  const local = await cli(['fid', 'calc', '--images', join(dir, 'a.npz'), '--ref', join(dir, 'b.npz')]);
  assert.equal(local.code, 0, local.err);
  const first = await cli(['fid', 'calc', '--images', join(dir, 'a.npz'), '--ref', url]);
  assert.equal(first.code, 0, first.err);
  assert.equal(first.out, local.out, 'the downloaded statistics give the same distance');
  assert.match(first.err, new RegExp(`downloaded ${url} \\(${body.length} bytes`));
  const cached = cachePath(url, join(dir, 'cache'));
  assert.deepEqual(readFileSync(cached), body);
  const second = await cli(['fid', 'calc', '--images', join(dir, 'a.npz'), '--ref', url, '--quiet']);
  assert.equal(second.code, 0, second.err);
  assert.equal(second.out, local.out);
  assert.equal(second.err, '');
  assert.equal(hits.get('/fid-refs/b.npz'), 1, 'the second run does not download again');
  // The same file name under another URL is another cache entry.
  assert.notEqual(cachePath(`${base}/other/b.npz`, join(dir, 'cache')), cached);
});

test('download: redirects are followed; sha256 and size of a known URL are checked', async () => {
  const cache = join(dir, 'cache-lib');
  const sha = createHash('sha256').update(body).digest('hex');
  const moved = `${base}/moved`;
  const p = await fetchToCache(moved, { dir: cache, known: { [moved]: { sha256: sha, bytes: body.length } } });
  assert.deepEqual(readFileSync(p), body);
  const other = `${base}/other/b.npz`;
  await assert.rejects(fetchToCache(other, { dir: cache, known: { [other]: { sha256: '0'.repeat(64) } } }), /sha256 [0-9a-f]{64} is not the published 0{64}; nothing cached/);
  await assert.rejects(fetchToCache(other, { dir: cache, known: { [other]: { bytes: 7 } } }), /the published file has 7; nothing cached/);
  assert.equal(existsSync(cachePath(other, cache)), false);
  assert.deepEqual(readdirSync(cache).filter((n) => n.includes('.tmp-')), [], 'no temporary file is left');
});

test('download: a truncated or stalled transfer caches nothing', async () => {
  const cache = join(dir, 'cache-bad');
  await assert.rejects(fetchToCache(`${base}/short.npz`, { dir: cache, flag: '--ref' }), /^RunError: --ref: /);
  await assert.rejects(fetchToCache(`${base}/stall.npz`, { dir: cache, flag: '--ref', idleTimeoutMs: 300 }), /--ref: cannot download .*stall\.npz: offline or unreachable \(ETIMEDOUT\)/);
  assert.deepEqual(readdirSync(cache), []);
});

test('download: a missing file is exit 2, an unreachable server exit 1, one line each', async () => {
  const missing = await cli(['fid', 'calc', '--images', join(dir, 'a.npz'), '--ref', `${base}/nothing.npz`]);
  assert.equal(missing.code, 2);
  assert.equal(missing.err, `adasde: error: --ref: ${base}/nothing.npz answered HTTP 404 (expected the file itself)\n`);
  // A port nothing listens on (the server's, after closing a second one there).
  const spare = createServer();
  await new Promise<void>((r) => spare.listen(0, '127.0.0.1', r));
  const port = (spare.address() as AddressInfo).port;
  await new Promise<void>((r) => spare.close(() => r()));
  const offline = await cli(['fid', 'calc', '--images', join(dir, 'a.npz'), '--ref', `http://127.0.0.1:${port}/x.npz`]);
  assert.equal(offline.code, 1);
  assert.match(offline.err, /^adasde: error: --ref: cannot download http:\/\/127\.0\.0\.1:\d+\/x\.npz: offline or unreachable \(ECONNREFUSED\); download it yourself and pass the local file\n$/);
});

test('download: train --detector URL trains through the cached feature network; the run records the URL', async () => {
  const url = `${base}/models/features.onnx`;
  const outdir = join(dir, 'exp-url');
  const args = ['train', '--model', join(dir, 'gmm.onnx'), '--outdir', outdir, '--detector', url, '--num_steps', '3', '--M', '1', '--batch', '4', '--total_kimg', '0.008', '--seed', '0', '--lr', '0.2', '--schedule_rho', '1', '--gamma', '0.02', '--quiet'];
  const r = await cli(args);
  assert.equal(r.code, 0, r.err);
  const cached = cachePath(url, join(dir, 'cache'));
  assert.deepEqual(readFileSync(cached), readFileSync(join(dir, 'features.onnx')));
  const run = join(outdir, readdirSync(outdir).find((d) => /^\d{5}-/.test(d))!);
  const opts = JSON.parse(readFileSync(join(run, 'training_options.json'), 'utf8')) as { options: Record<string, unknown>; resolved: { detector: string; feature_loss: string } };
  assert.equal(opts.options.detector, url);
  assert.equal(opts.resolved.detector, cached);
  assert.match(opts.resolved.feature_loss, /feature loss through/);
  // A second run reads the cache: the server sees the URL once.
  const again = await cli(args);
  assert.equal(again.code, 0, again.err);
  assert.equal(hits.get('/models/features.onnx'), 1);
});
