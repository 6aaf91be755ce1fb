/**
 * Image sets for FID and training data: a folder (searched recursively) or a zip, including
 * EDM dataset zips/folders with a `dataset.json` holding `labels: [[file, class], ...]`.
 *
 * Images are ordered by relative path (`/`-separated) in plain code-unit order, so index i
 * is the same file on every machine. Decoding uses sharp: every image comes out as 8-bit
 * RGB in CHW order; greyscale is repeated to 3 channels, alpha is dropped (not composited),
 * 16-bit images are reduced to 8 bits, palette images expanded. Note that sharp converts
 * images with an embedded ICC profile to sRGB, which PIL (the reference) does not do.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import sharp, { type OutputInfo } from 'sharp';
import { firstLine, UsageError } from '../core/errors.js';
import { ZipReader } from './zip.js';

/** File extensions read as images (compared case-insensitively). */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp'] as const;

/** Any single image file larger than this is refused rather than read into memory. */
const MAX_IMAGE_FILE_BYTES = 256 * 2 ** 20;
/** dataset.json larger than this is refused (CIFAR-10's 50,000 labels take ~1.3 MB). */
const MAX_DATASET_JSON_BYTES = 256 * 2 ** 20;

export interface DecodedImage {
  /** Relative path inside the set. */
  name: string;
  width: number;
  height: number;
  channels: 3;
  /** CHW, RGB, 3 x height x width. */
  data: Uint8Array;
}

export interface ImageSize {
  width: number;
  height: number;
}

export interface ImageSet {
  /** The folder or zip as given. */
  readonly path: string;
  readonly kind: 'folder' | 'zip';
  /** Relative paths, sorted; index i of every method refers to names[i]. */
  readonly names: readonly string[];
  readonly count: number;
  /** `dataset.json` labels as stored, `[file, class]`, when present. */
  readonly labelPairs: ReadonlyArray<readonly [string, number]> | undefined;
  /** Class of names[i], when `dataset.json` has labels. */
  readonly labels: Int32Array | undefined;
  /** Raw file bytes of image i. */
  readBytes(index: number): Promise<Buffer>;
  /** Decoded image i. */
  read(index: number): Promise<DecodedImage>;
  /** Width and height of image i, from its header (no full decode). */
  size(index: number): Promise<ImageSize>;
  close(): Promise<void>;
}

function isImageName(name: string): boolean {
  const lower = name.toLowerCase();
  return IMAGE_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

/** Plain UTF-16 code-unit order (what Array.prototype.sort does with no comparator). */
function codeUnitCompare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Files under `root` (relative, `/`-separated). Like os.walk: symlinked folders are not entered. */
async function walk(root: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (dir: string, rel: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    for (const e of entries) {
      const full = join(dir, e.name);
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) await visit(full, r);
      else if (e.isFile()) out.push(r);
      else if (e.isSymbolicLink()) {
        const st = await stat(full).catch(() => undefined);
        if (st?.isFile()) out.push(r);
      }
    }
  };
  await visit(root, '');
  return out;
}

/** Parse `dataset.json`'s labels (`null` or `[[file, int], ...]`). */
function parseLabels(text: string, where: string): Array<[string, number]> | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${where}: not valid JSON (${firstLine(e)})`);
  }
  if (typeof doc !== 'object' || doc === null || !('labels' in doc)) return undefined;
  const labels = (doc as { labels: unknown }).labels;
  if (labels === null || labels === undefined) return undefined;
  if (!Array.isArray(labels)) throw new UsageError(`${where}: 'labels' must be a list of [file, class] pairs`);
  const out: Array<[string, number]> = [];
  for (const item of labels as unknown[]) {
    if (!Array.isArray(item) || item.length !== 2 || typeof item[0] !== 'string' || !Number.isSafeInteger(item[1])) {
      throw new UsageError(`${where}: 'labels' must be a list of [file, class] pairs with integer classes`);
    }
    out.push([item[0], item[1] as number]);
  }
  return out;
}

function alignLabels(pairs: Array<[string, number]>, names: readonly string[], where: string): Int32Array {
  const byName = new Map<string, number>();
  for (const [f, c] of pairs) byName.set(f.replace(/\\/g, '/'), c);
  const out = new Int32Array(names.length);
  names.forEach((n, i) => {
    const c = byName.get(n);
    if (c === undefined) throw new UsageError(`${where}: no label for image '${n}'`);
    out[i] = c;
  });
  return out;
}

/** Decode image bytes to CHW RGB uint8. `label` names the image in errors. */
export async function decodeImage(bytes: Uint8Array, name: string, label = name): Promise<DecodedImage> {
  let data: Buffer;
  let info: OutputInfo;
  try {
    // sharp's raw output is 8-bit sRGB (grey expanded to 3 bands, 16-bit scaled down),
    // plus a 4th band when the image has alpha.
    ({ data, info } = await sharp(bytes).raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true }));
  } catch (e) {
    throw new UsageError(`${label}: cannot decode image (${firstLine(e)})`);
  }
  const { width, height, channels } = info;
  const plane = width * height;
  const out = new Uint8Array(3 * plane);
  // channels 1-2: grey (+alpha) -> repeat; 3-4: RGB (+alpha) -> RGB.
  const src = channels >= 3 ? [0, 1, 2] : [0, 0, 0];
  for (let c = 0; c < 3; c++) {
    const s = src[c]!;
    const base = c * plane;
    for (let p = 0; p < plane; p++) out[base + p] = data[p * channels + s]!;
  }
  return { name, width, height, channels: 3, data: out };
}

async function sizeOf(input: Buffer | string, label: string): Promise<ImageSize> {
  try {
    const m = await sharp(input).metadata();
    if (!m.width || !m.height) throw new Error('no size in header');
    return { width: m.width, height: m.height };
  } catch (e) {
    throw new UsageError(`${label}: cannot read image header (${firstLine(e)})`);
  }
}

class BaseSet {
  constructor(
    readonly path: string,
    readonly names: readonly string[],
    readonly labelPairs: ReadonlyArray<readonly [string, number]> | undefined,
    readonly labels: Int32Array | undefined,
  ) {}
  get count(): number {
    return this.names.length;
  }
  protected check(index: number): string {
    const name = this.names[index];
    if (!Number.isInteger(index) || name === undefined) throw new RangeError(`image index ${index} out of range 0..${this.count - 1}`);
    return name;
  }
  protected where(name: string): string {
    return `${this.path}: '${name}'`;
  }
}

class FolderSet extends BaseSet implements ImageSet {
  readonly kind = 'folder' as const;
  async readBytes(index: number): Promise<Buffer> {
    const name = this.check(index);
    const full = join(this.path, name);
    const st = await stat(full);
    if (st.size > MAX_IMAGE_FILE_BYTES) throw new UsageError(`${this.where(name)}: file of ${st.size} bytes is too large for an image`);
    return readFile(full);
  }
  async read(index: number): Promise<DecodedImage> {
    const name = this.check(index);
    return decodeImage(await this.readBytes(index), name, this.where(name));
  }
  async size(index: number): Promise<ImageSize> {
    const name = this.check(index);
    // sharp reads only the header when given a path.
    return sizeOf(join(this.path, name), this.where(name));
  }
  async close(): Promise<void> {}
}

class ZipSet extends BaseSet implements ImageSet {
  readonly kind = 'zip' as const;
  constructor(
    path: string,
    names: readonly string[],
    labelPairs: ReadonlyArray<readonly [string, number]> | undefined,
    labels: Int32Array | undefined,
    private readonly zip: ZipReader,
  ) {
    super(path, names, labelPairs, labels);
  }
  async readBytes(index: number): Promise<Buffer> {
    return this.zip.read(this.check(index), { maxBytes: MAX_IMAGE_FILE_BYTES });
  }
  async read(index: number): Promise<DecodedImage> {
    const name = this.check(index);
    return decodeImage(await this.readBytes(index), name, this.where(name));
  }
  async size(index: number): Promise<ImageSize> {
    const name = this.check(index);
    return sizeOf(await this.readBytes(index), this.where(name));
  }
  async close(): Promise<void> {
    await this.zip.close();
  }
}

/** The name of `adasde sample --grid`'s tiled image at the top of an output folder. */
export const GRID_NAME = 'grid.png';

/**
 * Open a folder of images (recursively) or a zip of images. Entries under `__MACOSX/`
 * (resource forks added by macOS's archiver) are skipped, and so is a top-level `grid.png`
 * (sample --grid) in a folder. A set without any image is a
 * UsageError. Labels come from a top-level `dataset.json` (EDM's dataset layout); an image
 * without a label there is a UsageError.
 */
export async function openImageSet(path: string): Promise<ImageSet> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new UsageError(`${path}: no such file or folder`);
    throw e;
  }
  const none = () =>
    new UsageError(`${path}: no images found (looked for ${IMAGE_EXTENSIONS.join(', ')}${st.isDirectory() ? ', recursively' : ''})`);
  if (st.isDirectory()) {
    const files = await walk(path);
    // `adasde sample --grid` puts grid.png beside the images it tiles; it is not one of them
    // (and has another size), so `fid calc --images <outdir>` leaves it out.
    const names = files.filter((f) => isImageName(f) && f !== GRID_NAME).sort(codeUnitCompare);
    if (names.length === 0) throw none();
    let pairs: Array<[string, number]> | undefined;
    if (files.includes('dataset.json')) {
      const jsonPath = join(path, 'dataset.json');
      const jst = await stat(jsonPath);
      if (jst.size > MAX_DATASET_JSON_BYTES) throw new UsageError(`${jsonPath}: too large`);
      pairs = parseLabels(await readFile(jsonPath, 'utf8'), jsonPath);
    }
    const labels = pairs ? alignLabels(pairs, names, join(path, 'dataset.json')) : undefined;
    return new FolderSet(path, names, pairs, labels);
  }
  const zip = await ZipReader.open(path);
  try {
    const all = zip.fileNames();
    const names = [...new Set(all.filter((n) => isImageName(n) && !n.startsWith('__MACOSX/')))].sort(codeUnitCompare);
    if (names.length === 0) throw none();
    let pairs: Array<[string, number]> | undefined;
    if (zip.has('dataset.json')) {
      const text = (await zip.read('dataset.json', { maxBytes: MAX_DATASET_JSON_BYTES })).toString('utf8');
      pairs = parseLabels(text, `${path}: dataset.json`);
    }
    const labels = pairs ? alignLabels(pairs, names, `${path}: dataset.json`) : undefined;
    return new ZipSet(path, names, pairs, labels, zip);
  } catch (e) {
    await zip.close();
    throw e;
  }
}

/**
 * Check that images (all, or the given indices) have one size, reading only headers, a few
 * at a time. Returns that size; when two differ, throws a UsageError naming the first
 * image and one that differs from it (the lowest-indexed found), with both sizes.
 */
export async function checkSameSize(set: ImageSet, indices?: readonly number[], concurrency = 8): Promise<ImageSize> {
  const idx = indices ?? Array.from({ length: set.count }, (_, i) => i);
  if (idx.length === 0) throw new RangeError('checkSameSize: no images');
  const first = await set.size(idx[0]!);
  let next = 1;
  const mismatches: Array<{ i: number; s: ImageSize }> = [];
  const worker = async (): Promise<void> => {
    while (next < idx.length && mismatches.length === 0) {
      const i = idx[next++]!;
      const s = await set.size(i);
      if (s.width !== first.width || s.height !== first.height) mismatches.push({ i, s });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, idx.length - 1)) }, worker));
  const mismatch = mismatches.sort((a, b) => a.i - b.i)[0];
  if (mismatch) {
    const a = set.names[idx[0]!]!;
    const b = set.names[mismatch.i]!;
    throw new UsageError(
      `${set.path}: images differ in size: '${a}' is ${first.width}x${first.height}, '${b}' is ${mismatch.s.width}x${mismatch.s.height}`,
    );
  }
  return first;
}

// ---------------------------------------------------------------------------
// Reproducible subsets, chosen exactly as the reference's FID tool chooses them.

/**
 * MT19937 (Matsumoto & Nishimura), seeded like NumPy's legacy `RandomState(int)`
 * (`init_genrand`), giving the same 32-bit stream as `RandomState(seed).randint(2**32)`.
 */
class MT19937 {
  private readonly mt = new Uint32Array(624);
  private i = 624;
  constructor(seed: number) {
    const mt = this.mt;
    mt[0] = seed >>> 0;
    for (let k = 1; k < 624; k++) {
      const x = mt[k - 1]! ^ (mt[k - 1]! >>> 30);
      mt[k] = (Math.imul(1812433253, x) + k) >>> 0;
    }
  }
  nextUint32(): number {
    const mt = this.mt;
    if (this.i >= 624) {
      for (let k = 0; k < 624; k++) {
        const y = (mt[k]! & 0x80000000) | (mt[(k + 1) % 624]! & 0x7fffffff);
        mt[k] = mt[(k + 397) % 624]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      this.i = 0;
    }
    let y = mt[this.i++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }
  /** NumPy's `random_interval(max)`: uniform in [0, max] by masked rejection sampling. */
  interval(max: number): number {
    if (max === 0) return 0;
    let mask = max;
    mask |= mask >>> 1;
    mask |= mask >>> 2;
    mask |= mask >>> 4;
    mask |= mask >>> 8;
    mask |= mask >>> 16;
    mask >>>= 0;
    for (;;) {
      const v = (this.nextUint32() & mask) >>> 0;
      if (v <= max) return v;
    }
  }
}

/**
 * Pick `num` of `count` images reproducibly from `seed`: the indices, ascending.
 *
 * This is exactly what the reference FID tool (EDM's `fid.py`, through
 * `ImageFolderDataset(max_size=num, random_seed=seed)`) does, so `--num 10000 --seed 0`
 * selects the same files as the reference on the same folder:
 *
 *   idx = np.arange(count)
 *   if count > num:
 *       np.random.RandomState(seed % 2**31).shuffle(idx)   # Fisher-Yates, i = count-1 .. 1,
 *       idx = np.sort(idx[:num])                           # j = random_interval(i)
 *
 * with NumPy's legacy MT19937 stream (implemented above; no Python needed). When `num`
 * equals `count` every index is returned; asking for more than `count` is a UsageError.
 */
export function pickSubset(count: number, num: number, seed: number): number[] {
  if (!Number.isSafeInteger(count) || count < 0 || count > 0xffffffff) throw new RangeError(`pickSubset: bad count ${count}`);
  if (!Number.isSafeInteger(num) || num < 0) throw new RangeError(`pickSubset: bad num ${num}`);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`pickSubset: bad seed ${seed}`);
  if (num > count) throw new UsageError(`asked for ${num} images but only ${count} are available`);
  const idx = new Uint32Array(count);
  for (let i = 0; i < count; i++) idx[i] = i;
  if (num === count) return Array.from(idx);
  const rng = new MT19937(seed % 2 ** 31);
  for (let i = count - 1; i >= 1; i--) {
    const j = rng.interval(i);
    const t = idx[i]!;
    idx[i] = idx[j]!;
    idx[j] = t;
  }
  return Array.from(idx.subarray(0, num)).sort((a, b) => a - b);
}
