/**
 * `adasde inspect FILE` below the CLI: which contract of the README an ONNX file satisfies
 * (src/runtime/recognise.ts) — a denoiser (with its family, shapes, sigma range, labels,
 * `adasde.alphas_cumprod` schedule and its companions, each checked against its own
 * contract), a companion on its own (decoder, text encoder, classifier), a feature extractor
 * (the FID detector contract), or a tokenizer folder — and a tiny forward pass (batch 1; for
 * a denoiser at sigma_max and sigma_min) reporting the output range and that it is finite.
 *
 * `resolveInspect` reads what the file is (the plan); `runInspect` checks it and returns the
 * report lines and the problems, which src/cli/inspect.ts prints (problems one line each on
 * stderr, exit code 2). Each contract's report is one entry of `REPORTS`: a new kind of model
 * file adds its rule to recognise.ts and its report there.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { GRADIENT_TRANSFORM_VERSION } from '../graph/gradient.js';
import type { InspectOptions } from '../config/inspect.js';
import { seedLatents } from '../rng/streams.js';
import {
  checkClassifierSignature,
  checkDecoderSignature,
  checkTextEncoderSignature,
  loadClassifier,
  loadDecoder,
  loadTextEncoder,
  type TextEncoderIO,
} from '../runtime/companions.js';
import { collector, describeTensor, type ProblemSink } from '../runtime/contract.js';
import {
  checkDenoiserMetadata,
  checkDenoiserSignature,
  checkFeatureSignature,
  COMPANION_KEYS,
  DISCRETE_FAMILIES,
  loadDenoiserModel,
  loadFeatureModel,
  REQUIRED_KEYS,
  type DenoiserModel,
  type PartialDenoiserMetadata,
} from '../runtime/model.js';
import { recognise, type ContractName } from '../runtime/recognise.js';
import { openSession, readModelSignature, formatDims, type ModelSignature } from '../runtime/session.js';
import { fusedInfo, type FusedInfo } from '../fuse/info.js';
import { openFused, runFusedBatch } from './fused-sample.js';
import { companionRef, loadCompanionTokenizer, missingCompanion, PromptEncoder, stateShapeProblem, type CompanionField } from '../sample/companions.js';
import { discreteTime } from '../solvers/schedule.js';
import type { Conditioning } from '../core/denoiser.js';
import { loadTokenizer, type TextTokenizer } from '../text/tokenizer.js';
import { firstLine, UsageError } from '../core/errors.js';
import { elementCount } from '../core/shape.js';

/** What `inspect` found: report lines (stdout) and problems (one line each, stderr). */
export interface InspectResult {
  contract?: ContractName;
  lines: string[];
  problems: string[];
}

const fmt = (v: number): string => (Number.isInteger(v) ? String(v) : Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3 ? v.toExponential(4) : String(Number(v.toPrecision(6))));

/** ` (optimised: basic)` when the fuser rewrote the decoder (recorded since decoders got their own level). */
function decoderOptimized(meta: Readonly<Record<string, string>>): string {
  const level = meta['adasde.fused.decoder_optimized'];
  return level && level !== 'none' ? ` (optimised: ${level})` : '';
}

function range(a: ArrayLike<number>): { lo: number; hi: number; finite: boolean } {
  let lo = Infinity;
  let hi = -Infinity;
  let finite = a.length > 0;
  for (let k = 0; k < a.length; k++) {
    const v = a[k]!;
    if (!Number.isFinite(v)) finite = false;
    else {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  return { lo, hi, finite };
}

function rangeText(name: string, a: ArrayLike<number>): { text: string; finite: boolean } {
  const r = range(a);
  if (!r.finite) {
    let bad = 0;
    for (let k = 0; k < a.length; k++) if (!Number.isFinite(a[k]!)) bad++;
    return { text: `${name}: ${bad} of ${a.length} values are not finite`, finite: false };
  }
  return { text: `${name} in [${fmt(r.lo)}, ${fmt(r.hi)}], finite`, finite: true };
}

const CONTRACTS_HELP =
  'expected a denoiser (x, sigma -> denoised), a feature extractor (images -> features), a decoder (z -> image), ' +
  'a text encoder (input_ids -> condition), a classifier (x, sigma -> log_probs) or a tokenizer folder';

function headerLine(file: string, sig: ModelSignature): string {
  let bytes = '';
  try {
    bytes = `${statSync(file).size} bytes, `;
  } catch {
    bytes = '';
  }
  return `file        ${file} (${bytes}ir ${sig.irVersion}, opset ${sig.opset}${sig.producerName ? `, producer ${sig.producerName}` : ''})`;
}

function ioLines(sig: ModelSignature): string[] {
  return [`inputs      ${sig.inputs.map(describeTensor).join('; ') || 'none'}`, `outputs     ${sig.outputs.map(describeTensor).join('; ')}`];
}

// ---------------------------------------------------------------------------------------
// Tokenizer folders
// ---------------------------------------------------------------------------------------

function tokenizerSummary(t: TextTokenizer): string {
  const merges = t.mergeCount !== undefined ? `, ${t.mergeCount} merges` : '';
  return `${t.source}, ${t.vocabSize} tokens${merges}, ${t.maxLength} ids per prompt, bos ${t.bos ?? 'none'}, eos ${t.eos}, pad ${t.pad}`;
}

function promptLine(t: TextTokenizer, prompt: string): string {
  const tokens = t.tokens(prompt);
  const ids = t.encode(prompt);
  const used = Math.min(tokens.length, t.maxLength);
  const shown = Array.from(ids.subarray(0, Math.min(used, 12))).join(', ');
  return `prompt      ${JSON.stringify(prompt)} -> ${tokens.length} tokens${tokens.length > t.maxLength ? ` (truncated to ${t.maxLength})` : ''}: [${shown}${used > 12 ? ', ...' : ''}] + ${t.maxLength - used} pad`;
}

function inspectTokenizer(dir: string, o: InspectOptions): InspectResult {
  const res: InspectResult = { contract: 'tokenizer', lines: [`folder      ${dir}`], problems: [] };
  try {
    const t = loadTokenizer(dir);
    res.lines.push(`contract    tokenizer (${tokenizerSummary(t)})`);
    res.lines.push(promptLine(t, o.prompt));
  } catch (e) {
    res.problems.push(firstLine(e));
  }
  return res;
}

// ---------------------------------------------------------------------------------------
// Denoisers
// ---------------------------------------------------------------------------------------

interface CompanionState {
  textEncoder?: { file: string; io: TextEncoderIO };
  tokenizer?: TextTokenizer;
  decoderOk?: string;
  classifierOk?: string;
}

function scheduleLine(meta: PartialDenoiserMetadata, report: ProblemSink, lines: string[], file: string): void {
  const ac = meta.alphasCumprod;
  if (!ac) {
    if (meta.family !== undefined && !DISCRETE_FAMILIES.includes(meta.family)) lines.push('schedule    continuous (no adasde.alphas_cumprod)');
    return;
  }
  const M = ac.length;
  let bad = -1;
  for (let k = 1; k < M; k++) {
    if (!(ac[k]! < ac[k - 1]!)) {
      bad = k;
      break;
    }
  }
  const dt = discreteTime(ac);
  const s0 = dt.sigma(1e-3);
  const s1 = dt.sigma(1);
  lines.push(`schedule    adasde.alphas_cumprod: ${M} values, ${fmt(ac[0]!)} (t=1/${M}) .. ${fmt(ac[M - 1]!)} (t=1); sigma(1e-3) = ${fmt(s0)}, sigma(1) = ${fmt(s1)}`);
  if (bad >= 0) report(`${file}: metadata adasde.alphas_cumprod is not decreasing (entry ${bad} = ${ac[bad]} >= entry ${bad - 1} = ${ac[bad - 1]}); sigma(t) must increase with t`);
  const close = (a: number, b: number) => Math.abs(a - b) <= 1e-6 * Math.max(Math.abs(a), Math.abs(b));
  if (meta.sigmaMin !== undefined && meta.sigmaMax !== undefined && (!close(meta.sigmaMin, s0) || !close(meta.sigmaMax, s1))) {
    lines.push(`note        adasde.sigma_min/max [${fmt(meta.sigmaMin)}, ${fmt(meta.sigmaMax)}] differ from the schedule's [sigma(1e-3), sigma(1)] = [${fmt(s0)}, ${fmt(s1)}] (ALGORITHM.md 8)`);
  }
}

function companionLabel(meta: PartialDenoiserMetadata, field: CompanionField): string {
  return `companion   ${COMPANION_KEYS[field].slice('adasde.'.length).padEnd(12)} ${meta.raw[COMPANION_KEYS[field]]}`;
}

function companionFile(file: string, meta: PartialDenoiserMetadata, field: CompanionField, report: ProblemSink, lines: string[]): string | undefined {
  const ref = companionRef(meta, field);
  if (ref === undefined) return undefined;
  if (!ref.exists) {
    report(missingCompanion(file, ref));
    lines.push(`${companionLabel(meta, field)}: missing`);
    return undefined;
  }
  return ref.path;
}

function checkCompanions(file: string, meta: PartialDenoiserMetadata, sig: ModelSignature, report: ProblemSink, lines: string[]): CompanionState {
  const st: CompanionState = {};
  const C = meta.imgChannels;
  const R = meta.imgResolution;
  const sample = C !== undefined && R !== undefined ? [C, R, R] : undefined;
  const condIn = sig.inputs.find((s) => s.name === 'condition');
  const label = (field: CompanionField) => companionLabel(meta, field);
  /** Runs a companion check, counting its problems (an unreadable file is one). */
  const counted = (fn: (r: ProblemSink) => void): number => {
    let n = 0;
    const r: ProblemSink = (m) => {
      n++;
      report(m);
    };
    try {
      fn(r);
    } catch (e) {
      r(firstLine(e));
    }
    return n;
  };

  const dec = companionFile(file, meta, 'decoder', report, lines);
  if (dec) {
    let desc = '';
    const n = counted((r) => {
      const dsig = readModelSignature(dec);
      const io = checkDecoderSignature(dec, dsig, r, sample);
      if (io) desc = `${describeTensor(io.input)} -> ${describeTensor(io.output)}${dsig.metadata['adasde.scale_factor'] ? `, scale_factor ${dsig.metadata['adasde.scale_factor']} inside` : ''}`;
    });
    lines.push(`${label('decoder')}: ${n ? `${n} problem${n > 1 ? 's' : ''}` : `ok (${desc})`}`);
    if (!n) st.decoderOk = dec;
  } else if (meta.decoder === undefined && (meta.family === 'ldm' || meta.family === 'sd')) {
    lines.push(`note        family ${meta.family} samples latents but has no adasde.decoder: only --output_format npy works`);
  }

  const enc = companionFile(file, meta, 'textEncoder', report, lines);
  if (enc) {
    let desc = '';
    const n = counted((r) => {
      const esig = readModelSignature(enc);
      const io = checkTextEncoderSignature(enc, esig, r);
      if (!io) return;
      const ids = esig.inputs.find((s) => s.name === 'input_ids');
      desc = `${ids ? describeTensor(ids) : 'input_ids'} -> ${describeTensor(io.output)}`;
      if (condIn?.dims?.length === 3) {
        const [, mL, mE] = condIn.dims;
        const fixed = (d: unknown) => (typeof d === 'number' ? d : undefined);
        const problem = stateShapeProblem({ path: file, conditionShape: [fixed(mL), fixed(mE)] }, enc, io.seqLen, io.embedDim);
        if (problem) r(problem);
      }
      st.textEncoder = { file: enc, io };
    });
    if (n) delete st.textEncoder;
    lines.push(`${label('textEncoder')}: ${n ? `${n} problem${n > 1 ? 's' : ''}` : `ok (${desc})`}`);
  }
  const tok = companionFile(file, meta, 'tokenizer', report, lines);
  if (tok) {
    try {
      const L = st.textEncoder?.io.seqLen;
      const t = loadCompanionTokenizer(tok, L);
      st.tokenizer = t;
      lines.push(`${label('tokenizer')}: ok (${tokenizerSummary(t)})`);
    } catch (e) {
      report(firstLine(e));
      lines.push(`${label('tokenizer')}: 1 problem`);
    }
  }
  if (condIn) {
    if (meta.textEncoder === undefined) report(`${file}: input 'condition' ${formatDims(condIn.dims)} needs a text encoder: metadata adasde.text_encoder is missing`);
    if (meta.tokenizer === undefined) report(`${file}: input 'condition' ${formatDims(condIn.dims)} needs a tokenizer: metadata adasde.tokenizer is missing`);
  } else {
    for (const f of ['textEncoder', 'tokenizer'] as const) {
      if (meta[f] !== undefined) lines.push(`note        ${COMPANION_KEYS[f]} is set but the model has no 'condition' input`);
    }
  }

  const cls = companionFile(file, meta, 'classifier', report, lines);
  if (cls) {
    let desc = '';
    const n = counted((r) => {
      const io = checkClassifierSignature(cls, readModelSignature(cls), r, sample, meta.labelDim);
      if (io) desc = `x, sigma -> ${describeTensor(io.output)}`;
    });
    lines.push(`${label('classifier')}: ${n ? `${n} problem${n > 1 ? 's' : ''}` : `ok (${desc}; --guidance_type cg differentiates it)`}`);
    if (!n) st.classifierOk = cls;
  }
  return st;
}

async function denoiserForward(file: string, o: InspectOptions, st: CompanionState, res: InspectResult): Promise<void> {
  const session = { device: o.device, threads: o.threads || undefined };
  let model: DenoiserModel | undefined;
  let prompts: PromptEncoder | undefined;
  try {
    model = await loadDenoiserModel(file, { ...session, maxBatch: 1 });
    const meta = model.meta;
    const cond: Conditioning = {};
    if (meta.labelDim > 0) {
      const onehot = new Float32Array(meta.labelDim);
      onehot[0] = 1;
      Object.assign(cond, { classLabels: onehot, labelDim: meta.labelDim });
    }
    let condNote = '';
    if (model.hasCondition) {
      if (st.textEncoder && st.tokenizer) {
        prompts = await PromptEncoder.open(model, session);
        Object.assign(cond, await prompts.conditioning([o.prompt], false));
        condNote = `, condition from ${JSON.stringify(o.prompt)}`;
        const states = await prompts.rows([o.prompt]);
        const r = rangeText(`text_encoder: condition [${prompts.shape.join(',')}]`, states);
        res.lines.push(`forward     ${r.text}`);
        if (!r.finite) res.problems.push(`${st.textEncoder.file}: the text encoder's output is not finite`);
      } else {
        const [L, E] = model.conditionShape ?? [undefined, undefined];
        if (L === undefined || E === undefined) {
          res.lines.push('forward     skipped: the condition shape is dynamic and no text encoder is available');
          return;
        }
        Object.assign(cond, { condition: new Float32Array(L * E), conditionShape: [L, E] as const });
        condNote = ', zero condition';
      }
    }
    const z = seedLatents([0], model.dim);
    for (const [name, s] of [
      ['sigma_max', meta.sigmaMax],
      ['sigma_min', meta.sigmaMin],
    ] as const) {
      const x = z.map((v) => v * s);
      const out = await model.denoise({ x, sigma: Float64Array.of(s), batch: 1, cond });
      const r = rangeText('denoised', out);
      res.lines.push(`forward     ${name} = ${fmt(s)} (x = sigma z, batch 1${meta.labelDim > 0 ? ', class 0' : ''}${condNote}): ${r.text}`);
      if (!r.finite) res.problems.push(`${file}: D(x, ${name}) is not finite`);
    }
    if (st.decoderOk) await decoderForward(st.decoderOk, model.sampleShape, o, res);
    if (st.classifierOk) await classifierForward(st.classifierOk, model.sampleShape, meta.sigmaMin, meta.sigmaMax, meta.labelDim, o, res);
  } catch (e) {
    res.problems.push(firstLine(e));
  } finally {
    await prompts?.dispose();
    await model?.dispose();
  }
}

// ---------------------------------------------------------------------------------------
// Companions on their own
// ---------------------------------------------------------------------------------------

async function decoderForward(file: string, latent: readonly number[] | undefined, o: InspectOptions, res: InspectResult): Promise<void> {
  const dsig = readModelSignature(file);
  const io = checkDecoderSignature(file, dsig, () => {});
  const shape = latent ?? io?.latentDims.map((d, i) => d ?? (i === 0 ? 4 : 8));
  if (!shape) return;
  const dec = await loadDecoder(file, { device: o.device, threads: o.threads || undefined, maxBatch: 1 });
  try {
    const dim = elementCount(shape);
    const img = await dec.decode(seedLatents([0], dim), 1, shape);
    const r = rangeText(`decoder: image [${img.shape.join(',')}] from z [${shape.join(',')}] ~ N(0, I)`, img.data);
    const rr = range(img.data);
    res.lines.push(`forward     ${r.text}${r.finite && (rr.lo < -1 - 1e-6 || rr.hi > 1 + 1e-6) ? ' (note: outside [-1, 1]; quantisation clips)' : ''}`);
    if (!r.finite) res.problems.push(`${file}: the decoder's output is not finite`);
  } finally {
    await dec.dispose();
  }
}

async function classifierForward(file: string, sample: readonly number[] | undefined, sigmaMin: number, sigmaMax: number, labelDim: number | undefined, o: InspectOptions, res: InspectResult, named = true): Promise<void> {
  const io = checkClassifierSignature(file, readModelSignature(file), () => {});
  const shape = sample ?? io?.output.dims?.slice(1).map(() => 8);
  if (!shape || shape.length !== 3) {
    res.lines.push('forward     skipped: the sample shape is not fixed in the graph');
    return;
  }
  const cls = await loadClassifier(file, { device: o.device, threads: o.threads || undefined, maxBatch: 1, ...(labelDim ? { labelDim } : {}) });
  try {
    const dim = elementCount(shape);
    const z = seedLatents([0], dim);
    for (const [name, s] of [
      ['sigma_max', sigmaMax],
      ['sigma_min', sigmaMin],
    ] as const) {
      const out = await cls.classify(z.map((v) => v * s), Float64Array.of(s), 1, shape);
      const r = rangeText(`classifier at ${named ? `${name} = ` : 'sigma = '}${fmt(s)}: log_probs [${out.classes}]`, out.data);
      let lse = '';
      if (r.finite) {
        const m = Math.max(...out.data);
        lse = `, log sum exp = ${fmt(m + Math.log(out.data.reduce((a, v) => a + Math.exp(v - m), 0)))}`;
      }
      res.lines.push(`forward     ${r.text}${lse}`);
      if (!r.finite) res.problems.push(`${file}: the classifier's output is not finite`);
    }
  } finally {
    await cls.dispose();
  }
}

async function textEncoderForward(file: string, o: InspectOptions, res: InspectResult): Promise<void> {
  const enc = await loadTextEncoder(file, { device: o.device, threads: o.threads || undefined, maxBatch: 1 });
  try {
    const L = enc.io.seqLen ?? 77;
    const out = await enc.encode(new Int32Array(L), 1, L);
    const r = rangeText(`text_encoder: condition [${out.L},${out.E}] from ${L} token ids 0`, out.data);
    res.lines.push(`forward     ${r.text}`);
    if (!r.finite) res.problems.push(`${file}: the text encoder's output is not finite`);
  } finally {
    await enc.dispose();
  }
}

async function featureForward(file: string, o: InspectOptions, res: InspectResult, H: number, W: number): Promise<void> {
  const fm = await loadFeatureModel(file, { device: o.device, threads: o.threads || undefined, maxBatch: 1 });
  try {
    const img = new Uint8Array(3 * H * W);
    const z = seedLatents([0], img.length);
    for (let k = 0; k < img.length; k++) img[k] = Math.max(0, Math.min(255, Math.round(128 + 40 * z[k]!)));
    const f = await fm.extract(img, 1, [3, H, W]);
    const r = rangeText(`features [${f.length}] of one ${H}x${W} image`, f);
    res.lines.push(`forward     ${r.text}`);
    if (!r.finite) res.problems.push(`${file}: the feature extractor's output is not finite`);
  } finally {
    await fm.dispose();
  }
}

// ---------------------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------------------

/** One contract's report: adds its lines to `res` and its problems to `sink`. */
type Report = (file: string, sig: ModelSignature, o: InspectOptions, res: InspectResult, sink: ProblemSink) => Promise<void>;

async function guard(res: InspectResult, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    res.problems.push(firstLine(e));
  }
}

/** Runs a fused sampler on seed 0 and reports the range of its states and images. */
async function fusedForward(file: string, info: FusedInfo, o: InspectOptions, res: InspectResult): Promise<void> {
  const session = await openFused(file, info, { device: o.device, threads: o.threads || undefined });
  try {
    const out = await runFusedBatch(session, info, [0], info.labelDim > 0 ? 0 : undefined);
    const r = rangeText('x of seed 0', out.x);
    const img = range(out.images);
    res.lines.push(`forward     ${r.text}; images in [${img.lo}, ${img.hi}]`);
    if (!r.finite) res.problems.push(`${file}: the fused sampler's output is not finite`);
  } finally {
    await session.dispose();
  }
}

/** What each derived graph is, and which command writes it. */
const DERIVED: Record<string, { what: string; prefix: string; by: string }> = {
  classifier_gradient: { what: "a classifier's input gradient", prefix: 'gradient', by: 'adasde sample/train --guidance_type cg' },
  denoiser_vjp: { what: "a denoiser's vector-Jacobian product (cot_denoised -> grad_x, grad_sigma)", prefix: 'vjp', by: 'adasde train --gradient hybrid/auto' },
  feature_vjp: { what: "a feature extractor's vector-Jacobian product (cot_features -> grad_images)", prefix: 'vjp', by: 'adasde train --gradient hybrid/auto' },
  decoder_vjp: { what: "a decoder's vector-Jacobian product (cot_image -> grad_z)", prefix: 'vjp', by: 'adasde train --gradient hybrid/auto' },
};

const REPORTS: Record<Exclude<ContractName, 'tokenizer'>, Report> = {
  'derived graph': async (file, sig, _o, res) => {
    const role = sig.metadata['adasde.role'] ?? '';
    const d = DERIVED[role]!;
    const m = (k: string) => sig.metadata[`adasde.${d.prefix}_${k}`];
    res.lines.push(`contract    derived graph: ${d.what}, a cache that ${d.by} writes and rebuilds when stale`);
    res.lines.push(...ioLines(sig));
    const source = m('of') === undefined ? undefined : join(dirname(file), m('of')!);
    let state = 'its source is not recorded';
    if (source) {
      if (!existsSync(source)) state = `its source ${source} is not beside it`;
      else {
        const st = statSync(source);
        const fresh = String(st.size) === m('source_bytes') && String(Math.floor(st.mtimeMs)) === m('source_mtime_ms') && m('transform') === GRADIENT_TRANSFORM_VERSION;
        state = fresh ? `up to date with ${source}` : `stale (${source} or the transform changed since): rebuilt at its next use`;
      }
    }
    res.lines.push(`source      ${state}; transform version ${m('transform') ?? '?'} (current ${GRADIENT_TRANSFORM_VERSION})`);
  },
  'fused sampler': async (file, sig, o, res, sink) => {
    let info: FusedInfo;
    try {
      info = fusedInfo(file, new Map(Object.entries(sig.metadata)), sig.inputs.map((s) => s.name), sig.outputs.map((s) => s.name));
    } catch (e) {
      sink(firstLine(e));
      res.lines.push(...ioLines(sig));
      return;
    }
    const m = (k: string): string => sig.metadata[`adasde.fused.${k}`] ?? '?';
    res.lines.push(`contract    fused sampler (adasde fuse: z${info.noiseIntervals.length ? ', noise' : ''}${info.labelDim ? ', class_labels' : ''} -> x, images)`);
    res.lines.push(...ioLines(sig));
    res.lines.push(`sampler     ${info.solver} at ${info.nfe} NFE, ${info.layout} layout${info.optimized && info.optimized !== 'none' ? ` (optimised: ${info.optimized})` : ''}, ${info.tSteps ? `${info.tSteps.length} time points [${info.tSteps.map(fmt).join(', ')}]` : 'grid not recorded'}`);
    res.lines.push(`source      ${info.sourceModel} (sha256 ${m('source_model_sha256').slice(0, 16)}...), dataset ${info.datasetName}${sig.metadata['adasde.fused.decoder'] ? `, decoder ${sig.metadata['adasde.fused.decoder']}${decoderOptimized(sig.metadata)}` : ''}`);
    const pred = sig.metadata['adasde.fused.predictor'];
    if (pred) res.lines.push(`predictor   ${pred} (coefficients sha256 ${m('predictor_sha256').slice(0, 16)}...)`);
    res.lines.push(`noise       ${info.noiseIntervals.length ? `intervals ${info.noiseIntervals.join(', ')} (noise [${info.noiseIntervals.length},N,${info.sampleShape.join(',')}])` : 'none (deterministic)'}; guidance ${m('guidance')}`);
    if (o.forward && res.problems.length === 0) await guard(res, () => fusedForward(file, info, o, res));
  },
  denoiser: async (file, sig, o, res, sink) => {
    const meta = checkDenoiserMetadata(file, sig.metadata, sink);
    const io = checkDenoiserSignature(file, sig, meta, sink);
    res.lines.push(`contract    denoiser (family ${meta.family ?? '?'}, dataset ${meta.datasetName ?? '?'})`);
    res.lines.push(...ioLines(sig));
    const C = meta.imgChannels;
    const R = meta.imgResolution;
    const latent = meta.family === 'ldm' || meta.family === 'sd';
    res.lines.push(`samples     [${C ?? '?'},${R ?? '?'},${R ?? '?'}]${latent ? ' latents' : ''}${io.fixedBatch !== undefined ? `, fixed batch ${io.fixedBatch}` : ', dynamic batch'}, io ${io.x}`);
    res.lines.push(`sigma       [${meta.sigmaMin !== undefined ? fmt(meta.sigmaMin) : '?'}, ${meta.sigmaMax !== undefined ? fmt(meta.sigmaMax) : '?'}]`);
    res.lines.push(`labels      ${meta.labelDim === undefined ? '?' : meta.labelDim > 0 ? `class_labels, label_dim ${meta.labelDim}` : 'none (label_dim 0)'}`);
    if (io.condition) res.lines.push(`condition   text-encoder states [${io.condition.seqLen ?? 'L'},${io.condition.embedDim ?? 'E'}]`);
    scheduleLine(meta, sink, res.lines, file);
    const known = new Set<string>([...REQUIRED_KEYS, 'adasde.alphas_cumprod', ...Object.values(COMPANION_KEYS)]);
    const other = Object.entries(sig.metadata).filter(([k]) => k.startsWith('adasde.') && !known.has(k));
    if (other.length) res.lines.push(`metadata    ${other.map(([k, v]) => `${k}=${v.length > 40 ? `${v.slice(0, 40)}...` : v}`).join(', ')}`);
    const st = checkCompanions(file, meta, sig, sink, res.lines);
    if (o.forward && res.problems.length === 0) await denoiserForward(file, o, st, res);
  },
  decoder: async (file, sig, o, res, sink) => {
    res.lines.push(`contract    decoder (first-stage: z -> image in [-1, 1]${sig.metadata['adasde.scale_factor'] ? `, scale_factor ${sig.metadata['adasde.scale_factor']} inside` : ''})`);
    res.lines.push(...ioLines(sig));
    checkDecoderSignature(file, sig, sink);
    if (o.forward && res.problems.length === 0) await guard(res, () => decoderForward(file, undefined, o, res));
  },
  text_encoder: async (file, sig, o, res, sink) => {
    res.lines.push('contract    text encoder (input_ids -> condition)');
    res.lines.push(...ioLines(sig));
    checkTextEncoderSignature(file, sig, sink);
    if (o.forward && res.problems.length === 0) await guard(res, () => textEncoderForward(file, o, res));
  },
  classifier: async (file, sig, o, res, sink) => {
    res.lines.push('contract    classifier (x, sigma -> log_probs)');
    res.lines.push(...ioLines(sig));
    const io = checkClassifierSignature(file, sig, sink);
    const xs = sig.inputs.find((s) => s.name === 'x');
    const sample = xs?.dims?.length === 4 && xs.dims.slice(1).every((d) => typeof d === 'number') ? (xs.dims.slice(1) as number[]) : undefined;
    if (o.forward && res.problems.length === 0 && io) await guard(res, () => classifierForward(file, sample, 0.002, 80, undefined, o, res, false));
  },
  'feature extractor': async (file, sig, o, res, sink) => {
    const io = checkFeatureSignature(file, sig, sink);
    res.lines.push(`contract    feature extractor (the FID detector contract: images [N,3,H,W] -> features [N,D])${sig.metadata['adasde.detector'] ? `, detector ${sig.metadata['adasde.detector']}` : ''}`);
    res.lines.push(...ioLines(sig));
    if (io) res.lines.push(`features    D = ${io.featureDim ?? 'dynamic'}, images ${io.inputDtype} ${io.fixedH ?? 'H'}x${io.fixedW ?? 'W'} (pixel values 0..255)`);
    const declared = sig.metadata['adasde.feature_dim'];
    if (io?.featureDim !== undefined && declared !== undefined && Number(declared) !== io.featureDim) {
      sink(`${file}: metadata adasde.feature_dim=${declared} but output '${io.output.name}' has ${io.featureDim} features`);
    }
    if (o.forward && res.problems.length === 0 && io) await guard(res, () => featureForward(file, o, res, io.fixedH ?? 64, io.fixedW ?? 64));
  },
};

/** What is inspected: a tokenizer folder, or an ONNX file with its signature and the contract it is meant for. */
export type InspectPlan =
  | { file: string; options: InspectOptions; kind: 'folder' }
  | { file: string; options: InspectOptions; kind: 'onnx'; signature: ModelSignature; contract: ContractName | undefined };

export function resolveInspect(file: string, o: InspectOptions): InspectPlan {
  if (!existsSync(file)) throw new UsageError(`${file}: no such file or folder`);
  if (statSync(file).isDirectory()) return { file, options: o, kind: 'folder' };
  const signature = readModelSignature(file);
  return { file, options: o, kind: 'onnx', signature, contract: recognise(signature) };
}

export async function runInspect(plan: InspectPlan): Promise<InspectResult> {
  const { file, options: o } = plan;
  if (plan.kind === 'folder') return inspectTokenizer(file, o);
  const sig = plan.signature;
  const contract = plan.contract;
  const res: InspectResult = { lines: [headerLine(file, sig)], problems: [] };
  const { sink, problems } = collector();
  res.problems = problems;
  if (!contract || contract === 'tokenizer') {
    res.lines.push(...ioLines(sig));
    sink(`${file}: matches no adasde contract (inputs ${sig.inputs.map(describeTensor).join('; ') || 'none'}; outputs ${sig.outputs.map(describeTensor).join('; ')}); ${CONTRACTS_HELP}`);
    return res;
  }
  res.contract = contract;
  await REPORTS[contract](file, sig, o, res, sink);
  return res;
}

/** resolveInspect then runInspect. */
export async function inspectFile(file: string, o: InspectOptions): Promise<InspectResult> {
  return runInspect(resolveInspect(file, o));
}
