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
import { checkBatchLength } from '../core/shape.js';

export type StreamPurpose = 'latent' | 'label' | 'sde' | 'subset' | 'init' | 'train';

/**
 * One named stream of one seed, handing out uniforms (`uniform`: class labels, subsets) and
 * standard normals (`normal`, `fillNormal`). Seeding goes through seedrandom's Alea (its Mash hash of the seed
 * string); the stepping is Alea's recurrence written out here on the state seedrandom hands
 * over, because the 200,000 normals of a CIFAR-10 batch of 64 are a visible part of a
 * sampling run and the call through seedrandom's closures costs about a quarter of it.
 * test/rng/streams.test.ts checks the values against seedrandom's own `double()`.
 */
export class SeedStream {
  private s0: number;
  private s1: number;
  private s2: number;
  private c: number;
  private spare: number | undefined;

  constructor(seed: number | string, purpose: StreamPurpose) {
    const st = seedrandom.alea(`adasde/${purpose}/${seed}`, { state: true }).state();
    this.s0 = st.s0;
    this.s1 = st.s1;
    this.s2 = st.s2;
    this.c = st.c;
  }

  /** Alea's next 32-bit uniform (seedrandom's `prng()`). */
  private next(): number {
    const t = 2091639 * this.s0 + this.c * 2.3283064365386963e-10; // 2^-32
    this.s0 = this.s1;
    this.s1 = this.s2;
    this.c = t | 0;
    return (this.s2 = t - this.c);
  }

  /** A uniform in [0, 1) with 53 random bits (seedrandom's `prng.double()`). */
  uniform(): number {
    const hi = this.next();
    return hi + ((this.next() * 0x200000) | 0) * 1.1102230246251565e-16; // 2^-53
  }

  normal(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    // 1 - u keeps the logarithm's argument in (0, 1].
    const u1 = 1 - this.uniform();
    const u2 = this.uniform();
    const rad = Math.sqrt(-2 * Math.log(u1));
    this.spare = rad * Math.sin(2 * Math.PI * u2);
    return rad * Math.cos(2 * Math.PI * u2);
  }

  /** `count` normals into out[offset..]: the same values as that many `normal()` calls. */
  fillNormal(out: Float64Array, offset = 0, count = out.length - offset): void {
    let k = 0;
    if (count > 0 && this.spare !== undefined) out[offset + k++] = this.normal();
    // Whole Box-Muller pairs with the generator state in locals (same arithmetic as above).
    // The four steps are written out: a loop over them is slower (bench/RESULTS.md, section
    // "Sampler overhead", item 6).
    let { s0, s1, s2, c } = this;
    for (; k + 1 < count; k += 2) {
      let t = 2091639 * s0 + c * 2.3283064365386963e-10;
      s0 = s1;
      s1 = s2;
      c = t | 0;
      s2 = t - c;
      const a1 = s2;
      t = 2091639 * s0 + c * 2.3283064365386963e-10;
      s0 = s1;
      s1 = s2;
      c = t | 0;
      s2 = t - c;
      const u1 = 1 - (a1 + ((s2 * 0x200000) | 0) * 1.1102230246251565e-16);
      t = 2091639 * s0 + c * 2.3283064365386963e-10;
      s0 = s1;
      s1 = s2;
      c = t | 0;
      s2 = t - c;
      const a2 = s2;
      t = 2091639 * s0 + c * 2.3283064365386963e-10;
      s0 = s1;
      s1 = s2;
      c = t | 0;
      s2 = t - c;
      const u2 = a2 + ((s2 * 0x200000) | 0) * 1.1102230246251565e-16;
      const rad = Math.sqrt(-2 * Math.log(u1));
      out[offset + k] = rad * Math.cos(2 * Math.PI * u2);
      out[offset + k + 1] = rad * Math.sin(2 * Math.PI * u2);
    }
    this.s0 = s0;
    this.s1 = s1;
    this.s2 = s2;
    this.c = c;
    // An odd count ends on the first value of a pair; its partner stays as the spare.
    if (k < count) out[offset + k] = this.normal();
  }
}

/** Standard normal latents for a list of seeds, [seeds.length, dim] row-major (into `out` when given). */
export function seedLatents(seeds: readonly number[], dim: number, out: Float64Array = new Float64Array(seeds.length * dim)): Float64Array {
  seeds.forEach((s, b) => new SeedStream(s, 'latent').fillNormal(out, b * dim, dim));
  return out;
}

/**
 * One class index per seed, uniform over [0, labelDim), from the seed's `label` stream. A
 * seed is an image seed (sample) or a trajectory's stream key (`train<seed>/<g>`, training).
 */
export function seedClassIndices(seeds: readonly (number | string)[], labelDim: number): number[] {
  return seeds.map((s) => Math.floor(new SeedStream(s, 'label').uniform() * labelDim));
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
  private readonly streams: SeedStream[];
  constructor(seeds: readonly number[]) {
    this.streams = seeds.map((s) => new SeedStream(s, 'sde'));
  }

  readonly source = (_i: number, batch: number, dim: number, out: Float64Array = new Float64Array(batch * dim)): Float64Array => {
    if (batch !== this.streams.length) throw new RangeError(`noise requested for ${batch} samples, stream has ${this.streams.length}`);
    checkBatchLength('noise buffer', out, batch, dim);
    this.streams.forEach((st, b) => st.fillNormal(out, b * dim, dim));
    return out;
  };
}
