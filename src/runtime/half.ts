/**
 * IEEE 754 binary16 <-> number conversion for fp16 models. Node 20 has no Float16Array, so
 * onnxruntime-node takes and returns float16 tensors as Uint16Array bit patterns.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Rounds a number to the nearest binary16 (ties to even) and returns its bits. */
export function toHalfBits(v: number): number {
  // Works on the float32 bits of v. Rounding v to float32 first can only mislead the
  // binary16 rounding when it lands exactly on a tie of the 13 dropped bits; that case is
  // settled below with the float64 value itself, so the result is correctly rounded.
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / NaN
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  let halfMant: number;
  let rest: number; // dropped bits, compared against `half`
  let half: number;
  if (e <= 0) {
    // Subnormal binary16 (or underflow to zero).
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    halfMant = mant >>> shift;
    rest = mant & ((1 << shift) - 1);
    half = 1 << (shift - 1);
    e = 0;
  } else {
    halfMant = mant >>> 13;
    rest = mant & 0x1fff;
    half = 0x1000;
  }
  let roundUp = rest > half || (rest === half && (halfMant & 1) === 1);
  if (rest === half) {
    // Possible double-rounding tie: decide with the exact float64 value.
    const err = Math.abs(v) - Math.abs(f32[0]);
    if (err > 0) roundUp = true;
    else if (err < 0) roundUp = false;
  }
  let h = (e << 10) + halfMant;
  if (roundUp) h += 1; // carries into the exponent correctly, up to inf
  return sign | h;
}

/** The value of binary16 bits. */
export function fromHalfBits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function toHalfArray(src: ArrayLike<number>, start = 0, end = src.length): Uint16Array {
  const out = new Uint16Array(end - start);
  for (let i = start; i < end; i++) out[i - start] = toHalfBits(src[i]!);
  return out;
}

export function fromHalfArray(src: Uint16Array, out: Float64Array | Float32Array, offset = 0): void {
  for (let i = 0; i < src.length; i++) out[offset + i] = fromHalfBits(src[i]!);
}
