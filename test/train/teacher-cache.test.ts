/**
 * The teacher cache (src/train/teacher-cache.ts): round trips bit for bit, is keyed by what the
 * targets depend on, ignores damaged entries, stays within its bound, computes an entry once
 * when several processes ask for it at the same moment, takes over a dead process's lock, and
 * a training that reads it ends with exactly the coefficients of one that computed everything.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir, hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { mixtureDenoiser, type MixtureParams } from '../../src/solvers/analytic.js';
import { initState, trainBatch, type TrainSetup } from '../../src/train/loop.js';
import { TeacherCache } from '../../src/train/teacher-cache.js';
import { repoRoot } from '../helpers.js';

const root = () => mkdtempSync(join(tmpdir(), 'adasde-tcache-'));
const key = { model_sha256: 'abc', M: 3, seed: 1 };
const targetsOf = (n: number, len: number, salt: number) => Array.from({ length: 3 }, (_, i) => Float64Array.from({ length: n * len }, (_, k) => Math.sin(k * 0.37 + i + salt) * 1e3 + 1 / (k + 1)));
const never = async (): Promise<Float64Array[]> => assert.fail('computed although stored');

test('teacher cache: round trip bit for bit; another key, a damaged or a short file is a miss', async () => {
  const dir = root();
  const c = new TeacherCache(dir, key, { maxBytes: 1e9 });
  const t = targetsOf(4, 10, 0);
  let computed = 0;
  const first = await c.targets(32, 4, async () => (computed++, t));
  assert.equal(first.hit, false);
  const again = await c.targets(32, 4, never);
  assert.equal(again.hit, true);
  assert.equal(computed, 1);
  again.targets.forEach((a, i) => assert.deepEqual(a, t[i]));
  // Another range of trajectories, another key: misses.
  assert.equal(c.read(36, 4), undefined);
  for (const other of [{ ...key, M: 2 }, { ...key, seed: 2 }, { ...key, model_sha256: 'abd' }]) {
    const o = new TeacherCache(dir, other, { maxBytes: 1e9 });
    assert.notEqual(o.keyHash, c.keyHash);
    assert.equal(o.read(32, 4), undefined);
  }
  // Key order does not matter.
  assert.equal(new TeacherCache(dir, { seed: 1, M: 3, model_sha256: 'abc' }, { maxBytes: 1e9 }).keyHash, c.keyHash);
  // A truncated entry is ignored and recomputed.
  const file = join(c.dir, '32-4.bin');
  truncateSync(file, statSync(file).size - 8);
  assert.equal(c.read(32, 4), undefined);
  const re = await c.targets(32, 4, async () => (computed++, t));
  assert.equal(re.hit, false);
  assert.equal(computed, 2);
  assert.ok(c.read(32, 4));
  assert.ok(existsSync(join(c.dir, 'key.json')));
});

test('teacher cache: stays within its bound, removing the least recently used entries', async () => {
  const dir = root();
  const entryBytes = 3 * 4 * 100 * 8; // + a small header
  const c = new TeacherCache(dir, key, { maxBytes: 5.5 * entryBytes });
  for (let b = 0; b < 12; b++) {
    await c.targets(b * 4, 4, async () => targetsOf(4, 100, b));
    if (b === 3) {
      // Entry 0 used again: it is now more recent than 1..3.
      await new Promise((r) => setTimeout(r, 20));
      assert.ok(c.read(0, 4));
    }
    const total = readdirSync(c.dir)
      .filter((f) => f.endsWith('.bin'))
      .reduce((s, f) => s + statSync(join(c.dir, f)).size, 0);
    assert.ok(total <= 5.5 * entryBytes, `after entry ${b}: ${total} bytes`);
  }
  assert.ok(c.read(44, 4), 'the newest entry is kept');
  assert.equal(c.read(4, 4), undefined, 'an old entry was removed');
});

test('teacher cache: a lock left by a dead process is taken over', async () => {
  const dir = root();
  const c = new TeacherCache(dir, key, { maxBytes: 1e9, pollMs: 10 });
  mkdirSync(c.dir, { recursive: true });
  // A pid that is not running (the largest possible pid is far above what this VM reaches).
  writeFileSync(join(c.dir, '0-4.lock'), `${hostname()} 4194000\n`);
  const r = await c.targets(0, 4, async () => targetsOf(4, 10, 0));
  assert.equal(r.hit, false);
  assert.ok(!existsSync(join(c.dir, '0-4.lock')));
});

test('teacher cache: six processes asking for the same entries at once compute each only once', async () => {
  const dir = root();
  const mod = resolve(repoRoot, 'dist', 'src', 'train', 'teacher-cache.js');
  const marks = join(dir, 'computed');
  mkdirSync(marks);
  // Each process asks for entries 0..3; a computation takes 150 ms and leaves a marker file.
  const script = `
    const { TeacherCache } = await import(${JSON.stringify(mod)});
    const { writeFileSync } = await import('node:fs');
    const c = new TeacherCache(process.argv[1], ${JSON.stringify(key)}, { maxBytes: 1e9, pollMs: 10 });
    const out = [];
    for (let b = 0; b < 4; b++) {
      const r = await c.targets(b * 8, 8, async () => {
        writeFileSync(process.argv[2] + '/' + b + '-' + process.pid, '');
        await new Promise((r) => setTimeout(r, 150));
        return [Float64Array.from({ length: 8 * 5 }, (_, k) => Math.cos(k + b))];
      });
      out.push(Array.from(r.targets[0]).reduce((s, v) => s + v, 0));
    }
    process.stdout.write(JSON.stringify(out));`;
  const outs = await Promise.all(
    Array.from({ length: 6 }, () =>
      new Promise<string>((ok, fail) => {
        const p = spawn(process.execPath, ['--input-type=module', '-e', script, dir, marks]);
        let out = '';
        let err = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.stderr.on('data', (d: Buffer) => (err += d.toString()));
        p.on('close', (code) => (code === 0 ? ok(out) : fail(new Error(`exit ${code}: ${err}`))));
      }),
    ),
  );
  const computed = readdirSync(marks).map((f) => f.split('-')[0]).sort();
  assert.deepEqual(computed, ['0', '1', '2', '3'], `computations: ${readdirSync(marks).join(', ')}`);
  assert.ok(outs.every((o) => o === outs[0]), 'every process got the same targets');
  const c = new TeacherCache(dir, key, { maxBytes: 1e9 });
  assert.ok(!readdirSync(c.dir).some((f) => f.endsWith('.lock') || f.includes('.tmp-')), readdirSync(c.dir).join(', '));
});

const dim = 12;
const mix: MixtureParams = {
  weights: Float64Array.of(0.4, 0.6),
  means: Float64Array.from({ length: 2 * dim }, (_, q) => 0.6 * Math.cos(q)),
  stds: Float64Array.of(0.1, 0.2),
};
function setup(over: Partial<TrainSetup>): TrainSetup {
  return {
    denoise: mixtureDenoiser(mix),
    sampleShape: [3, 2, 2],
    labelDim: 0,
    schedule: { numSteps: 4, sigmaMin: 0.002, sigmaMax: 80, type: 'time_uniform', rho: 1 },
    M: 2,
    teacher: 'dpm',
    afs: true,
    bounds: { scaleDir: 0.05, scaleTime: 0.2, gamma: 0.02, gammaMin: 2e-4, fcn: false },
    numPoints: 1,
    lr: 0.2,
    coslr: true,
    totalKimg: 0.04,
    batch: 8,
    seed: 5,
    alpha: 20,
    jvpRelStep: 1e-7,
    jvpScheme: 'forward',
    rank: 0,
    worldSize: 1,
    reduce: async (v) => v,
    ...over,
  };
}

test('training with the cache: a second run with other lr and gamma computes no teacher rows, and both end as uncached runs do', async () => {
  const c = new TeacherCache(root(), key, { maxBytes: 1e9 });
  const run = async (over: Partial<TrainSetup>) => {
    const st = initState(5, 4, 1);
    let teacherRows = 0;
    let hits = 0;
    for (let b = 0; b < 5; b++) {
      const s = await trainBatch(setup(over), st);
      teacherRows += s.teacherRows;
      hits += s.teacherHit ? 1 : 0;
    }
    return { raw: st.raw, teacherRows, hits };
  };
  const plainA = await run({});
  const plainB = await run({ lr: 0.05, bounds: { scaleDir: 0.1, scaleTime: 0.2, gamma: 0.01, gammaMin: 2e-4, fcn: false } });
  const first = await run({ teacherStore: c });
  assert.equal(first.hits, 0);
  assert.equal(first.teacherRows, plainA.teacherRows);
  assert.deepEqual(first.raw, plainA.raw);
  const second = await run({ teacherStore: c, lr: 0.05, bounds: { scaleDir: 0.1, scaleTime: 0.2, gamma: 0.01, gammaMin: 2e-4, fcn: false } });
  assert.equal(second.hits, 5);
  assert.equal(second.teacherRows, 0);
  assert.deepEqual(second.raw, plainB.raw);
  assert.ok(readFileSync(join(c.dir, 'key.json'), 'utf8').includes('"seed": 1'));
});
