/** `adasde train`: distill AdaSDE coefficients from the teacher (ALGORITHM.md 4.2-4.3). */
import type { Command } from 'commander';
import { trainTable } from '../config/train.js';
import { defineCommand } from './command.js';
import { UsageError } from './errors.js';

export function registerTrain(program: Command): void {
  defineCommand(program, 'train', 'distill AdaSDE coefficients from a DPM-Solver teacher', trainTable, async () => {
    throw new UsageError('train: not implemented yet in this version (tracked as the `adasde train` issue); nothing was written');
  });
}
