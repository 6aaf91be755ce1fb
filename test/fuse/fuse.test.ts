/**
 * The fused sampler (issue 16) against the host loop: for every solver, and for AdaSDE with
 * and without noise, on the bundled network and on the analytic test models, the graph's `x`
 * equals `adasde sample`'s final state within float32 rounding and its `images` equal the
 * host's quantised pixels on at least 99.9% of them, off by at most 1 elsewhere. The host
 * side is the project's ordinary path (loadDenoiserModel + sampleBatch, float64 states); the
 * fused side runs the written file in onnxruntime. Also: the file's size, its metadata, the
 * CLI round trip through PNGs (bundled AdaSDE, a latent model with its decoder), and the
 * one-line refusals.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { resolveFuse, runFuse } from '../../src/app/fuse.js';
import { openFused, runFusedBatch } from '../../src/app/fused-sample.js';
import { fuseOptionTable, type FuseOptions } from '../../src/config/fuse.js';
import { parseOptions } from '../../src/config/options.js';
import { fusedInfo } from '../../src/fuse/info.js';
import { decodeImage } from '../../src/io/images.js';
import { readNpy, toFloat64 } from '../../src/io/npy.js';
import { quantizeBatch } from '../../src/io/png.js';
import { saveModel } from '../../src/onnx/builder.js';
import { readModelWithData } from '../../src/onnx/load.js';
import { readModelHeader } from '../../src/onnx/proto.js';
import { loadDenoiserModel } from '../../src/runtime/model.js';
import { openSession, readModelSignature } from '../../src/runtime/session.js';
import { sampleBatch } from '../../src/sample/pipeline.js';
import { repoRoot } from '../helpers.js';
import { MIX, SHAPE } from '../cli/sample-fixture.js';
import { buildDecoderModel, buildGaussModel, buildMixtureModel } from '../support/models.js';

const bin = resolve(repoRoot, 'bin', 'adasde.js');
const dir = mkdtempSync(join(tmpdir(), 'adasde-fuse-'));
const BUNDLED = join(repoRoot, 'models', 'cifar10-tiny-edm.onnx');
const EXP = join(repoRoot, 'exp');
/** The bundled network's NFE-5 predictors: gamma > 0 (noise injected) and the gamma = 0 ablation. */
const NOISY = join(EXP, '00013-cifar10-4-5-adasde-dpm-3-uni1.0-afs-tiny');
const NOISELESS = join(EXP, '00012-cifar10-4-5-adasde-dpm-3-uni1.0-afs-tiny-ablation');

const GMM = join(dir, 'gmm.onnx');
saveModel(buildMixtureModel(MIX, SHAPE, { datasetName: 'gmm' }), GMM);
// Class-conditional mixture: 4 classes tilt the component weights (zeros: unconditional).
const LABELS = 4;
const GMM_COND = join(dir, 'gmm-cond.onnx');
saveModel(
  buildMixtureModel(MIX, SHAPE, {
    datasetName: 'gmm_cond',
    metadata: { 'adasde.label_dim': String(LABELS) },
    conditioning: { input: 'class_labels', labelDim: LABELS, logits: Float64Array.from({ length: LABELS * 5 }, (_, q) => 1.5 * Math.cos(q)) },
  }),
  GMM_COND,
);
// A float16 export: the fused graph casts at the boundary as the host loop rounds its feeds.
const GAUSS16 = join(dir, 'gauss16.onnx');
saveModel(buildGaussModel({ mu: Float64Array.from({ length: 36 }, (_, k) => 0.3 * Math.sin(k)), s: 0.5 }, [1, 6, 6], { datasetName: 'gauss16', dtype: 'float16' }), GAUSS16);

function fuseFlags(extra: Partial<FuseOptions>): FuseOptions {
  return { ...parseOptions(fuseOptionTable, { quiet: true }), ...extra } as FuseOptions;
}

interface Compared {
  relErr: number;
  pixels: number;
  differing: number;
  maxPixelDiff: number;
}

/** Fuses `flags`, runs seeds through the file and through the host loop; compares states and pixels. */
async function compare(flags: Partial<FuseOptions>, seeds: number[], name: string): Promise<Compared> {
  const out = join(dir, `fused-${name}.onnx`);
  const plan = resolveFuse(fuseFlags({ ...flags, out }));
  await runFuse(plan);
  const model = await loadDenoiserModel(plan.modelFile, { guidanceRate: plan.cfgRate });
  const [C, H, W] = plan.sampleShape;
  const dim = C * H * W;
  const host = await sampleBatch(
    { solver: plan.solver.solver, options: plan.solver.options, tSteps: plan.solver.tSteps, sampleShape: plan.sampleShape, labelDim: plan.labelDim },
    model.denoise,
    { seeds, cond: plan.cfgRate !== undefined ? { uncondition: new Float32Array(seeds.length * plan.labelDim), labelDim: plan.labelDim } : undefined },
  );
  await model.dispose();
  const sig = readModelSignature(out);
  const info = fusedInfo(out, new Map(Object.entries(sig.metadata)), sig.inputs.map((s) => s.name), sig.outputs.map((s) => s.name));
  const session = await openFused(out, info);
  const fused = await runFusedBatch(session, info, seeds);
  await session.dispose();
  let scale = 0;
  let err = 0;
  for (let k = 0; k < seeds.length * dim; k++) {
    scale = Math.max(scale, Math.abs(host[k]!));
    err = Math.max(err, Math.abs(host[k]! - fused.x[k]!));
  }
  // Host pixels (CHW per image) against the graph's NHWC bytes.
  const want = quantizeBatch(host, seeds.length, C, H, W);
  let differing = 0;
  let maxPixelDiff = 0;
  for (let b = 0; b < seeds.length; b++) {
    for (let c = 0; c < C; c++) {
      for (let p = 0; p < H * W; p++) {
        const d = Math.abs(want[b * dim + c * H * W + p]! - fused.images[b * dim + p * C + c]!);
        if (d) differing++;
        maxPixelDiff = Math.max(maxPixelDiff, d);
      }
    }
  }
  return { relErr: err / scale, pixels: seeds.length * dim, differing, maxPixelDiff };
}

function assertEquivalent(r: Compared, what: string, t?: { diagnostic(m: string): void }): void {
  t?.diagnostic(`${what}: max relative error ${r.relErr.toExponential(2)}, ${r.differing} of ${r.pixels} pixels differ (max ${r.maxPixelDiff})`);
  // float32 arithmetic against float64 states: a few ulps per step, well below 1e-4.
  assert.ok(r.relErr < 1e-4, `${what}: max |x_fused - x_host| / max |x_host| = ${r.relErr}`);
  assert.ok(r.differing <= 0.001 * r.pixels, `${what}: ${r.differing} of ${r.pixels} pixels differ`);
  assert.ok(r.maxPixelDiff <= 1, `${what}: a pixel differs by ${r.maxPixelDiff}`);
}

const BASELINES: [string, Partial<FuseOptions>][] = [
  ['euler', { solver: 'euler', numSteps: 6 }],
  ['heun', { solver: 'heun', numSteps: 4, afs: true }],
  ['dpm', { solver: 'dpm', numSteps: 4 }],
  ['ipndm', { solver: 'ipndm', numSteps: 6 }],
  ['ipndm_v', { solver: 'ipndm_v', numSteps: 6 }],
  ['deis', { solver: 'deis', numSteps: 6 }],
  ['dpmpp', { solver: 'dpmpp', numSteps: 6 }],
  ['dpmpp order 2, noise prediction', { solver: 'dpmpp', numSteps: 6, maxOrder: 2, predictX0: false }],
  ['unipc', { solver: 'unipc', numSteps: 6 }],
  ['unipc bh1', { solver: 'unipc', numSteps: 6, variant: 'bh1', denoiseToZero: true }],
];
// Two parallel points per interval (K = 2, NFE (1 + 2)(4 - 1) - 1 = 8): the stacked-points
// path of the step. Raw parameters written here (the released predictors all have K = 1).
const TWO_POINTS = join(dir, 'two-points.json');
{
  const released = JSON.parse(readFileSync(join(NOISY, 'network-snapshot-000001.json'), 'utf8')) as { options: Record<string, unknown>; params: Record<string, number[][]> };
  const rows = (a: number, b: number) => [0, 1, 2].map((i) => [a + 0.3 * i, b - 0.2 * i]);
  writeFileSync(
    TWO_POINTS,
    JSON.stringify({
      format: 'adasde-predictor',
      version: 1,
      options: { ...released.options, num_points: 2 },
      params: { r: rows(-1.2, 0.8), scale_dir: rows(0.1, -0.3), scale_time: rows(-0.5, 0.6), weight: rows(0.2, -0.4), gamma: rows(-0.3, -2) },
    }),
  );
}
const ADASDE: [string, Partial<FuseOptions>][] = [
  ['adasde, two points per interval', { predictorPath: TWO_POINTS }],
  ['adasde with noise', { predictorPath: NOISY }],
  ['adasde without noise', { predictorPath: NOISELESS }],
];

test('fused = host loop for every solver on the bundled network (4 seeds)', async (t) => {
  const seeds = [0, 1, 2, 3];
  for (const [what, flags] of [...BASELINES, ...ADASDE]) {
    const r = await compare({ model: BUNDLED, ...flags }, seeds, `bundled-${what.replace(/\W+/g, '_')}`);
    assertEquivalent(r, `bundled ${what}`, t);
  }
});

test('fused = host loop for every solver on the Gaussian-mixture test model (8 seeds)', async (t) => {
  const seeds = [0, 1, 2, 3, 4, 5, 6, 7];
  for (const [what, flags] of [...BASELINES, ...ADASDE]) {
    const r = await compare({ model: GMM, ...flags }, seeds, `gmm-${what.replace(/\W+/g, '_')}`);
    assertEquivalent(r, `gmm ${what}`, t);
  }
});

test('fused = host loop with class labels, with classifier-free guidance, and on a float16 export', async (t) => {
  const seeds = Array.from({ length: 32 }, (_, k) => 3 + k);
  assertEquivalent(await compare({ model: GMM_COND, solver: 'heun', numSteps: 5 }, seeds, 'cond-heun'), 'class-conditional heun', t);
  assertEquivalent(await compare({ model: GMM_COND, predictorPath: NOISY, guidanceType: 'cfg', guidanceRate: 2 }, seeds, 'cond-cfg'), 'class-conditional adasde, cfg 2', t);
  assertEquivalent(await compare({ model: GMM_COND, solver: 'ipndm', numSteps: 6, guidanceType: 'cfg', guidanceRate: 3 }, seeds, 'cond-cfg-ipndm'), 'class-conditional ipndm, cfg 3', t);
  assertEquivalent(await compare({ model: GAUSS16, solver: 'dpm', numSteps: 5 }, seeds, 'gauss16-dpm'), 'float16 gauss dpm', t);
});

test('the subgraph layout (--subgraphs True: each evaluation in an If) computes the same as the inline one', async (t) => {
  const seeds = [0, 1, 2, 3];
  assertEquivalent(await compare({ model: BUNDLED, predictorPath: NOISY, subgraphs: true }, seeds, 'sub-bundled-adasde'), 'bundled adasde, subgraphs', t);
  assertEquivalent(await compare({ model: GMM_COND, solver: 'dpmpp', numSteps: 5, guidanceType: 'cfg', guidanceRate: 2, subgraphs: true }, Array.from({ length: 32 }, (_, k) => k), 'sub-cond-dpmpp'), 'class-conditional dpmpp, cfg 2, subgraphs', t);
  const file = join(dir, 'fused-sub-bundled-adasde.onnx');
  const meta = new Map(readModelHeader(file).metadataProps.map((e) => [e.key, e.value]));
  assert.equal(meta.get('adasde.fused.layout'), 'subgraphs');
  assert.ok(statSync(file).size < 1.05 * statSync(BUNDLED).size);
});

test('--optimize: onnxruntime rewrites the model once before fusing (auto: basic for the subgraph layout), with the same results', async (t) => {
  const seeds = [0, 1, 2, 3];
  const meta = (f: string) => new Map(readModelHeader(f).metadataProps.map((e) => [e.key, e.value]));
  // auto: the subgraph layout of a float32 model is optimised, the inline one is not (nor a float16 model).
  const sub = join(dir, 'opt-auto-subgraphs.onnx');
  const subPlan = resolveFuse(fuseFlags({ model: BUNDLED, predictorPath: NOISY, subgraphs: true, out: sub }));
  assert.equal(subPlan.optimize, 'basic');
  await runFuse(subPlan);
  assert.equal(meta(sub).get('adasde.fused.optimized'), 'basic');
  assert.equal(resolveFuse(fuseFlags({ model: BUNDLED, predictorPath: NOISY })).optimize, 'none');
  assert.equal(resolveFuse(fuseFlags({ model: GAUSS16, solver: 'dpm', numSteps: 5, subgraphs: true })).optimize, 'none');
  // Inline, so the nodes can be counted: basic folds the static part of the shape arithmetic.
  assertEquivalent(await compare({ model: BUNDLED, predictorPath: NOISY, optimize: 'basic' }, seeds, 'opt-basic'), 'bundled adasde, --optimize basic', t);
  assertEquivalent(await compare({ model: BUNDLED, predictorPath: NOISY, optimize: 'extended' }, seeds, 'opt-extended'), 'bundled adasde, --optimize extended', t);
  assertEquivalent(await compare({ model: BUNDLED, predictorPath: NOISY, optimize: 'none' }, seeds, 'opt-none'), 'bundled adasde, --optimize none', t);
  const nodes = (name: string) => readModelWithData(join(dir, `fused-${name}.onnx`)).graph!.node;
  const none = nodes('opt-none');
  const basic = nodes('opt-basic');
  const extended = nodes('opt-extended');
  const count = (ns: typeof none, op: string) => ns.filter((n) => n.opType === op).length;
  t.diagnostic(`nodes: none ${none.length} (${count(none, 'Shape')} Shape), basic ${basic.length} (${count(basic, 'Shape')} Shape), extended ${extended.length}`);
  assert.ok(count(basic, 'Shape') < count(none, 'Shape'), 'basic folds Shape nodes');
  assert.ok(basic.every((n) => n.domain === '' || n.domain === 'ai.onnx'), 'basic keeps to standard operators');
  assert.ok(extended.some((n) => n.domain === 'com.microsoft'), 'extended uses onnxruntime operators');
  // Only the domains the nodes use are imported (onnxruntime's rewrite lists every domain it knows).
  assert.deepEqual(readModelHeader(join(dir, 'fused-opt-basic.onnx')).opsetImport.map((o) => o.domain), ['']);
  assert.deepEqual(readModelHeader(join(dir, 'fused-opt-extended.onnx')).opsetImport.map((o) => o.domain).sort(), ['', 'com.microsoft']);
  assert.equal(meta(join(dir, 'fused-opt-extended.onnx')).get('adasde.fused.optimized'), 'extended');
  const ins = cli(['inspect', sub]);
  assert.equal(ins.code, 0, ins.err);
  assert.match(ins.out, /^sampler {5}adasde at 5 NFE, subgraphs layout \(optimised: basic\), 4 time points/m);
});

test('--optimize on a model whose weights are in an external file', async (t) => {
  const ext = join(dir, 'gmm-ext.onnx');
  saveModel(buildMixtureModel(MIX, SHAPE, { datasetName: 'gmm_ext' }), ext, { externalData: 'gmm-ext.weights' });
  assert.ok(readModelSignature(ext).externalFiles.length > 0);
  assertEquivalent(await compare({ model: ext, solver: 'heun', numSteps: 4, subgraphs: true, optimize: 'basic' }, [0, 1, 2, 3, 4, 5, 6, 7], 'ext-basic'), 'external-data gmm heun, subgraphs, basic', t);
  // The fused file carries the weights itself.
  assert.equal(readModelSignature(join(dir, 'fused-ext-basic.onnx')).externalFiles.length, 0);
});

test('the fused file: weights once (size within a few percent of the model), metadata saying what it is', async () => {
  const out = join(dir, 'size-5.onnx');
  const plan = resolveFuse(fuseFlags({ model: BUNDLED, predictorPath: NOISY, out }));
  const res = await runFuse(plan);
  const model = statSync(BUNDLED).size;
  assert.equal(res.bytes, statSync(out).size);
  assert.ok(res.bytes < 1.05 * model, `5-NFE fused file ${res.bytes} bytes vs model ${model}`);
  const out9 = join(dir, 'size-9.onnx');
  const r9 = await runFuse(resolveFuse(fuseFlags({ model: BUNDLED, solver: 'heun', numSteps: 6, out: out9 })));
  assert.equal(r9.nfe, 10);
  assert.ok(r9.bytes < 1.1 * model, `10-NFE fused file ${r9.bytes} bytes vs model ${model}`);
  const meta = new Map(readModelHeader(out).metadataProps.map((e) => [e.key, e.value]));
  assert.equal(meta.get('adasde.fused.format'), 'adasde-fused-sampler');
  assert.equal(meta.get('adasde.fused.solver'), 'adasde');
  assert.equal(meta.get('adasde.fused.nfe'), '5');
  assert.deepEqual(JSON.parse(meta.get('adasde.fused.t_steps')!), Array.from(plan.solver.tSteps));
  assert.equal(meta.get('adasde.fused.source_model'), 'cifar10-tiny-edm.onnx');
  assert.match(meta.get('adasde.fused.source_model_sha256')!, /^[0-9a-f]{64}$/);
  assert.match(meta.get('adasde.fused.predictor_sha256')!, /^[0-9a-f]{64}$/);
  // num_steps 4: intervals 0..2, noise for 1 and 2 (gamma is 0 on the first interval by construction, ALGORITHM.md 4).
  assert.deepEqual(JSON.parse(meta.get('adasde.fused.noise_intervals')!), [1, 2]);
  const sig = readModelSignature(out);
  assert.deepEqual(sig.inputs.map((s) => `${s.name} ${s.dtype} [${s.dims?.join(',')}]`).sort(), ['noise float32 [2,N,3,32,32]', 'z float32 [N,3,32,32]']);
  assert.deepEqual(sig.outputs.map((s) => `${s.name} ${s.dtype} [${s.dims?.join(',')}]`), ['x float32 [N,3,32,32]', 'images uint8 [N,32,32,3]']);
});

function cli(args: string[], cwd = dir): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function pngPixels(path: string): Promise<Uint8Array> {
  return (await decodeImage(readFileSync(path), path)).data;
}

test('CLI: adasde fuse, then adasde sample --fused writes the PNGs adasde sample writes (bundled AdaSDE, seeds 0-7)', async () => {
  const out = join(dir, 'cli.onnx');
  const f = cli(['fuse', '--model', BUNDLED, '--predictor_path', NOISY, '--out', out]);
  assert.equal(f.code, 0, f.err);
  assert.match(f.out, /^fused adasde at 5 NFE \(inputs z, noise\) in [\d.]+ s: [\d.]+ MiB \(model [\d.]+ MiB, [\d.]+%\) -> /);
  const ins = cli(['inspect', out]);
  assert.equal(ins.code, 0, ins.err);
  assert.match(ins.out, /^contract {4}fused sampler \(adasde fuse: z, noise -> x, images\)$/m);
  assert.match(ins.out, /^sampler {5}adasde at 5 NFE, inline layout, 4 time points \[80, /m);
  assert.match(ins.out, /^predictor {3}00013-cifar10-4-5-adasde-dpm-3-uni1\.0-afs-tiny\/network-snapshot-\d+\.json/m);
  assert.match(ins.out, /^forward {5}x of seed 0 in \[[-\d.]+, [-\d.]+\], finite; images in \[\d+, \d+\]$/m);
  assert.match(ins.out, /^result {6}cli\.onnx satisfies the fused sampler contract$/m);
  const a = cli(['sample', '--fused', out, '--seeds', '0-7', '--outdir', join(dir, 'cli-fused'), '--subdirs=False']);
  assert.equal(a.code, 0, a.err);
  assert.match(a.out, /^sampled 8 images with the fused adasde sampler at 5 NFE in [\d.]+ s -> /);
  const b = cli(['sample', '--model', BUNDLED, '--predictor_path', NOISY, '--seeds', '0-7', '--outdir', join(dir, 'cli-host'), '--subdirs=False', '--quiet']);
  assert.equal(b.code, 0, b.err);
  let differing = 0;
  let total = 0;
  for (let s = 0; s < 8; s++) {
    const name = `${String(s).padStart(6, '0')}.png`;
    const p = await pngPixels(join(dir, 'cli-fused', name));
    const q = await pngPixels(join(dir, 'cli-host', name));
    assert.equal(p.length, q.length);
    for (let k = 0; k < p.length; k++) {
      const d = Math.abs(p[k]! - q[k]!);
      assert.ok(d <= 1, `seed ${s}: pixel ${k} differs by ${d}`);
      if (d) differing++;
    }
    total += p.length;
  }
  assert.ok(differing <= 0.001 * total, `${differing} of ${total} pixels differ`);
  // Resuming skips what is there; a different sampler into the same folder is refused.
  const again = cli(['sample', '--fused', out, '--seeds', '0-9', '--outdir', join(dir, 'cli-fused'), '--subdirs=False']);
  assert.equal(again.code, 0, again.err);
  assert.match(again.out, /^sampled 2 images \(8 already present, skipped\)/);
  const other = join(dir, 'cli-euler.onnx');
  assert.equal(cli(['fuse', '--model', BUNDLED, '--solver', 'euler', '--num_steps', '4', '--out', other, '--quiet']).code, 0);
  const refused = cli(['sample', '--fused', other, '--seeds', '0-3', '--outdir', join(dir, 'cli-fused'), '--subdirs=False']);
  assert.equal(refused.code, 2);
  assert.match(refused.err, /^adasde: error: --outdir .* holds images made with fused=/);
});

/** A latent mixture model with a 1x1-conv decoder beside it (float32 or float16 decoder). */
function latentModel(decoderDtype: 'float32' | 'float16'): { dir: string; model: string } {
  const ldm = mkdtempSync(join(tmpdir(), `adasde-fuse-ldm-${decoderDtype}-`));
  const LAT = [4, 4, 4] as const;
  const mix = { weights: Float64Array.of(1, 2), means: Float64Array.from({ length: 128 }, (_, q) => 0.5 * Math.sin(q)), stds: Float64Array.of(0.2, 0.3) };
  const alphas = JSON.stringify(Array.from({ length: 100 }, (_, k) => Math.exp(-0.0004 - 0.09 * k)));
  saveModel(buildDecoderModel({ latent: LAT, weight: Float32Array.from({ length: 12 }, (_, k) => 0.3 * Math.cos(k)), bias: Float32Array.of(0, 0.1, -0.1), dtype: decoderDtype }), join(ldm, 'ldm.decoder.onnx'));
  const model = join(ldm, 'ldm.onnx');
  saveModel(buildMixtureModel(mix, LAT, { datasetName: 'ldm_test', sigmaMin: 0.03, sigmaMax: 14, metadata: { 'adasde.family': 'ldm', 'adasde.alphas_cumprod': alphas, 'adasde.decoder': 'ldm.decoder.onnx' } }), model);
  return { dir: ldm, model };
}

/** Fuses the latent model with `fuseArgs`, samples 6 seeds fused and on the host, compares latents and pixels. */
async function latentRoundTrip(ldm: string, model: string, fuseArgs: string[]): Promise<string> {
  const out = join(ldm, 'fused.onnx');
  const solver = ['--solver', 'dpmpp', '--num_steps', '6', '--schedule_type', 'discrete'];
  const fused = cli(['fuse', '--model', model, ...solver, ...fuseArgs, '--out', out, '--quiet'], ldm);
  assert.equal(fused.code, 0, fused.err);
  const sig = readModelSignature(out);
  assert.deepEqual(sig.outputs.map((s) => `${s.name} [${s.dims?.join(',')}]`), ['x [N,4,4,4]', 'images [N,8,8,3]']);
  for (const [flags, name] of [[['--output_format', 'npy'], 'npy'], [[], 'png']] as const) {
    const a = cli(['sample', '--fused', out, '--seeds', '0-5', '--outdir', join(ldm, `f-${name}`), '--subdirs=False', '--quiet', ...flags], ldm);
    assert.equal(a.code, 0, a.err);
    const b = cli(['sample', '--model', model, ...solver, '--seeds', '0-5', '--outdir', join(ldm, `h-${name}`), '--subdirs=False', '--quiet', ...flags], ldm);
    assert.equal(b.code, 0, b.err);
  }
  const x = toFloat64(await readNpy(join(ldm, 'f-npy', 'samples.npy')));
  const y = toFloat64(await readNpy(join(ldm, 'h-npy', 'samples.npy')));
  let err = 0;
  let scale = 0;
  for (let k = 0; k < y.length; k++) {
    err = Math.max(err, Math.abs(x[k]! - y[k]!));
    scale = Math.max(scale, Math.abs(y[k]!));
  }
  assert.ok(err / scale < 1e-4, `latent states: relative error ${err / scale}`);
  for (let s = 0; s < 6; s++) {
    const name = `${String(s).padStart(6, '0')}.png`;
    const p = await pngPixels(join(ldm, 'f-png', name));
    const q = await pngPixels(join(ldm, 'h-png', name));
    assert.equal(p.length, 3 * 8 * 8);
    for (let k = 0; k < p.length; k++) assert.ok(Math.abs(p[k]! - q[k]!) <= 1, `seed ${s} pixel ${k}: ${p[k]} vs ${q[k]}`);
  }
  return out;
}

test('CLI: a latent model is fused with its decoder; --output_format npy gives the final latents', async () => {
  const { dir: ldm, model } = latentModel('float32');
  await latentRoundTrip(ldm, model, []);
});

test('--optimize auto resolves the decoder on its own precision: a float16 decoder is not rewritten beside a float32 denoiser', async () => {
  const half = latentModel('float16');
  const full = latentModel('float32');
  const plan = (model: string, optimize: FuseOptions['optimize']) => resolveFuse(fuseFlags({ model, solver: 'dpmpp', numSteps: 6, scheduleType: 'discrete', subgraphs: true, optimize }));
  assert.deepEqual([plan(half.model, 'auto').optimize, plan(half.model, 'auto').decoderOptimize], ['basic', 'none']);
  assert.deepEqual([plan(full.model, 'auto').optimize, plan(full.model, 'auto').decoderOptimize], ['basic', 'basic']);
  // An explicit level is the user's choice for both files.
  assert.deepEqual([plan(half.model, 'basic').optimize, plan(half.model, 'basic').decoderOptimize], ['basic', 'basic']);
  assert.equal(resolveFuse(fuseFlags({ model: half.model, solver: 'dpmpp', numSteps: 6, scheduleType: 'discrete' })).decoderOptimize, 'none');
  const out = await latentRoundTrip(half.dir, half.model, ['--subgraphs', 'True']);
  const m = new Map(readModelHeader(out).metadataProps.map((e) => [e.key, e.value]));
  assert.equal(m.get('adasde.fused.optimized'), 'basic');
  assert.equal(m.get('adasde.fused.decoder_optimized'), 'none');
  const shown = cli(['inspect', out], half.dir);
  assert.equal(shown.code, 0, shown.err);
  assert.match(shown.out, /subgraphs layout \(optimised: basic\)/);
  assert.match(shown.out, /decoder ldm\.decoder\.onnx(?! \(optimised)/);
});

test('refusals: one line, exit 2, naming the flag or file', async () => {
  const fixed = join(dir, 'fixed.onnx');
  saveModel(buildGaussModel({ mu: new Float64Array(16), s: 0.5 }, [1, 4, 4], { datasetName: 'fixed', batch: 4 }), fixed);
  const notFused = join(dir, 'not-fused.txt');
  writeFileSync(notFused, 'hello');
  const fused = join(dir, 'refusal.onnx');
  assert.equal(cli(['fuse', '--model', GMM, '--solver', 'euler', '--num_steps', '3', '--out', fused, '--quiet']).code, 0);
  const cases: [string[], RegExp][] = [
    [['fuse', '--model', fixed, '--solver', 'euler', '--out', join(dir, 'x.onnx')], /fixed batch of 4; a fused sampler .* dynamic batch/],
    [['fuse', '--model', GMM, '--solver', 'adasde', '--out', join(dir, 'x.onnx')], /--solver adasde needs --predictor_path/],
    [['fuse', '--model', GMM, '--solver', 'euler', '--guidance_type', 'cg', '--guidance_rate', '1', '--out', join(dir, 'x.onnx')], /--guidance_type cg: classifier guidance is not fused/],
    [['fuse', '--model', GMM, '--solver', 'euler', '--guidance_type', 'cfg', '--guidance_rate', '2', '--out', join(dir, 'x.onnx')], /classifier-free guidance needs a conditional model/],
    [['fuse', '--model', join(dir, 'missing.onnx'), '--solver', 'euler'], /missing\.onnx does not exist/],
    [['sample', '--fused', fused, '--solver', 'heun', '--outdir', join(dir, 'r1')], /^adasde: error: --solver: not with --fused/],
    [['sample', '--fused', fused, '--num_steps', '4', '--outdir', join(dir, 'r2')], /^adasde: error: --num_steps: not with --fused/],
    [['sample', '--fused', GMM, '--outdir', join(dir, 'r3')], /--fused .*gmm\.onnx: not a fused sampler/],
    [['sample', '--fused', notFused, '--outdir', join(dir, 'r4')], /not-fused\.txt: not an ONNX model/],
    [['sample', '--fused', fused, '--class', '2', '--outdir', join(dir, 'r5')], /--class: the fused sampler is unconditional/],
  ];
  for (const [args, re] of cases) {
    const r = cli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.err}`);
    const lines = r.err.trim().split('\n');
    assert.equal(lines.length, 1, `${args.join(' ')}: ${r.err}`);
    assert.match(lines[0]!, re);
    assert.doesNotMatch(r.err, /\s+at\s/);
  }
});
