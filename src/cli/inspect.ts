/**
 * `adasde inspect FILE`: parse -> resolve -> run (src/app/inspect.ts) -> the report on
 * stdout, every problem one line on stderr and exit code 2.
 */
import { basename } from 'node:path';
import type { Command } from 'commander';
import { resolveInspect, runInspect } from '../app/inspect.js';
import { inspectTable, type InspectOptions } from '../config/inspect.js';
import { addOptions, parseOptions } from '../config/options.js';
import { USAGE_EXIT } from '../core/errors.js';

async function inspectCommand(file: string, o: InspectOptions): Promise<void> {
  const res = await runInspect(resolveInspect(file, o));
  for (const l of res.lines) process.stdout.write(`${l}\n`);
  const what = (res.contract ?? 'adasde').replace('_', ' ');
  if (res.problems.length === 0) {
    process.stdout.write(`result      ${basename(file)} satisfies the ${what} contract\n`);
    return;
  }
  process.stdout.write(`result      ${basename(file)} does not satisfy the ${what} contract: ${res.problems.length} problem${res.problems.length > 1 ? 's' : ''} (stderr)\n`);
  for (const p of res.problems) process.stderr.write(`adasde: error: ${p}\n`);
  process.exitCode = USAGE_EXIT;
}

export function registerInspect(program: Command): void {
  const cmd = program
    .command('inspect')
    .description('check which adasde contract an ONNX file (or tokenizer folder) satisfies and run a tiny forward pass')
    .argument('<file>', 'ONNX model file, or a tokenizer folder')
    .allowExcessArguments(false);
  addOptions(cmd, inspectTable);
  cmd.action(async (file: string, raw: Record<string, unknown>) => {
    await inspectCommand(file, parseOptions(inspectTable, raw));
  });
}
