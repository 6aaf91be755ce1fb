/**
 * Classifier-free guidance when training a class-conditional model (the exported ADM fixture):
 * teacher and student are the guided D_u + w (D_c - D_u) with all-zero labels for D_u, as
 * `adasde sample` guides. One training batch with `cfgLabels` and the model opened with
 * --guidance_rate equals, to float rounding, the same batch over a hand-written guided denoiser
 * of the unguided model in forward mode, and the hybrid (two VJP rows per sample) agrees with it
 * to the central differences' own error (2-4e-3 here, as without guidance: ADM's in-graph clamp
 * has kinks that larger steps straddle, and float32 rounding limits smaller ones); the
 * unguided batch differs. Through the CLI: the run records and uses the guidance, and
 * an unconditional model refuses cfg in one line.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { main } from '../../src/cli/main.js';
import type { Denoiser } from '../../src/core/denoiser.js';
import { loadDenoiserModel } from '../../src/runtime/model.js';
import { loadDenoiserVjp } from '../../src/runtime/vjp.js';
import { initState, trainBatch } from '../../src/train/loop.js';
import { captureStderr, repoRoot } from '../helpers.js';
import { assertGradientsMatch, recordingSetup } from '../support/train-setup.js';
import { makeModelDir } from '../cli/sample-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'adasde-cfg-labels-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, 'adm.onnx');
copyFileSync(join(repoRoot, 'test', 'fixtures', 'export', 'adm', 'denoiser.onnx'), file);

test('class-conditional CFG: training sees the guided denoiser with zero labels as its unconditional half', async (t) => {
  const w = 3;
  const guidedModel = await loadDenoiserModel(file, { threads: 1, guidanceRate: w });
  const plain = await loadDenoiserModel(file, { threads: 1 });
  const vjpGuided = await loadDenoiserVjp(file, { threads: 1, guidanceRate: w });
  try {
    const L = plain.meta.labelDim;
    const byHand: Denoiser = async (req) => {
      const c = req.cond!;
      const dc = await plain.denoise({ ...req, out: undefined, cond: { classLabels: c.classLabels, labelDim: L } });
      const du = await plain.denoise({ ...req, out: undefined, cond: { classLabels: new Float32Array(req.batch * L), labelDim: L } });
      return Float64Array.from(dc, (v, k) => du[k]! + w * (v - du[k]!));
    };
    const N = 4;
    const base = {
      sampleShape: plain.sampleShape,
      labelDim: L,
      schedule: { numSteps: N, sigmaMin: plain.meta.sigmaMin, sigmaMax: plain.meta.sigmaMax, type: 'polynomial' as const, rho: 7 },
      afs: true,
      bounds: { scaleDir: 0.05, scaleTime: 0.2, gamma: 0.01, gammaMin: 2e-4, fcn: false },
      batch: 3,
      seed: 2,
      // ADM clamps D to [-1, 1] in its graph: small central steps straddle fewer of its kinks.
      jvpRelStep: 1e-4,
      jvpScheme: 'central' as const,
    };
    const run = async (denoise: Denoiser, cfgLabels: boolean, reverseFrom?: number) => {
      const { setup, grads } = recordingSetup({ ...base, denoise, cfgLabels, reverseFrom, vjp: vjpGuided.vjp });
      await trainBatch(setup, initState(4, N, 1));
      return grads;
    };
    const ref = await run(byHand, false);
    assertGradientsMatch(t, ref, await run(guidedModel.denoise, true), 1e-6, 'forward mode');
    assertGradientsMatch(t, ref, await run(guidedModel.denoise, true, 1), 1e-2, 'hybrid k=1');
    // The same comparison without guidance, where the VJP graph runs once per row.
    const vjpPlain = await loadDenoiserVjp(file, { threads: 1 });
    const { setup: s0, grads: r0 } = recordingSetup({ ...base, denoise: plain.denoise });
    await trainBatch(s0, initState(4, N, 1));
    const { setup: s1, grads: r1 } = recordingSetup({ ...base, denoise: plain.denoise, reverseFrom: 1, vjp: vjpPlain.vjp });
    await trainBatch(s1, initState(4, N, 1));
    await vjpPlain.dispose();
    assertGradientsMatch(t, r0, r1, 1e-2, 'unguided hybrid k=1');
    const unguided = await run(guidedModel.denoise, false);
    assert.ok(Math.abs(unguided[0]![0]! - ref[0]![0]!) > 1e-3 * Math.abs(ref[0]![0]!), 'without cfgLabels the guidance is not applied');
  } finally {
    await vjpGuided.dispose();
    await plain.dispose();
    await guidedModel.dispose();
  }
});

test('train --guidance_type cfg: a class-conditional run trains guided (hybrid), an unconditional model refuses in one line', async () => {
  const run = (model: string, outdir: string, ...extra: string[]) =>
    captureStderr(() => main(['node', 'adasde', 'train', '--model', model, '--outdir', outdir, '--num_steps', '3', '--M', '1', '--total_kimg', '0.008', '--batch', '4', '--seed', '1', '--teacher_cache', 'none', '--quiet', ...extra]));
  const firstLoss = (outdir: string) => {
    const runDir = join(outdir, readdirSync(outdir).find((d) => /^\d{5}-/.test(d))!);
    const log = readFileSync(join(runDir, 'log.txt'), 'utf8');
    return { loss: Number(/^batch 1 step 0 loss (\S+)/m.exec(log)![1]), log };
  };
  const guided = await run(file, join(dir, 'guided'), '--guidance_type', 'cfg', '--guidance_rate', '3');
  assert.equal(guided.value, 0, guided.lines.join('\n'));
  const plainRun = await run(file, join(dir, 'plain'));
  assert.equal(plainRun.value, 0, plainRun.lines.join('\n'));
  const g = firstLoss(join(dir, 'guided'));
  assert.match(g.log, /^gradient: hybrid/m);
  assert.notEqual(g.loss, firstLoss(join(dir, 'plain')).loss);
  const { dir: gdir, model: uncond } = makeModelDir();
  const bad = await run(uncond, join(gdir, 'out'), '--guidance_type', 'cfg', '--guidance_rate', '2');
  assert.equal(bad.value, 2);
  assert.equal(bad.lines.length, 1, bad.lines.join('\n'));
  assert.match(bad.lines[0]!, /--guidance_type cfg: .*gmm\.onnx is unconditional/);
  rmSync(gdir, { recursive: true, force: true });
});
