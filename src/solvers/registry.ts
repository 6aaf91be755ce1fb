/**
 * The solver registry: one entry per `--solver` name with its sampling function and its
 * NFE formula (ALGORITHM.md 3-4), so the CLI, the benchmarks and the tests agree.
 */
import type { SolverName } from '../config/common.js';
import type { BaseSolverOptions } from './common.js';
import type { Coefficients } from './coefficients.js';
import { adasdeNfe, sampleAdasde } from './adasde.js';
import { sampleDpm } from './dpm.js';
import { sampleDpmpp } from './dpmpp.js';
import { sampleEuler } from './euler.js';
import { sampleHeun } from './heun.js';
import { sampleIpndm } from './ipndm.js';
import { sampleIpndmV } from './ipndmv.js';
import { sampleDeis, type DeisMode } from './deis.js';
import { sampleUnipc } from './unipc.js';
import type { SolverContext } from './types.js';

/** The union of every solver's options; each solver reads the ones it knows. */
export interface SolverOptions extends BaseSolverOptions {
  maxOrder?: number;
  lowerOrderFinal?: boolean;
  thresholding?: boolean;
  variant?: 'bh1' | 'bh2';
  /** dpmpp and unipc: data prediction (default) or noise prediction. */
  predictX0?: boolean;
  /** dpmpp only: exact third-order coefficient (see dpmpp.ts). */
  exactThirdOrder?: boolean;
  /** deis only: tAB (VP time) or rhoAB (sigma) polynomial. */
  deisMode?: DeisMode;
  /** ipndm_v only: exact variable-step Adams-Bashforth weights (see ipndmv.ts). */
  exact?: boolean;
  /** AdaSDE only. */
  coeffs?: Coefficients;
}

export interface SolverEntry {
  run(x: Float64Array, ctx: SolverContext, opts: SolverOptions): Promise<Float64Array>;
  /** Denoiser evaluations per sample for num_steps points (K parallel points for AdaSDE). */
  nfe(numSteps: number, opts: SolverOptions): number;
  /** Default max_order as the reference's sample.py (undefined: not a multistep solver). */
  defaultMaxOrder?: number;
}

const extra = (o: SolverOptions) => (o.afs ? -1 : 0) + (o.denoiseToZero ? 1 : 0);

export const SOLVER_REGISTRY: Record<SolverName, SolverEntry> = {
  euler: { run: sampleEuler, nfe: (N, o) => N - 1 + extra(o) },
  heun: { run: sampleHeun, nfe: (N, o) => 2 * (N - 1) + extra(o) },
  dpm: { run: sampleDpm, nfe: (N, o) => 2 * (N - 1) + extra(o) },
  ipndm: { run: sampleIpndm, nfe: (N, o) => N - 1 + extra(o), defaultMaxOrder: 4 },
  ipndm_v: { run: sampleIpndmV, nfe: (N, o) => N - 1 + extra(o), defaultMaxOrder: 4 },
  deis: { run: sampleDeis, nfe: (N, o) => N - 1 + extra(o), defaultMaxOrder: 4 },
  dpmpp: { run: sampleDpmpp, nfe: (N, o) => N - 1 + extra(o), defaultMaxOrder: 3 },
  unipc: { run: sampleUnipc, nfe: (N, o) => N - 1 + extra(o), defaultMaxOrder: 3 },
  adasde: {
    run: (x, ctx, o) => {
      if (!o.coeffs) throw new RangeError('adasde needs coefficients (a predictor)');
      return sampleAdasde(x, ctx, { ...o, coeffs: o.coeffs });
    },
    nfe: (N, o) => adasdeNfe(N, o.coeffs?.r[0]?.length ?? 1, o.afs, o.denoiseToZero),
  },
};

/** NFE of the teacher for a student grid of N points with M inserted points (ALGORITHM.md 4.2). */
export const teacherNfe = (numSteps: number, M: number): number => 4 * (M + 1) * (numSteps - 1);
