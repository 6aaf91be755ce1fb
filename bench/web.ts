/**
 * The browser page in headless Chromium (issue 16): session creation and images/s of the
 * bundled network's fused AdaSDE samplers (5 and 9 NFE) with onnxruntime-web WASM, served by
 * `adasde web`'s server, in both layouts (`adasde fuse --subgraphs False|True`; the subgraph
 * one with each `--optimize` level) at the level the page picks for the layout or at the given
 * onnxruntime optimisation levels; the page's runtime start-up, session creation and time to
 * ready are reported apart. Optionally a screenshot of the page (the README's picture).
 *
 *   npm run build && node dist/bench/web.js [--seeds 0-31] [--batch 8]
 *     [--five exp/00013-...-tiny] [--nine exp/00008-...-tiny] [--screenshot web/screenshot.png]
 *     [--layouts inline,subgraphs,subgraphs-none,subgraphs-extended] [--opts page,all,basic,disabled]
 *
 * Debian's chromium (/usr/bin/chromium) driven by playwright-core. Prints a Markdown table
 * (bench/RESULTS.md, "Fused samplers").
 */
import { mkdtempSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { resolveFuse, runFuse } from '../src/app/fuse.js';
import { resolveWeb, startWeb } from '../src/app/web.js';
import { fuseOptionTable, type FuseOptions } from '../src/config/fuse.js';
import { parseOptions } from '../src/config/options.js';
import { benchArgs } from './args.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { fail, str, has } = benchArgs('web', ['seeds', 'batch', 'five', 'nine', 'screenshot', 'layouts', 'opts']);
const seeds = str('seeds', '0-31');
const batch = Number(str('batch', '8'));
const screenshot = has('screenshot') ? resolve(str('screenshot', '')) : undefined;
const dir = mkdtempSync(join(tmpdir(), 'adasde-bench-web-'));
const model = join(root, 'models', 'cifar10-tiny-edm.onnx');

/** A --layouts entry: inline, subgraphs (`--optimize auto`, i.e. basic) or subgraphs-LEVEL. */
interface Layout {
  name: string;
  subgraphs: boolean;
  optimize: string;
}
// Read before any measurement, so a bad entry fails at once rather than minutes in.
const layouts: Layout[] = str('layouts', 'inline,subgraphs,subgraphs-none,subgraphs-extended')
  .split(',')
  .map((name) => {
    const subgraphs = name.startsWith('subgraphs');
    const optimize = name.startsWith('subgraphs-') ? name.slice('subgraphs-'.length) : 'auto';
    if (!['auto', 'none', 'basic', 'extended'].includes(optimize) || (!subgraphs && name !== 'inline')) fail(`--layouts: ${name} is not inline, subgraphs or subgraphs-none|basic|extended`);
    return { name, subgraphs, optimize };
  });

async function fuse(predictor: string, name: string, layout: Layout): Promise<string> {
  const out = join(dir, `${name}-${layout.name}.onnx`);
  await runFuse(resolveFuse({ ...parseOptions(fuseOptionTable, { quiet: true }), model, predictorPath: resolve(predictor), out, subgraphs: layout.subgraphs, optimize: layout.optimize } as FuseOptions));
  return out;
}
// page: the level the page picks for the file's layout (no opt= in the URL).
const opts = str('opts', 'page').split(',');

interface View {
  status: string;
  error?: string;
  threads?: number;
  sessionMs?: number;
  runtimeMs?: number;
  readyMs?: number;
  optimization?: string;
  lastRun?: { imagesPerSecond: number; seconds: number };
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run'],
});

async function measure(sampler: string, opt: string, shot?: string): Promise<View> {
  const srv = await startWeb(resolveWeb({ sampler, host: '127.0.0.1', port: 0 }));
  try {
    const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
    await page.goto(`${srv.url}?seeds=${seeds}&batch=${batch}&ep=wasm${opt === 'page' ? '' : `&opt=${opt}`}&run=1`);
    await page.waitForFunction(() => ['done', 'error'].includes((globalThis as unknown as { adasdePage?: View }).adasdePage?.status ?? ''), undefined, { timeout: 1_200_000, polling: 500 });
    const view = await page.evaluate(() => {
      const s = (globalThis as unknown as { adasdePage: View }).adasdePage;
      return { status: s.status, error: s.error, threads: s.threads, sessionMs: s.sessionMs, runtimeMs: s.runtimeMs, readyMs: s.readyMs, optimization: s.optimization, lastRun: s.lastRun };
    });
    if (view.status !== 'done') fail(`page error: ${view.error}`);
    if (shot) await page.screenshot({ path: shot, fullPage: true });
    await page.close();
    return view;
  } finally {
    await srv.close();
  }
}

console.log(`bench/web: ${cpus()[0]?.model ?? 'cpu'}, ${availableParallelism()} cores, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}; headless Chromium, onnxruntime-web WASM, seeds ${seeds}, batch ${batch}\n`);
console.log('| fused sampler | layout | optimisation at load | WASM threads | runtime up | session creation | ready | images/s |');
console.log('|---|---|---|---:|---:|---:|---:|---:|');
for (const layout of layouts) {
  for (const [label, predictor] of [['AdaSDE 5 NFE', str('five', join(root, 'exp', '00013-cifar10-4-5-adasde-dpm-3-uni1.0-afs-tiny'))], ['AdaSDE 9 NFE', str('nine', join(root, 'exp', '00008-cifar10-6-9-adasde-dpm-2-uni1.0-afs-tiny'))]] as const) {
    const file = await fuse(predictor, label.replace(/\W+/g, '-'), layout);
    for (const opt of opts) {
      const shot = screenshot && layout.name === 'subgraphs' && label.includes('5') && opt === 'page' ? screenshot : undefined;
      const v = await measure(file, opt, shot);
      const sec = (ms?: number) => `${((ms ?? 0) / 1000).toFixed(1)} s`;
      console.log(`| ${label} | ${layout.name} | ${v.optimization} | ${v.threads} | ${sec(v.runtimeMs)} | ${sec(v.sessionMs)} | ${sec(v.readyMs)} | ${v.lastRun?.imagesPerSecond.toFixed(2)} |`);
    }
  }
}
await browser.close();
