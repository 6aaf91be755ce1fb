/**
 * The browser page (issue 16) in headless Chromium: `adasde web` (a real process) serves the
 * page with the bundled network's fused AdaSDE 5-NFE sampler (in both layouts: the subgraph one
 * `adasde web` builds by default, and the inline one), the page samples seeds 0-7
 * with onnxruntime-web (WASM), and its canvas pixels equal `adasde sample`'s images of the
 * same seeds on at least 99.9% of the pixels, off by at most 1 elsewhere. Debian's chromium
 * driven by playwright-core (no browser download); where /usr/bin/chromium is missing the
 * test is skipped and says why (.ci/run installs it).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { resolveFuse, runFuse } from '../../src/app/fuse.js';
import { fuseOptionTable, type FuseOptions } from '../../src/config/fuse.js';
import { parseOptions } from '../../src/config/options.js';
import { quantizeBatch } from '../../src/io/png.js';
import { loadDenoiserModel } from '../../src/runtime/model.js';
import { sampleBatch } from '../../src/sample/pipeline.js';
import { repoRoot } from '../helpers.js';
import { startWebProcess } from './server.js';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'];

interface PageView {
  status: string;
  error?: string;
  backend?: string;
  sessionMs?: number;
  runtimeMs?: number;
  readyMs?: number;
  optimization?: string;
  lastRun?: { imagesPerSecond: number; seconds: number };
}

test(
  'the page samples seeds 0-7 in headless Chromium with the pixels of adasde sample',
  { timeout: 600_000, skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install chromium); the page cannot be driven here` },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'adasde-page-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    // Both layouts: the subgraph one `adasde web` serves by default (optimised at fuse time,
    // loaded with optimisations off) and the inline one (optimised at load).
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
    t.after(() => browser.close());
    const seeds = [0, 1, 2, 3, 4, 5, 6, 7];
    let want: Uint8Array | undefined;
    for (const subgraphs of [true, false]) {
      const sampler = join(dir, `sampler-${subgraphs ? 'subgraphs' : 'inline'}.onnx`);
      const flags = { ...parseOptions(fuseOptionTable, { quiet: true }), model: join(repoRoot, 'models', 'cifar10-tiny-edm.onnx'), predictorPath: join(repoRoot, 'exp', '00013-cifar10-4-5-adasde-dpm-3-uni1.0-afs-tiny'), out: sampler, subgraphs } as FuseOptions;
      const plan = resolveFuse(flags);
      await runFuse(plan);
      const [C, H, W] = plan.sampleShape;
      if (!want) {
        // The host loop's images of the same seeds (float64 states, the PNG quantisation).
        const model = await loadDenoiserModel(plan.modelFile);
        const x = await sampleBatch({ solver: plan.solver.solver, options: plan.solver.options, tSteps: plan.solver.tSteps, sampleShape: plan.sampleShape, labelDim: 0 }, model.denoise, { seeds });
        await model.dispose();
        want = quantizeBatch(x, seeds.length, C, H, W);
      }
      const host = want;

      const web = await startWebProcess(['--sampler', sampler, '--port', '0', '--quiet']);
      t.after(() => web.stop());
      const page = await browser.newPage();
      const logs: string[] = [];
      page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
      await page.goto(`${web.url}?seeds=0-7&batch=4&ep=wasm&run=1`);
      await page.waitForFunction(() => ['done', 'error'].includes((globalThis as unknown as { adasdePage?: PageView }).adasdePage?.status ?? ''), undefined, { timeout: 540_000, polling: 250 });
      const view = await page.evaluate(() => {
        const s = (globalThis as unknown as { adasdePage: PageView & { pixels(i: number): number[] } }).adasdePage;
        return { status: s.status, error: s.error, backend: s.backend, sessionMs: s.sessionMs, runtimeMs: s.runtimeMs, readyMs: s.readyMs, optimization: s.optimization, lastRun: s.lastRun, pixels: [0, 1, 2, 3, 4, 5, 6, 7].map((i) => s.pixels(i)) };
      });
      await page.close();
      const what = subgraphs ? 'subgraph layout' : 'inline layout';
      assert.equal(view.status, 'done', `${what}: page error: ${view.error}\n${logs.join('\n')}`);
      assert.equal(view.backend, 'wasm');
      // The level follows the layout unless the URL says otherwise.
      assert.equal(view.optimization, subgraphs ? 'disabled' : 'all');
      assert.ok(view.runtimeMs !== undefined && view.readyMs !== undefined && view.runtimeMs <= view.readyMs, `${what}: runtime start-up ${view.runtimeMs} ms, ready ${view.readyMs} ms`);
      let differing = 0;
      let total = 0;
      view.pixels.forEach((rgb, b) => {
        assert.equal(rgb.length, H * W * 3);
        for (let p = 0; p < H * W; p++) {
          for (let c = 0; c < 3; c++) {
            const d = Math.abs(rgb[p * 3 + c]! - host[b * C * H * W + c * H * W + p]!);
            assert.ok(d <= 1, `${what}, seed ${b}: pixel ${p} channel ${c} differs by ${d}`);
            if (d) differing++;
            total++;
          }
        }
      });
      assert.ok(differing <= 0.001 * total, `${what}: ${differing} of ${total} pixels differ`);
      t.diagnostic(`page, ${what}: runtime up at ${view.runtimeMs?.toFixed(0)} ms, session ${view.sessionMs?.toFixed(0)} ms (${view.optimization}), ready at ${view.readyMs?.toFixed(0)} ms, ${view.lastRun?.imagesPerSecond.toFixed(2)} images/s, ${differing} of ${total} pixels differ by 1`);
    }
  },
);
