/**
 * `adasde fid calc|ref` end to end with a small convolutional feature network built here
 * (buildFeatureModel) instead of Inception. The CLI's statistics and distances are checked
 * against an independent computation: images decoded by sharp directly, features from
 * `loadFeatureModel` in one call, mean and covariance by a plain two-pass float64 loop, and
 * `frechetDistance` on those. Also: statistics files as --images, --num/--seed, several
 * processes (ours and an external launcher's), grey images, zips, and one-line exit-2 errors.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { main } from '../../src/cli/main.js';
import { frechetDistance } from '../../src/fid/frechet.js';
import { pickSubset } from '../../src/io/images.js';
import { readStatsNpz, writeStatsNpz } from '../../src/io/npz.js';
import { buildZip } from '../../src/io/zip.js';
import { saveModel } from '../../src/onnx/builder.js';
import { buildFeatureModel, seededUniform } from '../support/models.js';
import { loadFeatureModel } from '../../src/runtime/model.js';
import { repoRoot } from '../helpers.js';

const bin = resolve(repoRoot, 'bin', 'adasde.js');
const EXPORT_CMD = 'python3 tools/export_inception.py --pkl inception-2015-12-05.pkl --out models/inception-2015-12-05.onnx';
/** Feature dimension of the test network: below the image count, so covariances are full rank. */
const D = 16;
const SIZE = 16;
const COUNT = 40;

const dir = mkdtempSync(join(tmpdir(), 'adasde-fid-cli-'));
const p = (...parts: string[]): string => join(dir, ...parts);
const detector = p('features.onnx');
const fidDetector = p('features-fid.onnx');

interface Captured {
  code: number;
  out: string;
  err: string;
}

/**
 * Runs the CLI in this process, recording what it writes (still passed through, so the
 * test runner's own output is never swallowed).
 */
async function cli(...args: string[]): Promise<Captured> {
  let out = '';
  let err = '';
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  const tee =
    (orig: typeof process.stdout.write, add: (s: string) => void): typeof process.stdout.write =>
    (chunk: unknown, ...rest: unknown[]): boolean => {
      if (typeof chunk === 'string') add(chunk);
      return (orig as (c: unknown, ...r: unknown[]) => boolean)(chunk, ...rest);
    };
  process.stdout.write = tee(ow, (s) => (out += s));
  process.stderr.write = tee(ew, (s) => (err += s));
  try {
    const code = await main(['node', 'adasde', ...args]);
    return { code, out, err };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
}

/** Runs `fn` with environment variables set (and restores them). */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** Runs the CLI as a separate process (several may run at once). */
function cliProcess(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): Promise<Captured> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: opts.cwd ?? dir, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', rej);
    child.on('close', (code) => res({ code: code ?? -1, out, err }));
  });
}

const lastLine = (s: string): string => s.trimEnd().split('\n').at(-1) ?? '';
const valueOf = (r: Captured): number => {
  assert.equal(r.code, 0, r.err);
  const v = Number(lastLine(r.out));
  assert.ok(Number.isFinite(v), `last stdout line is not a number: ${JSON.stringify(r.out)}`);
  return v;
};
const relErr = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);

/** Pixels of image k of distribution `kind`, HWC RGB (or grey when `channels` is 1). */
function pixels(kind: 'a' | 'b', k: number, channels = 3): Buffer {
  const u = seededUniform((kind === 'a' ? 1000 : 2000) + k);
  const out = Buffer.alloc(SIZE * SIZE * channels);
  // a: a flat colour plus noise; b: a brighter diagonal ramp with less noise.
  const base = Array.from({ length: channels }, () => (kind === 'a' ? 60 + 80 * u() : 110 + 90 * u()));
  const amp = kind === 'a' ? 50 : 25;
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      for (let c = 0; c < channels; c++) {
        const ramp = kind === 'b' ? (x + y) * 2.5 : 0;
        const v = base[c]! + ramp + amp * (u() - 0.5) * 2;
        out[(y * SIZE + x) * channels + c] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  }
  return out;
}

async function writeImage(file: string, px: Buffer, channels: 1 | 3, size = SIZE): Promise<void> {
  const img = sharp(px, { raw: { width: size, height: size, channels } });
  await (file.endsWith('.jpg') ? img.jpeg({ quality: 95 }) : img.png()).toFile(file);
}

/** The images of a folder in name order, decoded by sharp directly, as [n,3,H,W] uint8. */
async function decodeFolder(folder: string, names: readonly string[]): Promise<{ data: Uint8Array; h: number; w: number }> {
  const imgs = await Promise.all(names.map((n) => sharp(join(folder, n)).raw().toBuffer({ resolveWithObject: true })));
  const { width: w, height: h } = imgs[0]!.info;
  const data = new Uint8Array(names.length * 3 * h * w);
  imgs.forEach(({ data: px, info }, k) => {
    for (let c = 0; c < 3; c++) {
      const src = info.channels < 3 ? 0 : c;
      for (let q = 0; q < h * w; q++) data[(k * 3 + c) * h * w + q] = px[q * info.channels + src]!;
    }
  });
  return { data, h, w };
}

/** Independent statistics: direct model call, two-pass float64 mean and covariance. */
async function naiveStats(folder: string, names?: readonly string[]): Promise<{ mu: Float64Array; sigma: Float64Array; n: number }> {
  const list = names ?? readdirSync(folder).filter((f) => /\.(png|jpg)$/.test(f)).sort();
  const { data, h, w } = await decodeFolder(folder, list);
  const model = await loadFeatureModel(detector, { threads: 1, maxBatch: 128 });
  const n = list.length;
  const f = await model.extract(data, n, [3, h, w]);
  await model.dispose();
  const dim = f.length / n;
  const mu = new Float64Array(dim);
  for (let k = 0; k < n; k++) for (let i = 0; i < dim; i++) mu[i] = mu[i]! + f[k * dim + i]!;
  for (let i = 0; i < dim; i++) mu[i] = mu[i]! / n;
  const sigma = new Float64Array(dim * dim);
  for (let k = 0; k < n; k++) {
    for (let i = 0; i < dim; i++) {
      const di = f[k * dim + i]! - mu[i]!;
      for (let j = 0; j < dim; j++) sigma[i * dim + j] = sigma[i * dim + j]! + di * (f[k * dim + j]! - mu[j]!);
    }
  }
  for (let q = 0; q < sigma.length; q++) sigma[q] = sigma[q]! / (n - 1);
  return { mu, sigma, n };
}

function assertStatsClose(got: { mu: Float64Array; sigma: Float64Array }, want: { mu: Float64Array; sigma: Float64Array }, tol: number): void {
  assert.equal(got.mu.length, want.mu.length);
  const scale = (a: Float64Array): number => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const worst = (a: Float64Array, b: Float64Array): number => a.reduce((m, v, q) => Math.max(m, Math.abs(v - b[q]!)), 0) / scale(b);
  assert.ok(worst(got.mu, want.mu) <= tol, `mu differs by ${worst(got.mu, want.mu)}`);
  assert.ok(worst(got.sigma, want.sigma) <= tol, `sigma differs by ${worst(got.sigma, want.sigma)}`);
}

before(async () => {
  saveModel(buildFeatureModel({ dim: D, size: 32 }), detector);
  const withFid = buildFeatureModel({ dim: D, size: 32 });
  withFid.metadataProps.push({ key: 'adasde.metric', value: 'fid' });
  saveModel(withFid, fidDetector);
  for (const kind of ['a', 'b'] as const) {
    mkdirSync(p(kind, 'sub'), { recursive: true });
    await Promise.all(
      Array.from({ length: COUNT }, (_, k) =>
        // Half in a subfolder (recursive listing), a few as JPEG.
        writeImage(p(kind, k % 2 ? 'sub' : '', `img${String(k).padStart(3, '0')}.${k % 10 === 3 ? 'jpg' : 'png'}`), pixels(kind, k), 3),
      ),
    );
  }
  // Grey images, and the same images stored as RGB.
  mkdirSync(p('grey1'));
  mkdirSync(p('grey3'));
  for (let k = 0; k < 6; k++) {
    const g = pixels('a', k, 1);
    await writeImage(p('grey1', `g${k}.png`), g, 1);
    const rgb = Buffer.alloc(g.length * 3);
    for (let q = 0; q < g.length; q++) rgb[3 * q] = rgb[3 * q + 1] = rgb[3 * q + 2] = g[q]!;
    await writeImage(p('grey3', `g${k}.png`), rgb, 3);
  }
  // Malformed sets.
  mkdirSync(p('empty'));
  writeFileSync(p('empty', 'notes.txt'), 'no images here');
  mkdirSync(p('one'));
  await writeImage(p('one', 'only.png'), pixels('a', 0), 3);
  mkdirSync(p('mixed'));
  for (let k = 0; k < 4; k++) await writeImage(p('mixed', `m${k}.png`), pixels('a', k), 3);
  await writeImage(p('mixed', 'm9-big.png'), Buffer.alloc(20 * 20 * 3, 7), 3, 20);
  await writeStatsNpz(p('dim5.npz'), new Float64Array(5), new Float64Array(25));
});

after(() => rmSync(dir, { recursive: true, force: true }));

/** Names relative to a set folder, in the CLI's (code-unit) order. */
function setNames(kind: 'a' | 'b'): string[] {
  const names: string[] = [];
  for (const f of readdirSync(p(kind))) {
    if (f === 'sub') for (const g of readdirSync(p(kind, 'sub'))) names.push(`sub/${g}`);
    else names.push(f);
  }
  return names.sort();
}

describe('fid ref and calc against an independent computation', () => {
  let naiveA: Awaited<ReturnType<typeof naiveStats>>;
  let naiveB: Awaited<ReturnType<typeof naiveStats>>;
  let fidAB: number;

  before(async () => {
    naiveA = await naiveStats(p('a'), setNames('a'));
    naiveB = await naiveStats(p('b'), setNames('b'));
  });

  test('ref writes float64 mu and sigma equal to the two-pass statistics', async () => {
    for (const kind of ['a', 'b'] as const) {
      const r = await cli('fid', 'ref', '--data', p(kind), '--dest', p(`${kind}.npz`), '--detector', detector, '--batch', '16', '--quiet');
      assert.equal(r.code, 0, r.err);
      const s = await readStatsNpz(p(`${kind}.npz`));
      assert.equal(s.dim, D);
      assertStatsClose(s, kind === 'a' ? naiveA : naiveB, 1e-12);
    }
  });

  test('calc of a set against its own reference is 0; the number is the last stdout line', async () => {
    const v = valueOf(await cli('fid', 'calc', '--images', p('a'), '--ref', p('a.npz'), '--detector', detector, '--quiet'));
    assert.ok(Math.abs(v) < 1e-6, `self distance ${v}`);
  });

  test('calc of two sets matches frechetDistance on independently computed statistics', async () => {
    const want = frechetDistance(naiveB.mu, naiveB.sigma, naiveA.mu, naiveA.sigma, D);
    const r = await cli('fid', 'calc', '--images', p('b'), '--ref', p('a.npz'), '--detector', detector, '--batch', '7');
    fidAB = valueOf(r);
    assert.ok(want > 0.01, `distinct sets should be far apart (${want})`);
    assert.ok(relErr(fidAB, want) < 1e-9, `cli ${fidAB} vs independent ${want}`);
    // Not Inception: named the bundled-feature distance, never FID; progress and summary on stderr.
    assert.match(r.err, /bundled-feature distance/);
    assert.doesNotMatch(r.err, /\bFID\b/);
    assert.match(r.err, /40\/40 images \| [\d.]+ images\/s/);
  });

  test('--json prints one record; a detector marked adasde.metric=fid is reported as FID with the 10k/30k/50k warning', async () => {
    const r = await cli('fid', 'calc', '--images', p('b'), '--ref', p('a.npz'), '--detector', detector, '--json', '--quiet');
    assert.equal(r.code, 0, r.err);
    const rec = JSON.parse(lastLine(r.out)) as Record<string, unknown>;
    assert.equal(rec.fid, undefined);
    assert.ok(relErr(rec.fd_bundled as number, fidAB) < 1e-12);
    assert.equal(rec.n, COUNT);
    assert.equal(rec.detector, detector);
    assert.equal(rec.ref, p('a.npz'));
    assert.equal(rec.images, p('b'));
    assert.equal(typeof rec.elapsed, 'number');

    const f = await cli('fid', 'calc', '--images', p('b'), '--ref', p('a.npz'), '--detector', fidDetector, '--json', '--quiet');
    assert.equal(f.code, 0, f.err);
    const frec = JSON.parse(lastLine(f.out)) as Record<string, unknown>;
    assert.ok(relErr(frec.fid as number, fidAB) < 1e-12);
    const warnings = f.err.split('\n').filter((l) => l.includes('warning'));
    assert.equal(warnings.length, 1, f.err);
    assert.match(warnings[0]!, /^adasde: warning: FID of 40 images; .*10000, 30000 or 50000/);
  });

  test('--images may be a statistics .npz: two reference files compare directly', async () => {
    const v = valueOf(await cli('fid', 'calc', '--images', p('b.npz'), '--ref', p('a.npz'), '--quiet'));
    assert.ok(relErr(v, fidAB) < 1e-12, `${v} vs ${fidAB}`);
    const r = await cli('fid', 'calc', '--images', p('b.npz'), '--ref', p('a.npz'), '--json', '--quiet');
    const rec = JSON.parse(lastLine(r.out)) as Record<string, unknown>;
    assert.equal(rec.n, null);
    assert.equal(rec.detector, null);
  });

  test('--num/--seed: a reproducible subset, the one pickSubset chooses', async () => {
    const args = ['fid', 'calc', '--images', p('b'), '--ref', p('a.npz'), '--detector', detector, '--num', '25', '--quiet'];
    const s3 = valueOf(await cli(...args, '--seed', '3'));
    assert.equal(valueOf(await cli(...args, '--seed', '3')), s3);
    const s4 = valueOf(await cli(...args, '--seed', '4'));
    assert.notEqual(s3, s4);
    const names = setNames('b');
    const sub = await naiveStats(p('b'), pickSubset(names.length, 25, 3).map((i) => names[i]!));
    const want = frechetDistance(sub.mu, sub.sigma, naiveA.mu, naiveA.sigma, D);
    assert.ok(relErr(s3, want) < 1e-9, `${s3} vs ${want}`);
  });

  test('a zip of the set (EDM dataset layout with dataset.json) gives the folder statistics', async () => {
    const names = setNames('a');
    const { readFileSync } = await import('node:fs');
    const members = names.map((n) => ({ name: n, data: readFileSync(p('a', n)) }));
    members.push({ name: 'dataset.json', data: Buffer.from(JSON.stringify({ labels: names.map((n, i) => [n, i % 10]) })) });
    writeFileSync(p('a.zip'), Buffer.concat(await buildZip(members, { compressed: true })));
    const r = await cli('fid', 'ref', '--data', p('a.zip'), '--dest', p('a-zip.npz'), '--detector', detector, '--quiet');
    assert.equal(r.code, 0, r.err);
    assertStatsClose(await readStatsNpz(p('a-zip.npz')), naiveA, 1e-12);
  });

  test('grey images are repeated to three channels', async () => {
    assert.equal((await cli('fid', 'ref', '--data', p('grey3'), '--dest', p('grey3.npz'), '--detector', detector, '--quiet')).code, 0);
    const v = valueOf(await cli('fid', 'calc', '--images', p('grey1'), '--ref', p('grey3.npz'), '--detector', detector, '--quiet'));
    assert.ok(Math.abs(v) < 1e-9, `${v}`);
  });

  test('--nproc_per_node 2 equals a single process', async () => {
    const multi = await cliProcess(['fid', 'calc', '--images', p('b'), '--ref', p('a.npz'), '--nproc_per_node', '2', '--json', '--detector', detector, '--batch', '10', '--quiet']);
    assert.equal(multi.code, 0, multi.err);
    const rec = JSON.parse(lastLine(multi.out)) as Record<string, unknown>;
    assert.ok(relErr(rec.fd_bundled as number, fidAB) < 1e-10, `${String(rec.fd_bundled)} vs ${fidAB}`);
    assert.equal(rec.n, COUNT);
  });

  test('external launcher (RANK/WORLD_SIZE): rank 1 leaves <dest>.rank1.partial, rank 0 merges it and removes it', async () => {
    const args = ['fid', 'ref', '--data', p('b'), '--dest', p('b-ext.npz'), '--detector', detector, '--batch', '6', '--decoders', '0', '--quiet'];
    // Rank 1 does not wait for anything, so the ranks can run one after the other here.
    const r1 = await withEnv({ RANK: '1', WORLD_SIZE: '2', LOCAL_RANK: '1' }, () => cli(...args));
    assert.equal(r1.code, 0, r1.err);
    assert.equal(r1.out, '');
    assert.ok(existsSync(p('b-ext.npz.rank1.partial')));
    assert.ok(!existsSync(p('b-ext.npz')));
    const r0 = await withEnv({ RANK: '0', WORLD_SIZE: '2', LOCAL_RANK: '0' }, () => cli(...args));
    assert.equal(r0.code, 0, r0.err);
    assertStatsClose(await readStatsNpz(p('b-ext.npz')), await readStatsNpz(p('b.npz')), 1e-12);
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.partial')), []);

    // fid calc: partials in --partial_dir; a missing rank is a one-line error after the timeout.
    const calcArgs = ['fid', 'calc', '--images', p('b'), '--ref', p('a.npz'), '--detector', detector, '--batch', '6', '--decoders', '0', '--quiet', '--partial_dir', p('parts')];
    assert.equal((await withEnv({ RANK: '1', WORLD_SIZE: '2' }, () => cli(...calcArgs))).code, 0);
    const v = valueOf(await withEnv({ RANK: '0', WORLD_SIZE: '2' }, () => cli(...calcArgs)));
    assert.ok(relErr(v, fidAB) < 1e-10, `${v} vs ${fidAB}`);
    assert.deepEqual(readdirSync(p('parts')), []);
    const lone = await withEnv({ RANK: '0', WORLD_SIZE: '3' }, () => cli(...calcArgs, '--partial_timeout', '0.2'));
    assert.equal(lone.code, 1);
    assert.match(lastLine(lone.err), /^adasde: error: rank 0 waited 0\.2 s for the partial statistics of ranks 1, 2 \(.*fid-calc-[0-9a-f]+\.rank1\.partial/);
  });
});

describe('malformed input: one line, exit 2', () => {
  const oneLine = (r: Captured, re: RegExp): void => {
    assert.equal(r.code, 2, r.err);
    const lines = r.err.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.err);
    assert.match(lines[0]!, /^adasde: error: /);
    assert.match(lines[0]!, re);
  };
  const calc = (images: string, ...more: string[]) => cli('fid', 'calc', '--images', images, '--ref', p('a.npz'), '--detector', detector, ...more);

  before(async () => {
    if (!existsSync(p('a.npz'))) await writeStatsNpz(p('a.npz'), new Float64Array(D), new Float64Array(D * D));
  });

  test('missing detector: the message gives the export command', async () => {
    // The default path, from a folder without models/.
    const cwd = process.cwd();
    process.chdir(p('empty'));
    let r: Captured;
    try {
      r = await cli('fid', 'calc', '--images', p('a'), '--ref', p('a.npz'));
    } finally {
      process.chdir(cwd);
    }
    oneLine(r, /models\/inception-2015-12-05\.onnx: no such file/);
    assert.ok(r.err.includes(EXPORT_CMD), r.err);
    oneLine(await cli('fid', 'ref', '--data', p('a'), '--dest', p('x.npz'), '--detector', p('nope.onnx')), /python3 tools\/export_inception\.py --pkl inception-2015-12-05\.pkl --out .*nope\.onnx/);
  });

  test('missing folder, empty folder, a single image', async () => {
    oneLine(await calc(p('nowhere')), /--images: .*nowhere: no such file or folder/);
    oneLine(await calc(p('empty')), /--images: .*empty: no images found/);
    oneLine(await calc(p('one')), /--images: .*one has 1 image; statistics need at least 2/);
    oneLine(await cli('fid', 'ref', '--data', p('one'), '--dest', p('x.npz'), '--detector', detector), /--data: .*at least 2/);
    oneLine(await calc(p('a'), '--num', '41'), /--num 41: .* has only 40 images/);
  });

  test('images of different sizes: both files are named', async () => {
    oneLine(await calc(p('mixed'), '--quiet'), /images differ in size: 'm0\.png' is 16x16, 'm9-big\.png' is 20x20/);
    oneLine(await cli('fid', 'ref', '--data', p('mixed'), '--dest', p('x.npz'), '--detector', detector, '--quiet', '--decoders', '0'), /'m0\.png' is 16x16, 'm9-big\.png' is 20x20/);
    assert.ok(!existsSync(p('x.npz')));
  });

  test('a reference without sigma, and one whose dimension is not the detector\'s', async () => {
    const noSigma = resolve(repoRoot, 'test', 'fixtures', 'npz', 'stats_no_sigma.npz');
    oneLine(await cli('fid', 'calc', '--images', p('a'), '--ref', noSigma, '--detector', detector), /--ref: .*stats_no_sigma\.npz: missing array 'sigma'/);
    oneLine(await cli('fid', 'calc', '--images', p('a'), '--ref', p('dim5.npz'), '--detector', detector), /--ref .*dim5\.npz has dimension 5 but the detector .* has 16/);
    oneLine(await cli('fid', 'calc', '--images', p('a.npz'), '--ref', p('dim5.npz')), /dimension 16 but --ref .* has 5/);
    oneLine(await cli('fid', 'ref', '--data', p('a'), '--dest', p('x.stats'), '--detector', detector), /--dest: expected a path ending in \.npz/);
    oneLine(await cli('fid', 'calc', '--images', p('a.npz'), '--ref', p('a.npz'), '--num', '10'), /--num picks images; --images .*a\.npz is a statistics file/);
  });
});
