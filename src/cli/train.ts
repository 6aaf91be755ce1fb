/**
 * `adasde train`: parse -> resolve (src/app/train.ts) -> `--dry-run` prints the record ->
 * run -> summary line. This file owns only what is the command line's: the URL download of
 * --detector, the worker processes of --nproc_per_node, the progress bar and stderr.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { noteLine, resolveModelFile } from '../app/models.js';
import { resolveResume, resolveTrain, runTrain as runPlan, type TrainSinks } from '../app/train.js';
import { trainTable, type TrainOptions } from '../config/train.js';
import { distEnv, runWorkers } from '../parallel/launcher.js';
import { loadDenoiserModel } from '../runtime/model.js';
import { defineCommand } from './command.js';
import { localFile } from './download.js';
import { Progress } from './progress.js';

async function runTrain(cli: TrainOptions, given: ReadonlySet<string> = new Set()): Promise<void> {
  const dist = distEnv();
  const { opts: o, resumed, extended } = resolveResume(cli, given);
  const modelFile = resolveModelFile(o.model, o.datasetName, o.modelDir, noteLine);
  // A URL detector (as fid's --detector takes) is downloaded once, before any worker starts, so
  // the workers find it in the cache; the options keep the URL the user gave.
  const detectorFile = o.detector === undefined ? undefined : await localFile(o.detector, '--detector', o.quiet);
  if (o.nprocPerNode > 1 && !o.dryRun) {
    await runWorkers(o.nprocPerNode, process.argv, dist);
    return;
  }
  const device = o.device === 'cuda' && dist.world > 1 ? `cuda:${dist.localRank}` : o.device;
  const model = await loadDenoiserModel(modelFile, {
    device,
    threads: o.threads || undefined,
    maxBatch: o.batchGpu ?? 4096,
    guidanceRate: o.guidanceType === 'cfg' && o.guidanceRate > 0 ? o.guidanceRate : undefined,
  });
  const plan = resolveTrain(o, model, { modelFile, detectorFile, resumed, extended, dist, device });
  if (o.dryRun) {
    process.stdout.write(JSON.stringify(plan.record, null, 2) + '\n');
    process.stdout.write('Dry run; exiting.\n');
    await model.dispose();
    return;
  }
  const sinks: TrainSinks = {
    progress: (total, initial) => new Progress(total, o.quiet, 'batches', '{bar} {kimg}/{total_kimg} kimg | {spk} s/kimg | loss {loss} | ETA {eta_formatted}', initial),
    notice: (line) => {
      if (!o.quiet) noteLine(line);
    },
  };
  const done = await runPlan(plan, model, sinks);
  await model.dispose();
  if (dist.rank === 0 && !o.quiet) {
    process.stdout.write(`trained ${done.totalKimg} kimg (${done.batches} batches) in ${done.seconds.toFixed(1)} s; final loss ${done.finalLoss.toPrecision(4)} -> ${resolve(done.runDir)}\n`);
  }
}

export function registerTrain(program: Command): void {
  defineCommand(program, 'train', 'distill AdaSDE coefficients from a DPM-Solver teacher', trainTable, runTrain);
}
