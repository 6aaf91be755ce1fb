/**
 * The page: loads a fused sampler (one ONNX graph from latents and noise to uint8 images,
 * written by `adasde fuse`) with onnxruntime-web, samples a seed range in batches and draws
 * the images in a grid, with the session-creation time and images/s.
 *
 * URL parameters (all optional): sampler (default sampler.onnx, beside the page), seeds
 * (0-63), batch (16), ep (auto, wasm or webgpu), threads (WASM threads; default as many as
 * the browser allows up to 4 where the page is cross-origin isolated, else 1), run (1: sample
 * as soon as the session is ready), opt (onnxruntime's graph optimisation level: all, basic or
 * disabled; default disabled for a sampler in the subgraph layout, which `adasde fuse` has
 * already optimised, else all). window.adasdePage exposes the state for scripts (the
 * headless-browser test, the screenshot tool).
 */
import * as ort from 'onnxruntime-web/webgpu';
import { checkSeedList } from '../src/config/common.js';
import { encodeModel } from '../src/onnx/proto.js';
import { feedsFor, readSamplerInfo, type SamplerInfo } from './sampler.js';

type Backend = 'wasm' | 'webgpu';
type OptimizationLevel = 'all' | 'basic' | 'disabled';

interface RunStats {
  seeds: number[];
  seconds: number;
  imagesPerSecond: number;
  batch: number;
}

interface PageState {
  status: 'loading' | 'ready' | 'sampling' | 'done' | 'error';
  error?: string;
  info?: SamplerInfo;
  backend?: Backend;
  threads?: number;
  /** Milliseconds in InferenceSession.create of the sampler (the bytes fetched, the runtime started). */
  sessionMs?: number;
  /** Milliseconds until onnxruntime-web's WASM runtime was up (compiled, threads started), from page start. */
  runtimeMs?: number;
  /** Milliseconds from page start until the sampler's session was ready. */
  readyMs?: number;
  /** The graph optimisation level the session was created with. */
  optimization?: OptimizationLevel;
  lastRun?: RunStats;
  /** The RGB bytes of the i-th image of the last run, read back from the grid canvas ([H, W, 3]). */
  pixels(i: number): number[];
}

declare global {
  interface Window {
    adasdePage: PageState;
  }
}

const GAP = 2;
const params = new URLSearchParams(location.search);
const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page element #${id} is missing`);
  return el as T;
};
const canvas = $<HTMLCanvasElement>('grid');
const ctx2d = canvas.getContext('2d', { willReadFrequently: true });
let tiles: { x: number; y: number }[] = [];

const state: PageState = {
  status: 'loading',
  pixels(i: number): number[] {
    const t = tiles[i];
    const info = state.info;
    if (!t || !info || !ctx2d) throw new Error(`no image ${i} in the grid`);
    const [, h, w] = info.sampleShape;
    const rgba = ctx2d.getImageData(t.x, t.y, w, h).data;
    const out: number[] = [];
    for (let p = 0; p < w * h; p++) out.push(rgba[4 * p]!, rgba[4 * p + 1]!, rgba[4 * p + 2]!);
    return out;
  },
};
window.adasdePage = state;

function fail(e: unknown): void {
  const msg = e instanceof Error ? e.message : String(e);
  state.status = 'error';
  state.error = msg;
  const el = $('error');
  el.textContent = msg;
  el.hidden = false;
  console.error(msg);
}

function clearError(): void {
  $('error').hidden = true;
  delete state.error;
}

async function webgpuAvailable(): Promise<boolean> {
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (!gpu) return false;
  try {
    return (await gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}

/** The backend `ep` asks for: webgpu, or auto where the browser offers an adapter; else wasm. */
async function wantedBackend(ep: string): Promise<Backend> {
  return ep === 'webgpu' || (ep === 'auto' && (await webgpuAvailable())) ? 'webgpu' : 'wasm';
}

function wasmThreads(): number {
  const asked = Number(params.get('threads'));
  if (Number.isInteger(asked) && asked > 0) return crossOriginIsolated ? asked : 1;
  // Threads need SharedArrayBuffer, which browsers give cross-origin isolated pages only.
  return crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
}

/**
 * `opt`: onnxruntime's graph optimisation level, trading session creation against run time.
 * By default `disabled` for the subgraph layout (its evaluations come optimised from `adasde
 * fuse --optimize`; optimising nine If branches here would cost what the layout saves), else `all`.
 */
function optimizationLevel(info: SamplerInfo): OptimizationLevel {
  const v = params.get('opt') ?? (info.layout === 'subgraphs' ? 'disabled' : 'all');
  if (v !== 'all' && v !== 'basic' && v !== 'disabled') throw new Error(`opt=${v}: expected all, basic or disabled`);
  return v;
}

/** Starts onnxruntime-web's WASM runtime through a session of a one-node graph (Identity), then releases it. */
async function startRuntime(): Promise<void> {
  const floatValue = (name: string) => ({ name, type: { elemType: 1, shape: [1] } });
  const tiny = encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'adasde-page',
    producerVersion: '',
    metadataProps: [],
    graph: { name: 'start', node: [{ input: ['a'], output: ['b'], name: 'id', opType: 'Identity', domain: '', attribute: [] }], initializer: [], input: [floatValue('a')], output: [floatValue('b')], valueInfo: [] },
  });
  const s = await ort.InferenceSession.create(tiny, { executionProviders: ['wasm'] });
  await s.release();
  state.runtimeMs = performance.now();
}

let bytes: Uint8Array | undefined;
let session: ort.InferenceSession | undefined;

async function createSession(ep: string): Promise<void> {
  if (!bytes) throw new Error('the sampler is not loaded');
  if (session) await session.release();
  session = undefined;
  const wanted = await wantedBackend(ep);
  if (wanted === 'webgpu' && !(await webgpuAvailable())) throw new Error('ep=webgpu: this browser offers no WebGPU adapter; choose WASM');
  const level = optimizationLevel(state.info!);
  const create = async (backend: Backend): Promise<void> => {
    const t0 = performance.now();
    // The buffer is copied into the runtime's heap; passing a copy keeps ours for a re-create.
    session = await ort.InferenceSession.create(bytes!.slice(), { executionProviders: [backend], graphOptimizationLevel: level });
    state.optimization = level;
    state.sessionMs = performance.now() - t0;
    state.backend = backend;
  };
  try {
    await create(wanted);
  } catch (e) {
    if (wanted !== 'webgpu' || ep === 'webgpu') throw e;
    // auto: a WebGPU adapter that cannot run the graph falls back to WASM.
    console.warn(`WebGPU session failed (${e instanceof Error ? e.message : String(e)}); using WASM`);
    await create('wasm');
  }
  state.threads = state.backend === 'wasm' ? ort.env.wasm.numThreads ?? 1 : 0;
  $('backend').textContent = state.backend === 'wasm' ? `WASM, ${state.threads} thread${state.threads === 1 ? '' : 's'}` : 'WebGPU';
  $('session').textContent = `${state.sessionMs!.toFixed(0)} ms`;
}

function layout(n: number, info: SamplerInfo): void {
  const [, h, w] = info.sampleShape;
  const cols = Math.min(n, 8);
  const rows = Math.ceil(n / cols);
  canvas.width = cols * w + (cols - 1) * GAP;
  canvas.height = rows * h + (rows - 1) * GAP;
  tiles = Array.from({ length: n }, (_, i) => ({ x: (i % cols) * (w + GAP), y: Math.floor(i / cols) * (h + GAP) }));
  ctx2d?.clearRect(0, 0, canvas.width, canvas.height);
}

/** Draws images [n, H, W, C] (uint8, C = 1 or 3) into the tiles from `first` on. */
function draw(images: Uint8Array, n: number, first: number, info: SamplerInfo): void {
  const [c, h, w] = info.sampleShape;
  for (let b = 0; b < n; b++) {
    const img = new ImageData(w, h);
    const base = b * h * w * c;
    for (let p = 0; p < h * w; p++) {
      for (let k = 0; k < 3; k++) img.data[4 * p + k] = images[base + p * c + (c === 3 ? k : 0)]!;
      img.data[4 * p + 3] = 255;
    }
    const t = tiles[first + b]!;
    ctx2d?.putImageData(img, t.x, t.y);
  }
}

async function sample(seedText: string, batch: number): Promise<void> {
  const info = state.info;
  if (!session || !info) throw new Error('the sampler is not loaded');
  const seeds = checkSeedList(seedText);
  if (typeof seeds === 'string') throw new Error(`seeds: ${seeds}`);
  if (seeds.length > 4096) throw new Error(`seeds: ${seeds.length} seeds; the page draws at most 4096`);
  if (!(Number.isInteger(batch) && batch >= 1)) throw new Error(`batch: expected a positive integer, got ${batch}`);
  state.status = 'sampling';
  layout(seeds.length, info);
  $('count').textContent = `0 / ${seeds.length}`;
  const t0 = performance.now();
  for (let i = 0; i < seeds.length; i += batch) {
    const chunk = seeds.slice(i, i + batch);
    const feeds: Record<string, ort.Tensor> = {};
    for (const [name, f] of Object.entries(feedsFor(info, chunk))) feeds[name] = new ort.Tensor('float32', f.data, f.dims);
    const out = await session.run(feeds, ['images']);
    const images = out['images'];
    if (!images || images.type !== 'uint8') throw new Error('the sampler returned no uint8 images');
    draw(images.data as Uint8Array, chunk.length, i, info);
    for (const t of [...Object.values(feeds), ...Object.values(out)]) t.dispose();
    const s = (performance.now() - t0) / 1000;
    $('count').textContent = `${i + chunk.length} / ${seeds.length}`;
    $('rate').textContent = ((i + chunk.length) / s).toFixed(1);
  }
  const seconds = (performance.now() - t0) / 1000;
  state.lastRun = { seeds, seconds, imagesPerSecond: seeds.length / seconds, batch };
  $('count').textContent = `${seeds.length} in ${seconds.toFixed(2)} s`;
  $('rate').textContent = state.lastRun.imagesPerSecond.toFixed(1);
  state.status = 'done';
}

async function start(): Promise<void> {
  const url = params.get('sampler') ?? 'sampler.onnx';
  const seedsInput = $<HTMLInputElement>('seeds');
  const batchInput = $<HTMLInputElement>('batch');
  const epSelect = $<HTMLSelectElement>('ep');
  seedsInput.value = params.get('seeds') ?? seedsInput.value;
  batchInput.value = params.get('batch') ?? batchInput.value;
  epSelect.value = params.get('ep') ?? 'auto';
  ort.env.wasm.numThreads = wasmThreads();

  // The runtime's start-up (compiling its WASM, starting its threads) does not depend on the
  // sampler: it runs while the sampler downloads, on a one-node graph (WASM only; WebGPU
  // starts with the sampler's own session).
  const runtime = wantedBackend(epSelect.value).then((b) => (b === 'wasm' ? startRuntime() : undefined));
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${res.statusText}`);
  bytes = new Uint8Array(await res.arrayBuffer());
  await runtime;
  const info = readSamplerInfo(url, bytes);
  state.info = info;
  const [c, h, w] = info.sampleShape;
  $('about').textContent = `${info.solver}, ${info.nfe} NFE, ${c}×${h}×${w}${info.labelDim ? `, ${info.labelDim} classes` : ''} · ${info.sourceModel} · ${(bytes.length / 2 ** 20).toFixed(2)} MiB`;
  await createSession(epSelect.value);
  state.readyMs = performance.now();
  $('session').textContent += ` (ready ${(state.readyMs / 1000).toFixed(1)} s after page start)`;
  state.status = 'ready';
  const button = $<HTMLButtonElement>('run');
  button.disabled = false;

  let backendAsked = epSelect.value;
  $('controls').addEventListener('submit', (ev) => {
    ev.preventDefault();
    button.disabled = true;
    clearError();
    void (async () => {
      if (epSelect.value !== backendAsked) {
        backendAsked = epSelect.value;
        await createSession(backendAsked);
      }
      await sample(seedsInput.value, Number(batchInput.value));
    })()
      .catch(fail)
      .finally(() => {
        button.disabled = false;
      });
  });
  if (params.get('run') !== '0') await sample(seedsInput.value, Number(batchInput.value));
}

start().catch(fail);
