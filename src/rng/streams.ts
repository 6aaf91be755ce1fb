/**
 * Per-seed random streams (ALGORITHM.md sections 5 and 7).
 *
 * Every image s owns independent streams named by (seed, purpose): `latent` for x_T,
 * `label` for class labels and `sde` for the AdaSDE noise injections. Each stream is
 * seedrandom's Alea generator seeded with the string `adasde/<purpose>/<seed>`; standard
 * normals come from the Box-Muller transform on pairs of its 53-bit uniforms (both values
 * of a pair are used, in order). Because nothing is shared between seeds, an image depends
 * only on its seed: never on the batch size, the batch composition or the process count.
 */
import seedrandom from 'seedrandom';

export type StreamPurpose = 'latent' | 'label' | 'sde' | 'subset' | 'init' | 'train';

export class NormalStream {
  private readonly prng: seedrandom.PRNG;
  private spare: number | undefined;

  constructor(seed: number | string, purpose: StreamPurpose) {
    this.prng = seedrandom.alea(`adasde/${purpose}/${seed}`);
  }

  /** A uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    return this.prng.double();
  }

  normal(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    // 1 - u keeps the logarithm's argument in (0, 1].
    const u1 = 1 - this.prng.double();
    const u2 = this.prng.double();
    const rad = Math.sqrt(-2 * Math.log(u1));
    this.spare = rad * Math.sin(2 * Math.PI * u2);
    return rad * Math.cos(2 * Math.PI * u2);
  }

  fillNormal(out: Float64Array, offset = 0, count = out.length - offset): void {
    for (let k = 0; k < count; k++) out[offset + k] = this.normal();
  }
}

/** Standard normal latents for a list of seeds, [seeds.length, dim] row-major. */
export function seedLatents(seeds: readonly number[], dim: number): Float64Array {
  const out = new Float64Array(seeds.length * dim);
  seeds.forEach((s, b) => new NormalStream(s, 'latent').fillNormal(out, b * dim, dim));
  return out;
}

/** One class index per seed, uniform over [0, labelDim), from the seed's `label` stream. */
export function seedClassIndices(seeds: readonly number[], labelDim: number): number[] {
  return seeds.map((s) => Math.floor(new NormalStream(s, 'label').uniform() * labelDim));
}

/** One-hot labels [seeds.length, labelDim] as float32 (the ONNX boundary type). */
export function oneHot(indices: readonly number[], labelDim: number): Float32Array {
  const out = new Float32Array(indices.length * labelDim);
  indices.forEach((c, b) => {
    out[b * labelDim + c] = 1;
  });
  return out;
}

/**
 * The SDE noise of a batch: row b draws from seed b's own `sde` stream, so the noise of a
 * sample is the same whatever batch it is in. Intervals must be requested in order.
 */
export class SeedNoise {
  private readonly streams: NormalStream[];
  constructor(seeds: readonly number[]) {
    this.streams = seeds.map((s) => new NormalStream(s, 'sde'));
  }

  readonly source = (_i: number, batch: number, dim: number): Float64Array => {
    if (batch !== this.streams.length) throw new RangeError(`noise requested for ${batch} samples, stream has ${this.streams.length}`);
    const out = new Float64Array(batch * dim);
    this.streams.forEach((st, b) => st.fillNormal(out, b * dim, dim));
    return out;
  };
}
