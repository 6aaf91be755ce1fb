/**
 * Run directories, in the shape of EDM's train.py: an experiment folder (`exp/`) holds
 * numbered run folders `NNNNN-<description>`, each with its predictor snapshots
 * `network-snapshot-<kimg>.json` (or one `predictor.json` for a converted published run).
 * Everything that claims, numbers, names or looks up such folders and snapshots is here:
 * `adasde train` claims and writes them, `--resume` and `--init` find them, `sample`,
 * `table` and `fuse` resolve `--predictor_path` through them.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../core/errors.js';

/** Digits of a run number in a folder name (EDM's `00012-...`). */
const RUN_ID_WIDTH = 5;

/** `12` -> `00012`. */
export function runTag(id: number): string {
  return String(id).padStart(RUN_ID_WIDTH, '0');
}

/** A run folder's name without its number: `00012-cifar10-4-5-...` -> `cifar10-4-5-...`. */
export function runDescOf(runDir: string): string {
  return basename(runDir).replace(/^\d+-/, '');
}

/** EDM's numbering: one more than the largest numeric prefix of any entry in the folder. */
export function nextRunId(outdir: string): number {
  // Not a folder: nothing numbered in it; prepareOutdir refuses it before anything is written.
  const ids = existsSync(outdir) && statSync(outdir).isDirectory()
    ? readdirSync(outdir)
        .map((n) => /^(\d+)/.exec(n))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => Number(m[1]))
    : [];
  return ids.length ? Math.max(...ids) + 1 : 0;
}

/** The folder the next run would get (a preview: `claimRunDir` takes the number for real). */
export function nextRunDir(outdir: string, desc: string): string {
  return join(outdir, `${runTag(nextRunId(outdir))}-${desc}`);
}

/**
 * Creates the next numbered run folder, safe against other `adasde train` processes
 * starting at the same moment (launch.sh-style scripts run several at once): a number is
 * taken by creating `.claim-NNNNN` exclusively, and kept only if no folder with that number
 * appeared meanwhile. A claim left by a crashed process only skips its number.
 */
export function claimRunDir(outdir: string, desc: string): string {
  mkdirSync(outdir, { recursive: true });
  let id = nextRunId(outdir);
  for (;;) {
    const tag = runTag(id);
    const claim = join(outdir, `.claim-${tag}`);
    try {
      closeSync(openSync(claim, 'wx'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
        id++;
        continue;
      }
      throw e;
    }
    if (readdirSync(outdir).some((n) => n.startsWith(`${tag}-`) || n === tag)) {
      // Taken by a process that finished its claim meanwhile: the folder now guards the number.
      rmSync(claim, { force: true });
      id++;
      continue;
    }
    const dir = join(outdir, `${tag}-${desc}`);
    mkdirSync(dir);
    rmSync(claim, { force: true });
    return dir;
  }
}

export interface RunFolder {
  id: number;
  path: string;
}

/** The numbered run folders `NNNNN-*` of an experiment folder, by number (none if it does not exist). */
export function listRuns(expDir: string): RunFolder[] {
  if (!existsSync(expDir)) return [];
  const out: RunFolder[] = [];
  for (const name of readdirSync(expDir)) {
    const m = /^(\d{5})-/.exec(name);
    if (m && statSync(join(expDir, name)).isDirectory()) out.push({ id: Number(m[1]), path: join(expDir, name) });
  }
  return out.sort((a, b) => a.id - b.id);
}

/** The run folders of `expDir` whose number is `spec` (`3`, `00003`): usually one, or none. */
export function runsNumbered(expDir: string, spec: string): string[] {
  const prefix = spec.padStart(RUN_ID_WIDTH, '0') + '-';
  return existsSync(expDir) ? readdirSync(expDir).filter((d) => d.startsWith(prefix) && statSync(join(expDir, d)).isDirectory()) : [];
}

/**
 * `--resume`: a run number under `outdir`, or a run folder itself.
 */
export function resolveRunDir(spec: string, outdir: string, flag = '--resume'): string {
  if (/^\d+$/.test(spec)) {
    const dirs = runsNumbered(outdir, spec);
    if (dirs.length !== 1) throw new UsageError(`${flag}: no single run ${spec.padStart(RUN_ID_WIDTH, '0')}-* under ${outdir}`);
    return join(outdir, dirs[0]!);
  }
  if (!existsSync(spec)) throw new UsageError(`${flag}: ${spec} does not exist`);
  return spec;
}

/**
 * EDM's naming, whole kimg in 6 digits; a snapshot between whole kimg (a fractional --tick)
 * adds three decimals (000000.256), so a learning curve keeps every point instead of
 * rewriting 000000.
 */
export function snapshotName(kimg: number): string {
  const whole = Math.floor(kimg + 1e-9);
  const milli = Math.round((kimg - whole) * 1000);
  const frac = milli > 0 && milli < 1000 ? `.${String(milli).padStart(3, '0')}` : '';
  return `network-snapshot-${String(whole).padStart(6, '0')}${frac}.json`;
}

// Whole kimg, or kimg with three decimals for snapshots between whole kimg (000000.256).
const SNAPSHOT_RE = /^network-snapshot-(\d+(?:\.\d+)?)\.json$/;
// The reference's train.py writes pickles of the same name.
const PKL_RE = /^network-snapshot-(\d+)\.pkl$/;

/** The newest snapshot of a run folder, or its `predictor.json` (converted published runs). */
export function latestSnapshot(dir: string): string | undefined {
  const names = readdirSync(dir);
  const snaps = names.map((n) => SNAPSHOT_RE.exec(n)).filter((m): m is RegExpExecArray => m !== null);
  if (snaps.length) {
    snaps.sort((a, b) => Number(a[1]) - Number(b[1]));
    return join(dir, snaps[snaps.length - 1]![0]);
  }
  return names.includes('predictor.json') ? join(dir, 'predictor.json') : undefined;
}

/** The converter for the reference's pickled predictors (shipped with the package). */
export const CONVERTER = fileURLToPath(new URL('../../../tools/convert_predictor.py', import.meta.url));

/** The exact command that turns a reference pickle into a predictor JSON beside it. */
export function convertCommand(pkl: string): string {
  const out = pkl.replace(/\.pkl$/i, '.json');
  return `python3 ${CONVERTER} ${pkl} --out ${out}`;
}

/** A run folder's newest snapshot, or the reason it has none (naming the pickle to convert). */
function snapshotOf(dir: string, flag: string): string {
  const snap = latestSnapshot(dir);
  if (snap) return snap;
  const pkls = readdirSync(dir).filter((n) => PKL_RE.test(n)).sort((a, b) => Number(PKL_RE.exec(a)![1]) - Number(PKL_RE.exec(b)![1]));
  if (pkls.length) {
    const pkl = join(dir, pkls[pkls.length - 1]!);
    throw new UsageError(`${flag}: ${dir} holds the reference's ${pkls[pkls.length - 1]} (a PyTorch pickle); convert it where PyTorch is installed: ${convertCommand(pkl)}`);
  }
  throw new UsageError(`${flag}: ${dir} holds no network-snapshot-*.json or predictor.json`);
}

/**
 * Where experiment numbers are looked up: the given folder and, for the default `exp` (this
 * toolkit's and the reference README's name), also `exps` beside it (what the reference's
 * train.py writes).
 */
export function experimentDirs(expDir: string): string[] {
  return basename(resolve(expDir)) === 'exp' ? [expDir, join(dirname(expDir), 'exps')] : [expDir];
}

/**
 * Resolve `--predictor_path` as the reference does: an experiment number (`0`, `00012`)
 * names the run folder `exp/NNNNN-*` (or `exps/NNNNN-*`) and its newest snapshot; otherwise
 * it is a file, or a run folder. A reference pickle is refused with the command that
 * converts it. `alsoAccepted` names what else the flag takes, for the error (`--init`: neutral).
 */
export function resolvePredictorPath(spec: string, expDir: string, flag = '--predictor_path', alsoAccepted = ''): string {
  if (/^\d+$/.test(spec)) {
    for (const dir of experimentDirs(expDir)) {
      const dirs = runsNumbered(dir, spec);
      if (dirs.length > 1) throw new UsageError(`${flag}: experiment ${spec} is ambiguous under ${dir}: ${dirs.join(', ')}`);
      if (dirs.length === 1) return snapshotOf(join(dir, dirs[0]!), flag);
    }
    throw new UsageError(`${flag}: no experiment ${spec.padStart(RUN_ID_WIDTH, '0')}-* under ${experimentDirs(expDir).join(' or ')}`);
  }
  const p = resolve(spec);
  if (!existsSync(p)) throw new UsageError(`${flag}: ${spec} does not exist (expected an experiment number, a run folder or a predictor .json file${alsoAccepted ? `, or ${alsoAccepted}` : ''})`);
  if (statSync(p).isDirectory()) return snapshotOf(p, flag);
  if (/\.pkl$/i.test(p)) throw new UsageError(`${flag}: ${spec} is a reference PyTorch pickle; convert it where PyTorch is installed: ${convertCommand(spec)}, then pass the .json`);
  return p;
}
