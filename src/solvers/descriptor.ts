/**
 * What a solver says about itself, so that nothing outside its own file and the registry
 * needs to know it exists: its options (zod schemas carrying the reference's defaults), the
 * CLI flags that set them in the reference's spelling, its NFE formula (ALGORITHM.md 3-4)
 * and its sampling function. `adasde sample`, `adasde table` and `--help` are derived from
 * these descriptors (src/app/sample.ts, src/config/sample.ts, src/config/table.ts).
 */
import { z } from 'zod';
import type { BaseSolverOptions } from './common.js';
import { EagerOps, type SolverOps } from './ops.js';
import type { SolverContext } from './types.js';

/** One option of a solver, as a flag of `adasde sample` and a field of a table row. */
export interface SolverFlag {
  /** The reference's flag spelling without dashes (`max_order`); also the table-row key. */
  flag: string;
  /** The values this solver accepts, with its default (`z.number().int().min(1).max(3).default(3)`). */
  schema: z.ZodType;
  /** --help text (the default is appended). */
  help: string;
  /** What any solver's valid value looks like, for the one-line error (`a positive integer`). */
  expect: string;
  /** What this solver supports, when narrower than `expect` (`orders 1 to 3`). */
  supports?: string;
  /**
   * Refuse the flag with a solver that lacks it, naming the family (`the multistep
   * solvers`); otherwise such a flag is accepted and ignored, as the reference's sample.py does.
   */
  onlyWith?: string;
}

/** What the resolution knows about the model when it fills in a solver's defaults. */
export interface ModelTraits {
  /** Latent family (LDM, Stable Diffusion): the state is a latent, not pixels. */
  latent: boolean;
}

export interface SolverDescriptor<O extends BaseSolverOptions = BaseSolverOptions, N extends string = string> {
  /** The `--solver` name. */
  name: N;
  /** One line for --help: the method and its paper. */
  summary: string;
  /** The solver's own options (camelCase keys of O), each with its flag. */
  flags: { [K in Exclude<keyof O, keyof BaseSolverOptions>]?: SolverFlag };
  /** Defaults that depend on the model (dpmpp/unipc threshold pixel models only); flags win. */
  modelDefaults?(model: ModelTraits): Partial<O>;
  /**
   * The solver runs on learned coefficients read from an AdaSDE predictor file
   * (`--predictor_path`), which also fixes its schedule, num_steps and afs.
   */
  usesPredictor?: boolean;
  /** Denoiser evaluations per sample on a grid of num_steps points. */
  nfe(numSteps: number, opts: O): number;
  /**
   * The sampler itself, from x0 = t_0 z over the grid t, written once against the array
   * operations (ops.ts): the host loop runs it on Float64Array states (`sample`), the fused
   * sampler (src/fuse/) on graph values, so both compute the same arithmetic.
   */
  solve<A>(o: SolverOps<A>, x0: A, t: Float64Array, opts: O): Promise<A>;
  /** `solve` on the eager operations: integrate from x0 over ctx.tSteps; returns a new state. */
  sample(x0: Float64Array, ctx: SolverContext, opts: O): Promise<Float64Array>;
}

/** What a solver's file declares: everything but `sample`, which is `solve` run eagerly. */
export type SolverSpec<O extends BaseSolverOptions = BaseSolverOptions, N extends string = string> = Omit<SolverDescriptor<O, N>, 'sample'>;

/** Types a descriptor, keeping its literal name for the registry's `SolverName`; adds the eager `sample`. */
export function defineSolver<O extends BaseSolverOptions, const N extends string>(d: SolverSpec<O, N>): SolverDescriptor<O, N> {
  return { ...d, sample: eagerSampler<[O]>((o, x0, t, opts) => d.solve(o, x0, t, opts)) };
}

/** Evaluations added to a solver's own count by AFS (one fewer) and denoise_to_zero (one more). */
export const endpointNfe = (o: BaseSolverOptions): number => (o.afs ? -1 : 0) + (o.denoiseToZero ? 1 : 0);

/** The NFE formula of a solver with `perInterval` evaluations on each of the N - 1 intervals. */
export const perIntervalNfe =
  (perInterval: number) =>
  (numSteps: number, o: BaseSolverOptions): number =>
    perInterval * (numSteps - 1) + endpointNfe(o);

/**
 * A descriptor's `sample` from the solver's one definition over the array operations: `solve`
 * run eagerly, on Float64Array states with the context's denoiser, pool and callback.
 */
export function eagerSampler<P extends unknown[]>(
  solve: (o: SolverOps<Float64Array>, x0: Float64Array, t: Float64Array, ...opts: P) => Promise<Float64Array>,
): (x0: Float64Array, ctx: SolverContext, ...opts: P) => Promise<Float64Array> {
  return (x0, ctx, ...opts) => solve(new EagerOps(ctx), x0, ctx.tSteps, ...opts);
}

// Flags several solvers share, spelled once (the reference's sample.py names).

/** `--max_order`: the multistep order, 1 to `max` (also the default, as the reference's sample.py). */
export const maxOrderFlag = (max: number): SolverFlag => ({
  flag: 'max_order',
  schema: z.number().int().min(1).max(max).default(max),
  help: 'multistep order',
  expect: 'a positive integer',
  supports: `orders 1 to ${max}`,
  onlyWith: 'the multistep solvers',
});

export const lowerOrderFinalFlag: SolverFlag = {
  flag: 'lower_order_final',
  schema: z.boolean().default(true),
  help: 'lower the multistep order on the final steps',
  expect: 'True or False',
};

export const predictX0Flag: SolverFlag = {
  flag: 'predict_x0',
  schema: z.boolean().default(true),
  help: 'data-prediction form (False: noise prediction)',
  expect: 'True or False',
};

/** Dynamic thresholding of the data predictions; solvers with it default to off for latent models. */
export const thresholdingFlag: SolverFlag = {
  flag: 'thresholding',
  schema: z.boolean().default(true),
  help: 'dynamic thresholding of the data predictions (default on for pixel models, off for latent ones)',
  expect: 'True or False',
};
