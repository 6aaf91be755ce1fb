/** `adasde fid calc|ref`: Inception statistics and FID (ALGORITHM.md 6). */
import type { Command } from 'commander';
import { fidCalcTable, fidRefTable } from '../config/fid.js';
import { defineCommand } from './command.js';
import { UsageError } from './errors.js';

export function registerFid(program: Command): void {
  const fid = program.command('fid').description('feature statistics and Frechet distances');
  defineCommand(fid, 'calc', 'FID of an image set against reference statistics', fidCalcTable, async () => {
    throw new UsageError('fid calc: not implemented yet in this version (tracked as the `adasde fid` issue)');
  });
  defineCommand(fid, 'ref', 'write reference statistics of an image set', fidRefTable, async () => {
    throw new UsageError('fid ref: not implemented yet in this version (tracked as the `adasde fid` issue); nothing was written');
  });
}
