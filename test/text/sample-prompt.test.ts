/**
 * `adasde sample --prompt` end to end on a text-conditional latent mixture model with a
 * text encoder, a tokenizer folder and a decoder (text-model-fixture.ts): prompt states
 * match the closed form, the CLI equals the in-process sampler with classifier-free
 * guidance, prompts steer the images, seed s takes prompt s of a file, PNGs are the
 * decoded latents, and setup mistakes are one line with exit code 2.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { main } from '../../src/cli/main.js';
import { readNpy, toFloat64 } from '../../src/io/npy.js';
import { quantize } from '../../src/io/png.js';
import { saveModel } from '../../src/onnx/builder.js';
import { buildMixtureModel, buildTextEncoderModel } from '../support/models.js';
import { loadDecoder } from '../../src/runtime/companions.js';
import { loadDenoiserModel } from '../../src/runtime/model.js';
import { PromptEncoder } from '../../src/sample/companions.js';
import { sampleBatch } from '../../src/sample/pipeline.js';
import { getSchedule } from '../../src/solvers/schedule.js';
import { loadTokenizer } from '../../src/text/tokenizer.js';
import { repoRoot } from '../helpers.js';
import { EMB, IMAGE, LATENT, LATENT_DIM, MIXTURE, SEQ, VOCAB, decodeClosedForm, encodeClosedForm, writeTextModel } from './text-model-fixture.js';

const bin = resolve(repoRoot, 'bin', 'adasde.js');
const dir = mkdtempSync(join(tmpdir(), 'adasde-text-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const files = writeTextModel(dir);
const P0 = 'a cat';
const P1 = 'Hello, World!';
const SEEDS = [0, 1, 2, 3, 4, 5];

async function cli(...args: string[]): Promise<number> {
  return main(['node', 'adasde', ...args]);
}
function cliProcess(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: dir });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
async function npyOf(path: string): Promise<Float64Array> {
  return toFloat64(await readNpy(path));
}
function pngs(outdir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const f of readdirSync(join(outdir, '000000'))) out.set(f, readFileSync(join(outdir, '000000', f)));
  return out;
}
async function pixels(file: string): Promise<Uint8Array> {
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  assert.equal(info.channels, 3);
  const [, H, W] = IMAGE;
  const chw = new Uint8Array(3 * H * W);
  for (let p = 0; p < H * W; p++) for (let c = 0; c < 3; c++) chw[c * H * W + p] = data[p * 3 + c]!;
  return chw;
}
function maxDev(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k]! - b[k]!) / Math.max(1, Math.abs(b[k]!)));
  return m;
}
const base = (outdir: string, ...extra: string[]) => ['sample', '--model', files.model, '--solver', 'heun', '--num_steps', '5', '--seeds', '0-5', '--batch', '4', '--outdir', join(dir, outdir), '--quiet', ...extra];

test('prompt states: tokenizer -> text encoder equals the closed form; each distinct prompt is encoded once', async () => {
  const model = await loadDenoiserModel(files.model);
  const pe = await PromptEncoder.open(model);
  try {
    assert.deepEqual(pe.shape, [SEQ, EMB]);
    assert.equal(pe.encoded, 1, 'the empty prompt is encoded at open');
    const tok = loadTokenizer(files.tokenizer);
    const rows = await pe.rows([P0, P1, P0]);
    const want = [P0, P1, P0].flatMap((p) => Array.from(encodeClosedForm(tok.encode(p))));
    assert.ok(maxDev(rows, want) < 1e-6);
    assert.equal(pe.encoded, 3);
    await pe.rows([P1, P0, '']);
    assert.equal(pe.encoded, 3, 'cached prompts are not encoded again');
    const c = await pe.conditioning([P0, P1], true);
    assert.deepEqual(c.conditionShape, [SEQ, EMB]);
    assert.ok(maxDev(c.uncondition!, [...encodeClosedForm(tok.encode('')), ...encodeClosedForm(tok.encode(''))]) < 1e-6);
    assert.equal((await pe.conditioning([P0], false)).uncondition, undefined);
  } finally {
    await pe.dispose();
    await model.dispose();
  }
});

test('sample --prompt with CFG 7.5 (npy) equals the in-process sampler on the closed-form prompt states', async () => {
  const outdir = join(dir, 'npy-cfg');
  assert.equal(await cli(...base('npy-cfg', '--prompt', P0, '--guidance_type', 'cfg', '--guidance_rate', '7.5', '--output_format', 'npy')), 0);
  const got = await npyOf(join(outdir, 'samples.npy'));
  assert.equal(got.length, SEEDS.length * LATENT_DIM, 'npy keeps the latents [n, 4, 4, 4]');
  const tok = loadTokenizer(files.tokenizer);
  const rep = (p: string) => Float32Array.from(SEEDS.flatMap(() => Array.from(encodeClosedForm(tok.encode(p)))));
  const model = await loadDenoiserModel(files.model, { guidanceRate: 7.5 });
  try {
    const tSteps = getSchedule({ numSteps: 5, sigmaMin: 0.01, sigmaMax: 20, type: 'polynomial', rho: 7 });
    const plan = { solver: 'heun' as const, options: { afs: false, denoiseToZero: false }, tSteps, sampleShape: LATENT, labelDim: 0 };
    const want = await sampleBatch(plan, model.denoise, { seeds: SEEDS, cond: { condition: rep(P0), conditionShape: [SEQ, EMB], uncondition: rep('') } });
    assert.ok(maxDev(got, want) < 1e-5, `deviation ${maxDev(got, want)}`);
    // Guidance matters: the unguided conditional run differs, rate 1 is the conditional model.
    const cond = await sampleBatch(plan, model.denoise, { seeds: SEEDS, cond: { condition: rep(P0), conditionShape: [SEQ, EMB] } });
    assert.ok(maxDev(got, cond) > 1e-2);
    assert.equal(await cli(...base('npy-w1', '--prompt', P0, '--guidance_type', 'cfg', '--guidance_rate', '1', '--output_format', 'npy')), 0);
    assert.ok(maxDev(await npyOf(join(dir, 'npy-w1', 'samples.npy')), cond) < 1e-5);
  } finally {
    await model.dispose();
  }
});

test('prompts steer the images; the same prompt gives the same images; seed s takes prompt s of a file', async () => {
  const cfg = ['--guidance_type', 'cfg', '--guidance_rate', '7.5'];
  assert.equal(await cli(...base('png-p0', '--prompt', P0, ...cfg)), 0);
  assert.equal(await cli(...base('png-p0-again', '--prompt', P0, ...cfg, '--batch', '1')), 0);
  assert.equal(await cli(...base('png-p1', '--prompt', P1, ...cfg)), 0);
  const promptFile = join(dir, 'prompts.csv');
  writeFileSync(promptFile, `id,text\n0,"${P0}"\n1,"${P1.replace(/"/g, '""')}"\n2,${P0}\n3,"${P1}"\n4,${P0}\n5,"${P1}"\n`);
  assert.equal(await cli(...base('png-file', '--prompt_file', promptFile, ...cfg)), 0);
  const p0 = pngs(join(dir, 'png-p0'));
  const again = pngs(join(dir, 'png-p0-again'));
  const p1 = pngs(join(dir, 'png-p1'));
  const fromFile = pngs(join(dir, 'png-file'));
  assert.equal(p0.size, 6);
  let differ = 0;
  for (const [k, v] of p0) {
    assert.ok(again.get(k)!.equals(v), `${k}: same prompt, same image (batch 4 vs 1)`);
    if (!p1.get(k)!.equals(v)) differ++;
    const s = Number(k.slice(0, 6));
    assert.ok(fromFile.get(k)!.equals(s % 2 === 0 ? v : p1.get(k)!), `${k}: seed ${s} takes prompt ${s} of the file`);
  }
  assert.ok(differ >= 4, `different prompts change the images (${differ} of 6 differ)`);
});

test('PNGs are the decoder images of the final latents (quantised after decoding)', async () => {
  const cfg = ['--prompt', P1, '--guidance_type', 'cfg', '--guidance_rate', '3'];
  assert.equal(await cli(...base('dec-npy', ...cfg, '--output_format', 'npy')), 0);
  assert.equal(await cli(...base('dec-png', ...cfg, '--grid', 'True')), 0);
  const z = await npyOf(join(dir, 'dec-npy', 'samples.npy'));
  const dec = await loadDecoder(files.decoder);
  try {
    const img = await dec.decode(z, SEEDS.length, LATENT);
    assert.deepEqual(img.shape, [...IMAGE]);
    const dim = 3 * 8 * 8;
    for (const s of SEEDS) {
      const got = await pixels(join(dir, 'dec-png', '000000', `00000${s}.png`));
      assert.deepEqual(got, quantize(img.data, s * dim, 3, 8, 8), `seed ${s}`);
      // ... and the decoder is the closed form (within one grey level after quantisation).
      const ref = quantize(decodeClosedForm(z.subarray(s * LATENT_DIM, (s + 1) * LATENT_DIM)), 0, 3, 8, 8);
      assert.ok(got.every((v, k) => Math.abs(v - ref[k]!) <= 1));
    }
    const grid = await sharp(join(dir, 'dec-png', 'grid.png')).metadata();
    assert.deepEqual([grid.width, grid.height], [24, 16], 'the grid holds 8x8 decoded images');
  } finally {
    await dec.dispose();
  }
});

test('two worker processes write the same images as one', () => {
  const promptFile = join(dir, 'lines.txt');
  writeFileSync(promptFile, `${P0}\n${P1}\n\n${P0}\n${P1}\n${P0}\n`);
  const args = (out: string, extra: string[]) => ['sample', '--model', files.model, '--solver', 'euler', '--num_steps', '4', '--seeds', '0-5', '--batch', '2', '--prompt_file', promptFile, '--guidance_type', 'cfg', '--guidance_rate', '7.5', '--outdir', join(dir, out), '--quiet', ...extra];
  const one = cliProcess(...args('mp1', []));
  assert.equal(one.code, 0, one.err);
  const two = cliProcess(...args('mp2', ['--nproc_per_node', '2']));
  assert.equal(two.code, 0, two.err);
  const a = pngs(join(dir, 'mp1'));
  const b = pngs(join(dir, 'mp2'));
  assert.equal(a.size, 6);
  for (const [k, v] of a) assert.ok(b.get(k)?.equals(v), k);
});

test('setup mistakes: one line, exit code 2', () => {
  const broken = (name: string, opts: Parameters<typeof writeTextModel>[1]) => writeTextModel(join(dir, name), { name, ...opts }).model;
  const noTok = broken('notok', { omit: ['adasde.tokenizer'] });
  const missingEnc = broken('noenc', { metadata: { 'adasde.text_encoder': 'nowhere.onnx' } });
  const wide = broken('wide', {});
  const widePos = new Float32Array(SEQ * 5);
  saveModel(buildTextEncoderModel({ vocabSize: VOCAB, embedDim: 5, seqLen: SEQ, embedding: new Float32Array(VOCAB * 5).fill(0.1), position: widePos }), join(dir, 'wide', 'wide.text_encoder.onnx'));
  const latentNoDecoder = broken('nodec', { omit: ['adasde.decoder'], metadata: { 'adasde.family': 'sd', 'adasde.alphas_cumprod': JSON.stringify(Array.from({ length: 10 }, (_, k) => 0.99 - 0.09 * k)) } });
  const plain = join(dir, 'plain.onnx');
  saveModel(buildMixtureModel(MIXTURE, LATENT, { datasetName: 'plain' }), plain);
  const short = join(dir, 'short.txt');
  writeFileSync(short, 'one\ntwo\n');
  const cases: [string[], RegExp][] = [
    [['--model', files.model], /txt\.onnx is text-conditional: give --prompt TEXT or --prompt_file FILE/],
    [['--model', plain, '--prompt', 'x'], /--prompt: .*plain\.onnx is not text-conditional/],
    [['--model', files.model, '--prompt_file', short, '--seeds', '0-5'], /--prompt_file: .*short\.txt has 2 prompts, so seeds must be below 2 \(seed s takes prompt s\); got seed 2 and 3 more/],
    [['--model', files.model, '--prompt', 'x', '--prompt_file', short], /--prompt and --prompt_file exclude each other/],
    [['--model', noTok, '--prompt', 'x'], /notok\.onnx: no metadata adasde\.tokenizer \(prompts need the tokenizer and the text encoder\)/],
    [['--model', missingEnc, '--prompt', 'x'], /noenc\.onnx: adasde\.text_encoder 'nowhere\.onnx' does not exist \(looked for /],
    [['--model', wide, '--prompt', 'x'], /wide\.text_encoder\.onnx: the text encoder gives states \[N,77,5\] but .*wide\.onnx takes condition \[N,77,4\]/],
    [['--model', latentNoDecoder, '--prompt', 'x', '--sigma_min', '0.5', '--sigma_max', '3'], /nodec\.onnx: no metadata adasde\.decoder \(images of a latent model come from its first-stage decoder; use --output_format npy for the latents\)/],
  ];
  for (const [args, pattern] of cases) {
    const r = cliProcess('sample', ...args, '--solver', 'euler', '--num_steps', '3', '--seeds', args.includes('--seeds') ? args[args.indexOf('--seeds') + 1]! : '0-1', '--outdir', join(dir, 'bad-out'), '--quiet');
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    const lines = r.err.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.err);
    assert.match(lines[0]!, pattern);
  }
  // A latent model without a decoder still samples latents.
  const ok = cliProcess('sample', '--model', latentNoDecoder, '--prompt', 'x', '--solver', 'euler', '--num_steps', '3', '--seeds', '0-1', '--sigma_min', '0.5', '--sigma_max', '3', '--output_format', 'npy', '--outdir', join(dir, 'nodec-npy'), '--quiet');
  assert.equal(ok.code, 0, ok.err);
});
