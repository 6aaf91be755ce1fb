/** Prompt files: the CSV `text` column (RFC 4180 quoting) or one prompt per line; seed s -> prompt s. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { UsageError } from '../../src/core/errors.js';
import { checkPromptSeeds, parseCsv, promptOf, promptSource, readPromptFile } from '../../src/text/prompts.js';

const dir = mkdtempSync(join(tmpdir(), 'adasde-prompts-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const usage = (f: () => unknown, re: RegExp) => assert.throws(f, (e: unknown) => e instanceof UsageError && re.test(e.message) && !e.message.includes('\n'));

test('parseCsv: quotes, doubled quotes, commas and line breaks inside quotes, CRLF', () => {
  assert.deepEqual(parseCsv('a,b\r\n1,"x, y"\n2,"say ""hi"""\n3,"two\nlines"\n'), [
    ['a', 'b'],
    ['1', 'x, y'],
    ['2', 'say "hi"'],
    ['3', 'two\nlines'],
  ]);
  assert.deepEqual(parseCsv('a,b\n1,'), [
    ['a', 'b'],
    ['1', ''],
  ]);
  assert.throws(() => parseCsv('a\n"open'), /unterminated/);
});

test('a CSV prompt file takes its text column (MS-COCO caption layout), skipping blank lines', () => {
  const p = file('captions.csv', '\ufeff,image_id,id,text\n0,179765,38,"A black Honda motorcycle parked in front of a garage."\n1,190236,143,"An office cubicle with four different types of computers."\n\n2,331352,159,A small closed toilet in a cramped space.\n');
  assert.deepEqual(readPromptFile(p), [
    'A black Honda motorcycle parked in front of a garage.',
    'An office cubicle with four different types of computers.',
    'A small closed toilet in a cramped space.',
  ]);
  usage(() => readPromptFile(file('nocol.csv', 'caption\nx\n')), /has no 'text' column \(header: caption\)/);
  usage(() => readPromptFile(file('short.csv', 'id,text\n1\n')), /prompt 0 has no field 2 \('text'\)/);
  usage(() => readPromptFile(file('empty.csv', 'text\n')), /has no prompts below its header/);
});

test('any other file holds one prompt per line (blank lines are empty prompts)', () => {
  assert.deepEqual(readPromptFile(file('p.txt', 'a red bus\r\n\nA "quoted", line\n')), ['a red bus', '', 'A "quoted", line']);
  usage(() => readPromptFile(file('e.txt', '')), /is empty/);
  usage(() => readPromptFile(join(dir, 'missing.txt')), /--prompt_file: .*missing\.txt does not exist/);
});

test('seed s takes prompt s; seeds beyond the file are a usage error; --prompt is for every seed', () => {
  const src = promptSource(undefined, file('three.txt', 'zero\none\ntwo\n'))!;
  assert.equal(promptOf(src, 0), 'zero');
  assert.equal(promptOf(src, 2), 'two');
  checkPromptSeeds(src, [0, 1, 2]);
  usage(() => checkPromptSeeds(src, [1, 3, 7]), /has 3 prompts, so seeds must be below 3 \(seed s takes prompt s\); got seed 3 and 1 more/);
  const one = promptSource('a cat', undefined)!;
  checkPromptSeeds(one, [0, 100000]);
  assert.equal(promptOf(one, 12345), 'a cat');
  assert.equal(promptSource(undefined, undefined), undefined);
  usage(() => promptSource('a', join(dir, 'three.txt')), /exclude each other/);
});
