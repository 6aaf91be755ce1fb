/**
 * The denoiser's companion files as the commands use them (sample, train, inspect): where
 * the model's `adasde.*` companion keys point, the checks a run makes before it starts
 * (preflight), prompts -> tokenizer -> text encoder -> `Conditioning.condition` (and the
 * empty prompt's states as `uncondition` for classifier-free guidance), latents ->
 * first-stage decoder -> images, and the classifier of classifier guidance.
 *
 * Each companion's own contract (signature checks, sessions) is src/runtime/companions.ts;
 * onnxruntime stays behind src/runtime, this file only finds and wires the pieces.
 */
import { existsSync } from 'node:fs';
import { UsageError } from '../core/errors.js';
import { checkClassifierSignature, checkDecoderSignature, checkTextEncoderSignature, loadDecoder, loadTextEncoder, type DecoderIO, type DecoderModel, type TextEncoderModel } from '../runtime/companions.js';
import { throwUsage } from '../runtime/contract.js';
import { prepareClassifierGradient } from '../runtime/guidance.js';
import { loadDecoderVjp, type DecoderVjp } from '../runtime/vjp.js';
import { COMPANION_KEYS, isLatentFamily, type DenoiserModel, type PartialDenoiserMetadata } from '../runtime/model.js';
import { readModelSignature, type SessionOptions } from '../runtime/session.js';
import type { Conditioning } from '../core/denoiser.js';
import { loadTokenizer, type TextTokenizer } from '../text/tokenizer.js';

type ModelView = Pick<DenoiserModel, 'path' | 'meta' | 'sampleShape' | 'conditionShape' | 'hasCondition'>;

/** The prompt used for the unconditional half of classifier-free guidance. */
export const UNCONDITIONAL_PROMPT = '';

/** Default memory for cached prompt states (the empty prompt is always kept). */
export const PROMPT_CACHE_BYTES = 256 * 1024 * 1024;

export type CompanionField = keyof typeof COMPANION_KEYS;

/** A companion a model names: its metadata key, the value stored there, and the file it resolves to (beside the model). */
export interface CompanionRef {
  key: (typeof COMPANION_KEYS)[CompanionField];
  stored: string;
  path: string;
  exists: boolean;
}

/** The companion `field` of a model's metadata, or undefined when the model names none. */
export function companionRef(meta: Pick<PartialDenoiserMetadata, 'raw' | CompanionField>, field: CompanionField): CompanionRef | undefined {
  const path = meta[field];
  if (path === undefined) return undefined;
  const key = COMPANION_KEYS[field];
  return { key, stored: meta.raw[key] ?? '', path, exists: existsSync(path) };
}

/** The one-line problem of a companion file the metadata names but that is not there. */
export function missingCompanion(modelPath: string, ref: CompanionRef): string {
  return `${modelPath}: ${ref.key} '${ref.stored}' does not exist (looked for ${ref.path})`;
}

function companionPath(model: ModelView, field: 'textEncoder' | 'tokenizer' | 'decoder'): string {
  const ref = companionRef(model.meta, field);
  if (ref === undefined) {
    const why = field === 'decoder' ? 'images of a latent model come from its first-stage decoder; use --output_format npy for the latents' : 'prompts need the tokenizer and the text encoder';
    throw new UsageError(`${model.path}: no metadata ${COMPANION_KEYS[field]} (${why})`);
  }
  if (!ref.exists) throw new UsageError(missingCompanion(model.path, ref));
  return ref.path;
}

/** The model's tokenizer, padding to the text encoder's sequence length when that is fixed. */
export function loadCompanionTokenizer(dir: string, seqLen: number | undefined): TextTokenizer {
  return loadTokenizer(dir, seqLen !== undefined ? { maxLength: seqLen } : {});
}

/** Whether `adasde sample` must decode: a decoder is declared, or the family samples latents. */
export function needsDecoder(model: ModelView): boolean {
  return model.meta.decoder !== undefined || isLatentFamily(model.meta.family);
}

/**
 * Checks, without opening sessions, that the companions a run needs exist and satisfy their
 * contracts (so a multi-process run fails once, before any worker starts). Returns the
 * decoder's checked signature when one is needed.
 */
export function preflightCompanions(model: ModelView, needs: { text: boolean; decoder: boolean }): { decoder?: DecoderIO } {
  if (needs.text) {
    const enc = companionPath(model, 'textEncoder');
    const io = checkTextEncoderSignature(enc, readModelSignature(enc), throwUsage)!;
    refuse(stateShapeProblem(model, enc, io.seqLen, io.embedDim));
    loadCompanionTokenizer(companionPath(model, 'tokenizer'), io.seqLen);
  }
  if (needs.decoder) {
    const dec = companionPath(model, 'decoder');
    return { decoder: checkDecoderSignature(dec, readModelSignature(dec), throwUsage, model.sampleShape) };
  }
  return {};
}

/** A problem found before a run is a UsageError. */
function refuse(problem: string | undefined): void {
  if (problem !== undefined) throw new UsageError(problem);
}

/**
 * Whether the text encoder's states [N, L, E] fit the denoiser's `condition` input; the
 * problem (one line) or undefined. A size that is dynamic on either side fits.
 */
export function stateShapeProblem(model: Pick<ModelView, 'path' | 'conditionShape'>, enc: string, L: number | undefined, E: number | undefined): string | undefined {
  const [mL, mE] = model.conditionShape ?? [undefined, undefined];
  // Sizes on both sides come from graph signatures; a mismatch in either is one problem.
  if ((L !== undefined && mL !== undefined && L !== mL) || (E !== undefined && mE !== undefined && E !== mE)) {
    return `${enc}: the text encoder gives states [N,${L ?? 'L'},${E ?? 'E'}] but ${model.path} takes condition [N,${mL ?? 'L'},${mE ?? 'E'}]`;
  }
  return undefined;
}

/**
 * Prompt -> text-encoder states, one row [L, E] per prompt. Each distinct prompt is encoded
 * once while it stays in the cache (least recently used prompts leave it beyond
 * `cacheBytes`; the empty prompt never does), and the prompts a batch misses are encoded
 * together.
 */
export class PromptEncoder {
  private readonly cache = new Map<string, Float32Array>();
  private readonly maxEntries: number;
  /** Prompts run through the text encoder so far (cache misses). */
  encoded = 0;

  private constructor(
    readonly tokenizer: TextTokenizer,
    readonly encoder: TextEncoderModel,
    /** [L, E] of one prompt's states. */
    readonly shape: readonly [number, number],
    empty: Float32Array,
    cacheBytes: number,
  ) {
    this.cache.set(UNCONDITIONAL_PROMPT, empty);
    this.maxEntries = Math.max(2, Math.floor(cacheBytes / (shape[0] * shape[1] * 4)));
  }

  /** Loads the model's tokenizer and text encoder and encodes the empty prompt (learning [L, E]). */
  static async open(model: ModelView, opts: SessionOptions & { maxBatch?: number; cacheBytes?: number } = {}): Promise<PromptEncoder> {
    const encFile = companionPath(model, 'textEncoder');
    const tokDir = companionPath(model, 'tokenizer');
    const encoder = await loadTextEncoder(encFile, opts);
    try {
      refuse(stateShapeProblem(model, encFile, encoder.io.seqLen, encoder.io.embedDim));
      const tokenizer = loadCompanionTokenizer(tokDir, encoder.io.seqLen);
      const first = await encoder.encode(tokenizer.encode(UNCONDITIONAL_PROMPT), 1, tokenizer.maxLength);
      refuse(stateShapeProblem(model, encFile, first.L, first.E));
      const pe = new PromptEncoder(tokenizer, encoder, [first.L, first.E], first.data, opts.cacheBytes ?? PROMPT_CACHE_BYTES);
      pe.encoded = 1;
      return pe;
    } catch (e) {
      await encoder.dispose();
      throw e;
    }
  }

  /** States of `prompts`, [prompts.length, L, E] row-major. */
  async rows(prompts: readonly string[]): Promise<Float32Array> {
    const [L, E] = this.shape;
    const width = L * E;
    const missing = [...new Set(prompts.filter((p) => !this.cache.has(p)))];
    const fresh = new Map<string, Float32Array>();
    if (missing.length) {
      const T = this.tokenizer.maxLength;
      const ids = new Int32Array(missing.length * T);
      missing.forEach((p, k) => ids.set(this.tokenizer.encode(p), k * T));
      const res = await this.encoder.encode(ids, missing.length, T);
      if (res.L !== L || res.E !== E) throw new Error(`${this.encoder.path}: states [${res.L},${res.E}] differ from the first run's [${L},${E}]`);
      missing.forEach((p, k) => fresh.set(p, res.data.slice(k * width, (k + 1) * width)));
      this.encoded += missing.length;
    }
    const out = new Float32Array(prompts.length * width);
    prompts.forEach((p, k) => {
      const row = fresh.get(p) ?? this.cache.get(p)!;
      out.set(row, k * width);
      this.touch(p, row);
    });
    return out;
  }

  /** The conditioning of one batch: its prompts' states, plus the empty prompt's for CFG. */
  async conditioning(prompts: readonly string[], guidance: boolean): Promise<Conditioning> {
    const cond: Conditioning = { condition: await this.rows(prompts), conditionShape: this.shape };
    if (guidance) cond.uncondition = await this.rows(prompts.map(() => UNCONDITIONAL_PROMPT));
    return cond;
  }

  private touch(p: string, row: Float32Array): void {
    // A Map iterates in insertion order: re-inserting marks the prompt most recently used.
    if (p !== UNCONDITIONAL_PROMPT) this.cache.delete(p);
    this.cache.set(p, row);
    while (this.cache.size > this.maxEntries) {
      for (const k of this.cache.keys()) {
        if (k === UNCONDITIONAL_PROMPT) continue;
        this.cache.delete(k);
        break;
      }
    }
  }

  dispose(): Promise<void> {
    return this.encoder.dispose();
  }
}

/** Opens the first-stage decoder of a latent model. */
export async function openDecoder(model: ModelView, opts: SessionOptions & { maxBatch?: number } = {}): Promise<DecoderModel> {
  return loadDecoder(companionPath(model, 'decoder'), { ...opts, latentShape: model.sampleShape });
}

/** The VJP graph of the denoiser's decoder companion (latent models' feature loss in reverse mode). */
export async function openDecoderVjp(model: ModelView, opts: SessionOptions & { maxBatch?: number } = {}): Promise<DecoderVjp> {
  const [C, h, w] = model.sampleShape;
  return loadDecoderVjp(companionPath(model, 'decoder'), [C!, h!, w!], opts);
}

/**
 * `--guidance_type cg`: the denoiser's classifier companion, with its gradient graph built
 * (or found cached) now, so that workers started later only open it.
 */
export function classifierFor(model: Pick<DenoiserModel, 'path' | 'meta' | 'sampleShape'>, rate: number | undefined, prepare = true): { file: string; rate: number; classes: number } {
  if (rate === undefined) throw new UsageError('--guidance_type cg needs --guidance_rate W (the classifier scale, e.g. 1 to 10)');
  const ref = companionRef(model.meta, 'classifier');
  if (!ref) throw new UsageError(`--guidance_type cg: ${model.path} names no classifier companion (metadata adasde.classifier; tools/export/adm.py --classifier writes one)`);
  if (!ref.exists) throw new UsageError(`--guidance_type cg: ${missingCompanion(model.path, ref)}`);
  const file = ref.path;
  const io = checkClassifierSignature(file, readModelSignature(file), throwUsage, model.sampleShape, model.meta.labelDim || undefined)!;
  const classes = io.numClasses ?? model.meta.labelDim;
  if (!classes) throw new UsageError(`${file}: output 'log_probs' has no fixed number of classes`);
  if (prepare) prepareClassifierGradient(file);
  return { file, rate, classes };
}
