/**
 * `adasde web` started as a real process (issue 16): the files it serves, its headers, bad
 * flags, a busy port, SIGINT.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { saveModel } from '../../src/onnx/builder.js';
import { buildMixtureModel } from '../support/models.js';
import { repoRoot } from '../helpers.js';
import { startWebProcess } from './server.js';

const bin = resolve(repoRoot, 'bin', 'adasde.js');

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

test('adasde web: the files it serves, its headers, bad flags in one line, a busy port', { timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'adasde-web-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const env = { ...process.env, XDG_CACHE_HOME: join(dir, 'cache') };
  // The server checks a sampler only by its format marker, so any ONNX file carrying it
  // stands in here (the page test runs a real fused sampler).
  const sampler = join(dir, 'stand-in-sampler.onnx');
  const standIn = buildMixtureModel({ weights: new Float64Array([1]), means: new Float64Array(12), stds: new Float64Array([0.5]) }, [3, 2, 2]);
  standIn.metadataProps.push({ key: 'adasde.fused.format', value: 'adasde-fused-sampler' });
  saveModel(standIn, sampler);

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
