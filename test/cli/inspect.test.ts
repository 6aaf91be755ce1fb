/**
 * `adasde inspect`: the contract a file satisfies (denoisers with their companions,
 * companions alone, feature extractors, tokenizer folders) with exit code 0, or one stderr
 * line per problem with exit code 2; forward passes report the output range and finiteness.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { GraphBuilder, saveModel } from '../../src/onnx/builder.js';
import { buildDecoderModel, buildFeatureModel, buildMixtureModel, contractMetadata } from '../support/models.js';
import { DataType } from '../../src/onnx/proto.js';
import { DEC_W, DEC_B, MIXTURE, writeTextModel } from '../text/text-model-fixture.js';
import { repoRoot } from '../helpers.js';

const bin = resolve(repoRoot, 'bin', 'adasde.js');
const dir = mkdtempSync(join(tmpdir(), 'adasde-inspect-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function inspect(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, 'inspect', ...args], { encoding: 'utf8', cwd: dir });
  return { code: r.status, out: r.stdout, err: r.stderr, errLines: r.stderr.trimEnd().split('\n').filter((l) => l !== '') };
}
/** The stdout line starting with `key` (the report's first column). */
function line(out: string, key: string): string {
  const l = out.split('\n').find((x) => x.startsWith(key));
  assert.ok(l !== undefined, `no '${key}' line in:\n${out}`);
  return l;
}
function lines(out: string, key: string): string[] {
  return out.split('\n').filter((x) => x.startsWith(key));
}

const files = writeTextModel(join(dir, 'good'));
const ALPHAS = Array.from({ length: 1000 }, (_, k) => Math.exp(-(0.0008 * (k + 1) + 0.00001 * (k + 1) ** 2)));

test('a text-conditional latent denoiser with its three companions', () => {
  const r = inspect(files.model);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err, '');
  assert.equal(line(r.out, 'contract'), 'contract    denoiser (family analytic, dataset txt)');
  assert.equal(line(r.out, 'inputs'), 'inputs      x float32 [N,4,4,4]; sigma float32 [N]; condition float32 [N,77,4]');
  assert.equal(line(r.out, 'outputs'), 'outputs     denoised float32 [N,4,4,4]');
  assert.equal(line(r.out, 'sigma'), 'sigma       [0.01, 20]');
  assert.equal(line(r.out, 'labels'), 'labels      none (label_dim 0)');
  assert.equal(line(r.out, 'condition'), 'condition   text-encoder states [77,4]');
  assert.equal(line(r.out, 'companion   decoder'), 'companion   decoder      txt.decoder.onnx: ok (z float32 [N,4,4,4] -> image float32 [N,3,8,8])');
  assert.equal(line(r.out, 'companion   text_encoder'), 'companion   text_encoder txt.text_encoder.onnx: ok (input_ids int64 [N,77] -> condition float32 [N,77,4])');
  assert.equal(line(r.out, 'companion   tokenizer'), 'companion   tokenizer    txt.tokenizer: ok (vocab.json + merges.txt, 526 tokens, 12 merges, 77 ids per prompt, bos 524, eos 525, pad 525)');
  const fw = lines(r.out, 'forward');
  assert.equal(fw.length, 4, r.out);
  assert.match(fw[0]!, /^forward {5}text_encoder: condition \[77,4\] in \[-?[\d.e-]+, -?[\d.e-]+\], finite$/);
  assert.match(fw[1]!, /^forward {5}sigma_max = 20 \(x = sigma z, batch 1, condition from "a photograph of an astronaut riding a horse"\): denoised in \[-?[\d.e-]+, -?[\d.e-]+\], finite$/);
  assert.match(fw[2]!, /^forward {5}sigma_min = 0\.01 .*: denoised in .*, finite$/);
  assert.match(fw[3]!, /^forward {5}decoder: image \[3,8,8\] from z \[4,4,4\] ~ N\(0, I\) in \[-?[\d.]+, -?[\d.]+\], finite$/);
  assert.equal(line(r.out, 'result'), 'result      txt.onnx satisfies the denoiser contract');
  // --forward False: the contract only.
  const q = inspect(files.model, '--forward', 'False');
  assert.equal(q.code, 0);
  assert.equal(lines(q.out, 'forward').length, 0);
});

test('discrete-time schedule summary, class labels, and the sigma range of the schedule', () => {
  const f = join(dir, 'ldm.onnx');
  const dec = join(dir, 'ldm.decoder.onnx');
  saveModel(buildDecoderModel({ latent: [4, 4, 4], weight: DEC_W, bias: DEC_B }), dec);
  saveModel(
    buildMixtureModel(MIXTURE, [4, 4, 4], {
      family: 'ldm',
      datasetName: 'tiny-ldm',
      sigmaMin: 0.5,
      sigmaMax: 30,
      metadata: { 'adasde.alphas_cumprod': JSON.stringify(ALPHAS), 'adasde.decoder': 'ldm.decoder.onnx' },
    }),
    f,
  );
  const r = inspect(f);
  assert.equal(r.code, 0, r.err);
  assert.match(line(r.out, 'schedule'), /^schedule {4}adasde\.alphas_cumprod: 1000 values, 0\.99919 \(t=1\/1000\) \.\. 2\.0400e-5 \(t=1\); sigma\(1e-3\) = 0\.028\d*, sigma\(1\) = 221\.\d+$/);
  assert.match(line(r.out, 'note'), /adasde\.sigma_min\/max \[0\.5, 30\] differ from the schedule's \[sigma\(1e-3\), sigma\(1\)\]/);
  assert.match(line(r.out, 'samples'), /\[4,4,4\] latents/);
  const labels = join(dir, 'labels.onnx');
  saveModel(buildMixtureModel(MIXTURE, [4, 4, 4], { conditioning: { input: 'class_labels', labelDim: 3, logits: new Float64Array(18).fill(0.5) } }), labels);
  const l = inspect(labels);
  assert.equal(l.code, 0, l.err);
  assert.equal(line(l.out, 'labels'), 'labels      class_labels, label_dim 3');
  assert.match(line(l.out, 'forward     sigma_max'), /batch 1, class 0\): denoised in .*, finite$/);
});

test('companions, feature extractors and tokenizer folders on their own', () => {
  const dec = inspect(files.decoder);
  assert.equal(dec.code, 0, dec.err);
  assert.equal(line(dec.out, 'contract'), 'contract    decoder (first-stage: z -> image in [-1, 1])');
  assert.match(line(dec.out, 'forward'), /decoder: image \[3,8,8\] from z \[4,4,4\] ~ N\(0, I\) in .*, finite/);
  assert.equal(line(dec.out, 'result'), 'result      txt.decoder.onnx satisfies the decoder contract');
  const enc = inspect(files.encoder);
  assert.equal(enc.code, 0, enc.err);
  assert.equal(line(enc.out, 'contract'), 'contract    text encoder (input_ids -> condition)');
  assert.match(line(enc.out, 'forward'), /text_encoder: condition \[77,4\] from 77 token ids 0 in .*, finite/);
  assert.equal(line(enc.out, 'result'), 'result      txt.text_encoder.onnx satisfies the text encoder contract');
  const feat = join(dir, 'features.onnx');
  saveModel(buildFeatureModel({ dim: 32, input: 'uint8' }), feat);
  const fr = inspect(feat);
  assert.equal(fr.code, 0, fr.err);
  assert.match(line(fr.out, 'contract'), /^contract {4}feature extractor \(the FID detector contract: images \[N,3,H,W\] -> features \[N,D\]\), detector test-features$/);
  assert.equal(line(fr.out, 'features'), 'features    D = 32, images uint8 HxW (pixel values 0..255)');
  assert.match(line(fr.out, 'forward'), /^forward {5}features \[32\] of one 64x64 image in \[[\d.e-]+, [\d.e-]+\], finite$/);
  assert.equal(line(fr.out, 'result'), 'result      features.onnx satisfies the feature extractor contract');
  // The FID exporter's metadata (adasde.kind=detector) with a feature_dim the graph contradicts.
  /** A generated feature network of `dim` features carrying exactly `meta`. */
  const featureFile = (name: string, dim: number, meta: Record<string, string>): string => {
    const m = buildFeatureModel({ dim });
    m.metadataProps = Object.entries(meta).map(([key, value]) => ({ key, value }));
    const file = join(dir, name);
    saveModel(m, file);
    return file;
  };
  const detFile = featureFile('detector.onnx', 16, { 'adasde.kind': 'detector', 'adasde.detector': 'inception-2015-12-05', 'adasde.feature_dim': '2048' });
  const dr = inspect(detFile, '--forward', 'False');
  assert.equal(dr.code, 2);
  assert.match(line(dr.out, 'contract'), /feature extractor .*, detector inception-2015-12-05$/);
  assert.deepEqual(dr.errLines, [`adasde: error: ${detFile}: metadata adasde.feature_dim=2048 but output 'features' has 16 features`]);
  // The bundled feature network's metadata (tools/train_cifar_features.py) without adasde.role.
  const bundledFile = featureFile('bundled-features.onnx', 8, { 'adasde.kind': 'features', 'adasde.metric': 'fd_bundled', 'adasde.feature_dim': '8' });
  const br = inspect(bundledFile, '--forward', 'False');
  assert.equal(br.code, 0, br.err);
  assert.match(line(br.out, 'contract'), /^contract {4}feature extractor /);
  const tok = inspect(files.tokenizer);
  assert.equal(tok.code, 0, tok.err);
  assert.equal(line(tok.out, 'contract'), 'contract    tokenizer (vocab.json + merges.txt, 526 tokens, 12 merges, 77 ids per prompt, bos 524, eos 525, pad 525)');
  const t2 = inspect(files.tokenizer, '--prompt', 'Hello, World!');
  assert.equal(line(t2.out, 'prompt'), 'prompt      "Hello, World!" -> 6 tokens: [524, 515, 267, 519, 256, 525] + 71 pad');
});

test('every metadata and signature problem is its own stderr line, exit code 2', () => {
  const f = join(dir, 'badmeta.onnx');
  saveModel(buildMixtureModel(MIXTURE, [4, 4, 4], { omit: ['adasde.sigma_min', 'adasde.dataset_name'], metadata: { 'adasde.family': 'vae', 'adasde.img_channels': '3' } }), f);
  const r = inspect(f);
  assert.equal(r.code, 2);
  assert.deepEqual(r.errLines, [
    `adasde: error: ${f}: missing metadata adasde.sigma_min, adasde.dataset_name (the model contract in README.md lists the required adasde.* keys)`,
    `adasde: error: ${f}: metadata adasde.family='vae' is not one of edm, cm, adm, ldm, sd, ddpm, analytic`,
    `adasde: error: ${f}: input 'x' has shape [N,4,4,4]; expected [N,3,4,4] (adasde.img_channels=3, adasde.img_resolution=4)`,
    `adasde: error: ${f}: output 'denoised' has shape [N,4,4,4]; expected [N,3,4,4] (adasde.img_channels=3, adasde.img_resolution=4)`,
  ]);
  assert.equal(line(r.out, 'result'), 'result      badmeta.onnx does not satisfy the denoiser contract: 4 problems (stderr)');
  assert.equal(lines(r.out, 'forward').length, 0, 'no forward pass on a broken file');
});

test('companion problems: missing file, wrong state width, broken tokenizer, missing keys', () => {
  const g = writeTextModel(join(dir, 'badcomp'), { metadata: { 'adasde.decoder': 'gone.onnx' } });
  // A text encoder of width 5 for a denoiser taking width 4, and a tokenizer without merges.
  const b = new GraphBuilder('enc');
  const ids = b.input('input_ids', DataType.INT64, ['N', 77]);
  const v = b.op('Unsqueeze', [b.op('Cast', [ids], { to: { i: DataType.FLOAT } }), b.constantInt64([2], [1])]);
  b.output(b.op('Tile', [v, b.constantInt64([1, 1, 5], [3])]), 'condition', DataType.FLOAT, ['N', 77, 5]);
  saveModel(b.model({ 'adasde.role': 'text_encoder' }), g.encoder);
  rmSync(join(g.tokenizer, 'merges.txt'));
  const r = inspect(g.model);
  assert.equal(r.code, 2);
  assert.deepEqual(r.errLines, [
    `adasde: error: ${g.model}: adasde.decoder 'gone.onnx' does not exist (looked for ${join(g.dir, 'gone.onnx')})`,
    `adasde: error: ${g.encoder}: the text encoder gives states [N,77,5] but ${g.model} takes condition [N,77,4]`,
    `adasde: error: ${g.tokenizer}: tokenizer folder has no tokenizer.json and no merges.txt (expected tokenizer.json, or vocab.json and merges.txt)`,
  ]);
  assert.equal(line(r.out, 'companion   decoder'), 'companion   decoder      gone.onnx: missing');
  assert.match(line(r.out, 'companion   text_encoder'), /: 1 problem$/);
  assert.match(line(r.out, 'companion   tokenizer'), /: 1 problem$/);
  // A companion that is not an ONNX file is one problem of the denoiser, not a crash.
  const gb = writeTextModel(join(dir, 'garbagedec'));
  writeFileSync(gb.decoder, 'not onnx');
  const gr = inspect(gb.model);
  assert.equal(gr.code, 2);
  assert.equal(gr.errLines.length, 1);
  assert.match(gr.errLines[0]!, /txt\.decoder\.onnx: not an ONNX model/);
  assert.equal(line(gr.out, 'companion   decoder'), 'companion   decoder      txt.decoder.onnx: 1 problem');
  assert.match(line(gr.out, 'companion   tokenizer'), /: ok/);
  const h = writeTextModel(join(dir, 'nokeys'), { omit: ['adasde.text_encoder', 'adasde.tokenizer'] });
  const q = inspect(h.model);
  assert.equal(q.code, 2);
  assert.deepEqual(q.errLines, [
    `adasde: error: ${h.model}: input 'condition' [N,77,4] needs a text encoder: metadata adasde.text_encoder is missing`,
    `adasde: error: ${h.model}: input 'condition' [N,77,4] needs a tokenizer: metadata adasde.tokenizer is missing`,
  ]);
});

test('a non-finite forward pass, a non-decreasing schedule, unrecognised and unreadable files', () => {
  // D = x * sqrt(1 - sigma): NaN at sigma_max = 80, finite at sigma_min.
  const b = new GraphBuilder('nan');
  const x = b.input('x', DataType.FLOAT, ['N', 3, 4, 4]);
  const s = b.input('sigma', DataType.FLOAT, ['N']);
  const k = b.op('Reshape', [b.op('Sqrt', [b.op('Sub', [b.scalar(1), s])]), b.constantInt64([-1, 1, 1, 1], [4])]);
  b.output(b.op('Mul', [x, k]), 'denoised', DataType.FLOAT, ['N', 3, 4, 4]);
  const nan = join(dir, 'nan.onnx');
  saveModel(b.model(contractMetadata({ sigmaMin: 0.002, sigmaMax: 80, imgResolution: 4, imgChannels: 3, labelDim: 0, family: 'edm', datasetName: 'nan' })), nan);
  const r = inspect(nan);
  assert.equal(r.code, 2);
  assert.match(line(r.out, 'forward     sigma_max'), /denoised: 48 of 48 values are not finite$/);
  assert.match(line(r.out, 'forward     sigma_min'), /denoised in .*, finite$/);
  assert.deepEqual(r.errLines, [`adasde: error: ${nan}: D(x, sigma_max) is not finite`]);

  const ac = join(dir, 'ac.onnx');
  const bad = [...ALPHAS.slice(0, 10), ALPHAS[5]!, ...ALPHAS.slice(11)];
  saveModel(buildMixtureModel(MIXTURE, [4, 4, 4], { family: 'ldm', metadata: { 'adasde.alphas_cumprod': JSON.stringify(bad) } }), ac);
  const a = inspect(ac, '--forward', 'False');
  assert.equal(a.code, 2);
  assert.equal(a.errLines.length, 1);
  assert.match(a.errLines[0]!, /adasde\.alphas_cumprod is not decreasing \(entry 10 = [\d.]+ >= entry 9 = [\d.]+\)/);

  const u = new GraphBuilder('other');
  u.output(u.op('Relu', [u.input('foo', DataType.FLOAT, ['N', 2])]), 'bar', DataType.FLOAT, ['N', 2]);
  const other = join(dir, 'other.onnx');
  saveModel(u.model(), other);
  const o = inspect(other);
  assert.equal(o.code, 2);
  assert.deepEqual(o.errLines, [
    `adasde: error: ${other}: matches no adasde contract (inputs foo float32 [N,2]; outputs bar float32 [N,2]); expected a denoiser (x, sigma -> denoised), a feature extractor (images -> features), a decoder (z -> image), a text encoder (input_ids -> condition), a classifier (x, sigma -> log_probs) or a tokenizer folder`,
  ]);
  writeFileSync(join(dir, 'garbage.onnx'), 'not a model');
  const gq = inspect(join(dir, 'garbage.onnx'));
  assert.equal(gq.code, 2);
  assert.equal(gq.errLines.length, 1);
  assert.match(gq.errLines[0]!, /garbage\.onnx: not an ONNX model/);
  const missing = inspect(join(dir, 'missing.onnx'));
  assert.equal(missing.code, 2);
  assert.match(missing.err, /^adasde: error: .*missing\.onnx: no such file or folder\n$/);
  mkdirSync(join(dir, 'empty-folder'));
  const ef = inspect(join(dir, 'empty-folder'));
  assert.equal(ef.code, 2);
  assert.match(ef.errLines[0]!, /empty-folder: tokenizer folder has no tokenizer\.json and no vocab\.json or merges\.txt/);
});
