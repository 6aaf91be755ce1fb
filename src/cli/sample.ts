/** `adasde sample`: images for a seed range with AdaSDE or a baseline solver. */
import type { Command } from 'commander';
import { sampleTable } from '../config/sample.js';
import { defineCommand } from './command.js';
import { UsageError } from './errors.js';

export function registerSample(program: Command): void {
  defineCommand(program, 'sample', 'write images for a seed range', sampleTable, async () => {
    throw new UsageError('sample: not implemented yet in this version');
  });
}
