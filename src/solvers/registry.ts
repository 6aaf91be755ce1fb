/**
 * The solver registry: the list of solver descriptors (src/solvers/descriptor.ts). The
 * `--solver` names, the option types and every command's solver flags derive from it, so
 * adding a solver is its own file plus one line here.
 */
import { adasdeSolver } from './adasde.js';
import { deisSolver } from './deis.js';
import type { ModelTraits, SolverDescriptor, SolverFlag } from './descriptor.js';
import { dpmSolver } from './dpm.js';
import { dpmppSolver } from './dpmpp.js';
import { eulerSolver } from './euler.js';
import { heunSolver } from './heun.js';
import { ipndmSolver } from './ipndm.js';
import { ipndmVSolver } from './ipndmv.js';
import { unipcSolver } from './unipc.js';

/** Every solver, in the order --help lists them. */
const SOLVER_LIST = [eulerSolver, heunSolver, dpmSolver, ipndmSolver, ipndmVSolver, deisSolver, dpmppSolver, unipcSolver, adasdeSolver] as const;

export type SolverName = (typeof SOLVER_LIST)[number]['name'];
export const SOLVERS = SOLVER_LIST.map((d) => d.name) as [SolverName, ...SolverName[]];

type OptionsOfSolver<D> = D extends SolverDescriptor<infer O, string> ? O : never;
type Intersection<U> = (U extends unknown ? (k: U) => void : never) extends (k: infer I) => void ? I : never;
/** The union of every solver's options (each solver reads the ones it knows). */
export type SolverOptions = Partial<Intersection<OptionsOfSolver<(typeof SOLVER_LIST)[number]>>>;

export type AnySolver = SolverDescriptor<SolverOptions>;

export const SOLVER_REGISTRY = Object.fromEntries(SOLVER_LIST.map((d) => [d.name, d as AnySolver])) as Record<SolverName, AnySolver>;

export const isSolverName = (s: string): s is SolverName => Object.hasOwn(SOLVER_REGISTRY, s);

/** One flag as several solvers declare it: the solvers that read it, each with its own values. */
export interface SharedFlag {
  /** The camelCase option key (`maxOrder`). */
  key: string;
  flag: string;
  /** The first declaration's help and expectation. */
  help: string;
  expect: string;
  onlyWith?: string;
  solvers: { name: SolverName; spec: SolverFlag }[];
}

/** Every solver flag once, in the order first declared, with the solvers that read it. */
export function solverFlags(): SharedFlag[] {
  const out = new Map<string, SharedFlag>();
  for (const d of SOLVER_LIST) {
    for (const [key, spec] of Object.entries(d.flags) as [string, SolverFlag][]) {
      let f = out.get(key);
      if (!f) out.set(key, (f = { key, flag: spec.flag, help: spec.help, expect: spec.expect, onlyWith: spec.onlyWith, solvers: [] }));
      else if (f.flag !== spec.flag) throw new Error(`solver option ${key}: ${d.name} spells it --${spec.flag}, another solver --${f.flag}`);
      f.solvers.push({ name: d.name, spec });
    }
  }
  return [...out.values()];
}

/** A solver option that could not be resolved: the flag and the sentence saying why. */
export interface SolverOptionError {
  flag: string;
  message: string;
}

/**
 * A solver's options from the values given for its flags (camelCase keys, undefined: not
 * given): the model's defaults, then the schema defaults, fill in the rest. A value outside
 * what this solver supports, or a flag it refuses (`onlyWith`), is reported, not thrown.
 */
export function solverOptions(name: SolverName, given: Readonly<Record<string, unknown>>, model: ModelTraits): { options: SolverOptions } | { error: SolverOptionError } {
  const d = SOLVER_REGISTRY[name];
  for (const f of solverFlags()) {
    if (f.onlyWith !== undefined && given[f.key] !== undefined && !f.solvers.some((s) => s.name === name)) {
      return { error: { flag: f.flag, message: `--${f.flag} is for ${f.onlyWith} (${f.solvers.map((s) => s.name).join(', ')}), not ${name}` } };
    }
  }
  const defaults: Record<string, unknown> = d.modelDefaults?.(model) ?? {};
  const options: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(d.flags) as [string, SolverFlag][]) {
    const value = given[key] ?? defaults[key];
    const r = spec.schema.safeParse(value);
    if (!r.success) return { error: { flag: spec.flag, message: `--${spec.flag}: ${name} supports ${spec.supports ?? spec.expect}, got ${String(value)}` } };
    options[key] = r.data;
  }
  return { options: options as SolverOptions };
}

/** A solver's options with nothing given (its reference defaults for this kind of model). */
export function defaultSolverOptions(name: SolverName, model: ModelTraits = { latent: false }): SolverOptions {
  const r = solverOptions(name, {}, model);
  if ('error' in r) throw new Error(`solver ${name}: its defaults do not satisfy its schema (${r.error.message})`);
  return r.options;
}

/** NFE of the teacher for a student grid of N points with M inserted points (ALGORITHM.md 4.2). */
export const teacherNfe = (numSteps: number, M: number): number => 4 * (M + 1) * (numSteps - 1);
