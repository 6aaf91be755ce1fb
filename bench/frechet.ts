/**
 * Time of the 2048-d Frechet distance (src/fid/frechet.ts) on the committed fixture pair
 * (test/fixtures/fid, default `full-2048`: two full-rank covariances from 2100 samples
 * each), plus the FeatureStats accumulation of those samples. bench/frechet_scipy.py
 * times the reference's scipy.linalg.sqrtm path on the same features.
 *
 *   npm run build && node dist/bench/frechet.js [--pair full-2048] [--reps 5]
 *
 * Prints wall and CPU time of every repetition (the machine is shared: CPU time is the
 * steadier number, wall time is what a user waits) and the agreement with scipy.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { frechetDetails } from '../src/fid/frechet.js';
import { FeatureStats } from '../src/fid/stats.js';

const arg = (name: string, def: string): string => {
  const k = process.argv.indexOf(`--${name}`);
  return k > 0 ? process.argv[k + 1]! : def;
};
const pairName = arg('pair', 'full-2048');
const reps = Number(arg('reps', '5'));

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixtures = resolve(root, 'test', 'fixtures', 'fid');

interface SetInfo {
  features: string;
  dtype: string;
  dim: number;
  rows: number;
  row_range?: [number, number];
}
interface PairInfo {
  name: string;
  a: string;
  b: string;
  dim: number;
  fid_scipy: number;
  fid_exact: number;
}
const expected = JSON.parse(readFileSync(resolve(fixtures, 'expected.json'), 'utf8')) as {
  sets: Record<string, SetInfo>;
  pairs: PairInfo[];
};
const pair = expected.pairs.find((p) => p.name === pairName);
if (!pair) throw new Error(`no pair ${pairName} in expected.json`);

function features(name: string): { x: Float32Array; rows: number; dim: number } {
  const s = expected.sets[name]!;
  const raw = readFileSync(resolve(fixtures, s.features));
  if (s.dtype === 'float32') {
    const x = new Float32Array(raw.length / 4);
    for (let i = 0; i < x.length; i++) x[i] = raw.readFloatLE(i * 4);
    return { x, rows: s.rows, dim: s.dim };
  }
  const bytes = gunzipSync(raw);
  const [r0, r1] = s.row_range ?? [0, s.rows];
  const x = new Float32Array((r1 - r0) * s.dim);
  x.set(new Int8Array(bytes.buffer, bytes.byteOffset + r0 * s.dim, x.length));
  return { x, rows: r1 - r0, dim: s.dim };
}

const cpuMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;

console.log(`cpu: ${cpus()[0]?.model ?? '?'} x ${availableParallelism()}, load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
console.log(`pair ${pair.name} (${pair.a} vs ${pair.b}, dim ${pair.dim})`);

const stats = [pair.a, pair.b].map((name) => {
  const { x, rows, dim } = features(name);
  const fs = new FeatureStats(dim);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let r = 0; r < rows; r += 64) fs.add(x.subarray(r * dim, Math.min(rows, r + 64) * dim), Math.min(64, rows - r));
  const ms = performance.now() - t0;
  console.log(`FeatureStats ${name}: ${rows} samples in batches of 64: ${ms.toFixed(0)} ms wall, ${cpuMs(process.cpuUsage(c0)).toFixed(0)} ms cpu`);
  return { mu: fs.mu(), sigma: fs.sigma() };
});
const [a, b] = stats as [{ mu: Float64Array; sigma: Float64Array }, { mu: Float64Array; sigma: Float64Array }];

const walls: number[] = [];
const cpuTimes: number[] = [];
for (let k = 0; k < reps; k++) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const d = frechetDetails(a.mu, a.sigma, b.mu, b.sigma, pair.dim);
  const wall = performance.now() - t0;
  const cpu = cpuMs(process.cpuUsage(c0));
  walls.push(wall);
  cpuTimes.push(cpu);
  const rs = Math.abs(d.fid - pair.fid_scipy) / Math.abs(pair.fid_scipy);
  const re = Math.abs(d.fid - pair.fid_exact) / Math.abs(pair.fid_exact);
  console.log(
    `frechet #${k + 1}: ${wall.toFixed(0)} ms wall, ${cpu.toFixed(0)} ms cpu; fid ${d.fid} ` +
      `(rel. diff. scipy ${rs.toExponential(2)}, exact ${re.toExponential(2)}; ranks ${d.rank1}/${d.rank2 ?? '-'})`,
  );
}
const med = (v: number[]): number => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)]!;
console.log(
  `frechet ${pair.name}: wall min ${Math.min(...walls).toFixed(0)} / median ${med(walls).toFixed(0)} ms, ` +
    `cpu min ${Math.min(...cpuTimes).toFixed(0)} / median ${med(cpuTimes).toFixed(0)} ms (first call included)`,
);
