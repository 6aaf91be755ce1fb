/**
 * `adasde train`: parse -> resolve (src/app/train.ts) -> `--dry-run` prints the record ->
 * run -> summary line. This file owns only what is the command line's: the URL download of
 * --detector, the worker processes of --nproc_per_node, the progress bar and stderr.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { noteLine, resolveModelFile } from '../app/models.js';
import { resolveResume, resolveTrain, runTrain as runPlan, type TrainSinks, type TrainSummary } from '../app/train.js';
import { trainTable, type TrainOptions } from '../config/train.js';
import { distEnv, isWorker, runWorkers, type DistEnv } from '../parallel/launcher.js';
import { loadDenoiserModel } from '../runtime/model.js';
import { defineCommand } from './command.js';
import { localFile } from './download.js';
import { Progress } from './progress.js';

const BAR_FORMAT = '{bar} {kimg}/{total_kimg} kimg | {spk} s/kimg | loss {loss} | ETA {eta_formatted}';

const summaryLine = (done: TrainSummary): string =>
  `trained ${done.totalKimg} kimg (${done.batches} batches) in ${done.seconds.toFixed(1)} s; final loss ${done.finalLoss.toPrecision(4)} -> ${resolve(done.runDir)}\n`;

/**
 * What a worker of `--nproc_per_node` reports to its launcher over the IPC channel: a worker's
 * stdout is not shown and its stderr only when it fails, so the launcher draws the bar and
 * prints the notices and the summary line, from the worker of local rank 0 (all ranks train
 * the same batches).
 */
type TrainReport =
  | { kind: 'start'; total: number; initial: Record<string, string> }
  | { kind: 'set'; value: number; payload: Record<string, string> }
  | { kind: 'notice'; line: string }
  | { kind: 'summary'; line: string };

interface TrainMessage {
  adasdeTrain: TrainReport;
}

/** A worker's sinks: everything goes to the launcher (local rank 0 only). */
function workerSinks(dist: DistEnv): { sinks: TrainSinks; report: (r: TrainReport) => void } {
  const report = (r: TrainReport): void => {
    if (dist.localRank === 0) process.send?.({ adasdeTrain: r } satisfies TrainMessage);
  };
  const sinks: TrainSinks = {
    progress: (total, initial) => {
      report({ kind: 'start', total, initial });
      return { set: (value, payload) => report({ kind: 'set', value, payload }), stop: () => undefined };
    },
    notice: (line) => report({ kind: 'notice', line }),
  };
  return { sinks, report };
}

/** The launcher of `--nproc_per_node`: starts the workers and shows what the first one reports. */
async function launchWorkers(o: TrainOptions, dist: DistEnv): Promise<void> {
  // On the machines after the first of a multi-machine run the launcher stays silent, as a single process of rank > 0 does.
  const quiet = o.quiet || dist.rank > 0;
  let progress: Progress | undefined;
  let summary: string | undefined;
  try {
    await runWorkers(o.nprocPerNode, process.argv, dist, (msg) => {
      const r = (msg as Partial<TrainMessage> | null)?.adasdeTrain;
      if (!r) return;
      if (r.kind === 'start') {
        progress?.stop();
        progress = new Progress(r.total, quiet, 'batches', BAR_FORMAT, r.initial);
      } else if (r.kind === 'set') progress?.set(r.value, r.payload);
      else if (r.kind === 'notice') {
        if (!quiet) noteLine(r.line);
      } else summary = r.line;
    });
  } finally {
    progress?.stop();
  }
  if (summary !== undefined && !quiet) process.stdout.write(summary);
}

async function runTrain(cli: TrainOptions, given: ReadonlySet<string> = new Set()): Promise<void> {
  const dist = distEnv();
  const { opts: o, resumed, extended } = resolveResume(cli, given);
  const modelFile = resolveModelFile(o.model, o.datasetName, o.modelDir, noteLine);
  // A URL detector (as fid's --detector takes) is downloaded once, before any worker starts, so
  // the workers find it in the cache; the options keep the URL the user gave.
  const detectorFile = o.detector === undefined ? undefined : await localFile(o.detector, '--detector', o.quiet);
  if (o.nprocPerNode > 1 && !o.dryRun) {
    await launchWorkers(o, dist);
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
  const worker = isWorker() ? workerSinks(dist) : undefined;
  const sinks: TrainSinks = worker?.sinks ?? {
    progress: (total, initial) => new Progress(total, o.quiet, 'batches', BAR_FORMAT, initial),
    notice: (line) => {
      if (!o.quiet) noteLine(line);
    },
  };
  const done = await runPlan(plan, model, sinks);
  await model.dispose();
  if (worker) worker.report({ kind: 'summary', line: summaryLine(done) });
  else if (dist.rank === 0 && !o.quiet) process.stdout.write(summaryLine(done));
}

export function registerTrain(program: Command): void {
  defineCommand(program, 'train', 'distill AdaSDE coefficients from a DPM-Solver teacher', trainTable, runTrain);
}
