/**
 * The reference's teacher-style solvers (ALGORITHM.md 4.2 and 10): every interval
 * [t_c, t_n] of the grid is split by a 3-point polynomial rho-7 schedule from t_c down to
 * t_n, and each of the two sub-intervals takes one heun or dpm step.
 *
 * The teacher of AdaSDE distillation is `dpm` on a fine grid of (M+1)(N-1)+1 points of the
 * student's schedule type; its states at grid indices (i+1)(M+1) are the student's targets.
 */
import { dpmStep } from './dpm.js';
import { heunStep } from './heun.js';
import { afsDirection, EagerOps, odeDirection } from './ops.js';
import { getSchedule, type ScheduleSpec } from './schedule.js';
import type { SolverContext } from './types.js';

export type TeacherKind = 'heun' | 'dpm';

export interface SubstepOptions {
  /**
   * AFS for the first sub-step. The reference's heun applies it at the first sub-step of
   * *every* interval (its inner loop index shadows the outer one); dpm only at the very
   * first sub-step. The distillation teacher never uses AFS.
   */
  afs?: boolean;
  /** Called with the state at the end of every outer interval. */
  onInterval?: (i: number, x: Float64Array) => void;
}

/** The 3-point polynomial rho-7 split of one teacher interval [tCur, tNext] into two sub-steps. */
export function substepSchedule(tCur: number, tNext: number): Float64Array {
  return getSchedule({ numSteps: 3, sigmaMin: tNext, sigmaMax: tCur, type: 'polynomial', rho: 7 });
}

export async function sampleSubsteps(kind: TeacherKind, x0: Float64Array, ctx: SolverContext, opts: SubstepOptions = {}): Promise<Float64Array> {
  const o = new EagerOps(ctx);
  const t = ctx.tSteps;
  const n = t.length - 1;
  let x = x0;
  for (let i = 0; i < n; i++) {
    const sub = substepSchedule(t[i]!, t[i + 1]!);
    for (let j = 0; j < 2; j++) {
      const tCur = sub[j]!;
      const tNext = sub[j + 1]!;
      const useAfs = opts.afs === true && j === 0 && (kind === 'heun' || i === 0);
      const dCur = useAfs ? afsDirection(o, x, tCur) : await odeDirection(o, x, tCur);
      // The states are never released: the targets keep some of them.
      x = kind === 'heun' ? await heunStep(o, x, tCur, tNext, dCur) : await dpmStep(o, x, tCur, tNext, dCur);
    }
    opts.onInterval?.(i, x);
    o.reportStep(i, t[i]!, t[i + 1]!, x, n);
  }
  return x;
}

/** The teacher grid for a student schedule: N_T = (M+1)(N-1)+1 points, same type and rho. */
export function teacherSchedule(student: ScheduleSpec, M: number): Float64Array {
  return getSchedule({ ...student, numSteps: (M + 1) * (student.numSteps - 1) + 1 });
}

/**
 * Teacher targets y_1..y_{N-1}: the teacher state at the student's grid points, as a list of
 * N-1 arrays [B * dim]. `ctx.tSteps` must be the teacher grid.
 */
export async function teacherTargets(kind: TeacherKind, x0: Float64Array, ctx: SolverContext, M: number): Promise<Float64Array[]> {
  const targets: Float64Array[] = [];
  await sampleSubsteps(kind, x0, ctx, {
    onInterval: (i, x) => {
      if ((i + 1) % (M + 1) === 0) targets.push(x);
    },
  });
  return targets;
}
