/**
 * The train plan (src/app/train.ts) resolved in-process from flags and a model's metadata:
 * the run folder it names (EDM's numbering and the reference's run name), the record
 * `--dry-run` prints, and the refusals, all before anything is written.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveResume, resolveTrain, type TrainModelInfo } from '../../src/app/train.js';
import { UsageError } from '../../src/core/errors.js';
import { parseOptions } from '../../src/config/options.js';
import { trainTable, type TrainOptions } from '../../src/config/train.js';
import type { DenoiserMetadata } from '../../src/runtime/model.js';

const root = mkdtempSync(join(tmpdir(), 'adasde-app-train-'));
const meta: DenoiserMetadata = { sigmaMin: 0.002, sigmaMax: 80, imgResolution: 8, imgChannels: 3, labelDim: 0, family: 'edm', datasetName: 'gmm', raw: {} };
const model: TrainModelInfo = { path: join(root, 'gmm.onnx'), meta, sampleShape: [3, 8, 8], hasCondition: false };
const single = { rank: 0, world: 1, localRank: 0 };
const flags = (raw: Record<string, unknown>): TrainOptions => parseOptions(trainTable, raw);
const plan = (o: TrainOptions, dist = single) => resolveTrain(o, model, { modelFile: model.path, detectorFile: undefined, resumed: undefined, extended: false, dist, device: 'cpu' });

test('a new run: the next number in --outdir and the reference name, recorded as --dry-run prints it; nothing written', () => {
  const outdir = join(root, 'exp');
  mkdirSync(join(outdir, '00004-older'), { recursive: true });
  const o = flags({ outdir, num_steps: '4', num_points: '1', M: '3', seed: '7', schedule_type: 'time_uniform', schedule_rho: '1', desc: 'x' });
  const { opts, resumed } = resolveResume(o, new Set());
  assert.equal(resumed, undefined);
  assert.deepEqual(opts, o);
  const p = plan(opts);
  // <dataset>-<num_steps>-<nfe>-adasde-<teacher>-<M>-<schedule>-afs-<desc>; NFE (1 + K)(N - 1) - 1 with AFS.
  assert.equal(p.runDir, join(outdir, '00005-gmm-4-5-adasde-dpm-3-uni1.0-afs-x'));
  assert.equal(p.record.resolved.run_dir, p.runDir);
  assert.equal(p.record.resolved.student_nfe, 5);
  assert.equal(p.record.resolved.seed, 7);
  assert.equal(p.record.resolved.dataset, 'gmm');
  assert.deepEqual(p.record.resolved.init, { kind: 'random', file: null, note: null });
  assert.equal(p.record.options.num_steps, 4);
  assert.equal(p.record.options.model, model.path);
  // Ten kimg of 512-trajectory batches (the defaults): ceil(10000 / 512).
  assert.equal(p.record.resolved.total_batches, 20);
  assert.ok(!existsSync(p.runDir), 'resolving claims no folder');
});

test('CFG doubles the evaluations in the name; no seed draws one and records it; an unconditional model refuses cfg', () => {
  const o = flags({ outdir: join(root, 'cfg'), guidance_type: 'cfg', guidance_rate: '2' });
  assert.throws(() => plan(o), (e: unknown) => e instanceof UsageError && /^--guidance_type cfg: .*gmm\.onnx is unconditional/.test(e.message));
  const labelled: TrainModelInfo = { ...model, meta: { ...meta, labelDim: 10 } };
  const p = resolveTrain(o, labelled, { modelFile: model.path, detectorFile: undefined, resumed: undefined, extended: false, dist: single, device: 'cpu' });
  assert.match(p.runDir, /00000-gmm-4-10-adasde-dpm-3-uni7\.0-afs$/);
  assert.equal(p.opts.seed, p.seed);
  assert.ok(Number.isInteger(p.seed) && p.seed >= 0);
});

test('refusals name their flag before anything is written', () => {
  const usage = (re: RegExp) => (e: unknown) => e instanceof UsageError && re.test(e.message);
  assert.throws(() => plan(flags({ outdir: join(root, 'd'), schedule_type: 'discrete' })), usage(/^--schedule_type discrete needs a model with adasde\.alphas_cumprod$/));
  assert.throws(() => plan(flags({ outdir: join(root, 'd'), batch: '2' }), { rank: 0, world: 4, localRank: 0 }), usage(/^--batch 2 is smaller than the number of processes \(4\)$/));
  assert.throws(() => plan(flags({ outdir: join(root, 'd'), init: '3' })), usage(/^--init: no experiment 00003-\*/));
  assert.throws(() => resolveResume(flags({ outdir: join(root, 'd'), resume: '0' }), new Set(['resume'])), usage(/^--resume: no single run 00000-\*/));
  assert.ok(!existsSync(join(root, 'd')));
});
