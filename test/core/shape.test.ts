import assert from 'node:assert/strict';
import test from 'node:test';
import { checkBatchLength, elementCount } from '../../src/core/shape.js';

test('elementCount: product of the dims, 1 for the empty shape, 0 when a dim is 0', () => {
  assert.equal(elementCount([3, 32, 32]), 3072);
  assert.equal(elementCount([4, 64, 64]), 16384);
  assert.equal(elementCount([]), 1);
  assert.equal(elementCount([5, 0, 2]), 0);
});

test('checkBatchLength: accepts exactly batch x dim values and names the array otherwise', () => {
  assert.doesNotThrow(() => checkBatchLength('x', new Float64Array(6), 2, 3));
  assert.throws(() => checkBatchLength('latents', new Float64Array(5), 2, 3), /^RangeError: latents holds 5 values, expected 6$/);
  assert.throws(() => checkBatchLength('x', new Float64Array(7), 2, 3), RangeError);
});
