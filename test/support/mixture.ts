/**
 * The 48-dimensional, three-component Gaussian mixture the training tests differentiate
 * through (test/train/loop.test.ts, tape.test.ts), with its closed-form JVP and VJP in the
 * loop's function shapes: exact derivatives, so that any mismatch is the code's.
 */
import { mixtureDenoise, mixtureJvp, mixtureVjp, type MixtureParams } from '../../src/solvers/analytic.js';
import type { JvpFn } from '../../src/train/jvp.js';
import type { VjpFn } from '../../src/train/tape.js';

export const MIX_DIM = 48;

export const MIX: MixtureParams = {
  weights: Float64Array.of(0.5, 0.5, 1),
  means: Float64Array.from({ length: 3 * MIX_DIM }, (_, q) => 0.6 * Math.cos(q * 0.9 + Math.floor(q / MIX_DIM))),
  stds: Float64Array.of(0.15, 0.2, 0.1),
};

/** D and its directional derivatives in closed form (the rows counted are the points). */
export const mixtureExactJvp: JvpFn = async (x, sigma, rows, tangents) => {
  const req = { x, sigma, batch: rows };
  return { D: mixtureDenoise(MIX, req), dD: tangents.map((t) => mixtureJvp(MIX, req, t.dx ?? new Float64Array(x.length), t.ds ?? new Float64Array(rows))), rows };
};

/** J_x^T u and J_sigma^T u in closed form. */
export const mixtureExactVjp: VjpFn = async (x, sigma, rows, u) => ({ ...mixtureVjp(MIX, { x, sigma, batch: rows }, u), rows });
