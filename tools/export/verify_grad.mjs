#!/usr/bin/env node
// Classifier-guidance check: every `gradient_cases` entry of test/fixtures/export/*/manifest.json
// goes through the TypeScript reverse-mode transform (src/graph/gradient.ts, built into dist/ by
// `npm run build`), runs in onnxruntime-node and is compared with PyTorch autograd's input
// gradient stored beside it (float32 file `outputs`, float64 file `reference_float64`), by the
// manifest rule: per sample i, max_j |onnx_ij - ref_ij| <= tol * max(1, max_j |ref_ij|).
//
//   npm run build && node tools/export/verify_grad.mjs [test/fixtures/export]
//
// Exit code 1 when a case fails, 2 when dist/ is missing.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ort from 'onnxruntime-node';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const lib = join(ROOT, 'dist', 'src', 'graph', 'gradient.js');
if (!existsSync(lib)) {
  console.error(`verify_grad: ${lib} not found; run npm run build first`);
  process.exit(2);
}
const { classifierGradientModel } = await import(pathToFileURL(lib).href);
const { decodeModel, encodeModel } = await import(pathToFileURL(join(ROOT, 'dist', 'src', 'onnx', 'proto.js')).href);

/** float32/float64 little-endian C-order .npy (what selftest.py writes). */
function readNpy(path) {
  const buf = readFileSync(path);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const bytes = buf.buffer.slice(buf.byteOffset + hstart + hlen, buf.byteOffset + buf.length);
  if (descr === '<f4') return { shape, data: new Float32Array(bytes) };
  if (descr === '<f8') return { shape, data: new Float64Array(bytes) };
  throw new Error(`${path}: dtype ${descr} not supported here`);
}

function scaledError(a, b, n) {
  const per = b.length / n;
  let worst = 0;
  for (let i = 0; i < n; i++) {
    let d = 0, m = 0;
    for (let j = i * per; j < (i + 1) * per; j++) {
      const e = Math.abs(Number(a[j]) - Number(b[j]));
      d = Number.isNaN(e) ? Infinity : Math.max(d, e);
      m = Math.max(m, Math.abs(Number(b[j])));
    }
    worst = Math.max(worst, d / Math.max(1, m));
  }
  return worst;
}

const root = resolve(process.argv[2] ?? join(ROOT, 'test', 'fixtures', 'export'));
let failed = 0, passed = 0;
for (const fam of readdirSync(root).sort()) {
  const mpath = join(root, fam, 'manifest.json');
  if (!existsSync(mpath)) continue;
  const manifest = JSON.parse(readFileSync(mpath, 'utf8'));
  for (const c of manifest.gradient_cases ?? []) {
    const dir = join(root, fam);
    const file = join(dir, c.model);
    const grad = classifierGradientModel(decodeModel(new Uint8Array(readFileSync(file))), { file });
    const session = await ort.InferenceSession.create(encodeModel(grad));
    const feeds = {};
    for (const [k, f] of Object.entries(c.inputs)) {
      const a = readNpy(join(dir, f));
      feeds[k] = new ort.Tensor('float32', Float32Array.from(a.data, Number), a.shape);
    }
    const n = feeds.x.dims[0];
    const out = (await session.run(feeds)).grad_x.data;
    const msgs = [];
    let ok = true;
    for (const [label, f] of [['torch float32', c.outputs.grad_x], ['torch float64', c.reference_float64?.grad_x]]) {
      if (!f) continue;
      const e = scaledError(out, readNpy(join(dir, f)).data, n);
      msgs.push(`${label} ${e.toExponential(2)}`);
      if (!(e <= c.tolerance)) ok = false;
    }
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${fam}/${c.name}: gradient graph vs PyTorch autograd, scaled error ${msgs.join(', ')} (tolerance ${c.tolerance})`);
    if (ok) passed++;
    else failed++;
  }
}
console.log(`${passed} gradient cases passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
