/**
 * Prompt tokenisation for text-conditional models (Stable Diffusion's CLIP text encoder),
 * from the exported tokenizer folder (`adasde.tokenizer`), without Python.
 *
 * The BPE itself is `@huggingface/tokenizers` (Hugging Face's pure-JS port of `tokenizers`,
 * the code Transformers.js runs; no dependencies). A folder with a `tokenizer.json` is
 * loaded as is. A folder with only `vocab.json` + `merges.txt` (what the slow
 * `CLIPTokenizer.save_pretrained` writes, and what tools/export/sd.py ships) gets the
 * pipeline `transformers`' CLIP converter builds for the same files:
 *
 *   normalizer     NFC, `\s+` -> ' ', lower case
 *   pre-tokenizer  split on CLIP's pattern
 *                  `<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+`
 *                  (whitespace dropped), then byte-level (each UTF-8 byte as one symbol)
 *   model          BPE over `merges.txt` in rank order, `</w>` appended to each word's last
 *                  symbol
 *   post-processor `<|startoftext|>` tokens `<|endoftext|>`
 *
 * Like CLIP's reference tokenizer (and tools/export/clip_tokenizer.py) the text is first
 * HTML-unescaped twice (numeric references and the common named ones, see `htmlUnescape`;
 * ftfy's mojibake repair is not reproduced). Every prompt becomes exactly `maxLength` ids
 * (77 for SD): truncated keeping the final `<|endoftext|>`, padded with the pad token
 * (`pad_token` of tokenizer_config.json / special_tokens_map.json, else `<|endoftext|>`,
 * as in SD v1).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { firstLine, UsageError } from '../core/errors.js';

export const BOS_TOKEN = '<|startoftext|>';
export const EOS_TOKEN = '<|endoftext|>';
export const DEFAULT_MAX_LENGTH = 77;

/** CLIP's pre-tokenizer pattern (the `regex`-package spelling transformers uses). */
export const CLIP_PATTERN = "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";

export interface TextTokenizer {
  /** The tokenizer folder. */
  readonly dir: string;
  readonly source: 'tokenizer.json' | 'vocab.json + merges.txt';
  /** Ids per prompt after padding/truncation. */
  readonly maxLength: number;
  readonly vocabSize: number;
  readonly mergeCount?: number;
  readonly bos?: number;
  readonly eos: number;
  readonly pad: number;
  /** `maxLength` ids of one prompt. */
  encode(text: string): Int32Array;
  /** The token strings of a prompt, with the special tokens, before padding/truncation. */
  tokens(text: string): string[];
}

/** The files a tokenizer folder must hold (either set). */
export const TOKENIZER_FILES = 'tokenizer.json, or vocab.json and merges.txt';

const NAMED_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0', '#39': "'" };

/**
 * HTML character references: `&#NNN;`, `&#xHH;` and the named ones prompts meet in practice
 * (amp, lt, gt, quot, apos, nbsp). Python's html.unescape knows all HTML5 names; other names
 * are left as they are here.
 */
export function htmlUnescape(s: string): string {
  return s.replace(/&(#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z]+);/g, (m, body: string) => {
    if (body.startsWith('#')) {
      const cp = body[1] === 'x' || body[1] === 'X' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
      return Number.isFinite(cp) && cp > 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff) ? String.fromCodePoint(cp) : '\ufffd';
    }
    return NAMED_ENTITIES[body] ?? m;
  });
}

/** CLIP's text clean-up before the tokenizer's own normalizer: unescape twice, trim. */
export function cleanPrompt(s: string): string {
  return htmlUnescape(htmlUnescape(s)).trim();
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function readJson(file: string): Json {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`${file}: cannot read (${firstLine(e)})`);
  }
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    throw new UsageError(`${file}: not valid JSON (${firstLine(e)})`);
  }
}

const isObject = (v: Json | undefined): v is { [k: string]: Json } => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A special-token entry of tokenizer_config.json: a string or `{content: ...}`. */
function tokenName(v: Json | undefined): string | undefined {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v['content'] === 'string') return v['content'];
  return undefined;
}

/** tokenizer_config.json merged over special_tokens_map.json (both optional). */
function readConfig(dir: string): { [k: string]: Json } {
  const out: { [k: string]: Json } = {};
  for (const name of ['special_tokens_map.json', 'tokenizer_config.json']) {
    const f = join(dir, name);
    if (!existsSync(f)) continue;
    const j = readJson(f);
    if (!isObject(j)) throw new UsageError(`${f}: expected a JSON object`);
    Object.assign(out, j);
  }
  return out;
}

/** vocab.json + merges.txt -> the tokenizer.json transformers' CLIP converter writes. */
function clipTokenizerJson(dir: string): { json: { [k: string]: Json }; vocabSize: number; merges: number } {
  const vf = join(dir, 'vocab.json');
  const mf = join(dir, 'merges.txt');
  const vocab = readJson(vf);
  if (!isObject(vocab) || !Object.values(vocab).every((v) => typeof v === 'number' && Number.isInteger(v) && v >= 0)) {
    throw new UsageError(`${vf}: expected a JSON object mapping tokens to non-negative integer ids`);
  }
  for (const t of [BOS_TOKEN, EOS_TOKEN]) if (vocab[t] === undefined) throw new UsageError(`${vf}: has no ${t} token (a CLIP vocabulary ends with ${BOS_TOKEN}, ${EOS_TOKEN})`);
  const lines = readFileSync(mf, 'utf8').split('\n');
  const merges: string[] = [];
  lines.forEach((line, k) => {
    const l = line.trim();
    if (l === '' || (k === 0 && l.startsWith('#version'))) return;
    const parts = l.split(/\s+/);
    if (parts.length !== 2) throw new UsageError(`${mf}: line ${k + 1} is not a merge "a b": ${JSON.stringify(line.slice(0, 60))}`);
    merges.push(`${parts[0]} ${parts[1]}`);
  });
  const bos = vocab[BOS_TOKEN] as number;
  const eos = vocab[EOS_TOKEN] as number;
  const special = (id: number, content: string): Json => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true });
  const json: { [k: string]: Json } = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(bos, BOS_TOKEN), special(eos, EOS_TOKEN)],
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: CLIP_PATTERN }, behavior: 'Removed', invert: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: { type: 'RobertaProcessing', sep: [EOS_TOKEN, eos], cls: [BOS_TOKEN, bos], trim_offsets: false, add_prefix_space: false },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: EOS_TOKEN,
      continuing_subword_prefix: '',
      end_of_word_suffix: '</w>',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
  return { json, vocabSize: Object.keys(vocab).length, merges: merges.length };
}

export interface TokenizerLoadOptions {
  /** Ids per prompt; by default the text encoder's input length, else model_max_length, else 77. */
  maxLength?: number;
}

/** Loads a tokenizer folder (TOKENIZER_FILES); problems are one-line UsageErrors. */
export function loadTokenizer(dir: string, opts: TokenizerLoadOptions = {}): TextTokenizer {
  if (!existsSync(dir)) throw new UsageError(`${dir}: no such tokenizer folder (expected ${TOKENIZER_FILES})`);
  if (!statSync(dir).isDirectory()) throw new UsageError(`${dir}: not a folder; a tokenizer is a folder with ${TOKENIZER_FILES}`);
  const has = (n: string) => existsSync(join(dir, n));
  let json: { [k: string]: Json };
  let source: TextTokenizer['source'];
  let mergeCount: number | undefined;
  if (has('tokenizer.json')) {
    const j = readJson(join(dir, 'tokenizer.json'));
    if (!isObject(j) || !isObject(j['model'])) throw new UsageError(`${join(dir, 'tokenizer.json')}: not a tokenizers file (no "model" object)`);
    json = j;
    source = 'tokenizer.json';
    const m = j['model']['merges'];
    if (Array.isArray(m)) mergeCount = m.length;
  } else if (has('vocab.json') && has('merges.txt')) {
    const c = clipTokenizerJson(dir);
    json = c.json;
    mergeCount = c.merges;
    source = 'vocab.json + merges.txt';
  } else {
    const missing = ['vocab.json', 'merges.txt'].filter((n) => !has(n));
    throw new UsageError(`${dir}: tokenizer folder has no tokenizer.json and no ${missing.join(' or ')} (expected ${TOKENIZER_FILES})`);
  }
  const config = readConfig(dir);
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(json, config);
  } catch (e) {
    throw new UsageError(`${dir}: cannot build the tokenizer: ${firstLine(e)}`);
  }
  const vocab = tok.get_vocab(true);
  const idOf = (name: string | undefined): number | undefined => (name === undefined ? undefined : vocab.get(name));
  const eosName = tokenName(config['eos_token']) ?? EOS_TOKEN;
  const eos = idOf(eosName);
  if (eos === undefined) throw new UsageError(`${dir}: the vocabulary has no end-of-text token '${eosName}'`);
  const bos = idOf(tokenName(config['bos_token']) ?? BOS_TOKEN);
  const padName = tokenName(config['pad_token']);
  const padId = padName === undefined ? eos : idOf(padName);
  if (padId === undefined) throw new UsageError(`${dir}: pad_token '${padName}' is not in the vocabulary`);
  const pad: number = padId;
  const cfgMax = typeof config['model_max_length'] === 'number' && config['model_max_length'] > 0 && config['model_max_length'] < 1e6 ? config['model_max_length'] : undefined;
  const maxLength = opts.maxLength ?? cfgMax ?? DEFAULT_MAX_LENGTH;
  if (!Number.isInteger(maxLength) || maxLength < 2) throw new UsageError(`${dir}: max length must be an integer >= 2, got ${maxLength}`);
  const clip = vocab.has(BOS_TOKEN);
  const prep = (text: string) => (clip ? cleanPrompt(text) : text);

  function encode(text: string): Int32Array {
    const ids = tok.encode(prep(text)).ids;
    for (const v of ids) {
      if (!Number.isInteger(v)) throw new UsageError(`${dir}: prompt ${JSON.stringify(text.slice(0, 40))} has a token outside the vocabulary and no unknown token`);
    }
    const out = new Int32Array(maxLength).fill(pad);
    if (ids.length > maxLength) {
      // Truncate the text, keep the closing token (CLIP: <|endoftext|>).
      out.set(ids.slice(0, maxLength - 1));
      out[maxLength - 1] = ids[ids.length - 1]!;
    } else out.set(ids);
    return out;
  }

  const t: TextTokenizer = {
    dir,
    source,
    maxLength,
    vocabSize: vocab.size,
    eos,
    pad,
    encode,
    tokens: (text) => tok.encode(prep(text)).tokens,
  };
  return { ...t, ...(bos !== undefined ? { bos } : {}), ...(mergeCount !== undefined ? { mergeCount } : {}) };
}
