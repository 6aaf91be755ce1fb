/** Schemas shared by several commands. */
import { z } from 'zod';
import { boolFlag, intFlag, numFlag, optStr, posNumFlag, type OptionSpec } from './options.js';
import { solverFlags, SOLVERS, type SolverName } from '../solvers/registry.js';
import { SCHEDULE_TYPES } from '../solvers/schedule.js';

/** The FID detector `fid`, `table` and `train` use when --detector is not given (tools/export_inception.py writes it). */
export const DEFAULT_DETECTOR = 'models/inception-2015-12-05.onnx';

export const scheduleType = z.enum(SCHEDULE_TYPES);

export { SOLVERS, type SolverName };
export const solverName = z.enum(SOLVERS);

/** The solvers' own flags as `adasde sample` options (src/solvers/registry.ts solverFlags). */
export function solverFlagOptions(): Record<string, OptionSpec> {
  const out: Record<string, OptionSpec> = {};
  for (const f of solverFlags()) {
    const kinds = f.solvers.map((s) => baseSchema(s.spec.schema));
    const first = kinds[0]!;
    // Only the kind of value is checked here; each solver's own range (and default) is
    // applied once the solver is known (src/app/sample.ts).
    let schema: z.ZodType;
    if (first instanceof z.ZodBoolean) schema = boolFlag.optional();
    else if (first instanceof z.ZodNumber) {
      const min = Math.min(...kinds.map((k) => (k instanceof z.ZodNumber ? (k.minValue ?? -Infinity) : -Infinity)));
      schema = first.isInt ? intFlag(min).optional() : numFlag(min).optional();
    } else if (first instanceof z.ZodEnum) {
      const values = [...new Set(kinds.flatMap((k) => (k instanceof z.ZodEnum ? (k.options as string[]) : [])))];
      schema = z.enum(values as [string, ...string[]]).optional();
    } else throw new Error(`solver flag --${f.flag}: only boolean, number and enum options become flags`);
    // "ipndm, deis: orders 1 to 4, default 4; dpmpp: orders 1 to 3, default 3".
    const groups = new Map<string, SolverName[]>();
    for (const s of f.solvers) {
      const d = s.spec.schema.safeParse(undefined);
      const shown = d.success ? (typeof d.data === 'boolean' ? (d.data ? 'True' : 'False') : String(d.data)) : 'none';
      const k = `${s.spec.supports ? `${s.spec.supports}, ` : ''}default ${shown}`;
      groups.set(k, [...(groups.get(k) ?? []), s.name]);
    }
    const where = [...groups].map(([k, names]) => `${names.join(', ')}: ${k}`).join('; ');
    out[f.key] = { flag: f.flag, schema, kind: first instanceof z.ZodBoolean ? 'bool' : 'value', help: `${f.help} (${where})`, expect: f.expect };
  }
  return out;
}

/**
 * The solvers' own options as fields of a table row (`max_order: 3`): the kind of value only,
 * each solver's range applies when the row's solver is known (src/app/table-plan.ts).
 */
export function solverRowFields(): Record<string, z.ZodType> {
  const out: Record<string, z.ZodType> = {};
  for (const f of solverFlags()) {
    const kinds = f.solvers.map((s) => baseSchema(s.spec.schema));
    const first = kinds[0]!;
    if (first instanceof z.ZodEnum) out[f.flag] = z.enum([...new Set(kinds.flatMap((k) => (k instanceof z.ZodEnum ? (k.options as string[]) : [])))] as [string, ...string[]]).optional();
    else out[f.flag] = first.optional();
  }
  return out;
}

/** The schema under its default or optional wrapper (`z.number().default(3)` -> the number). */
function baseSchema(s: z.ZodType): z.ZodType {
  let cur: z.ZodType = s;
  while (cur instanceof z.ZodDefault || cur instanceof z.ZodOptional) cur = cur.unwrap() as z.ZodType;
  return cur;
}

export const GUIDANCE_TYPES = ['cfg', 'cg', 'uncond'] as const;
export const guidanceType = z.preprocess(
  (v) => (v === 'None' || v === '' ? undefined : v),
  z.enum(GUIDANCE_TYPES).optional(),
);

/** `cpu`, `cuda` or `cuda:N`. */
export const device = z.string().regex(/^(cpu|cuda(:\d+)?)$/);

// Options several commands declare alike, spelled once (the literal types keep each table's option types).

/** `--device` of every command that runs a model. */
export const deviceOption = { flag: 'device', schema: device, default: 'cpu', help: 'cpu, cuda or cuda:N', expect: 'cpu, cuda or cuda:N' } satisfies OptionSpec;

/** `--threads` of the commands that can start several processes (fid, sample, table, train). */
export const threadsOption = {
  flag: 'threads',
  schema: intFlag(0, 1024),
  default: 0,
  help: 'intra-op threads per process (0: onnxruntime default)',
  expect: 'a non-negative integer',
} satisfies OptionSpec;

/** `--quiet` of the commands whose progress is their only other output (sample, table, train). */
export const quietOption = { flag: 'quiet', schema: boolFlag, default: false, kind: 'switch', help: 'no progress output', expect: 'a switch' } satisfies OptionSpec;

/** Largest seed (the reference draws from a uint32 generator seed). */
export const MAX_SEED = 2 ** 32 - 1;
/** Most seeds one list may hold: 10 million images, far beyond any FID run, still a few MB. */
export const MAX_SEEDS = 10_000_000;

/**
 * Parse a seed list in the reference syntax: `0-49999`, `1,2,5-10`.
 * Returns the seeds in the order given (duplicates removed, first occurrence kept), or a
 * sentence saying what is wrong.
 */
export function checkSeedList(s: string): number[] | string {
  const out: number[] = [];
  const seen = new Set<number>();
  for (const part of s.split(',')) {
    const p = part.trim();
    const m = /^(\d+)(?:-(\d+))?$/.exec(p);
    if (!m) return `expected a seed list like 0-63 or 1,2,5-10, got "${s}"`;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (!(a <= MAX_SEED) || !(b <= MAX_SEED)) return `seed ${m[2] !== undefined && !(b <= MAX_SEED) ? m[2] : m[1]} is too large (seeds go up to ${MAX_SEED})`;
    if (b < a) return `range ${p} is empty (write the smaller seed first)`;
    if (b - a + 1 > MAX_SEEDS || out.length + (b - a + 1) > MAX_SEEDS) return `"${s}" holds too many seeds (at most ${MAX_SEEDS})`;
    for (let k = a; k <= b; k++) {
      if (!seen.has(k)) {
        seen.add(k);
        out.push(k);
      }
    }
  }
  return out.length ? out : `expected at least one seed, got "${s}"`;
}

/** `checkSeedList` without the reason: undefined when the list is not valid. */
export function parseSeedList(s: string): number[] | undefined {
  const r = checkSeedList(s);
  return typeof r === 'string' ? undefined : r;
}

export const seedList = z.preprocess(
  (v, ctx) => {
    if (typeof v !== 'string') return v;
    const r = checkSeedList(v);
    if (typeof r === 'string') {
      // A custom issue's message is shown as is (config/options.ts parseOptions).
      ctx.addIssue({ code: 'custom', message: r });
      return z.NEVER;
    }
    return r;
  },
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
