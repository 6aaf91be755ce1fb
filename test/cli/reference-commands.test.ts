/**
 * The reference's own commands, run unchanged through the real CLI process: AdaSDE's README
 * and scripts (train.py, sample.py, fid.py) and diff-sampler's launch.sh examples, with
 * `python train.py` / `torchrun ... sample.py` replaced by `adasde train` / `adasde sample`,
 * and only seed ranges, kimg and the models substituted (small test models written under the
 * names `--dataset_name` resolves, so the flags stay as the reference writes them). Substitutions
 * beyond those are named where they happen.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { readNpy, toFloat64 } from '../../src/io/npy.js';
import { saveModel } from '../../src/onnx/builder.js';
import { buildDecoderModel, buildFeatureModel, buildMixtureModel } from '../support/models.js';
import { repoRoot } from '../helpers.js';
import { writeTextModel } from '../text/text-model-fixture.js';
import { MIX, SHAPE } from './sample-fixture.js';

const bin = resolve(repoRoot, 'bin', 'adasde.js');
const cwd = mkdtempSync(join(tmpdir(), 'adasde-refcmd-'));
mkdirSync(join(cwd, 'models'));
// cifar10, lsun_bedroom: the Gaussian-mixture test model under the names --dataset_name finds.
for (const name of ['cifar10', 'lsun_bedroom']) saveModel(buildMixtureModel(MIX, SHAPE, { datasetName: name }), join(cwd, 'models', `${name}.onnx`));
// A discrete-time (DDPM) table for the latent stand-ins.
const ALPHAS = JSON.stringify(Array.from({ length: 100 }, (_, k) => Math.exp(-0.0004 - 0.09 * k)));
// lsun_bedroom_ldm: an unconditional latent mixture with a decoder companion.
const LAT = [4, 4, 4] as const;
const LAT_MIX = { weights: Float64Array.of(1, 2), means: Float64Array.from({ length: 128 }, (_, q) => 0.5 * Math.sin(q)), stds: Float64Array.of(0.2, 0.3) };
saveModel(buildDecoderModel({ latent: LAT, weight: Float32Array.from({ length: 12 }, (_, k) => 0.3 * Math.cos(k)), bias: Float32Array.of(0, 0.1, -0.1) }), join(cwd, 'models', 'lsun_bedroom_ldm.decoder.onnx'));
saveModel(
  buildMixtureModel(LAT_MIX, LAT, { datasetName: 'lsun_bedroom_ldm', sigmaMin: 0.03, sigmaMax: 14, metadata: { 'adasde.family': 'ldm', 'adasde.alphas_cumprod': ALPHAS, 'adasde.decoder': 'lsun_bedroom_ldm.decoder.onnx' } }),
  join(cwd, 'models', 'lsun_bedroom_ldm.onnx'),
);
// ms_coco: the text-conditional latent test model (tiny CLIP tokenizer and encoder, decoder).
writeTextModel(join(cwd, 'models'), { name: 'ms_coco', metadata: { 'adasde.family': 'sd', 'adasde.dataset_name': 'ms_coco', 'adasde.alphas_cumprod': ALPHAS } });
// The reference fetches its 30k MS-COCO captions itself; here they are a file (substitution).
writeFileSync(join(cwd, 'captions.csv'), 'id,text\n' + Array.from({ length: 8 }, (_, k) => `${k},"a ${k % 2 ? 'cat' : 'dog'} on a horse"`).join('\n') + '\n');
saveModel(buildFeatureModel({ dim: 16, size: 8, seed: 3 }), join(cwd, 'features.onnx'));

/** Split a command line as a POSIX shell would for these scripts (double quotes, no escapes). */
function words(line: string): string[] {
  return (line.match(/(?:[^\s"]+|"[^"]*")+/g) ?? []).map((w) => w.replace(/"/g, ''));
}

function run(line: string): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...words(line)], { cwd, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function ok(line: string): string {
  const r = run(line);
  assert.equal(r.code, 0, `${line}\n${r.err}`);
  return r.out;
}

const pngCount = (dir: string): number =>
  existsSync(dir) ? readdirSync(dir, { recursive: true }).filter((f) => String(f).endsWith('.png')).length : 0;

test('reference commands: AdaSDE README train -> sample --predictor_path=0 -> fid ref/calc', () => {
  // README "Example Commands" (cifar10), total_kimg 10 -> 0.032 (one batch of 32).
  const SOLVER_FLAGS = '--sampler_stu=adasde --sampler_tea=dpm --num_steps=3 --M=3 --afs=True --scale_dir=0.05 --scale_time=0.2 --gamma=0.02 --seed=0 --lr=0.2 --coslr';
  const SCHEDULE_FLAGS = '--schedule_type=time_uniform --schedule_rho=1';
  ok(`train --dataset_name="cifar10" --batch=32 --total_kimg=0.032 ${SOLVER_FLAGS} ${SCHEDULE_FLAGS}`);
  const runs = readdirSync(join(cwd, 'exp'));
  assert.deepEqual(runs, ['00000-cifar10-3-3-adasde-dpm-3-uni1.0-afs']);
  const opts = JSON.parse(readFileSync(join(cwd, 'exp', runs[0]!, 'training_options.json'), 'utf8')) as { options: Record<string, unknown> };
  assert.equal(opts.options.schedule_rho, 1);
  assert.equal(opts.options.gamma, 0.02);
  // README "Generate 50K samples": no --model, no --dataset_name: the predictor names cifar10.
  const out = ok('sample --predictor_path=0 --batch=128 --seeds="0-3"');
  assert.match(out, /sampled 4 images with adasde at 3 NFE/);
  const images = join(cwd, 'samples', 'cifar10', 'adasde_nfe3_npoints_1');
  assert.equal(pngCount(images), 4);
  // fid.py ref / calc (the detector substituted: no Inception here).
  ok(`fid ref --data=${images} --dest=ref/stats.npz --detector=features.onnx`);
  const fid = ok(`fid calc --images=${images} --ref=ref/stats.npz --detector=features.onnx`).trim().split('\n').pop()!;
  assert.ok(Math.abs(Number(fid)) < 1e-6, `same images: distance ${fid}`);
});

test('reference commands: the README Stable Diffusion training (prompts from a file)', () => {
  const SOLVER_FLAGS = '--sampler_stu=adasde --sampler_tea=dpm --num_steps=4 --M=3 --afs=True --scale_dir=0.05 --scale_time=0.2 --seed=0 --lr 0.01';
  const SCHEDULE_FLAGS = '--schedule_type=discrete --schedule_rho=1';
  const ADDITIONAL_FLAGS = '--max_order=2 --predict_x0=False --lower_order_final=True';
  const GUIDANCE_FLAGS = '--guidance_type=cfg --guidance_rate=7.5';
  ok(`train --dataset_name="ms_coco" --batch=8 --total_kimg=0.008 ${SOLVER_FLAGS} ${SCHEDULE_FLAGS} ${ADDITIONAL_FLAGS} ${GUIDANCE_FLAGS} --prompt_path=captions.csv --outdir=exp-sd`);
  // Named as the reference counts evaluations with CFG: 5 solver NFE, 10 model evaluations.
  assert.deepEqual(readdirSync(join(cwd, 'exp-sd')), ['00000-ms_coco-4-10-adasde-dpm-3-discrete-afs']);
});

// diff-sampler diff-solvers-main/launch.sh, section A (seeds 0-63 -> 0-3, --batch 64 kept).
const diffSampler: [string, string, number][] = [
  ['euler', '--solver=euler --num_steps=7 --afs=False --schedule_type=polynomial --schedule_rho=7', 6],
  ['heun', '--solver=heun --num_steps=4 --afs=False --schedule_type=polynomial --schedule_rho=7', 6],
  ['dpm', '--solver=dpm --num_steps=4 --afs=False --schedule_type=polynomial --schedule_rho=7', 6],
  ['ipndm', '--solver=ipndm --num_steps=7 --afs=False --schedule_type=polynomial --schedule_rho=7 --max_order=4', 6],
  ['ipndm_v', '--solver=ipndm_v --num_steps=7 --afs=False --schedule_type=polynomial --schedule_rho=7 --max_order=4', 6],
  ['deis', '--solver=deis --num_steps=7 --afs=False --schedule_type=time_uniform --schedule_rho=2 --max_order=4 --deis_mode=tab', 6],
  ['dpmpp', '--solver=dpmpp --num_steps=7 --afs=False --schedule_type=logsnr --max_order=3 --predict_x0=True --lower_order_final=True', 6],
  ['unipc', '--solver=unipc --num_steps=7 --afs=False --schedule_type=logsnr --max_order=3 --predict_x0=True --lower_order_final=True --variant=bh2', 6],
];
for (const [solver, flags, nfe] of diffSampler) {
  test(`reference commands: diff-sampler A.1 ${solver} on cifar10 with --grid=True`, () => {
    ok(`sample --dataset_name="cifar10" --batch=64 --seeds="0-3" --grid=True ${flags}`);
    const dir = join(cwd, 'samples', 'cifar10', `${solver}_nfe${nfe}`);
    assert.ok(existsSync(join(dir, 'grid.png')), 'grid.png');
    assert.equal(pngCount(dir), 5);
  });
}

test('reference commands: diff-sampler A.2 (CM lsun_bedroom), A.4 (ms_coco CFG, lsun_bedroom_ldm uncond), B.2, C, D', () => {
  ok('sample --dataset_name="lsun_bedroom" --batch=4 --seeds="0-3" --grid=True --solver=dpmpp --num_steps=7 --afs=False --schedule_type=logsnr --max_order=3 --predict_x0=True --lower_order_final=True');
  assert.equal(pngCount(join(cwd, 'samples', 'lsun_bedroom', 'dpmpp_nfe6')), 5);
  // A.4 Stable Diffusion: the 30k captions are a file here (--prompt_file, substitution).
  ok('sample --dataset_name="ms_coco" --batch=4 --seeds="0-3" --grid=True --solver=dpmpp --num_steps=7 --afs=False --schedule_type=discrete --schedule_rho=1 --max_order=2 --predict_x0=False --lower_order_final=True --guidance_type=cfg --guidance_rate=7.5 --prompt_file=captions.csv');
  assert.equal(pngCount(join(cwd, 'samples', 'ms_coco', 'dpmpp_nfe12')), 5, 'CFG doubles the NFE in the folder name');
  ok('sample --dataset_name="lsun_bedroom_ldm" --batch=4 --seeds="0-3" --grid=True --solver=dpmpp --num_steps=7 --afs=False --schedule_type=discrete --schedule_rho=1 --max_order=3 --predict_x0=False --lower_order_final=True --guidance_type=uncond --guidance_rate=1');
  assert.equal(pngCount(join(cwd, 'samples', 'lsun_bedroom_ldm', 'dpmpp_nfe6')), 5);
  // B.2 (seeds 0-29999 -> 0-7) and C (own prompt).
  ok('sample --dataset_name="ms_coco" --batch=4 --seeds="0-7" --solver=dpmpp --num_steps=5 --afs=False --schedule_type=discrete --schedule_rho=1 --max_order=2 --predict_x0=False --lower_order_final=True --guidance_type=cfg --guidance_rate=7.5 --prompt_file=captions.csv --outdir=sd-b2');
  assert.equal(pngCount(join(cwd, 'sd-b2')), 8);
  ok('sample --dataset_name="ms_coco" --batch=4 --seeds="0-3" --grid=True --prompt="a dog on a horse" --solver=dpmpp --num_steps=6 --afs=False --schedule_type=discrete --schedule_rho=1 --max_order=2 --predict_x0=False --lower_order_final=True --guidance_type=cfg --guidance_rate=7.5 --outdir=sd-c');
  assert.equal(pngCount(join(cwd, 'sd-c')), 5);
  // D: an explicit time schedule.
  ok('sample --dataset_name="cifar10" --batch=64 --seeds="0-3" --grid=True --solver=ipndm --afs=False --t_steps=[80,10.9836,3.8811,1.584,0.5666,0.1698,0.002] --max_order=4 --outdir=d');
  assert.equal(pngCount(join(cwd, 'd')), 5);
});

test('reference commands: --model_path, --use_fp16, --return_inters, exps/ and pickles', async () => {
  // The reference's train.py writes ./exps; --predictor_path N finds runs there too.
  const src = readdirSync(join(repoRoot, 'exp')).find((d) => d.startsWith('00002-'))!;
  mkdirSync(join(cwd, 'exps', '00042-cifar10-4-5-adasde-dpm-3-uni1.0-afs'), { recursive: true });
  copyFileSync(join(repoRoot, 'exp', src, 'predictor.json'), join(cwd, 'exps', '00042-cifar10-4-5-adasde-dpm-3-uni1.0-afs', 'network-snapshot-000010.json'));
  ok('sample --predictor_path=42 --model_path=models/cifar10.onnx --seeds=0-2 --output_format=npy --outdir=a');
  ok('sample --predictor_path=42 --model=models/cifar10.onnx --seeds=0-2 --output_format=npy --outdir=b --use_fp16=True');
  ok('sample --predictor_path=42 --seeds=0-2 --output_format=npy --outdir=c --return_inters=True');
  const a = toFloat64(await readNpy(join(cwd, 'a', 'samples.npy')));
  const b = toFloat64(await readNpy(join(cwd, 'b', 'samples.npy')));
  const c = toFloat64(await readNpy(join(cwd, 'c', 'samples.npy')));
  assert.deepEqual(c, a, '--model_path is --model; the predictor names the same model');
  let dev = 0;
  for (let k = 0; k < a.length; k++) dev = Math.max(dev, Math.abs(a[k]! - b[k]!));
  assert.ok(dev > 0 && dev < 2e-2, `fp16 boundary: deviation ${dev}`);
  const inters = await readNpy(join(cwd, 'c', 'inters.npy'));
  // num_steps 4: x_T and the 3 steps, for 3 seeds; the last state is the output.
  assert.deepEqual(inters.shape, [4, 3, ...SHAPE]);
  const iv = toFloat64(inters);
  assert.deepEqual(iv.subarray(3 * 3 * 192), c);
  // A reference pickle: one line with the converter command, exit 2.
  writeFileSync(join(cwd, 'network-snapshot-000010.pkl'), 'not really a pickle');
  const r = run('sample --predictor_path=network-snapshot-000010.pkl --seeds=0-1');
  assert.equal(r.code, 2);
  assert.match(r.err, /^adasde: error: --predictor_path: network-snapshot-000010\.pkl is a reference PyTorch pickle; convert it where PyTorch is installed: python3 \S+tools\/convert_predictor\.py network-snapshot-000010\.pkl --out network-snapshot-000010\.json, then pass the \.json\n$/);
  // Flags the reference accepts that do nothing here are accepted (train --bench, --dump).
  const dry = ok('train --dataset_name=cifar10 --bench=True --dump=50 -n');
  assert.match(dry, /"bench": true/);
});

test('reference commands: train defaults are the reference train.py\'s', () => {
  const out = ok('train --dataset_name=cifar10 --dry-run');
  const dry = JSON.parse(out.slice(0, out.lastIndexOf('}') + 1)) as { options: Record<string, unknown> };
  const want = { schedule_type: 'time_uniform', schedule_rho: 7, gamma: 0.001, batch: 512, lr: 5e-3, max_order: 3, tick: 10, snap: 10, dump: 50, num_steps: 4, M: 3, afs: true, scale_dir: 0.05, scale_time: 0.2, total_kimg: 10, alpha: 20, num_points: 1, coslr: false };
  for (const [k, v] of Object.entries(want)) assert.equal(dry.options[k], v, k);
});

test('reference commands: one naming table for the resolver and the exporters', () => {
  const table = JSON.parse(readFileSync(join(repoRoot, 'tools', 'export', 'dataset_models.json'), 'utf8')) as { datasets: Record<string, { checkpoint: string; exporter: string; files: string[] }> };
  for (const [name, e] of Object.entries(table.datasets)) {
    assert.equal(e.files[0], `${name}.onnx`, `${name}: the exporters' default output comes first`);
    // The upstream checkpoint's own name, with .onnx, is the second candidate (for LDM's
    // generic lsun_beds256/model.ckpt, its folder's name).
    const parts = e.checkpoint.split('/');
    const stem = parts[parts.length - 1] === 'model.ckpt' ? parts[parts.length - 2]! : parts[parts.length - 1]!.replace(/\.[^.]+$/, '');
    assert.equal(e.files[1], `${stem}.onnx`, name);
    assert.ok(existsSync(join(repoRoot, 'tools', 'export', e.exporter)), e.exporter);
    // The exporter reads the table for its default --out (no hard-coded file names left).
    const src = readFileSync(join(repoRoot, 'tools', 'export', e.exporter), 'utf8');
    assert.match(src, /common\.resolve_out\(args, /, `${e.exporter} takes its default --out from the table`);
  }
  // The reference's CM checkpoint name is found by --dataset_name lsun_bedroom.
  const dir = mkdtempSync(join(tmpdir(), 'adasde-names-'));
  mkdirSync(join(dir, 'models'));
  saveModel(buildMixtureModel(MIX, SHAPE, { datasetName: 'lsun_bedroom' }), join(dir, 'models', 'edm_bedroom256_ema.onnx'));
  const r = spawnSync(process.execPath, [bin, 'sample', '--dataset_name', 'lsun_bedroom', '--solver', 'euler', '--seeds', '0', '--quiet', '--outdir', 'o'], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(pngCount(join(dir, 'o')), 1);
});
