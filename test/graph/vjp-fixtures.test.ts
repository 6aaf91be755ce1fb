/**
 * Denoiser VJP graphs (src/graph/gradient.ts, denoiserVjpModel) of every float32 denoiser the
 * exporter's fixtures hold (test/fixtures/export: EDM, ADM with class labels and its in-graph
 * clamp, Consistency Models, LDM and Stable Diffusion U-Nets with attention and LayerNorm, the
 * DDPM family), against central differences of the same ONNX file run in onnxruntime-node:
 * <u, D(x + h v) - D(x - h v)> / 2h against <J_x^T u, v> (Richardson-extrapolated), and the
 * same along sigma against J_sigma^T u (at a small step: discrete-time models are smooth in sigma
 * only between their table's knots). The float16 exports are refused with one line (training
 * falls back to forward mode for them).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import ort from 'onnxruntime-node';
import { UsageError } from '../../src/core/errors.js';
import { DENOISER_VJP_IO, denoiserVjpModel } from '../../src/graph/gradient.js';
import { DataType, decodeModel, encodeModel, type ModelProto } from '../../src/onnx/proto.js';
import { seededUniform } from '../support/models.js';
import { repoRoot } from '../helpers.js';
import { elementCount } from '../../src/core/shape.js';

const ROOT = join(repoRoot, 'test', 'fixtures', 'export');
const files = existsSync(ROOT)
  ? readdirSync(ROOT)
      .filter((f) => statSync(join(ROOT, f)).isDirectory())
      .flatMap((fam) => readdirSync(join(ROOT, fam)).filter((f) => f.endsWith('.onnx') && !/\.(grad|vjp)/.test(f)).map((f) => join(fam, f)))
  : [];

const isDenoiser = (m: ModelProto) => m.graph!.input.some((v) => v.name === 'x') && m.graph!.output.some((v) => v.name === 'denoised');
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k]! * b[k]!;
  return s;
};

describe('denoiser VJP graphs of the export fixtures vs central differences', () => {
  for (const rel of files) {
    const m = decodeModel(new Uint8Array(readFileSync(join(ROOT, rel))));
    if (!isDenoiser(m)) continue;
    const x = m.graph!.input.find((v) => v.name === 'x')!;
    if (x.type?.elemType !== DataType.FLOAT || m.graph!.node.some((n) => n.opType === 'Cast' && n.attribute.some((a) => a.name === 'to' && a.i === DataType.FLOAT16))) {
      test(`${rel}: float16 is refused in one line`, () => {
        assert.throws(() => denoiserVjpModel(m, { file: rel }), (e: unknown) => e instanceof UsageError && /float32 denoiser/.test(e.message) && !e.message.includes('\n'));
      });
      continue;
    }
    test(`${rel}: J_x^T u and J_sigma^T u match central differences`, async (t) => {
      const meta = Object.fromEntries(m.metadataProps.map((e) => [e.key, e.value]));
      const fwd = await ort.InferenceSession.create(encodeModel(m));
      const bwd = await ort.InferenceSession.create(encodeModel(denoiserVjpModel(m, { file: rel })));
      const n = 2;
      const sample = x.type!.shape!.slice(1).map(Number);
      const dim = elementCount(sample);
      const rand = seededUniform(11);
      const r = (len: number, lo = -1, hi = 1) => Float32Array.from({ length: len }, () => lo + (hi - lo) * rand());
      const smin = Number(meta['adasde.sigma_min'] ?? 0.002);
      const smax = Number(meta['adasde.sigma_max'] ?? 80);
      // Two noise levels inside the model's range, away from its ends.
      const sigma = Float32Array.of(Math.sqrt(smin * smax) / 3, Math.min(smax / 2, 3 * Math.sqrt(smin * smax)));
      const feeds: Record<string, ort.Tensor> = {};
      const xs = r(n * dim);
      for (let b = 0; b < n; b++) for (let k = 0; k < dim; k++) xs[b * dim + k] = xs[b * dim + k]! * (1 + sigma[b]!);
      for (const inp of m.graph!.input) {
        if (inp.name === 'x' || inp.name === 'sigma') continue;
        const shape = inp.type!.shape!.map((d, k) => (k === 0 ? n : Number(d)));
        if (inp.name === 'class_labels') {
          const L = shape[1]!;
          feeds[inp.name] = new ort.Tensor('float32', Float32Array.from({ length: n * L }, (_, q) => (q % L === (Math.floor(q / L) * 3) % L ? 1 : 0)), shape);
        } else feeds[inp.name] = new ort.Tensor('float32', r(elementCount(shape), -0.5, 0.5), shape);
      }
      const u = r(n * dim);
      const v = r(n * dim);
      const dims = [n, ...sample];
      const D = async (xx: Float32Array, ss: Float32Array) =>
        (await fwd.run({ ...feeds, x: new ort.Tensor('float32', xx, dims), sigma: new ort.Tensor('float32', ss, [n]) }))['denoised']!.data as Float32Array;
      const g = await bwd.run({ ...feeds, x: new ort.Tensor('float32', xs, dims), sigma: new ort.Tensor('float32', sigma, [n]), [DENOISER_VJP_IO.cotangent]: new ort.Tensor('float32', u, dims) });
      const gx = g[DENOISER_VJP_IO.gradX]!.data as Float32Array;
      const gs = g[DENOISER_VJP_IO.gradSigma]!.data as Float32Array;
      // The kept output equals the forward model's.
      const d0 = await D(xs, sigma);
      const kept = g['denoised']!.data as Float32Array;
      assert.ok(d0.every((val, k) => Math.abs(val - kept[k]!) <= 1e-5 * Math.max(1, Math.abs(val))), 'denoised is kept');
      for (let b = 0; b < n; b++) {
        const seg = (a: Float32Array) => a.subarray(b * dim, (b + 1) * dim);
        const along = async (h: number) => {
          const p = Float32Array.from(xs, (q, k) => (Math.floor(k / dim) === b ? q + h * v[k]! : q));
          const mm = Float32Array.from(xs, (q, k) => (Math.floor(k / dim) === b ? q - h * v[k]! : q));
          return (dot(seg(u), seg(await D(p, sigma))) - dot(seg(u), seg(await D(mm, sigma)))) / (2 * h);
        };
        const alongS = async (h: number) => {
          const p = Float32Array.from(sigma, (q, k) => (k === b ? q * (1 + h) : q));
          const mm = Float32Array.from(sigma, (q, k) => (k === b ? q * (1 - h) : q));
          return (dot(seg(u), seg(await D(xs, p))) - dot(seg(u), seg(await D(xs, mm)))) / (2 * h * sigma[b]!);
        };
        // Richardson: (4 fd(h/2) - fd(h)) / 3 cancels the h^2 term.
        const fdX = (4 * (await along(5e-3)) - (await along(1e-2))) / 3;
        // Discrete-time models look sigma up in their timestep table inside the graph (linear
        // interpolation between entries, or rounding to one): D is smooth only between the
        // table's knots, which a step of 1e-2 sigma crosses. A relative step of 1e-4 stays on
        // one piece (the VJP is that piece's derivative) and is still far above float32 noise here.
        const fdS = await alongS(1e-4);
        const gv = dot(seg(gx), seg(v));
        t.diagnostic(`row ${b} (sigma ${sigma[b]!.toPrecision(3)}): x ${gv.toPrecision(6)} vs ${fdX.toPrecision(6)}; sigma ${gs[b]!.toPrecision(6)} vs ${fdS.toPrecision(6)}`);
        assert.ok(Math.abs(gv - fdX) <= 3e-3 * Math.max(1, Math.abs(fdX), Math.sqrt(dot(seg(gx), seg(gx)) * dot(seg(v), seg(v)))) , `row ${b}, x: ${gv} vs ${fdX}`);
        assert.ok(Math.abs(gs[b]! - fdS) <= 1e-2 * Math.max(1, Math.abs(fdS)), `row ${b}, sigma: ${gs[b]} vs ${fdS}`);
      }
      await fwd.release();
      await bwd.release();
    });
  }
});
