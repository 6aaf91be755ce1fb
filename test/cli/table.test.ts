/**
 * `adasde table` on a generated Gaussian-mixture ONNX model with a small ONNX feature network:
 * a 3-solver x 2-NFE table in one command whose cells equal separate `adasde sample` +
 * `adasde fid calc` runs; an interrupted table resumes without recomputing finished cells;
 * a new NFE column computes only the new cells; 2 processes give the table of one.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { PNG_SCALE } from '../../src/charts/render.js';
import { main } from '../../src/cli/main.js';
import { saveModel } from '../../src/onnx/builder.js';
import { buildFeatureModel } from '../support/models.js';
import { parseChartSvg } from '../charts/svg.js';
import { repoRoot } from '../helpers.js';
import { makeModelDir } from './sample-fixture.js';

const bin = resolve(repoRoot, 'bin', 'adasde.js');
const expDir = resolve(repoRoot, 'exp');
const { dir, model } = makeModelDir();
const detector = join(dir, 'features.onnx');
saveModel(buildFeatureModel({ dim: 24, size: 16, seed: 3 }), detector);
const ref = join(dir, 'ref.npz');
const cli = (...args: string[]) => main(['node', 'adasde', ...args]);
const SEEDS = '0-23';

interface TableJson {
  metric: string;
  cells: { label: string; nfe: number; num_steps: number | null; afs: boolean | null; value: number | null; predictor: string | null; missing: string | null }[];
}
const spec = join(dir, 'spec.yaml');
writeFileSync(
  spec,
  [
    `model: ${model}`,
    `detector: ${detector}`,
    `ref: ${ref}`,
    `seeds: "${SEEDS}"`,
    `exp_dir: ${expDir}`,
    'batch: 8',
    'rows:',
    '  - solver: euler',
    '    label: ddim',
    '  - solver: dpmpp',
    '    max_order: 3',
    '  - solver: adasde',
    '    predictors: { "3": "0", "5": "2", "7": "4" }',
  ].join('\n') + '\n',
);

function cellCounts(stderr: string): { computed: number; reused: number } {
  const m = /(\d+) computed, (\d+) reused/.exec(stderr);
  assert.ok(m, stderr);
  return { computed: Number(m[1]), reused: Number(m[2]) };
}
const runTable = (outdir: string, ...extra: string[]) => spawnSync(process.execPath, [bin, 'table', '--spec', spec, '--outdir', outdir, ...extra], { encoding: 'utf8' });

test('table: reference statistics for the tests (adasde sample + adasde fid ref)', async () => {
  const refImages = join(dir, 'ref-images');
  assert.equal(await cli('sample', '--model', model, '--solver', 'heun', '--num_steps', '12', '--seeds', '1000-1063', '--outdir', refImages, '--quiet'), 0);
  assert.equal(await cli('fid', 'ref', '--data', refImages, '--dest', ref, '--detector', detector, '--quiet'), 0);
  assert.ok(existsSync(ref));
});

test('table: a 3-solver x 2-NFE table in one command; cells equal separate sample + fid calc runs', async () => {
  const outdir = join(dir, 'table-a');
  const r = runTable(outdir, '--nfe', '3,5', '--compare', 'published', '--compare_dataset', 'cifar10');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(cellCounts(r.stderr), { computed: 6, reused: 0 });
  const t = JSON.parse(readFileSync(join(outdir, 'table.json'), 'utf8')) as TableJson;
  assert.equal(t.metric, 'fd_bundled');
  assert.equal(t.cells.length, 6);
  // The published CIFAR-10 numbers stand beside the measured ones for rows whose label the paper uses.
  const md = readFileSync(join(outdir, 'table.md'), 'utf8');
  assert.match(md, /bundled-feature distance/);
  assert.match(md, /\| ddim \| [\d.]+ \(93\.36, [+-][\d.]+\) \| [\d.]+ \(49\.66, [+-][\d.]+\) \|/);
  assert.match(md, /\| adasde \| [\d.]+ \(12\.62, [+-][\d.]+\) \| [\d.]+ \(4\.18, [+-][\d.]+\) \|/);
  assert.ok(existsSync(join(outdir, 'table.csv')));
  // table.svg / table.png: one line per row plus the dashed published lines of the rows the
  // paper has (ddim, adasde), every measured point at its cell's value.
  const chart = parseChartSvg(readFileSync(join(outdir, 'table.svg'), 'utf8'));
  assert.deepEqual(new Set(chart.lines.map((l) => `${l.row}/${l.source}`)), new Set(['ddim/measured', 'dpmpp/measured', 'adasde/measured', 'ddim/published', 'adasde/published']));
  const measured = chart.points.filter((p) => p.data.source === 'measured').map((p) => `${p.data.row}/${p.data.nfe}/${Number(p.data.value)}`);
  assert.deepEqual(measured.sort(), t.cells.map((c) => `${c.label}/${c.nfe}/${c.value!}`).sort());
  assert.ok(chart.axes.some((a) => /^Y-axis .* log scale/.test(a)));
  const png = await sharp(readFileSync(join(outdir, 'table.png'))).metadata();
  assert.equal(png.width, Math.round(chart.width * PNG_SCALE));
  for (const c of t.cells) {
    assert.equal(c.missing, null);
    const args = c.label === 'adasde' ? ['--predictor_path', c.predictor!] : ['--solver', c.label === 'ddim' ? 'euler' : c.label, '--num_steps', String(c.num_steps), `--afs=${c.afs}`];
    const images = join(dir, `separate-${c.label}-${c.nfe}`);
    assert.equal(await cli('sample', '--model', model, '--seeds', SEEDS, '--outdir', images, '--quiet', ...args), 0);
    const f = spawnSync(process.execPath, [bin, 'fid', 'calc', '--images', images, '--ref', ref, '--detector', detector, '--json', '--quiet'], { encoding: 'utf8' });
    assert.equal(f.status, 0, f.stderr);
    const separate = (JSON.parse(f.stdout.trim().split('\n').pop()!) as { fd_bundled: number }).fd_bundled;
    assert.ok(Math.abs(c.value! - separate) <= 1e-6 * Math.max(1, separate), `${c.label} NFE ${c.nfe}: table ${c.value} vs separate ${separate}`);
  }
});

test('table --dry-run: every cell resolved, stored ones named, nothing written', () => {
  // table-a holds NFE 3 and 5; NFE 7 is new.
  const r = runTable(join(dir, 'table-a'), '--nfe', '3,5,7', '--dry-run');
  assert.equal(r.status, 0, r.stderr);
  const plan = JSON.parse(r.stdout.slice(0, r.stdout.lastIndexOf('}') + 1)) as { cells: { label: string; nfe: number; status: string; num_steps: number | null; sample_args: string[] | null }[] };
  assert.deepEqual(
    plan.cells.map((c) => `${c.label}/${c.nfe}/${c.status}`),
    ['ddim/3/stored', 'ddim/5/stored', 'ddim/7/to compute', 'dpmpp/3/stored', 'dpmpp/5/stored', 'dpmpp/7/to compute', 'adasde/3/stored', 'adasde/5/stored', 'adasde/7/to compute'],
  );
  // Euler at NFE 7 is 8 points; the dpmpp row's max_order reaches the reproduction command.
  assert.equal(plan.cells[2]!.num_steps, 8);
  assert.ok(plan.cells[3]!.sample_args!.includes('--max_order=3'), plan.cells[3]!.sample_args!.join(' '));
  const fresh = join(dir, 'table-dry');
  const d = runTable(fresh, '--nfe', '3', '--dry-run');
  assert.equal(d.status, 0, d.stderr);
  assert.equal(existsSync(fresh), false, 'the dry run created the output folder');
  // A row option its solver does not support stops the table naming the row.
  const bad = spawnSync(process.execPath, [bin, 'table', '--model', model, '--detector', detector, '--ref', ref, '--nfe', '3', '--spec', badSpec(), '--dry-run'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr.trim(), 'adasde: error: rows: unipc: max_order: unipc supports orders 1 to 3, got 4');
});

function badSpec(): string {
  const p = join(dir, 'bad-order.yaml');
  writeFileSync(p, ['rows:', '  - solver: unipc', '    max_order: 4'].join('\n') + '\n');
  return p;
}

test('table: an interrupted table resumes without recomputing finished cells; a new column computes only new cells', async () => {
  const outdir = join(dir, 'table-b');
  const child = spawn(process.execPath, [bin, 'table', '--spec', spec, '--outdir', outdir, '--nfe', '3,5', '--quiet'], { stdio: 'ignore' });
  const cellsDir = join(outdir, 'cells');
  const finished = () => (existsSync(cellsDir) ? readdirSync(cellsDir).filter((f) => f.endsWith('.npz')) : []);
  while (finished().length < 2) await new Promise((r) => setTimeout(r, 10));
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  const before = finished();
  assert.ok(before.length >= 2 && before.length < 6, `${before.length} cells finished before the interruption`);
  const mtimes = new Map(before.map((f) => [f, statSync(join(cellsDir, f)).mtimeMs]));
  const again = runTable(outdir, '--nfe', '3,5');
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual(cellCounts(again.stderr), { computed: 6 - before.length, reused: before.length });
  for (const [f, m] of mtimes) assert.equal(statSync(join(cellsDir, f)).mtimeMs, m, `${f} was recomputed`);
  // The resumed table equals the uninterrupted one.
  const a = JSON.parse(readFileSync(join(dir, 'table-a', 'table.json'), 'utf8')) as TableJson;
  const b = JSON.parse(readFileSync(join(outdir, 'table.json'), 'utf8')) as TableJson;
  assert.deepEqual(b.cells.map((c) => c.value), a.cells.map((c) => c.value));
  // A new NFE column: only its three cells are computed.
  const grown = runTable(outdir, '--nfe', '3,5,7');
  assert.equal(grown.status, 0, grown.stderr);
  assert.deepEqual(cellCounts(grown.stderr), { computed: 3, reused: 6 });
});

test('table: --nproc_per_node 2 gives the table of one process', () => {
  const outdir = join(dir, 'table-c');
  const r = runTable(outdir, '--nfe', '3,5', '--nproc_per_node', '2');
  assert.equal(r.status, 0, r.stderr);
  const a = JSON.parse(readFileSync(join(dir, 'table-a', 'table.json'), 'utf8')) as TableJson;
  const b = JSON.parse(readFileSync(join(outdir, 'table.json'), 'utf8')) as TableJson;
  b.cells.forEach((c, k) => assert.ok(Math.abs(c.value! - a.cells[k]!.value!) <= 1e-9 * Math.max(1, Math.abs(a.cells[k]!.value!)), `${c.label} ${c.nfe}`));
});

test('table: bad input is one line and exit 2', () => {
  const cases: [string[], RegExp][] = [
    [['--model', model, '--detector', detector, '--solvers', 'euler', '--nfe', '3'], /--ref is required/],
    [['--model', model, '--detector', detector, '--ref', ref, '--solvers', 'euler'], /--nfe is required/],
    [['--model', model, '--detector', detector, '--ref', ref, '--solvers', 'euler,rk4', '--nfe', '3'], /--solvers: "rk4" is not a solver/],
    [['--spec', join(dir, 'nope.yaml')], /--spec: .* does not exist/],
    [['--model', model, '--detector', join(dir, 'none.onnx'), '--ref', ref, '--solvers', 'euler', '--nfe', '3'], /export_inception\.py/],
  ];
  for (const [args, pattern] of cases) {
    const r = spawnSync(process.execPath, [bin, 'table', ...args, '--outdir', join(dir, 'bad')], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, pattern);
  }
});

test('table: a row with its own predictors leaves an NFE it does not list n/a', () => {
  const outdir = join(dir, 'table-d');
  const r = runTable(outdir, '--nfe', '9', '--solvers', 'euler', '--quiet');
  assert.equal(r.status, 0, r.stderr);
  const s = runTable(outdir, '--nfe', '5,9');
  assert.equal(s.status, 0, s.stderr);
  const t = JSON.parse(readFileSync(join(outdir, 'table.json'), 'utf8')) as TableJson;
  const cell = (label: string, nfe: number) => t.cells.find((c) => c.label === label && c.nfe === nfe)!;
  assert.equal(cell('adasde', 9).missing, "the row's predictors have no entry for NFE 9");
  assert.equal(cell('adasde', 9).value, null);
  assert.equal(cell('adasde', 5).missing, null);
  assert.ok(cell('ddim', 9).value! > 0);
  assert.match(readFileSync(join(outdir, 'table.md'), 'utf8'), /\| adasde \| [\d.]+ \| n\/a \|/);
});
