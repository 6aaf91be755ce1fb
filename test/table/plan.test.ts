/** Seed lists written into the table's per-cell commands read back as the same seeds. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSeedList } from '../../src/config/common.js';
import { formatSeedList } from '../../src/app/sample.js';

test('formatSeedList folds runs into ranges and parses back to the same seeds in order', () => {
  assert.equal(formatSeedList([0, 1, 2, 3]), '0-3');
  assert.equal(formatSeedList([7]), '7');
  assert.equal(formatSeedList([1, 3, 4, 5, 9, 2]), '1,3-5,9,2');
  let state = 12345;
  const rand = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let trial = 0; trial < 200; trial++) {
    const seen = new Set<number>();
    const seeds: number[] = [];
    const n = 1 + Math.floor(rand() * 40);
    let s = Math.floor(rand() * 100);
    while (seeds.length < n) {
      // Mostly consecutive, sometimes a jump (forwards or backwards).
      s = rand() < 0.7 ? s + 1 : Math.floor(rand() * 200);
      if (!seen.has(s)) {
        seen.add(s);
        seeds.push(s);
      }
    }
    assert.deepEqual(parseSeedList(formatSeedList(seeds)), seeds);
  }
});
