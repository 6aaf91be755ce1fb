/**
 * CLIP BPE tokenisation on a tiny vocabulary (tiny-vocab.ts) whose expected ids are worked
 * out by hand from the algorithm's definition:
 *
 * 1. clean: HTML-unescape (twice), NFC, whitespace runs -> one space, lower case;
 * 2. split with CLIP's pattern: special tokens, the contractions 's 't 're 've 'm 'll 'd,
 *    letter runs, single digits, runs of other non-space characters; spaces are dropped;
 * 3. each piece -> its UTF-8 bytes -> byte symbols, `</w>` appended to the last symbol;
 * 4. BPE: repeatedly merge the adjacent pair with the lowest merge rank (all occurrences
 *    of that pair, left to right) until no adjacent pair is a merge;
 * 5. ids: [<|startoftext|>] + symbol ids + [<|endoftext|>], truncated to 77 keeping the
 *    last <|endoftext|>, padded with the pad token (default <|endoftext|>).
 *
 * Worked example "Hello, World!" -> "hello, world!" -> pieces hello | , | world | !
 *   hello: h e l l o</w> -(he, rank 0)-> he l l o</w> -(ll, 1)-> he ll o</w> -(hell, 2)->
 *          hell o</w> -(hello</w>, 3)-> hello</w> = 515
 *   ",": ",</w>" = 256 + (44 - 33) = 267;  "!": "!</w>" = 256 + 0 = 256
 *   world: w o r l d</w> -(wo, 4)-> wo r l d</w> -(rl, 5)-> wo rl d</w> -(worl, 6)->
 *          worl d</w> -(world</w>, 7)-> world</w> = 519
 *   => [524, 515, 267, 519, 256, 525, 525 x 71]
 * The other cases below are derived the same way (comments give the steps); all of them
 * also agree with tools/export/clip_tokenizer.py (the exporter's Python reference).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { UsageError } from '../../src/core/errors.js';
import { CLIP_PATTERN, cleanPrompt, htmlUnescape, loadTokenizer } from '../../src/text/tokenizer.js';
import { TINY_BOS, TINY_EOS, TINY_MERGES, tinyVocab, writeTinyTokenizer } from './tiny-vocab.js';

const root = mkdtempSync(join(tmpdir(), 'adasde-tok-'));
after(() => rmSync(root, { recursive: true, force: true }));

const id = (c: string): number => c.codePointAt(0)! - 33; // printable ASCII symbol
const w = (c: string): number => id(c) + 256; // the same with </w>

/** The unpadded ids (through the first <|endoftext|> after the text). */
function head(ids: Int32Array, len: number): number[] {
  return Array.from(ids.subarray(0, len));
}

const CASES: [string, number[], string][] = [
  ['Hello, World!', [515, 267, 519, 256], 'the worked example above'],
  // it | 's | a | cat | 's | hat ; "it": i t</w> (no merge); "'s": ' s</w> -> 's</w> (rank 10);
  // "cat": c a t</w> -> ca t</w> (8) -> cat</w> (9); "hat": h a t</w> (no h-a merge).
  ["it's a cat's hat", [id('i'), w('t'), 522, w('a'), 521, 522, id('h'), id('a'), w('t')], 'contractions are their own pieces'],
  // NFC + lower case: "café"; digits split one by one. "café" = c a f 0xC3 0xA9 -> symbols
  // c a f Ã ©</w> -> ca f Ã ©</w> (rank 8) -> ca f Ã©</w> (rank 11).
  ['  CAFÉ\t\n2024 ', [520, id('f'), 523, w('2'), w('0'), w('2'), w('4')], 'whitespace, case, UTF-8 bytes and digits'],
  // &amp; -> & before tokenising (CLIP unescapes twice: &amp;amp; -> &amp; -> &).
  ['fish &amp; chips', [id('f'), id('i'), id('s'), w('h'), w('&'), id('c'), id('h'), id('i'), id('p'), w('s')], 'HTML entities'],
  ['fish &amp;amp; chips', [id('f'), id('i'), id('s'), w('h'), w('&'), id('c'), id('h'), id('i'), id('p'), w('s')], 'double-escaped entities'],
  // "!?" is one run of punctuation: ! ?</w>, no merge.
  ['a!?', [w('a'), id('!'), w('?')], 'punctuation runs'],
  ['', [], 'the empty prompt (the CFG unconditional one)'],
  ['  hello   hello  ', [515, 515], 'repeated words'],
  // The special token inside the text stays one token.
  ['a<|endoftext|>b', [w('a'), TINY_EOS, w('b')], 'special tokens in the text'],
];

describe('CLIP BPE from vocab.json + merges.txt', () => {
  const dir = writeTinyTokenizer(join(root, 'tiny'));
  const tok = loadTokenizer(dir);

  test('layout: ids, special tokens, defaults', () => {
    assert.equal(tok.source, 'vocab.json + merges.txt');
    assert.equal(tok.vocabSize, 526);
    assert.equal(tok.mergeCount, TINY_MERGES.length);
    assert.equal(tok.bos, TINY_BOS);
    assert.equal(tok.eos, TINY_EOS);
    assert.equal(tok.pad, TINY_EOS);
    assert.equal(tok.maxLength, 77);
    assert.equal(tinyVocab()['Ġ'], 220);
  });

  for (const [text, ids, why] of CASES) {
    test(`${JSON.stringify(text)} (${why})`, () => {
      const got = tok.encode(text);
      assert.equal(got.length, 77);
      const want = [TINY_BOS, ...ids, TINY_EOS];
      assert.deepEqual(head(got, want.length), want);
      assert.ok(got.subarray(want.length).every((v) => v === TINY_EOS), 'padded with <|endoftext|>');
    });
  }

  test('token strings', () => {
    assert.deepEqual(tok.tokens('Hello, World!'), ['<|startoftext|>', 'hello</w>', ',</w>', 'world</w>', '!</w>', '<|endoftext|>']);
    assert.deepEqual(tok.tokens('café'), ['<|startoftext|>', 'ca', 'f', 'Ã©</w>', '<|endoftext|>']);
  });

  test('long prompts are truncated to 77 ids keeping the final <|endoftext|>', () => {
    const ids = tok.encode('a '.repeat(100));
    assert.equal(ids.length, 77);
    assert.equal(ids[0], TINY_BOS);
    assert.ok(ids.subarray(1, 76).every((v) => v === w('a')));
    assert.equal(ids[76], TINY_EOS);
    // Exactly 75 tokens fit without truncation.
    const fit = tok.encode('a '.repeat(75));
    assert.equal(fit[75], w('a'));
    assert.equal(fit[76], TINY_EOS);
  });

  test('maxLength from the text encoder overrides the default', () => {
    const t16 = loadTokenizer(dir, { maxLength: 8 });
    assert.deepEqual(Array.from(t16.encode('hello hello hello hello hello hello hello')), [TINY_BOS, 515, 515, 515, 515, 515, 515, TINY_EOS]);
    assert.deepEqual(Array.from(t16.encode('hello')), [TINY_BOS, 515, TINY_EOS, TINY_EOS, TINY_EOS, TINY_EOS, TINY_EOS, TINY_EOS]);
  });
});

describe('tokenizer folders', () => {
  test('pad_token and model_max_length from tokenizer_config.json / special_tokens_map.json (SD 2 pads with "!")', () => {
    const dir = writeTinyTokenizer(join(root, 'sd2'), {
      'special_tokens_map.json': { pad_token: '!', bos_token: { content: '<|startoftext|>' } },
      'tokenizer_config.json': { model_max_length: 10 },
    });
    const tok = loadTokenizer(dir);
    assert.equal(tok.pad, 0);
    assert.equal(tok.maxLength, 10);
    assert.deepEqual(Array.from(tok.encode('hello')), [TINY_BOS, 515, TINY_EOS, 0, 0, 0, 0, 0, 0, 0]);
  });

  test('a tokenizer.json (transformers CLIP converter layout) gives the same ids', () => {
    const dir = join(root, 'json');
    const vocab = tinyVocab();
    const added = (idv: number, content: string) => ({ id: idv, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true });
    writeTinyTokenizer(join(root, 'json-src'));
    writeTinyTokenizer(dir, {
      'tokenizer.json': {
        version: '1.0',
        truncation: null,
        padding: null,
        added_tokens: [added(TINY_BOS, '<|startoftext|>'), added(TINY_EOS, '<|endoftext|>')],
        normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }] },
        pre_tokenizer: {
          type: 'Sequence',
          pretokenizers: [
            { type: 'Split', pattern: { Regex: CLIP_PATTERN }, behavior: 'Removed', invert: true },
            { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
          ],
        },
        post_processor: { type: 'RobertaProcessing', sep: ['<|endoftext|>', TINY_EOS], cls: ['<|startoftext|>', TINY_BOS], trim_offsets: false, add_prefix_space: false },
        decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
        model: { type: 'BPE', dropout: null, unk_token: '<|endoftext|>', continuing_subword_prefix: '', end_of_word_suffix: '</w>', fuse_unk: false, vocab, merges: TINY_MERGES.map(([a, b]) => `${a} ${b}`) },
      },
    });
    const fromJson = loadTokenizer(dir);
    const fromFiles = loadTokenizer(join(root, 'json-src'));
    assert.equal(fromJson.source, 'tokenizer.json');
    for (const [text] of CASES) assert.deepEqual(Array.from(fromJson.encode(text)), Array.from(fromFiles.encode(text)), text);
  });

  test('problems are one-line UsageErrors', () => {
    const bad = (f: () => unknown, re: RegExp) => {
      assert.throws(f, (e: unknown) => e instanceof UsageError && re.test(e.message) && !e.message.includes('\n'));
    };
    bad(() => loadTokenizer(join(root, 'missing')), /no such tokenizer folder/);
    const onlyVocab = join(root, 'only-vocab');
    writeTinyTokenizer(onlyVocab);
    rmSync(join(onlyVocab, 'merges.txt'));
    bad(() => loadTokenizer(onlyVocab), /has no tokenizer\.json and no merges\.txt/);
    const noBos = join(root, 'no-bos');
    writeTinyTokenizer(noBos);
    const v = tinyVocab();
    delete v['<|startoftext|>'];
    writeFileSync(join(noBos, 'vocab.json'), JSON.stringify(v));
    bad(() => loadTokenizer(noBos), /has no <\|startoftext\|> token/);
    const badMerge = join(root, 'bad-merge');
    writeTinyTokenizer(badMerge, { 'merges.txt': '#version: 0.2\nh e\nthree parts here\n' });
    bad(() => loadTokenizer(badMerge), /merges\.txt: line 3 is not a merge/);
    const badJson = join(root, 'bad-json');
    writeTinyTokenizer(badJson, { 'vocab.json': '{"a": ' });
    bad(() => loadTokenizer(badJson), /vocab\.json: not valid JSON/);
  });
});

test('htmlUnescape and cleanPrompt', () => {
  assert.equal(htmlUnescape('a &lt;b&gt; &quot;c&quot; &#39;d&#x27; &amp;amp; &copy;'), 'a <b> "c" \'d\' &amp; &copy;');
  assert.equal(htmlUnescape('&#128512;'), '😀');
  assert.equal(cleanPrompt('  x &amp;amp; y  '), 'x & y');
});
