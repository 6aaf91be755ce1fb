/**
 * A tiny CLIP-format BPE vocabulary for tokenizer tests, laid out like the real
 * `vocab.json` (openai/clip-vit-large-patch14): ids 0-255 the byte symbols in
 * `bytes_to_unicode` order, 256-511 the same symbols with `</w>`, then one id per merge in
 * merge order, then `<|startoftext|>`, `<|endoftext|>`.
 *
 * Byte symbols: printable bytes map to themselves in the order '!'..'~' (ids 0-93),
 * '¡'..'¬' (94-105), '®'..'ÿ' (106-187); the other 68 bytes (0-32, 127-160, 173) map to
 * U+0100.. in byte order (ids 188-255; space -> 'Ġ', id 220). So an ASCII letter c has id
 * ord(c) - 33 and `c</w>` has id ord(c) - 33 + 256.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** CLIP's bytes_to_unicode as an ordered list of [byte, symbol]. */
export function byteSymbols(): [number, string][] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.map((b) => String.fromCodePoint(b));
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(String.fromCodePoint(256 + n));
      n++;
    }
  }
  return bs.map((b, k) => [b, cs[k]!]);
}

/** The merges, in rank order (rank 0 merges first). */
export const TINY_MERGES: [string, string][] = [
  ['h', 'e'], // 512 he
  ['l', 'l'], // 513 ll
  ['he', 'll'], // 514 hell
  ['hell', 'o</w>'], // 515 hello</w>
  ['w', 'o'], // 516 wo
  ['r', 'l'], // 517 rl
  ['wo', 'rl'], // 518 worl
  ['worl', 'd</w>'], // 519 world</w>
  ['c', 'a'], // 520 ca
  ['ca', 't</w>'], // 521 cat</w>
  ["'", 's</w>'], // 522 's</w>
  ['Ã', '©</w>'], // 523 Ã©</w>  (é = bytes C3 A9)
];

export const TINY_BOS = 524;
export const TINY_EOS = 525;

export function tinyVocab(): Record<string, number> {
  const syms = byteSymbols().map(([, s]) => s);
  const list = [...syms, ...syms.map((s) => `${s}</w>`), ...TINY_MERGES.map(([a, b]) => a + b), '<|startoftext|>', '<|endoftext|>'];
  return Object.fromEntries(list.map((t, k) => [t, k]));
}

/** Writes vocab.json + merges.txt (with the `#version` header line) into `dir`. */
export function writeTinyTokenizer(dir: string, extra: Record<string, unknown> = {}): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'vocab.json'), JSON.stringify(tinyVocab()));
  writeFileSync(join(dir, 'merges.txt'), `#version: 0.2\n${TINY_MERGES.map(([a, b]) => `${a} ${b}\n`).join('')}`);
  for (const [name, content] of Object.entries(extra)) writeFileSync(join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
  return dir;
}
