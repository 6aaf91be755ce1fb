/**
 * `adasde train` on a text-conditional latent model (test/text/text-model-fixture.ts: a
 * prompt-steered Gaussian mixture over latents, a tiny CLIP text encoder and tokenizer, and a
 * decoder to images), with --prompt_path and a feature network on the decoded images: the
 * conditioning reaches the model, the run is deterministic, and bad prompt flags are one line.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { loadPredictor } from '../../src/config/predictor.js';
import { latestSnapshot } from '../../src/io/runs.js';
import { saveModel } from '../../src/onnx/builder.js';
import { buildFeatureModel } from '../support/models.js';
import { repoRoot } from '../helpers.js';
import { writeTextModel } from '../text/text-model-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'adasde-train-text-'));
const files = writeTextModel(dir);
const detector = join(dir, 'features.onnx');
saveModel(buildFeatureModel({ dim: 16, size: 8, seed: 5 }), detector);
const promptsA = join(dir, 'a.txt');
writeFileSync(promptsA, 'a cat\na dog\n');
const promptsB = join(dir, 'b.csv');
writeFileSync(promptsB, 'id,text\n1,the sea\n2,"a red car, parked"\n');
const bin = resolve(repoRoot, 'bin', 'adasde.js');
const args = (outdir: string, prompts: string) => ['train', '--model', files.model, '--outdir', outdir, '--prompt_path', prompts, '--detector', detector, '--num_steps', '3', '--M', '1', '--total_kimg', '0.024', '--batch', '8', '--seed', '3', '--guidance_type', 'cfg', '--guidance_rate', '2', '--quiet'];
const params = (outdir: string) => loadPredictor(latestSnapshot(join(outdir, readdirSync(outdir)[0]!))!).params;

test('train: text-conditional latent model with --prompt_path, CFG and the feature loss on decoded images', async () => {
  const a1 = join(dir, 'a1');
  const a2 = join(dir, 'a2');
  const b = join(dir, 'b');
  assert.equal(await main(['node', 'adasde', ...args(a1, promptsA)]), 0);
  assert.equal(await main(['node', 'adasde', ...args(a2, promptsA)]), 0);
  assert.equal(await main(['node', 'adasde', ...args(b, promptsB)]), 0);
  assert.deepEqual(params(a2), params(a1), 'same seed and prompts: same coefficients');
  assert.notDeepEqual(params(b), params(a1), 'the prompts reach the model');
});

test('train: prompt flags are checked with one line', () => {
  const run = (...extra: string[]) => spawnSync(process.execPath, [bin, 'train', '--outdir', join(dir, 'bad'), '--quiet', ...extra], { encoding: 'utf8' });
  const noPrompts = run('--model', files.model);
  assert.equal(noPrompts.status, 2);
  assert.match(noPrompts.stderr, /^adasde: error: --prompt_path: .* is text-conditional/);
  const missing = run('--model', files.model, '--prompt_path', join(dir, 'none.txt'));
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /--prompt_path: .*none\.txt does not exist/);
});
