/**
 * Turning samples into image files (ALGORITHM.md section 5): quantisation to uint8,
 * deterministic PNG encoding, grids, and the reference's output file layout.
 */
import { join } from 'node:path';
import { promisify } from 'node:util';
import { crc32, deflate, deflateSync } from 'node:zlib';
import { writeFileAtomic } from './atomic.js';

const deflateAsync = promisify(deflate);

/**
 * Images up to this many raw bytes are compressed on the calling thread. Handing a small
 * image to libuv's thread pool costs far more than compressing it (a zlib stream object and
 * a cross-thread wake-up per image), and on a CPU-bound machine that CPU comes out of the
 * model's threads (measured: bench/RESULTS.md, section "Sampler overhead", item 4). Larger
 * images (ImageNet 256x256 and
 * up, grids) go to the pool, where their compression overlaps the next model run.
 */
const SYNC_DEFLATE_MAX_BYTES = 64 * 1024;

/**
 * Quantise C*H*W values starting at `offset` (CHW order) to uint8:
 * `uint8 = clip(127.5 x + 128, 0, 255)` truncated toward zero (the reference's
 * `(x * 127.5 + 128).clip(0, 255).to(torch.uint8)`; note +128, not +127.5, so -1 maps to 0
 * and 1 to 255, and 0 to 128).
 *
 * The arithmetic is done in the precision of the input, like the reference does on its
 * tensor: float32 input uses float32 rounding for both the multiply and the add (which
 * matters for values landing within float32 epsilon of an integer), float64 input uses
 * float64.
 *
 * NaN maps to 0 (what `.to(torch.uint8)` gives on x86, where it is formally undefined);
 * +Infinity maps to 255 and -Infinity to 0 through the clip.
 */
export function quantize(x: Float64Array | Float32Array, offset: number, C: number, H: number, W: number, out: Uint8Array = new Uint8Array(C * H * W)): Uint8Array {
  const n = C * H * W;
  if (!Number.isInteger(offset) || offset < 0 || offset + n > x.length) {
    throw new RangeError(`quantize: ${n} values at offset ${offset} exceed the input length ${x.length}`);
  }
  if (out.length !== n) throw new RangeError(`quantize: output holds ${out.length} bytes, expected ${n}`);
  const f32 = x instanceof Float32Array;
  for (let i = 0; i < n; i++) {
    const v = x[offset + i]!;
    const y = f32 ? Math.fround(Math.fround(v * 127.5) + 128) : v * 127.5 + 128;
    // `y > 0` is false for NaN, so NaN ends up as 0 together with everything below 0.
    out[i] = y > 0 ? (y >= 255 ? 255 : Math.trunc(y)) : 0;
  }
  return out;
}

/** The first `count` images of x ([count, C, H, W]) quantised into one buffer, image after image. */
export function quantizeBatch(x: Float64Array | Float32Array, count: number, C: number, H: number, W: number): Uint8Array {
  const n = C * H * W;
  const out = new Uint8Array(count * n);
  for (let b = 0; b < count; b++) quantize(x, b * n, C, H, W, out.subarray(b * n, (b + 1) * n));
  return out;
}

/**
 * zlib level for PNG output: PIL's default (which the reference saves with). Fixed, with
 * filter type 0 on every row and no metadata, so the same pixels always give the same bytes.
 */
const PNG_COMPRESSION = 6;

const PNG_SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

function pngChunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  // The CRC covers the chunk type and data.
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)) >>> 0, 8 + data.length);
  return out;
}

/**
 * Encode a CHW uint8 image (C = 3: RGB, C = 1: greyscale) as PNG bytes: 8-bit truecolour or
 * greyscale, no interlace, filter 0, one zlib stream. Written directly over node:zlib rather
 * than through sharp: for the small images a sampler writes by the thousand, sharp's per-call
 * pipeline costs several times the CPU of this encoder, several percent of the sampling time
 * on a busy CPU (measured: bench/RESULTS.md, section "Sampler overhead", item 4). Decoding
 * stays with sharp.
 */
export async function encodePng(chw: Uint8Array, C: number, H: number, W: number): Promise<Buffer> {
  const raw = pngRows(chw, C, H, W);
  const idat = raw.length <= SYNC_DEFLATE_MAX_BYTES ? deflateSync(raw, { level: PNG_COMPRESSION }) : await deflateAsync(raw, { level: PNG_COMPRESSION });
  return pngFile(C, H, W, idat);
}

/** `encodePng` on the calling thread, whatever the size (for the image-writer thread). */
export function encodePngSync(chw: Uint8Array, C: number, H: number, W: number): Buffer {
  return pngFile(C, H, W, deflateSync(pngRows(chw, C, H, W), { level: PNG_COMPRESSION }));
}

/** The PNG scanlines of a CHW image: each row is filter byte 0 and W interleaved pixels. */
function pngRows(chw: Uint8Array, C: number, H: number, W: number): Uint8Array {
  if (C !== 1 && C !== 3) throw new RangeError(`encodePng: ${C} channels; expected 1 (grey) or 3 (RGB)`);
  if (chw.length !== C * H * W) throw new RangeError(`encodePng: ${chw.length} bytes for a ${C}x${H}x${W} image`);
  const stride = 1 + W * C;
  const raw = new Uint8Array(H * stride);
  const plane = H * W;
  for (let y = 0; y < H; y++) {
    const row = y * stride; // raw[row] = 0: filter type None
    for (let x = 0; x < W; x++) for (let c = 0; c < C; c++) raw[row + 1 + x * C + c] = chw[c * plane + y * W + x]!;
  }
  return raw;
}

function pngFile(C: number, H: number, W: number, idat: Uint8Array): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(W, 0);
  ihdr.writeUInt32BE(H, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = C === 3 ? 2 : 0; // colour type: truecolour or greyscale
  // compression 0, filter method 0, interlace 0
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', idat), pngChunk('IEND', new Uint8Array(0))]);
}

/** Encode and write a PNG atomically (parent folders are created). */
export async function writePng(path: string, chw: Uint8Array, C: number, H: number, W: number): Promise<void> {
  await writeFileAtomic(path, await encodePng(chw, C, H, W));
}

export interface Grid {
  /** CHW, C x height x width. */
  data: Uint8Array;
  C: number;
  height: number;
  width: number;
  rows: number;
  cols: number;
}

/**
 * Tile CHW images (each C x H x W) row by row into one CHW image. `cols` defaults to
 * ceil(sqrt(n)) and rows to ceil(n / cols), so 64 images make 8x8 and 10 make 4 columns by
 * 3 rows; cells without an image stay black.
 */
export function makeGrid(images: readonly Uint8Array[], C: number, H: number, W: number, cols?: number): Grid {
  const n = images.length;
  if (n === 0) throw new RangeError('makeGrid: no images');
  const gc = cols ?? Math.ceil(Math.sqrt(n));
  if (!Number.isInteger(gc) || gc < 1) throw new RangeError(`makeGrid: bad column count ${gc}`);
  const gr = Math.ceil(n / gc);
  const width = gc * W;
  const height = gr * H;
  const data = new Uint8Array(C * height * width);
  images.forEach((img, k) => {
    if (img.length !== C * H * W) throw new RangeError(`makeGrid: image ${k} has ${img.length} bytes; expected ${C * H * W}`);
    const r0 = Math.floor(k / gc) * H;
    const c0 = (k % gc) * W;
    for (let c = 0; c < C; c++) {
      for (let y = 0; y < H; y++) {
        const src = (c * H + y) * W;
        data.set(img.subarray(src, src + W), (c * height + r0 + y) * width + c0);
      }
    }
  });
  return { data, C, height, width, rows: gr, cols: gc };
}

/** `seed` as at least 6 digits, like Python's `f'{seed:06d}'`. */
function six(n: number): string {
  return String(n).padStart(6, '0');
}

/**
 * Where the image of `seed` goes: `outdir/<seed - seed % 1000>/<seed>.png` with both
 * numbers as 6 digits (the reference's layout, 1000 images per folder), or
 * `outdir/<seed>.png` when `subdirs` is false.
 */
export function imagePath(outdir: string, seed: number, subdirs = true): string {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`imagePath: bad seed ${seed}`);
  const file = `${six(seed)}.png`;
  return subdirs ? join(outdir, six(seed - (seed % 1000)), file) : join(outdir, file);
}
