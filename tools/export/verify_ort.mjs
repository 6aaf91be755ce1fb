#!/usr/bin/env node
// Run every case of test/fixtures/export/*/manifest.json through onnxruntime-node (the
// project's runtime) and compare with the PyTorch outputs stored beside it.
//
//   node tools/export/verify_ort.mjs [test/fixtures/export]
//
// Rule (manifest `tolerance_rule`): per sample i, max_j |onnx_ij - ref_ij| <= tol * max(1, max_j |ref_ij|).
// Each case also runs sample 0 alone (batch 1) to check the dynamic batch dimension.
// Exit code 1 when any case fails. Plain JavaScript: needs no build step.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ort from 'onnxruntime-node';

/** Minimal .npy reader (format 1.0/2.0/3.0, little-endian, C order). */
export function readNpy(path) {
  const buf = readFileSync(path);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${path}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)[1] === 'True';
  const shapeStr = /'shape':\s*\(([^)]*)\)/.exec(header)[1];
  const shape = shapeStr.split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);
  if (fortran) throw new Error(`${path}: Fortran order not supported`);
  const off = hstart + hlen;
  const data = buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + buf.length);
  const types = {
    '<f4': ['float32', Float32Array], '<f8': ['float64', Float64Array], '<f2': ['float16', Uint16Array],
    '<i8': ['int64', BigInt64Array], '<i4': ['int32', Int32Array],
  };
  if (!types[descr]) throw new Error(`${path}: dtype ${descr} not supported`);
  const [dtype, Ctor] = types[descr];
  return { dtype, shape, data: new Ctor(data) };
}

function halfToFloat(h) {
  const s = (h & 0x8000) >> 15, e = (h & 0x7c00) >> 10, f = h & 0x03ff;
  if (e === 0) return (s ? -1 : 1) * 2 ** -14 * (f / 1024);
  if (e === 0x1f) return f ? NaN : (s ? -Infinity : Infinity);
  return (s ? -1 : 1) * 2 ** (e - 15) * (1 + f / 1024);
}

function toNumbers(t) {
  // ort tensor or npy record -> Float64Array
  const { type, dtype, data } = t;
  const ty = type ?? dtype;
  if (ty === 'float16') return Float64Array.from(data, halfToFloat);
  return Float64Array.from(data, Number);
}

function relErr(out, ref, n) {
  const a = toNumbers(out), b = toNumbers(ref);
  if (a.length !== b.length) throw new Error(`size ${a.length} != ${b.length}`);
  const per = a.length / n;
  let worst = 0;
  for (let i = 0; i < n; i++) {
    let d = 0, m = 0;
    for (let j = i * per; j < (i + 1) * per; j++) {
      const e = Math.abs(a[j] - b[j]);
      d = Number.isNaN(e) ? Infinity : Math.max(d, e);
      m = Math.max(m, Math.abs(b[j]));
    }
    worst = Math.max(worst, d / Math.max(1, m));
  }
  return worst;
}

function tensorOf(npy, take) {
  const per = npy.data.length / npy.shape[0];
  const n = take ?? npy.shape[0];
  const data = npy.data.slice(0, n * per);
  return new ort.Tensor(npy.dtype, data, [n, ...npy.shape.slice(1)]);
}

const root = resolve(process.argv[2] ?? 'test/fixtures/export');
let failed = 0, passed = 0;
for (const fam of readdirSync(root).sort()) {
  const mpath = join(root, fam, 'manifest.json');
  if (!existsSync(mpath)) continue;
  const manifest = JSON.parse(readFileSync(mpath, 'utf8'));
  for (const c of manifest.cases) {
    const dir = join(root, fam);
    const session = await ort.InferenceSession.create(join(dir, c.model), { intraOpNumThreads: 1 });
    const inputs = Object.fromEntries(Object.entries(c.inputs).map(([k, f]) => [k, readNpy(join(dir, f))]));
    const n = Object.values(inputs)[0].shape[0];
    const feeds = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, tensorOf(v)]));
    const res = await session.run(feeds);
    const feeds1 = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, tensorOf(v, 1)]));
    const res1 = await session.run(feeds1);
    const msgs = [];
    let ok = true;
    for (const [name, f] of Object.entries(c.outputs)) {
      const ref = readNpy(join(dir, f));
      const err = relErr(res[name], ref, n);
      const per = ref.data.length / n;
      const ref0 = { dtype: ref.dtype, data: ref.data.slice(0, per) };
      const err1 = relErr(res1[name], ref0, 1);
      const good = err <= c.tolerance && err1 <= c.tolerance
        && JSON.stringify(res[name].dims) === JSON.stringify(ref.shape);
      ok &&= good;
      msgs.push(`${name}: max rel err ${err.toExponential(2)} (batch ${n}), ${err1.toExponential(2)} (batch 1)`);
      if (c.reference_float64?.[name]) {
        const r64 = readNpy(join(dir, c.reference_float64[name]));
        msgs.push(`vs float64 torch ${relErr(res[name], r64, n).toExponential(2)}`);
      }
    }
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${fam}/${c.name} [${c.model}, tol ${c.tolerance}]: ${msgs.join('; ')}`);
    if (ok) passed++; else failed++;
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
