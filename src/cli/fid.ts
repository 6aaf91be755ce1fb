/**
 * `adasde fid calc|ref`: parse -> resolve -> run (src/app/fid.ts) -> the result line. This
 * file owns what is the command line's: URL downloads of --ref and --detector, the progress
 * bar, Ctrl-C, stderr and stdout.
 */
import type { Command } from 'commander';
import { resolveFidCalc, resolveFidRef, runFidCalc, runFidRef, type FidCalcResult, type FidSinks } from '../app/fid.js';
import { fidCalcTable, fidRefTable, type FidCalcOptions, type FidRefOptions } from '../config/fid.js';
import { defineCommand } from './command.js';
import { onInterrupt } from './interrupt.js';
import { localFile } from './download.js';
import { ITEMS_ONLY, Progress } from './progress.js';

function sinksOf(quiet: boolean): FidSinks {
  return {
    progress: (total) => new Progress(total, quiet, 'images', ITEMS_ONLY('images')),
    notice: (line) => {
      if (!quiet) process.stderr.write(`adasde: ${line}\n`);
    },
    warn: (line) => process.stderr.write(`adasde: ${line}\n`),
    onInterrupt,
  };
}

const secondsSince = (t0: number): number => Math.round(Date.now() - t0) / 1000;

function rateText(n: number, secs: number): string {
  return `${(n / Math.max(secs, 1e-3)).toFixed(1)} images/s`;
}

function formatValue(v: number): string {
  return String(v);
}

async function runCalc(flags: FidCalcOptions): Promise<void> {
  const started = Date.now();
  // The reference's --ref takes a URL (EDM's published fid-refs); so do --ref and --detector here.
  const plan = resolveFidCalc(flags, { ref: await localFile(flags.ref, '--ref', flags.quiet), detector: await localFile(flags.detector, '--detector', flags.quiet) });
  const r = await runFidCalc(plan, sinksOf(flags.quiet));
  if (r) report(plan.opts, r, secondsSince(started));
}

function report(o: FidCalcOptions, r: FidCalcResult, secs: number): void {
  if (!o.quiet) {
    const what = r.n === null ? `statistics ${o.images}` : `${r.n} images from ${o.images}`;
    const speed = r.n === null ? '' : `, ${rateText(r.n, secs)}`;
    const by = r.detector === null ? '' : ` with ${r.detector}`;
    process.stderr.write(`adasde: ${r.metric.name} ${(Math.abs(r.value) < 5e-5 ? 0 : r.value).toFixed(4)}: ${what} against ${o.ref}${by} in ${secs.toFixed(1)} s${speed}\n`);
  }
  if (o.json) {
    const rec = { [r.metric.key]: r.value, metric: r.metric.key, n: r.n, detector: r.detector, ref: o.ref, images: o.images, elapsed: secs };
    process.stdout.write(`${JSON.stringify(rec)}\n`);
  } else {
    process.stdout.write(`${formatValue(r.value)}\n`);
  }
}

async function runRef(flags: FidRefOptions): Promise<void> {
  const started = Date.now();
  const plan = resolveFidRef(flags, { detector: await localFile(flags.detector, '--detector', flags.quiet) });
  const r = await runFidRef(plan, sinksOf(flags.quiet));
  if (r && !flags.quiet) {
    const secs = secondsSince(started);
    process.stderr.write(`adasde: ${r.metric.name} reference statistics (dim ${r.dim}) of ${r.n} images from ${plan.opts.data} written to ${r.dest} in ${secs.toFixed(1)} s, ${rateText(r.n, secs)}\n`);
  }
}

export function registerFid(program: Command): void {
  const fid = program.command('fid').description('feature statistics and Frechet distances');
  defineCommand(fid, 'calc', 'FID of an image set (or statistics .npz) against reference statistics', fidCalcTable, runCalc);
  defineCommand(fid, 'ref', 'write reference statistics (mu, sigma) of an image set', fidRefTable, runRef);
}
