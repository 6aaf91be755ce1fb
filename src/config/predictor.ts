/**
 * The predictor file: a JSON document holding the raw AdaSDE parameter tables
 * (ALGORITHM.md 4.1) with every option needed to sample with them. `adasde train` writes
 * it as `network-snapshot-<kimg>.json`; `adasde sample --predictor_path` reads it.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { UsageError } from '../cli/errors.js';
import { effectiveCoefficients, type Coefficients, type RawParams } from '../solvers/coefficients.js';
import { GUIDANCE_TYPES, SCHEDULE_TYPES } from './common.js';

export const PREDICTOR_FORMAT = 'adasde-predictor';
export const PREDICTOR_VERSION = 1;

const table = z.array(z.array(z.number().finite()).min(1)).min(1);

export const predictorOptionsSchema = z.object({
  dataset_name: z.string(),
  num_steps: z.number().int().min(2),
  num_points: z.number().int().min(1),
  M: z.number().int().min(0),
  afs: z.boolean(),
  schedule_type: z.enum(SCHEDULE_TYPES),
  schedule_rho: z.number().positive(),
  sigma_min: z.number().positive().optional(),
  sigma_max: z.number().positive().optional(),
  scale_dir: z.number().min(0),
  scale_time: z.number().min(0),
  gamma: z.number().min(0),
  gamma_min: z.number().min(0),
  fcn: z.boolean(),
  sampler_stu: z.literal('adasde'),
  sampler_tea: z.enum(['dpm', 'heun']),
  guidance_type: z.enum(GUIDANCE_TYPES).nullable(),
  guidance_rate: z.number(),
  max_order: z.number().int().nullable().optional(),
  predict_x0: z.boolean().optional(),
  lower_order_final: z.boolean().optional(),
  alpha: z.number().optional(),
});

export const predictorFileSchema = z.object({
  format: z.literal(PREDICTOR_FORMAT),
  version: z.literal(PREDICTOR_VERSION),
  options: predictorOptionsSchema,
  params: z.object({ r: table, scale_dir: table, scale_time: table, weight: table, gamma: table }),
  /** Free-form: where the numbers came from (training run, kimg, source file). */
  provenance: z.record(z.string(), z.unknown()).optional(),
});

export type PredictorFile = z.infer<typeof predictorFileSchema>;
export type PredictorOptions = z.infer<typeof predictorOptionsSchema>;

export function rawParamsOf(p: PredictorFile): RawParams {
  return { r: p.params.r, scaleDir: p.params.scale_dir, scaleTime: p.params.scale_time, weight: p.params.weight, gamma: p.params.gamma };
}

export function coefficientsOf(p: PredictorFile): Coefficients {
  const o = p.options;
  return effectiveCoefficients(rawParamsOf(p), { scaleDir: o.scale_dir, scaleTime: o.scale_time, gamma: o.gamma, gammaMin: o.gamma_min, fcn: o.fcn });
}

/** Check the tables' shapes against num_steps and num_points; returns a problem or undefined. */
export function predictorShapeProblem(p: PredictorFile): string | undefined {
  const rows = p.options.num_steps - 1;
  const cols = p.options.num_points;
  for (const [name, t] of Object.entries(p.params)) {
    if (t.length !== rows || t.some((r) => r.length !== cols)) {
      return `params.${name} is ${t.length}x${t[0]?.length ?? 0}; expected ${rows}x${cols} (num_steps-1 x num_points)`;
    }
  }
  return undefined;
}

export function parsePredictor(text: string, source: string): PredictorFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UsageError(`${source}: not a JSON predictor file`);
  }
  const r = predictorFileSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new UsageError(`${source}: invalid predictor file: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const problem = predictorShapeProblem(r.data);
  if (problem) throw new UsageError(`${source}: ${problem}`);
  return r.data;
}

// Whole kimg, or kimg with three decimals for snapshots between whole kimg (000000.256).
const SNAPSHOT_RE = /^network-snapshot-(\d+(?:\.\d+)?)\.json$/;

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

const PKL_RE = /^network-snapshot-(\d+)\.pkl$/;

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
 * names the run folder `exp/NNNNN-*` (or `exps/NNNNN-*`); otherwise it is a file, or a run
 * folder. A reference pickle is refused with the command that converts it.
 */
export function resolvePredictorPath(spec: string, expDir: string, flag = '--predictor_path'): string {
  if (/^\d+$/.test(spec)) {
    const prefix = spec.padStart(5, '0') + '-';
    for (const dir of experimentDirs(expDir)) {
      const dirs = existsSync(dir) ? readdirSync(dir).filter((d) => d.startsWith(prefix) && statSync(join(dir, d)).isDirectory()) : [];
      if (dirs.length > 1) throw new UsageError(`${flag}: experiment ${spec} is ambiguous under ${dir}: ${dirs.join(', ')}`);
      if (dirs.length === 1) return snapshotOf(join(dir, dirs[0]!), flag);
    }
    throw new UsageError(`${flag}: no experiment ${prefix}* under ${experimentDirs(expDir).join(' or ')}`);
  }
  const p = resolve(spec);
  if (!existsSync(p)) throw new UsageError(`${flag}: ${spec} does not exist (expected an experiment number or a predictor .json file)`);
  if (statSync(p).isDirectory()) return snapshotOf(p, flag);
  if (/\.pkl$/i.test(p)) throw new UsageError(`${flag}: ${spec} is a reference PyTorch pickle; convert it where PyTorch is installed: ${convertCommand(spec)}, then pass the .json`);
  return p;
}

export function loadPredictor(path: string): PredictorFile {
  return parsePredictor(readFileSync(path, 'utf8'), path);
}
