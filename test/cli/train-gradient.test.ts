/**
 * `adasde train --gradient` on real CLI runs (a small EDM-preconditioned conv denoiser and a
 * small float32 feature network, both ONNX):
 *   - hybrid and forward mode train the same coefficients: the first batch's losses agree to
 *     float rounding, the final coefficients to the finite differences' accuracy;
 *   - the hybrid run sends the rows gradient-plan.ts counts (forward and VJP), fewer than
 *     forward mode, and records its split in training_options.json and log.txt;
 *   - auto falls back to forward mode where there is no VJP graph, saying why; hybrid refuses
 *     there with one line and exit 2, as do --reverse_from values that cannot apply;
 *   - a resumed hybrid run keeps its split; a run recorded before --gradient existed resumes in
 *     forward mode.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { loadPredictor } from '../../src/config/predictor.js';
import { latestSnapshot } from '../../src/io/runs.js';
import { saveModel } from '../../src/onnx/builder.js';
import { hybridCost } from '../../src/train/gradient-plan.js';
import { buildConvDenoiserModel, buildFeatureModel } from '../support/models.js';
import { makeModelDir } from './sample-fixture.js';
import { captureStderr, repoRoot } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'adasde-grad-'));
after(() => (process.env.KEEP ? console.log(dir) : rmSync(dir, { recursive: true, force: true })));
const model = join(dir, 'conv.onnx');
saveModel(buildConvDenoiserModel({ resolution: 8, width: 16, depth: 1 }), model);
const detector = join(dir, 'features.onnx');
saveModel(buildFeatureModel({ dim: 16, size: 8 }), detector);

/** Exit code and stderr lines of an in-process CLI run. */
async function stderrOf(body: () => Promise<number>): Promise<{ code: number; lines: string[] }> {
  const { value, lines } = await captureStderr(body);
  return { code: value, lines };
}

const N = 5;
const B = 8;
const train = (outdir: string, ...extra: string[]) =>
  main(['node', 'adasde', 'train', '--model', model, '--detector', detector, '--outdir', outdir, '--num_steps', String(N), '--M', '2', '--total_kimg', '0.024', '--batch', String(B),
    '--seed', '3', '--lr', '0.05', '--gamma', '0.02', '--schedule_type', 'time_uniform', '--schedule_rho', '1', '--tick', '0.016', '--snap', '1', '--teacher_cache', 'none', '--quiet', ...extra]);
const runDirOf = (outdir: string) => join(outdir, readdirSync(outdir).find((d) => /^\d{5}-/.test(d))!);
const stats = (run: string) => readFileSync(join(run, 'stats.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { batches: number; model_rows: { teacher: number; student: number; student_vjp: number } });
const losses = (run: string, batch: number) => [...readFileSync(join(run, 'log.txt'), 'utf8').matchAll(new RegExp(`^batch ${batch} step \\d+ loss (\\S+)`, 'gm'))].map((m) => Number(m[1]));
const resolved = (run: string) => (JSON.parse(readFileSync(join(run, 'training_options.json'), 'utf8')) as { resolved: { gradient: { mode: string; reverse_from?: number } } }).resolved.gradient;

test('hybrid and forward gradients train the same coefficients; hybrid sends the rows the plan counts', async () => {
  assert.equal(await train(join(dir, 'fwd'), '--gradient', 'forward'), 0);
  assert.equal(await train(join(dir, 'hyb'), '--gradient', 'hybrid', '--reverse_from', '1'), 0);
  const fwd = runDirOf(join(dir, 'fwd'));
  const hyb = runDirOf(join(dir, 'hyb'));
  assert.deepEqual(resolved(fwd), { mode: 'forward', why: '--gradient forward' });
  assert.equal(resolved(hyb).mode, 'hybrid');
  assert.equal(resolved(hyb).reverse_from, 1);
  assert.match(readFileSync(join(hyb, 'log.txt'), 'utf8'), /^gradient: hybrid, forward tangents before interval 1, reverse mode from it/m);

  // Same trajectories, same teacher: the first losses are equal; the later ones follow Adam
  // steps on gradients that agree to the finite differences' accuracy.
  const [lf, lh] = [losses(fwd, 1), losses(hyb, 1)];
  assert.equal(lf.length, N - 1);
  lf.forEach((v, i) => assert.ok(Math.abs(v - lh[i]!) <= 1e-3 * Math.abs(v), `batch 1 step ${i}: ${v} vs ${lh[i]}`));
  const pf = loadPredictor(latestSnapshot(fwd)!).params;
  const ph = loadPredictor(latestSnapshot(hyb)!).params;
  for (const key of ['r', 'scale_dir', 'scale_time', 'gamma'] as const) {
    const a = (pf as Record<string, number[][]>)[key]!.flat();
    const b = (ph as Record<string, number[][]>)[key]!.flat();
    a.forEach((v, q) => assert.ok(Math.abs(v - b[q]!) <= 2e-3 * Math.max(1, Math.abs(v)), `${key}[${q}]: forward ${v}, hybrid ${b[q]}`));
  }
  // Rows: batches x B x the plan's per-trajectory counts (bounds as the flags: scale_dir 0.05 default).
  const shape = { intervals: N - 1, numPoints: 1, afs: true, bounds: { scaleDir: 0.05, scaleTime: 0.2, gamma: 0.02, gammaMin: 2e-4, fcn: false } };
  const sf = stats(fwd).at(-1)!;
  const sh = stats(hyb).at(-1)!;
  const cost = hybridCost(shape, 1, 3);
  assert.equal(sh.model_rows.student, sh.batches * B * (cost.forwardRows + cost.vjpRows));
  assert.equal(sh.model_rows.student_vjp, sh.batches * B * cost.vjpRows);
  assert.equal(sf.model_rows.student, sf.batches * B * hybridCost(shape, N - 1, 3).forwardRows);
  assert.equal(sf.model_rows.student_vjp, 0);
  assert.equal(sh.model_rows.teacher, sf.model_rows.teacher);

  // Resumed with a longer run, the hybrid run keeps its recorded split.
  assert.equal(await train(join(dir, 'hyb'), '--resume', hyb, '--total_kimg', '0.032'), 0);
  const log = readFileSync(join(hyb, 'log.txt'), 'utf8');
  assert.equal([...log.matchAll(/^gradient: hybrid, forward tangents before interval 1,/gm)].length, 2);
  assert.ok(stats(hyb).at(-1)!.model_rows.student_vjp > 0);
});

test('a run recorded before --gradient existed resumes in forward mode', async () => {
  assert.equal(await train(join(dir, 'old'), '--gradient', 'forward'), 0);
  const run = runDirOf(join(dir, 'old'));
  const file = join(run, 'training_options.json');
  const rec = JSON.parse(readFileSync(file, 'utf8')) as { options: Record<string, unknown>; resolved: Record<string, unknown> };
  delete rec.options['gradient'];
  delete rec.resolved['gradient'];
  writeFileSync(file, JSON.stringify(rec, null, 2));
  assert.equal(await train(join(dir, 'old'), '--resume', run, '--total_kimg', '0.032'), 0);
  assert.match(readFileSync(join(run, 'log.txt'), 'utf8'), /^gradient: forward mode \(the run began before reverse mode existed\)$/m);
  assert.equal(stats(run).at(-1)!.model_rows.student_vjp, 0);
});

test('auto falls back to forward mode where no VJP graph can be built; hybrid and bad --reverse_from refuse in one line', async () => {
  // The mixture test model computes in float64 inside its graph, which the transform refuses.
  const { dir: gdir, model: gmm } = makeModelDir();
  const run = (outdir: string, ...extra: string[]) =>
    main(['node', 'adasde', 'train', '--model', gmm, '--outdir', outdir, '--num_steps', '4', '--M', '1', '--total_kimg', '0.008', '--batch', '8', '--seed', '1', '--teacher_cache', 'none', '--quiet', ...extra]);
  const auto = await stderrOf(() => run(join(gdir, 'auto')));
  assert.equal(auto.code, 0, auto.lines.join('\n'));
  const log = readFileSync(join(runDirOf(join(gdir, 'auto')), 'log.txt'), 'utf8');
  const why = /^gradient: forward mode \(auto: (.+)\)$/m.exec(log);
  assert.ok(why, log);
  assert.match(why[1]!, /gmm\.onnx: node '.+' \(Cast to float64\) is on a differentiated path; the gradient transform needs a float32 denoiser/);
  // With a detector, auto's forward mode still takes the feature loss through its VJP graph;
  // --gradient forward differentiates it by finite differences (a perturbed copy per tangent).
  assert.equal(await run(join(gdir, 'auto-det'), '--detector', detector), 0);
  assert.equal(await run(join(gdir, 'fwd-det'), '--detector', detector, '--gradient', 'forward'), 0);
  const autoDet = runDirOf(join(gdir, 'auto-det'));
  assert.match(readFileSync(join(autoDet, 'log.txt'), 'utf8'), /^gradient: forward mode \(auto: .+\); the final-interval feature loss in reverse mode through .*features\.vjp-8x8\.onnx$/m);
  assert.equal((resolved(autoDet) as { feature_loss?: string }).feature_loss, 'reverse');
  const detRows = (r: string) => (stats(r).at(-1)!.model_rows as unknown as { detector: number }).detector;
  assert.ok(detRows(autoDet) < detRows(runDirOf(join(gdir, 'fwd-det'))), `${detRows(autoDet)} detector rows vs ${detRows(runDirOf(join(gdir, 'fwd-det')))}`);
  const hybrid = await stderrOf(() => run(join(gdir, 'hyb'), '--gradient', 'hybrid'));
  assert.equal(hybrid.code, 2);
  assert.equal(hybrid.lines.length, 1, hybrid.lines.join('\n'));
  assert.match(hybrid.lines[0]!, /--gradient hybrid: /);
  for (const [extra, msg] of [
    [['--reverse_from', '3'], /--reverse_from 3: num_steps 4 has intervals 0 to 2/],
    [['--gradient', 'forward', '--reverse_from', '1'], /--reverse_from applies to hybrid gradients/],
    [['--gradient', 'sideways'], /--gradient/],
  ] as const) {
    const r = await stderrOf(() => run(join(gdir, 'bad'), ...extra));
    assert.equal(r.code, 2, extra.join(' '));
    assert.equal(r.lines.length, 1, r.lines.join('\n'));
    assert.match(r.lines[0]!, msg);
  }
  rmSync(gdir, { recursive: true, force: true });
});

test('latent models: auto takes the hybrid through a KL decoder with text states and CFG, and through a VQ decoder (straight through its quantiser)', async () => {
  const FIX = join(repoRoot, 'test', 'fixtures', 'export');
  const det16 = join(dir, 'features16.onnx');
  saveModel(buildFeatureModel({ dim: 16, size: 16, seed: 3 }), det16);
  const prompts = join(dir, 'prompts.txt');
  writeFileSync(prompts, 'a cat\na red car\n');
  const copyFamily = (fam: string) => {
    const to = join(dir, fam);
    cpSync(join(FIX, fam), to, { recursive: true });
    return join(to, 'denoiser.onnx');
  };
  const run = (m: string, outdir: string, ...extra: string[]) =>
    main(['node', 'adasde', 'train', '--model', m, '--detector', det16, '--outdir', outdir, '--num_steps', '4', '--M', '1', '--total_kimg', '0.008', '--batch', '4', '--seed', '2', '--teacher_cache', 'none', '--quiet', ...extra]);
  const sd = copyFamily('sd');
  assert.equal(await run(sd, join(dir, 'sd'), '--prompt_path', prompts, '--guidance_type', 'cfg', '--guidance_rate', '2'), 0);
  const sdRun = runDirOf(join(dir, 'sd'));
  const g = resolved(sdRun) as { mode: string; decoder_vjp_graph?: string; detector_vjp_graph?: string };
  assert.equal(g.mode, 'hybrid');
  assert.match(g.decoder_vjp_graph ?? '', /denoiser\.decoder\.vjp-4x8x8\.onnx$/);
  assert.match(g.detector_vjp_graph ?? '', /features16\.vjp-16x16\.onnx$/);
  assert.match(readFileSync(join(sdRun, 'log.txt'), 'utf8'), /^gradient: hybrid, .*; decoder VJP graph .*denoiser\.decoder\.vjp-4x8x8\.onnx/m);
  const last = stats(sdRun).at(-1)!;
  assert.ok(last.model_rows.student_vjp > 0);
  assert.ok(stats(sdRun).every((s) => (s as unknown as { loss: number[] }).loss.every(Number.isFinite)));

  // The VQ decoder (LDM): reverse mode through its quantiser by the straight-through estimator.
  const ldm = copyFamily('ldm');
  assert.equal(await run(ldm, join(dir, 'ldm')), 0);
  const ldmRun = runDirOf(join(dir, 'ldm'));
  const lg = resolved(ldmRun) as { mode: string; decoder_vjp_graph?: string };
  assert.equal(lg.mode, 'hybrid', readFileSync(join(ldmRun, 'log.txt'), 'utf8'));
  assert.match(lg.decoder_vjp_graph ?? '', /denoiser\.decoder\.vjp-3x8x8\.onnx$/);
  assert.ok(stats(ldmRun).at(-1)!.model_rows.student_vjp > 0);
});
