/**
 * One NFE-5-style student trajectory with its tangents (src/train/student.ts) and the gradient
 * of every interval's L2 loss against fixed targets, for a chosen finite-difference scheme:
 * shared by test/train/jvp-bundled.test.ts and bench/jvp_bundled.ts. Not a test file.
 */
import type { Denoiser } from '../../src/core/denoiser.js';
import { SeedNoise, seedLatents } from '../../src/rng/streams.js';
import { effectiveCoefficients, type CoefficientBounds } from '../../src/solvers/coefficients.js';
import { finiteDifferenceJvp, type JvpScheme } from '../../src/train/jvp.js';
import { initState } from '../../src/train/loop.js';
import { studentStepJvp, type Tangent } from '../../src/train/student.js';

export interface GradientRun {
  denoise: Denoiser;
  dim: number;
  tSteps: ArrayLike<number>;
  bounds: CoefficientBounds;
  seeds: number[];
  scheme: JvpScheme;
  relStep: number;
  /** Per interval: without them only the states are returned. */
  targets?: Float64Array[];
}

/** States after each interval, loss gradients per interval (raw coefficients), model rows used. */
export async function studentLossGradients(o: GradientRun): Promise<{ xs: Float64Array[]; grads: Float64Array[]; rows: number }> {
  const N = o.tSteps.length;
  const B = o.seeds.length;
  const raw = initState(0, N, 1).raw;
  const coeffs = effectiveCoefficients(raw, o.bounds);
  let rows = 0;
  const jvp = finiteDifferenceJvp((req) => ((rows += req.batch), o.denoise(req)), { scheme: o.scheme, relStep: o.relStep });
  const noise = new SeedNoise(o.seeds);
  let x: Float64Array = seedLatents(o.seeds, o.dim).map((v) => v * o.tSteps[0]!);
  let tangents: Tangent[] = [];
  const xs: Float64Array[] = [];
  const grads: Float64Array[] = [];
  for (let i = 0; i < N - 1; i++) {
    const eps = i > 0 ? noise.source(i, B, o.dim) : undefined;
    const out = await studentStepJvp({ jvp, i, x, tangents, tCur: o.tSteps[i]!, tNext: o.tSteps[i + 1]!, raw, coeffs, bounds: o.bounds, afs: true, batch: B, eps });
    x = out.x;
    tangents = out.tangents;
    xs.push(x);
    const y = o.targets?.[i];
    if (y) grads.push(Float64Array.from(tangents, (t) => (2 * t.dx.reduce((s, v, k) => s + (x[k]! - y[k]!) * v, 0)) / B));
  }
  return { xs, grads, rows };
}
