/** Schemas shared by several commands. */
import { z } from 'zod';
import { boolFlag, intFlag, numFlag, optStr, posNumFlag } from './options.js';

export const SCHEDULE_TYPES = ['polynomial', 'logsnr', 'time_uniform', 'discrete'] as const;
export type ScheduleType = (typeof SCHEDULE_TYPES)[number];
export const scheduleType = z.enum(SCHEDULE_TYPES);

export const SOLVERS = ['euler', 'heun', 'dpm', 'ipndm', 'ipndm_v', 'deis', 'dpmpp', 'unipc', 'adasde'] as const;
export type SolverName = (typeof SOLVERS)[number];
export const solverName = z.enum(SOLVERS);

export const GUIDANCE_TYPES = ['cfg', 'cg'] as const;
export const guidanceType = z.preprocess(
  (v) => (v === 'None' || v === '' ? undefined : v),
  z.enum(GUIDANCE_TYPES).optional(),
);

/** `cpu`, `cuda` or `cuda:N`. */
export const device = z.string().regex(/^(cpu|cuda(:\d+)?)$/);

/**
 * Parse a seed list in the reference syntax: `0-49999`, `1,2,5-10`.
 * Returns the seeds in the order given (duplicates removed, first occurrence kept).
 */
export function parseSeedList(s: string): number[] | undefined {
  const out: number[] = [];
  const seen = new Set<number>();
  for (const part of s.split(',')) {
    const p = part.trim();
    const m = /^(\d+)(?:-(\d+))?$/.exec(p);
    if (!m) return undefined;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b) || b < a || a > 2 ** 32 - 1 || b > 2 ** 32 - 1) return undefined;
    for (let k = a; k <= b; k++) {
      if (!seen.has(k)) {
        seen.add(k);
        out.push(k);
      }
    }
  }
  return out.length ? out : undefined;
}

export const seedList = z.preprocess(
  (v) => (typeof v === 'string' ? (parseSeedList(v) ?? v) : v),
  z.array(z.number().int().nonnegative()).min(1),
);

/** `--t_steps=[80,10,1,0.002]` or `80,10,1,0.002`: strictly decreasing positive values. */
export function parseTSteps(s: string): number[] | undefined {
  const body = s.trim().replace(/^\[/, '').replace(/\]$/, '');
  const vals = body.split(',').map((x) => Number(x.trim()));
  if (vals.length < 2 || vals.some((v) => !Number.isFinite(v) || v <= 0)) return undefined;
  for (let i = 1; i < vals.length; i++) if (!(vals[i]! < vals[i - 1]!)) return undefined;
  return vals;
}

export const tStepsFlag = z.preprocess(
  (v) => (v === undefined || v === 'None' ? undefined : typeof v === 'string' ? (parseTSteps(v) ?? v) : v),
  z.array(z.number()).min(2).optional(),
);

export { boolFlag, intFlag, numFlag, optStr, posNumFlag };
