/**
 * Files the bad-input table (test/cli/bad-inputs.json) refers to as `{D}/...`: small models
 * built by the graph builder (a Gaussian mixture, one that returns NaN, a feature network),
 * statistics files that are broken in one way each, image folders, latents of the wrong
 * shape, corrupt run folders and a finished training run. Not a test file.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ndarray, writeNpy } from '../../src/io/npy.js';
import { writeStatsNpz } from '../../src/io/npz.js';
import { writePng } from '../../src/io/png.js';
import { saveModel } from '../../src/onnx/builder.js';
import { buildFeatureModel, buildGaussModel, buildMixtureModel } from '../support/models.js';
import { repoRoot } from '../helpers.js';
import { MIX, SHAPE } from './sample-fixture.js';

export const bin = resolve(repoRoot, 'bin', 'adasde.js');
/** Feature dimension of features.onnx (and of the valid ref.npz). */
export const FEATURE_DIM = 24;

function identity(n: number): Float64Array {
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) a[i * n + i] = 1;
  return a;
}

function image(seed: number, size: number): Uint8Array {
  return Uint8Array.from({ length: 3 * size * size }, (_, k) => (k * 37 + seed * 101) % 256);
}

export async function buildBadInputFixtures(): Promise<string> {
  const D = mkdtempSync(join(tmpdir(), 'adasde-bad-'));
  saveModel(buildMixtureModel(MIX, SHAPE, { datasetName: 'gmm' }), join(D, 'gmm.onnx'));
  // D(x, sigma) = NaN everywhere: a broken export.
  saveModel(buildGaussModel({ mu: new Float64Array(SHAPE[0] * SHAPE[1] * SHAPE[2]).fill(NaN), s: 0.5 }, SHAPE, { datasetName: 'nan' }), join(D, 'nan.onnx'));
  saveModel(buildFeatureModel({ dim: FEATURE_DIM, size: 16, seed: 3 }), join(D, 'features.onnx'));
  writeFileSync(join(D, 'garbage.onnx'), 'not a model\n');
  writeFileSync(join(D, 'afile'), 'a plain file\n');
  symlinkSync(join(D, 'no-such-target'), join(D, 'dangle'));
  mkdirSync(join(D, 'dest.npz'));

  const n = FEATURE_DIM;
  const mu = new Float64Array(n);
  await writeStatsNpz(join(D, 'ref.npz'), mu, identity(n));
  await writeStatsNpz(join(D, 'ref64.npz'), new Float64Array(64), identity(64));
  const nanMu = mu.slice();
  nanMu[3] = NaN;
  await writeStatsNpz(join(D, 'ref-nan.npz'), nanMu, identity(n));
  const negVar = identity(n);
  negVar[5 * n + 5] = -1;
  await writeStatsNpz(join(D, 'ref-negvar.npz'), mu, negVar);
  const asym = identity(n);
  asym[1 * n + 0] = 0.5;
  await writeStatsNpz(join(D, 'ref-asym.npz'), mu, asym);
  // Every 2x2 principal minor is fine, yet I + 0.9 A (A: +-1 off the diagonal, eigenvalues
  // 1, 1, -2) has the eigenvalue -0.8: only the distance computation can notice.
  const notPsd = identity(n);
  const off: [number, number, number][] = [[0, 1, 0.9], [0, 2, -0.9], [1, 2, 0.9]];
  for (const [i, j, v] of off) {
    notPsd[i * n + j] = v;
    notPsd[j * n + i] = v;
  }
  await writeStatsNpz(join(D, 'ref-notpsd.npz'), mu, notPsd);
  writeFileSync(join(D, 'notnpz.npz'), 'not a zip\n');

  for (const [dir, sizes] of [['images', [8, 8, 8, 8]], ['one', [8]], ['mixed', [8, 8, 16]]] as const) {
    mkdirSync(join(D, dir));
    for (const [k, s] of sizes.entries()) await writePng(join(D, dir, `${k}.png`), image(k, s), 3, s, s);
  }
  mkdirSync(join(D, 'empty'));

  await writeNpy(join(D, 'lat-shape.npy'), ndarray('float32', [4, 3, 4, 4], new Float32Array(4 * 48)));
  await writeNpy(join(D, 'lat-count.npy'), ndarray('float32', [2, ...SHAPE], new Float32Array(2 * 192)));
  writeFileSync(join(D, 'lat-text.npy'), 'not an array\n');
  writeFileSync(join(D, 'badpred.json'), '{ "format": ');
  writeFileSync(join(D, 'pred-schema.json'), '{}\n');
  writeFileSync(join(D, 'bad.yaml'), 'rows: [1,\n');
  writeFileSync(join(D, 'unknown.yaml'), 'colour: blue\n');
  writeFileSync(join(D, 'prompts.txt'), 'a cat\na dog\n');

  // Run folders: a corrupt state, a run without any state, and a finished run.
  const exp = join(D, 'exp');
  mkdirSync(join(exp, '00000-corrupt'), { recursive: true });
  writeFileSync(join(exp, '00000-corrupt', 'training_options.json'), '{"options": {}}\n');
  writeFileSync(join(exp, '00000-corrupt', 'training-state.json'), '{"batchIndex": 3, "raw": {"r": [[0.1');
  mkdirSync(join(exp, '00001-nostate'));
  writeFileSync(join(exp, '00001-nostate', 'training_options.json'), '{"options": {}}\n');
  const r = spawnSync(process.execPath, [bin, 'train', '--model', join(D, 'gmm.onnx'), '--outdir', exp, '--num_steps', '3', '--M', '1', '--batch', '4', '--total_kimg', '0.008', '--seed', '0', '--lr', '0.2', '--detector', join(D, 'features.onnx'), '--quiet'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`fixture training run failed: ${r.stderr}`);
  return D;
}
