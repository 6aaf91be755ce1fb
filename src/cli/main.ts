/**
 * The `adasde` program. User mistakes print one line and exit 2 (never a stack trace);
 * anything else is reported as an internal error with exit 1.
 */
import { Command, CommanderError } from 'commander';
import { describeFsError } from '../io/outdir.js';
import { isUsageError, RunError, USAGE_EXIT } from '../core/errors.js';
import { registerFid } from './fid.js';
import { registerFuse } from './fuse.js';
import { registerInspect } from './inspect.js';
import { registerSample } from './sample.js';
import { registerTable } from './table.js';
import { registerTrain } from './train.js';
import { registerWeb } from './web.js';

export const VERSION = '0.1.0';

export function buildProgram(): Command {
  const program = new Command('adasde')
    .description('Few-step diffusion sampling with AdaSDE for ONNX denoisers')
    .version(VERSION)
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`adasde: ${str.trim().replace(/\s*\n\s*/g, ' ')}\n`) }); // one line, hints included
  registerSample(program);
  registerTrain(program);
  registerFid(program);
  registerInspect(program);
  registerTable(program);
  registerFuse(program);
  registerWeb(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version "errors" are successful exits; the rest was already printed in one line.
      return e.exitCode === 0 ? 0 : USAGE_EXIT;
    }
    if (isUsageError(e)) {
      process.stderr.write(`adasde: error: ${e.message}\n`);
      return USAGE_EXIT;
    }
    if (e instanceof RunError) {
      process.stderr.write(`adasde: error: ${e.message}\n`);
      return 1;
    }
    // A file-system failure that no command anticipated (a disk filling up mid-run, a folder
    // made read-only under us): the run cannot continue, but it is not a bug to trace.
    const fsErr = describeFsError(e);
    const path = (e as NodeJS.ErrnoException | null)?.path;
    if (fsErr && typeof path === 'string') {
      const call = (e as NodeJS.ErrnoException).syscall;
      process.stderr.write(`adasde: error: ${call ? `${call} ` : ''}${path}: ${fsErr.text} (${fsErr.code})\n`);
      return 1;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    process.stderr.write(`adasde: internal error: ${err.message}\n${err.stack ?? ''}\n`);
    return 1;
  }
}
