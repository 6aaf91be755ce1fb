/**
 * Issue 16's browser page: `adasde web` started as a real process serves the page and the
 * bundled model's fused AdaSDE 5-NFE sampler (built on first use into a fresh cache folder);
 * headless Chromium samples seeds 0-7 with onnxruntime-web's WASM backend, and the pixels
 * read back from the page's canvas are compared with the PNGs `adasde sample` writes for the
 * same seeds with the host loop (same predictor): equal on at least 99.9% of the pixels, off
 * by at most 1 elsewhere. Plus the server's own behaviour: headers, files, bad flags, SIGINT.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { bundledFusedSampler, bundledPredictor } from '../../src/app/fuse.js';
import { decodeImage } from '../../src/io/images.js';
import { imagePath } from '../../src/io/png.js';
import { repoRoot } from '../helpers.js';
import { chromiumMissing, launchChromium } from './browser.js';
import { startWebProcess } from './server.js';

const bin = resolve(repoRoot, 'bin', 'adasde.js');
const SEEDS = [0, 1, 2, 3, 4, 5, 6, 7];

/** What the page exposes as window.adasdePage (web/page.ts), as far as the test reads it. */
interface PageView {
  status: string;
  error?: string;
  backend?: string;
  sessionMs?: number;
  lastRun?: { seeds: number[]; imagesPerSecond: number };
  info?: { solver: string; nfe: number };
  pixels(i: number): number[];
}
type PageGlobals = { adasdePage?: PageView; crossOriginIsolated: boolean };

function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => done({ code, stdout, stderr }));
  });
}

test('adasde web: seeds 0-7 in headless Chromium give the pixels of adasde sample', { timeout: 300_000 }, async (t) => {
  const missing = chromiumMissing();
  if (missing) {
    t.skip(`SKIPPED: no headless browser: ${missing}`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'adasde-web-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const env = { ...process.env, XDG_CACHE_HOME: join(dir, 'cache') };
  const expDir = join(repoRoot, 'exp');
  const predictor = bundledPredictor(expDir);
  assert.ok(predictor, 'the bundled 5-NFE predictor exists');

  // The host loop's PNGs, written while the server builds its sampler.
  const pngDir = join(dir, 'png');
  const sampled = runCli(
    ['sample', '--model', join(repoRoot, 'models', 'cifar10-tiny-edm.onnx'), '--predictor_path', predictor, '--exp_dir', expDir, '--seeds', '0-7', '--batch', '8', '--outdir', pngDir, '--quiet'],
    env,
  );
  const web = await startWebProcess(['--port', '0', '--quiet'], env);
  let stopped = false;
  t.after(async () => {
    if (!stopped) await web.stop();
  });
  assert.match(web.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);

  const browser = await launchChromium();
  t.after(() => browser.close());
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${web.url}?seeds=0-7&batch=8&ep=wasm`);
  await page.waitForFunction(() => ['done', 'error'].includes((globalThis as unknown as PageGlobals).adasdePage?.status ?? ''), null, { timeout: 240_000 });
  const state = await page.evaluate(() => {
    const g = globalThis as unknown as PageGlobals;
    const s = g.adasdePage!;
    return {
      status: s.status,
      error: s.error,
      backend: s.backend,
      isolated: g.crossOriginIsolated,
      sessionMs: s.sessionMs,
      run: s.lastRun,
      info: s.info,
      pixels: s.status === 'done' ? s.lastRun!.seeds.map((_, i) => s.pixels(i)) : [],
    };
  });
  assert.deepEqual(errors, []);
  assert.equal(state.status, 'done', state.error);
  assert.equal(state.backend, 'wasm');
  assert.equal(state.isolated, true, 'the server isolates the page (COOP/COEP), so WASM threads are available');
  assert.deepEqual(state.run?.seeds, SEEDS);
  assert.ok(state.sessionMs! > 0 && Number.isFinite(state.sessionMs));
  assert.ok(state.run!.imagesPerSecond > 0 && Number.isFinite(state.run!.imagesPerSecond));
  assert.equal(state.info?.solver, 'adasde');
  assert.equal(state.info?.nfe, 5);

  const host = await sampled;
  assert.equal(host.code, 0, host.stderr);
  let differing = 0;
  let worst = 0;
  const [C, H, W] = [3, 32, 32];
  for (const [i, seed] of SEEDS.entries()) {
    const file = imagePath(pngDir, seed);
    const png = await decodeImage(readFileSync(file), file);
    const got = state.pixels[i]!;
    assert.equal(got.length, H * W * C);
    for (let p = 0; p < H * W; p++) {
      let off = 0;
      for (let c = 0; c < C; c++) off = Math.max(off, Math.abs(got[p * C + c]! - png.data[c * H * W + p]!));
      if (off > 0) differing++;
      worst = Math.max(worst, off);
    }
  }
  const total = SEEDS.length * H * W;
  t.diagnostic(`page vs adasde sample: ${differing} of ${total} pixels differ, by at most ${worst}; session ${state.sessionMs!.toFixed(0)} ms, ${state.run!.imagesPerSecond.toFixed(2)} images/s`);
  assert.ok(worst <= 1, `a pixel is off by ${worst}`);
  assert.ok(differing <= 0.001 * total, `${differing} of ${total} pixels differ`);

  const end = await web.stop();
  stopped = true;
  assert.equal(end.code, 0, `SIGINT ends adasde web cleanly (exit ${end.code}, signal ${end.signal}; ${end.stderr})`);
});

test('adasde web: the files it serves, its headers, bad flags in one line, a busy port', { timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'adasde-web-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const env = { ...process.env, XDG_CACHE_HOME: join(dir, 'cache') };
  const { path: sampler } = await bundledFusedSampler({ cacheDir: join(dir, 'cache', 'adasde') });

  const web = await startWebProcess(['--sampler', sampler, '--port', '0'], env);
  let stopped = false;
  t.after(async () => {
    if (!stopped) await web.stop();
  });
  const get = (p: string, init?: RequestInit) => fetch(new URL(p, web.url), init);
  const index = await get('/');
  assert.equal(index.status, 200);
  assert.equal(index.headers.get('cross-origin-opener-policy'), 'same-origin');
  assert.equal(index.headers.get('cross-origin-embedder-policy'), 'require-corp');
  assert.match(await index.text(), /<canvas id="grid"/);
  const js = await get('/page.js');
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
  const ort = await get('/ort/ort.webgpu.min.mjs');
  assert.equal(ort.status, 200);
  assert.equal(ort.headers.get('cross-origin-embedder-policy'), 'require-corp');
  const wasm = await get('/ort/ort-wasm-simd-threaded.jsep.wasm', { method: 'HEAD' });
  assert.equal(wasm.status, 200);
  assert.equal(wasm.headers.get('content-type'), 'application/wasm');
  const served = new Uint8Array(await (await get('/sampler.onnx')).arrayBuffer());
  assert.deepEqual(served, new Uint8Array(readFileSync(sampler)));
  for (const p of ['/ort/..%2Fpackage.json', '/ort/../package.json', '/../package.json', '/web.ts', '/ort/.hidden']) assert.equal((await get(p)).status, 404, p);
  assert.equal((await get('/', { method: 'POST' })).status, 405);

  // A second server on the same port: the run cannot continue, one line, exit 1.
  const port = new URL(web.url).port;
  const busy = await runCli(['web', '--sampler', sampler, '--port', port], env);
  assert.equal(busy.code, 1, busy.stderr);
  assert.match(busy.stderr, new RegExp(`^adasde: error: --port ${port}: 127\\.0\\.0\\.1:${port} is in use[^\\n]*\\n$`));

  const end = await web.stop();
  stopped = true;
  assert.equal(end.code, 0, end.stderr);

  const model = join(repoRoot, 'models', 'cifar10-tiny-edm.onnx');
  const bad: [string[], RegExp][] = [
    [['--port', '70000'], /^adasde: error: --port: expected an integer from 0 to 65535, got "70000"\n$/],
    [['--port', 'x'], /^adasde: error: --port: expected an integer from 0 to 65535, got "x"\n$/],
    [['--sampler', join(dir, 'missing.onnx')], /^adasde: error: --sampler \S+missing\.onnx: no such file\n$/],
    [['--sampler', dir], /^adasde: error: --sampler \S+: expected a file, got a folder\n$/],
    [['--sampler', model], /^adasde: error: --sampler \S+cifar10-tiny-edm\.onnx: not a fused sampler \(no adasde\.fused\.format=adasde-fused-sampler; write one with adasde fuse\)\n$/],
    [['--sampler', join(repoRoot, 'package.json')], /^adasde: error: --sampler \S+package\.json: not an ONNX file \([^\n]*\)\n$/],
    [['--sampler', sampler, '--host', '192.0.2.1'], /^adasde: error: --host 192\.0\.2\.1: not an address of this machine\n$/],
  ];
  for (const [args, want] of bad) {
    const r = await runCli(['web', ...args], env);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, want, args.join(' '));
    assert.equal(r.stdout, '');
  }
});
