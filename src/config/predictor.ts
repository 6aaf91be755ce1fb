/**
 * The predictor file: a JSON document holding the raw AdaSDE parameter tables
 * (ALGORITHM.md 4.1) with every option needed to sample with them. `adasde train` writes
 * it as `network-snapshot-<kimg>.json`; `adasde sample --predictor_path` reads it (found
 * through the run directories of src/io/runs.ts).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { UsageError } from '../core/errors.js';
import { effectiveCoefficients, type Coefficients, type RawParams } from '../solvers/coefficients.js';
import { GUIDANCE_TYPES } from './common.js';
import { SCHEDULE_TYPES } from '../solvers/schedule.js';

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

export function loadPredictor(path: string): PredictorFile {
  return parsePredictor(readFileSync(path, 'utf8'), path);
}
