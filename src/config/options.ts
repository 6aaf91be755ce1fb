/**
 * One table per command describes every option once: its CLI flag (the reference's
 * spelling, e.g. `num_steps`), its zod schema (the TypeScript type comes from it), its
 * default and its help text. Commander is configured from the table and the parsed
 * values are validated by the zod object built from the same table, so flags, help,
 * defaults and types can never drift apart.
 */
import { z } from 'zod';
import { UsageError } from '../core/errors.js';

export interface OptionSpec<S extends z.ZodType = z.ZodType> {
  /** The CLI flag without dashes, in the reference spelling (`num_steps`, `batch-gpu`). */
  flag: string;
  schema: S;
  /** Shown in --help; also used when the flag is absent (before zod parsing). */
  default?: unknown;
  help: string;
  /** What a valid value looks like, for the one-line error message. */
  expect: string;
  /** The default as --help shows it, when it is not a plain value (`False, or the spec's`). */
  helpDefault?: string;
  /** Short alias, e.g. `-n` for `--dry-run`. */
  short?: string;
  /** The flag takes no value (`--quiet`), or an optional one (`--afs`, `--afs=False`). */
  kind?: 'value' | 'bool' | 'switch';
}

export type OptionTable = Record<string, OptionSpec>;

/** The parsed, typed options of a table (camelCase keys). */
export type OptionsOf<T extends OptionTable> = { [K in keyof T]: z.output<T[K]['schema']> };

export function defineOptions<T extends OptionTable>(table: T): T {
  return table;
}

// ---------------------------------------------------------------------------
// Reusable schemas for the reference's flag conventions.

const TRUE_WORDS = new Set(['true', '1', 'yes', 'on']);
const FALSE_WORDS = new Set(['false', '0', 'no', 'off']);

/** click.BOOL-style: `--afs`, `--afs=True`, `--afs=false`, `--afs 0`. */
export const boolFlag = z.preprocess((v) => {
  if (typeof v === 'boolean' || v === undefined) return v;
  if (typeof v === 'string') {
    const s = v.trim().toLowerCase();
    if (TRUE_WORDS.has(s)) return true;
    if (FALSE_WORDS.has(s)) return false;
  }
  return v;
}, z.boolean());

export const intFlag = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.preprocess(numberish, z.number().int().min(min).max(max));

export const numFlag = (min = -Infinity, max = Infinity) =>
  z.preprocess(numberish, z.number().finite().min(min).max(max));

/** A number strictly above `lo`. */
export const posNumFlag = (lo = 0) => z.preprocess(numberish, z.number().finite().gt(lo));

/** Optional string; the reference uses `None` for "unset". */
export const optStr = z.preprocess((v) => (v === 'None' || v === '' ? undefined : v), z.string().optional());

function numberish(v: unknown): unknown {
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v);
    return Number.isNaN(n) ? v : n;
  }
  return v;
}

// ---------------------------------------------------------------------------
// Commander integration.

import type { Command } from 'commander';

function helpDefault(spec: OptionSpec): string {
  if (spec.helpDefault !== undefined) return ` (default: ${spec.helpDefault})`;
  if (spec.default === undefined) return '';
  return ` (default: ${typeof spec.default === 'string' ? spec.default : JSON.stringify(spec.default)})`;
}

/** Register every option of a table on a commander command. */
export function addOptions(cmd: Command, table: OptionTable): Command {
  for (const spec of Object.values(table)) {
    const long = `--${spec.flag}`;
    const names = spec.short ? `${spec.short}, ${long}` : long;
    const kind = spec.kind ?? 'value';
    const syntax = kind === 'switch' ? names : kind === 'bool' ? `${names} [bool]` : `${names} <value>`;
    cmd.option(syntax, `${spec.help}${helpDefault(spec)}`);
    // A switch whose name is already a negation (`--nosubdir`) gets no `--no-` twin: a
    // double negative in --help helps nobody.
    if (kind === 'bool' || (kind === 'switch' && !spec.flag.startsWith('no'))) cmd.option(`--no-${spec.flag}`, `disable --${spec.flag}`);
  }
  return cmd;
}

/** The reference's snake_case spelling of a camelCase option key (`maxOrder` -> `max_order`). */
export const snakeKey = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** Commander's key for a flag: dashes camel-cased (`batch-gpu` -> `batchGpu`), underscores kept. */
export function commanderKey(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** The table keys whose flags were given on the command line (no defaults are registered with commander). */
export function givenKeys(table: OptionTable, raw: Record<string, unknown>): Set<string> {
  return new Set(Object.entries(table).filter(([, spec]) => raw[commanderKey(spec.flag)] !== undefined).map(([k]) => k));
}

/**
 * Validate commander's raw values against the table. Commander keeps the flag
 * spelling as the key (`num_steps`, `batchGpu` for `batch-gpu`), so look both up.
 * Throws UsageError naming the first offending flag.
 */
export function parseOptions<T extends OptionTable>(table: T, raw: Record<string, unknown>): OptionsOf<T> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(table)) {
    let value = raw[commanderKey(spec.flag)];
    if (value === undefined) value = spec.default;
    const r = spec.schema.safeParse(value);
    if (!r.success) {
      if (value === undefined) throw new UsageError(`--${spec.flag} is required (${spec.expect})`);
      // Schemas that know better than "expected X" say so in a custom issue (config/common.ts seedList).
      const custom = r.error.issues.find((i) => i.code === 'custom');
      if (custom) throw new UsageError(`--${spec.flag}: ${custom.message}`);
      const shown = typeof value === 'string' ? `"${value}"` : JSON.stringify(value);
      throw new UsageError(`--${spec.flag}: expected ${spec.expect}, got ${shown}`);
    }
    out[key] = r.data;
  }
  return out as OptionsOf<T>;
}

/** The resolved options as the reference spelling, for `training_options.json` and `--dry-run`. */
export function toFlagRecord(table: OptionTable, opts: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(table)) out[spec.flag] = opts[key] ?? null;
  return out;
}
