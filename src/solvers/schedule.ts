/**
 * Time schedules of ALGORITHM.md section 2, in float64. Each returns N values
 * t_0 = sigma_max > ... > t_{N-1} = sigma_min with u = i / (N - 1).
 */

/** The schedule names of ALGORITHM.md section 2 (the option schemas in src/config/ enumerate these). */
export const SCHEDULE_TYPES = ['polynomial', 'logsnr', 'time_uniform', 'discrete'] as const;
export type ScheduleType = (typeof SCHEDULE_TYPES)[number];

/** sigma(tau) and its inverse of a discrete-time model (ALGORITHM.md section 8). */
export interface DiscreteTime {
  sigma(tau: number): number;
  sigmaInv(sigma: number): number;
}

export interface ScheduleSpec {
  numSteps: number;
  sigmaMin: number;
  sigmaMax: number;
  type: ScheduleType;
  rho: number;
  /** Required for the `discrete` schedule. */
  discrete?: DiscreteTime;
}

export function getSchedule(spec: ScheduleSpec): Float64Array {
  const { numSteps: n, sigmaMin, sigmaMax, type, rho } = spec;
  if (!(n >= 2) || !Number.isInteger(n)) throw new RangeError(`num_steps must be an integer >= 2, got ${n}`);
  const t = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = i / (n - 1);
    switch (type) {
      case 'polynomial': {
        const a = sigmaMax ** (1 / rho);
        const b = sigmaMin ** (1 / rho);
        t[i] = (a + u * (b - a)) ** rho;
        break;
      }
      case 'logsnr':
        t[i] = Math.exp(Math.log(sigmaMax) + u * (Math.log(sigmaMin) - Math.log(sigmaMax)));
        break;
      case 'time_uniform': {
        // Uniform in the time of the VP-SDE whose sigma range matches [sigma_min, sigma_max].
        const epsS = 1e-3;
        const betaD = (2 * (Math.log(sigmaMin ** 2 + 1) / epsS - Math.log(sigmaMax ** 2 + 1))) / (epsS - 1);
        const betaMin = Math.log(sigmaMax ** 2 + 1) - 0.5 * betaD;
        const tau = (1 + u * (epsS ** (1 / rho) - 1)) ** rho;
        t[i] = Math.sqrt(Math.exp(0.5 * betaD * tau * tau + betaMin * tau) - 1);
        break;
      }
      case 'discrete': {
        const d = spec.discrete;
        if (!d) throw new RangeError('the discrete schedule needs the model\'s discrete-time table');
        // The reference raises tau_min (not tau_max) to 1/rho: kept on purpose (ALGORITHM.md 2).
        const tauMax = d.sigmaInv(sigmaMax);
        const tauMin = d.sigmaInv(sigmaMin);
        t[i] = d.sigma((tauMax + u * (tauMin ** (1 / rho) - tauMax)) ** rho);
        break;
      }
    }
  }
  return t;
}

/** A user-given schedule (`--t_steps`), validated to be strictly decreasing and positive. */
export function userSchedule(values: readonly number[]): Float64Array {
  if (values.length < 2) throw new RangeError('t_steps needs at least two values');
  for (let i = 0; i < values.length; i++) {
    if (!(values[i]! > 0)) throw new RangeError('t_steps must be positive');
    if (i > 0 && !(values[i]! < values[i - 1]!)) throw new RangeError('t_steps must be strictly decreasing');
  }
  return Float64Array.from(values);
}

/**
 * VP-SDE (ADM) continuous time: sigma(t) = sqrt(exp(0.5 beta_d t^2 + beta_min t) - 1)
 * with beta_min = 0.1, beta_d = 19.9 (ALGORITHM.md section 8).
 */
export function vpTime(betaMin = 0.1, betaD = 19.9): DiscreteTime {
  return {
    sigma: (t) => Math.sqrt(Math.exp(0.5 * betaD * t * t + betaMin * t) - 1),
    sigmaInv: (s) => (Math.sqrt(betaMin * betaMin + 2 * betaD * Math.log(1 + s * s)) - betaMin) / betaD,
  };
}

/**
 * LDM / Stable Diffusion discrete time from `alphas_cumprod` (M entries):
 * log_alpha_k = 0.5 ln(alphas_cumprod_k) on t_k = (k+1)/M, piecewise linear in t with
 * linear extrapolation outside; sigma(t) = sqrt(1 - alpha^2)/alpha.
 */
export function discreteTime(alphasCumprod: ArrayLike<number>): DiscreteTime {
  const m = alphasCumprod.length;
  const ts = new Float64Array(m);
  const la = new Float64Array(m);
  for (let k = 0; k < m; k++) {
    ts[k] = (k + 1) / m;
    la[k] = 0.5 * Math.log(alphasCumprod[k]!);
  }
  const interp = (x: number, xs: Float64Array, ys: Float64Array): number => {
    // Linear interpolation over increasing xs, extrapolating with the end segments.
    const n = xs.length;
    let j: number;
    if (x <= xs[0]!) j = 0;
    else if (x >= xs[n - 1]!) j = n - 2;
    else {
      let lo = 0;
      let hi = n - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (xs[mid]! <= x) lo = mid;
        else hi = mid;
      }
      j = lo;
    }
    const x0 = xs[j]!;
    const x1 = xs[j + 1]!;
    return ys[j]! + ((ys[j + 1]! - ys[j]!) * (x - x0)) / (x1 - x0);
  };
  // log_alpha decreases with t, so the inverse interpolates over the reversed arrays.
  const laRev = la.slice().reverse();
  const tsRev = ts.slice().reverse();
  return {
    sigma: (t) => {
      const a = interp(t, ts, la);
      return Math.sqrt(1 - Math.exp(2 * a)) / Math.exp(a);
    },
    sigmaInv: (s) => interp(-0.5 * Math.log1p(s * s), laRev, tsRev),
  };
}
