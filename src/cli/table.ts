/**
 * `adasde table`: one resumable command for a whole FID-versus-NFE table. Parse, resolve the
 * plan (src/app/table.ts), print it for `--dry-run`, run it, print the table and the summary.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { cachedFile, describeTablePlan, openReferences, resolveTable, runTable, tableInputs, type TableReferences } from '../app/table.js';
import { tableOptionTable, type TableOptions } from '../config/table.js';
import { distEnv } from '../parallel/launcher.js';
import { loadDenoiserModel } from '../runtime/model.js';
import { defineCommand } from './command.js';
import { localFile } from './download.js';
import { Progress } from './progress.js';

async function tableCommand(o: TableOptions): Promise<void> {
  const outer = distEnv();
  const inputs = tableInputs(o);
  const started = Date.now();
  // URLs (EDM's published fid-refs) are read from their cached download (src/io/download.ts);
  // a dry run downloads nothing and uses what is cached.
  let local: { detector?: string; ref?: string } = { detector: cachedFile(inputs.detector), ref: cachedFile(inputs.ref) };
  // Checked before the model loads, so a bad --ref or --detector fails first (not in a dry run).
  let refs: TableReferences | undefined;
  if (!o.dryRun) {
    const ref = await localFile(inputs.ref, '--ref', o.quiet);
    const detector = await localFile(inputs.detector, '--detector', o.quiet);
    local = { ref, detector };
    refs = await openReferences(detector, ref);
  }
  const model = await loadDenoiserModel(inputs.modelFile, { device: o.device, threads: o.threads || undefined, maxBatch: inputs.batch });
  let plan;
  try {
    plan = await resolveTable(inputs, model, local);
  } catch (e) {
    await model.dispose();
    throw e;
  }
  // No references: this is a dry run.
  if (!refs) {
    await model.dispose();
    process.stdout.write(JSON.stringify(describeTablePlan(plan), null, 2) + '\n');
    process.stdout.write('Dry run; nothing written.\n');
    return;
  }
  const quietRank = o.quiet || (outer.world > 1 && outer.rank > 0);
  const res = await runTable(plan, refs, model, outer, {
    progress: (total, cells) =>
      new Progress(total, quietRank, 'images', '{bar} cell {cell}/{cells} {what} | {value}/{total} images | {rate} images/s | ETA {eta_formatted}', { cell: '1', cells: String(cells), what: '' }),
    warn: (line) => process.stderr.write(`adasde: warning: ${line}\n`),
  });
  if (res.partial) return;
  process.stdout.write(res.md);
  if (!o.quiet) {
    process.stderr.write(`table: ${res.cells} cells (${res.computed} computed, ${res.reused} reused, ${res.missing} n/a) in ${((Date.now() - started) / 1000).toFixed(1)} s -> ${resolve(plan.outdir)}\n`);
  }
}

export function registerTable(program: Command): void {
  defineCommand(program, 'table', 'compute a resumable FID-versus-NFE table (rows: solvers, columns: NFE)', tableOptionTable, tableCommand);
}
