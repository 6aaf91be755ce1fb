/**
 * Reverse mode for latent and text-conditional models (src/runtime/vjp.ts): the exported
 * Stable Diffusion fixture's denoiser VJP with its text states and classifier-free guidance
 * (w J_c^T u + (1 - w) J_u^T u, two stacked rows of the graph per sample), the SD decoder's
 * VJP and the LDM VQ decoder's straight-through VJP, each against central differences of the same files run forward through the loaders
 * that sampling and training use (loadDenoiserModel with --guidance_rate, loadDecoder).
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import ort from 'onnxruntime-node';
import { GraphBuilder, saveModel } from '../../src/onnx/builder.js';
import { DataType, decodeModel, encodeModel, type ModelProto, type TensorProto } from '../../src/onnx/proto.js';
import { inspectFile } from '../../src/app/inspect.js';
import { parseOptions } from '../../src/config/options.js';
import { inspectTable } from '../../src/config/inspect.js';
import { UsageError } from '../../src/core/errors.js';
import { loadDecoder } from '../../src/runtime/companions.js';
import { loadDenoiserModel } from '../../src/runtime/model.js';
import { loadDecoderVjp, loadDenoiserVjp } from '../../src/runtime/vjp.js';
import { seededUniform } from '../support/models.js';
import { repoRoot } from '../helpers.js';

const FIX = join(repoRoot, 'test', 'fixtures', 'export');
const dir = mkdtempSync(join(tmpdir(), 'adasde-vjp-latent-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const dot = (a: ArrayLike<number>, b: ArrayLike<number>, from = 0, to = a.length) => {
  let s = 0;
  for (let k = from; k < to; k++) s += a[k]! * b[k]!;
  return s;
};
/** A fixture file copied to the temp folder, so that the VJP graph cached beside it stays out of the repository. */
const copy = (fam: string, name: string) => {
  const to = join(dir, `${fam}-${name}`);
  copyFileSync(join(FIX, fam, name), to);
  return to;
};

test('SD denoiser VJP with text states and CFG matches central differences of the guided denoiser', { skip: !existsSync(join(FIX, 'sd')) && 'no SD fixture' }, async (t) => {
  const file = copy('sd', 'denoiser.onnx');
  const w = 2.5;
  const model = await loadDenoiserModel(file, { threads: 1, guidanceRate: w });
  const dv = await loadDenoiserVjp(file, { threads: 1, guidanceRate: w });
  const plain = await loadDenoiserVjp(file, { threads: 1 });
  try {
    const [L, E] = [model.conditionShape![0]!, model.conditionShape![1]!];
    const n = 2;
    const dim = model.dim;
    const rand = seededUniform(21);
    const r = (len: number, lo = -1, hi = 1) => Float64Array.from({ length: len }, () => lo + (hi - lo) * rand());
    const cond = { condition: Float32Array.from(r(n * L * E)), uncondition: Float32Array.from(r(n * L * E, -0.5, 0.5)), conditionShape: [L, E] as const };
    const sigma = Float64Array.of(0.7, 4);
    const x = r(n * dim);
    for (let k = 0; k < n * dim; k++) x[k] = x[k]! * (1 + sigma[Math.floor(k / dim)]!);
    const u = r(n * dim);
    const v = r(n * dim);
    const g = await dv.vjp(x, sigma, n, u, cond);
    assert.equal(g.rows, n, 'rows count samples, as the guided forward model counts them');
    const D = (xx: Float64Array, ss: Float64Array) => model.denoise({ x: xx, sigma: ss, batch: n, cond });
    for (let b = 0; b < n; b++) {
      const [lo, hi] = [b * dim, (b + 1) * dim];
      const along = async (h: number) => {
        const p = Float64Array.from(x, (q, k) => (k >= lo && k < hi ? q + h * v[k]! : q));
        const m = Float64Array.from(x, (q, k) => (k >= lo && k < hi ? q - h * v[k]! : q));
        return (dot(u, await D(p, sigma), lo, hi) - dot(u, await D(m, sigma), lo, hi)) / (2 * h);
      };
      const alongS = async (h: number) => {
        const p = Float64Array.from(sigma, (q, k) => (k === b ? q * (1 + h) : q));
        const m = Float64Array.from(sigma, (q, k) => (k === b ? q * (1 - h) : q));
        return (dot(u, await D(x, p), lo, hi) - dot(u, await D(x, m), lo, hi)) / (2 * h * sigma[b]!);
      };
      // Steps well above float32 rounding of D (the guided D scales it by w), Richardson-extrapolated.
      const fdX = (4 * (await along(2e-2)) - (await along(4e-2))) / 3;
      // A small relative step in sigma: the SD schedule is a table, smooth only between knots.
      const fdS = await alongS(1e-4);
      const gv = dot(g.gx, v, lo, hi);
      t.diagnostic(`row ${b}: x ${gv.toPrecision(6)} vs ${fdX.toPrecision(6)}; sigma ${g.gs[b]!.toPrecision(6)} vs ${fdS.toPrecision(6)}`);
      assert.ok(Math.abs(gv - fdX) <= 5e-3 * Math.max(1, Math.abs(fdX)), `row ${b}, x: ${gv} vs ${fdX}`);
      assert.ok(Math.abs(g.gs[b]! - fdS) <= 1e-2 * Math.max(1, Math.abs(fdS)), `row ${b}, sigma: ${g.gs[b]} vs ${fdS}`);
    }
    // The guided VJP is the weighted sum of the two plain ones, and differs from the conditional one.
    const c = await plain.vjp(x, sigma, n, u, { condition: cond.condition, conditionShape: cond.conditionShape });
    const uc = await plain.vjp(x, sigma, n, u, { condition: cond.uncondition, conditionShape: cond.conditionShape });
    assert.equal(c.rows, n);
    let diff = 0;
    for (let k = 0; k < n * dim; k++) {
      // To float32 rounding: the weights are folded into the cotangent the graph sees.
      assert.ok(Math.abs(g.gx[k]! - (w * c.gx[k]! + (1 - w) * uc.gx[k]!)) <= 1e-5 * Math.max(1, Math.abs(g.gx[k]!)));
      diff = Math.max(diff, Math.abs(g.gx[k]! - c.gx[k]!));
    }
    assert.ok(diff > 1e-3, 'guidance changes the VJP');
    await assert.rejects(plain.vjp(x, sigma, n, u), /input 'condition' needs text-encoder states/);
  } finally {
    await dv.dispose();
    await plain.dispose();
    await model.dispose();
  }
});

for (const fam of ['sd']) {
  test(`${fam} decoder VJP matches central differences of the decoder`, { skip: !existsSync(join(FIX, fam)) && `no ${fam} fixture` }, async (t) => {
    const file = copy(fam, 'denoiser.decoder.onnx');
    const model = await loadDenoiserModel(join(FIX, fam, 'denoiser.onnx'), { threads: 1 });
    const latent = model.sampleShape as [number, number, number];
    await model.dispose();
    const dec = await loadDecoder(file, { threads: 1, latentShape: latent });
    const dv = await loadDecoderVjp(file, latent, { threads: 1 });
    try {
      const n = 2;
      const dim = latent[0] * latent[1] * latent[2];
      const rand = seededUniform(5);
      const z = Float64Array.from({ length: n * dim }, () => 2 * rand() - 1);
      const first = await dec.decode(z, n, latent);
      const image = first.shape;
      const per = image[0] * image[1] * image[2];
      // The decoders clip to [-1, 1]: pixels within the differences' reach of a clip bound get
      // no cotangent, so that the central differences measure one smooth piece.
      const u = Float64Array.from({ length: n * per }, (_, k) => (Math.abs(first.data[k]!) < 0.97 ? 2 * rand() - 1 : 0));
      assert.ok(u.filter((q) => q !== 0).length > per, 'most pixels are inside the clip range');
      const v = Float64Array.from({ length: n * dim }, () => 2 * rand() - 1);
      const g = await dv.vjp(z, n, u, image);
      assert.equal(g.grad.length, n * dim);
      for (let b = 0; b < n; b++) {
        const along = async (h: number) => {
          const p = Float64Array.from(z, (q, k) => (Math.floor(k / dim) === b ? q + h * v[k]! : q));
          const m = Float64Array.from(z, (q, k) => (Math.floor(k / dim) === b ? q - h * v[k]! : q));
          const [dp, dm] = [(await dec.decode(p, n, latent)).data, (await dec.decode(m, n, latent)).data];
          return (dot(u, dp, b * per, (b + 1) * per) - dot(u, dm, b * per, (b + 1) * per)) / (2 * h);
        };
        const fd = (4 * (await along(5e-3)) - (await along(1e-2))) / 3;
        const gv = dot(g.grad, v, b * dim, (b + 1) * dim);
        t.diagnostic(`row ${b}: ${gv.toPrecision(6)} vs ${fd.toPrecision(6)}`);
        assert.ok(Math.abs(gv - fd) <= 3e-3 * Math.max(1, Math.abs(fd)), `row ${b}: ${gv} vs ${fd}`);
      }
      await assert.rejects(dv.vjp(z, n, u.subarray(1), image), /cotangent has/);
      // Cached beside the decoder, and named by `adasde inspect`.
      assert.equal(dv.path, file.replace(/\.onnx$/, `.vjp-${latent.join('x')}.onnx`));
      const info = await inspectFile(dv.path, parseOptions(inspectTable, {}));
      assert.equal(info.contract, 'derived graph');
      assert.deepEqual(info.problems, []);
      assert.ok(info.lines.some((l) => /^contract {4}derived graph: a decoder's vector-Jacobian product \(cot_image -> grad_z\)/.test(l)), info.lines.join('\n'));
      assert.ok(info.lines.some((l) => /^source {6}up to date with .*decoder\.onnx/.test(l)), info.lines.join('\n'));
    } finally {
      await dv.dispose();
      await dec.dispose();
    }
  });
}

test('a VQ decoder gets the straight-through gradient: the decoder with its quantiser replaced by z_q + (v - v0) at the point, by central differences', { skip: !existsSync(join(FIX, 'ldm')) && 'no LDM fixture' }, async (t) => {
  const file = copy('ldm', 'denoiser.decoder.onnx');
  const model = await loadDenoiserModel(join(FIX, 'ldm', 'denoiser.onnx'), { threads: 1 });
  const latent = model.sampleShape as [number, number, number];
  await model.dispose();
  const n = 2;
  const dim = latent[0] * latent[1] * latent[2];
  const rand = seededUniform(8);
  const z = Float32Array.from({ length: n * dim }, () => 2 * rand() - 1);
  // The fixture's quantiser: Gather(codebook, ArgMin(|v|^2 + |e|^2 - 2 Einsum(v, e))); v is the Einsum's latent input.
  const m = decodeModel(new Uint8Array(readFileSync(file)));
  const g = m.graph!;
  const argmin = g.node.find((q) => q.opType === 'ArgMin')!;
  const gather = g.node.find((q) => q.opType === 'Gather' && q.input[1] === argmin.output[0])!;
  const v = g.node.find((q) => q.opType === 'Einsum')!.input[0]!;
  // v and z_q at z, read from the forward graph with both as extra outputs.
  const probe = await ort.InferenceSession.create(encodeModel({ ...m, graph: { ...g, output: [...g.output, { name: v, type: { elemType: DataType.FLOAT } }, { name: gather.output[0]!, type: { elemType: DataType.FLOAT } }] } }));
  const at = await probe.run({ z: new ort.Tensor('float32', z, [n, ...latent]) });
  const v0 = at[v]!;
  const zq = at[gather.output[0]!]!;
  await probe.release();
  // The straight-through linearisation: z_q + (v - v0), the same value at z, and v's derivative.
  const lin: ModelProto = {
    ...m,
    graph: {
      ...g,
      node: g.node.flatMap((q) =>
        q !== gather
          ? [q]
          : [
              { name: 'st_sub', opType: 'Sub', domain: '', input: [v, 'st_v0'], output: ['st_delta'], attribute: [] },
              { name: 'st_add', opType: 'Add', domain: '', input: ['st_zq', 'st_delta'], output: [gather.output[0]!], attribute: [] },
            ],
      ),
      initializer: [...g.initializer, floatInit('st_v0', v0), floatInit('st_zq', zq)],
    },
  };
  const fwd = await ort.InferenceSession.create(encodeModel(lin));
  const D = async (zz: Float32Array) => (await fwd.run({ z: new ort.Tensor('float32', zz, [n, ...latent]) }))['image']!.data as Float32Array;
  const img = await D(z);
  const per = img.length / n;
  const dv = await loadDecoderVjp(file, latent, { threads: 1 });
  try {
    // Pixels near the output clip get no cotangent (as for the KL decoder above).
    const u = Float64Array.from(img, (p) => (Math.abs(p) < 0.97 ? 2 * rand() - 1 : 0));
    const dir = Float32Array.from({ length: n * dim }, () => 2 * rand() - 1);
    const gz = await dv.vjp(Float64Array.from(z), n, u, [3, Math.sqrt(per / 3), Math.sqrt(per / 3)]);
    assert.ok(gz.grad.some((q) => q !== 0), 'the gradient is not zero');
    for (let b = 0; b < n; b++) {
      const along = async (h: number) => {
        const p = Float32Array.from(z, (q, k) => (Math.floor(k / dim) === b ? q + h * dir[k]! : q));
        const mm = Float32Array.from(z, (q, k) => (Math.floor(k / dim) === b ? q - h * dir[k]! : q));
        return (dot(u, await D(p), b * per, (b + 1) * per) - dot(u, await D(mm), b * per, (b + 1) * per)) / (2 * h);
      };
      const fd = (4 * (await along(5e-3)) - (await along(1e-2))) / 3;
      const gv = dot(gz.grad, dir, b * dim, (b + 1) * dim);
      t.diagnostic(`row ${b}: ${gv.toPrecision(6)} vs ${fd.toPrecision(6)}`);
      assert.ok(Math.abs(gv - fd) <= 3e-3 * Math.max(1, Math.abs(fd)), `row ${b}: ${gv} vs ${fd}`);
    }
  } finally {
    await dv.dispose();
    await fwd.release();
  }
});

test('a decoder whose image is piecewise constant in z (no quantiser to pass straight through) is refused in one line', async () => {
  const b = new GraphBuilder('decoder');
  const zIn = b.input('z', DataType.FLOAT, ['N', 3, 4, 4]);
  b.output(b.op('Mul', [b.op('Sign', [zIn]), b.scalar(0.5)]), 'image', DataType.FLOAT, ['N', 3, 4, 4]);
  const file = join(dir, 'sign.decoder.onnx');
  saveModel(b.model({ 'adasde.role': 'decoder' }), file);
  await assert.rejects(loadDecoderVjp(file, [3, 4, 4]), (e: unknown) => e instanceof UsageError && /'image' does not depend differentiably on 'z': it reaches 'image' only through node '.+' \(Sign\), which is piecewise constant; its gradient is zero/.test(e.message) && !e.message.includes('\n'));
});

/** A float32 initializer holding an onnxruntime output. */
function floatInit(name: string, t: ort.Tensor): TensorProto {
  return { name, dims: t.dims.map(Number), dataType: DataType.FLOAT, rawData: new Uint8Array(Float32Array.from(t.data as Float32Array).buffer) } as TensorProto;
}
