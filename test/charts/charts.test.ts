/**
 * The table and training charts: the SVG is read back (test/charts/svg.ts) and every drawn
 * point is tied to its datum; positions must follow the scales (log distance / loss axis,
 * linear coefficient and NFE axes) and the PNG must decode at twice the SVG's size.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { PNG_SCALE, renderSvg } from '../../src/charts/render.js';
import { tableChartSpec, writeTableChart, type TableChartInput } from '../../src/charts/table.js';
import { readStats, trainChartSpec, writeTrainChart, type StatsRecord } from '../../src/charts/train.js';
import { parseChartSvg, type SvgPoint } from './svg.js';

/** Least-squares fit y = a + b f(v); returns b and the largest residual. */
function fit(points: readonly SvgPoint[], f: (p: SvgPoint) => number, y: (p: SvgPoint) => number = (p) => p.y): { b: number; worst: number } {
  const xs = points.map(f);
  const ys = points.map(y);
  const n = xs.length;
  const mx = xs.reduce((s, v) => s + v, 0) / n;
  const my = ys.reduce((s, v) => s + v, 0) / n;
  let sxy = 0;
  let sxx = 0;
  xs.forEach((x, k) => {
    sxy += (x - mx) * (ys[k]! - my);
    sxx += (x - mx) ** 2;
  });
  const b = sxy / sxx;
  const worst = Math.max(...xs.map((x, k) => Math.abs(my + b * (x - mx) - ys[k]!)));
  return { b, worst };
}

const TABLE: TableChartInput = {
  metric_name: 'FID',
  model: 'models/some-model.onnx',
  seeds: 1000,
  cells: [
    { label: 'ddim', nfe: 3, value: 93.4, published: null },
    { label: 'ddim', nfe: 5, value: 49.7, published: null },
    { label: 'ddim', nfe: 9, value: 18.2, published: null },
    { label: 'dpmpp3m', nfe: 3, value: 46.5, published: 46.52 * 1.1 },
    { label: 'dpmpp3m', nfe: 5, value: null, published: null }, // n/a cell
    { label: 'dpmpp3m', nfe: 9, value: 3.4, published: 3.8 },
    { label: 'adasde', nfe: 3, value: 12.6, published: null },
    { label: 'adasde', nfe: 5, value: 0, published: null }, // a log axis cannot show it
    { label: 'adasde', nfe: 9, value: 2.6, published: null },
  ],
};

test('table chart: one line per row (and per published row), every point at its datum on a log distance axis', async () => {
  const chart = parseChartSvg(await renderSvg(tableChartSpec(TABLE)));
  // ddim, dpmpp3m, dpmpp3m published, adasde.
  assert.equal(chart.lines.length, 4);
  assert.deepEqual(new Set(chart.lines.map((l) => `${l.row}/${l.source}`)), new Set(['ddim/measured', 'dpmpp3m/measured', 'dpmpp3m/published', 'adasde/measured']));
  const expected = TABLE.cells.flatMap((c) => [
    ...(c.value !== null && c.value > 0 ? [`${c.label}/${c.nfe}/measured/${c.value}`] : []),
    ...(c.published ? [`${c.label}/${c.nfe}/published/${c.published}`] : []),
  ]);
  const drawn = chart.points.map((p) => `${p.data.row}/${p.data.nfe}/${p.data.source}/${Number(p.data.value)}`);
  assert.deepEqual(drawn.sort(), expected.sort());
  assert.ok(chart.axes.some((a) => /^Y-axis .* log scale/.test(a)), chart.axes.join('\n'));
  assert.ok(chart.axes.some((a) => /^X-axis titled 'NFE' .* linear scale/.test(a)), chart.axes.join('\n'));
  // y is affine in log(value), decreasing (SVG y grows downward); an affine map of the value
  // itself does not fit these points.
  const logFit = fit(chart.points, (p) => Math.log(Number(p.data.value)));
  assert.ok(logFit.b < 0 && logFit.worst < 1e-6, JSON.stringify(logFit));
  const linFit = fit(chart.points, (p) => Number(p.data.value));
  assert.ok(linFit.worst > 10, JSON.stringify(linFit));
  // x is affine in NFE, increasing.
  const xFit = fit(chart.points, (p) => Number(p.data.nfe), (p) => p.x);
  assert.ok(xFit.b > 0 && xFit.worst < 1e-6, JSON.stringify(xFit));
});

test('table chart: the subtitle counts values a log axis cannot show; without published numbers no dashed lines', async () => {
  const svg = await renderSvg(tableChartSpec(TABLE));
  assert.match(svg, /1 value &lt;= 0 not shown|1 value <= 0 not shown/);
  const measuredOnly: TableChartInput = { ...TABLE, cells: TABLE.cells.map((c) => ({ ...c, published: null })) };
  const chart = parseChartSvg(await renderSvg(tableChartSpec(measuredOnly)));
  assert.equal(chart.lines.length, 3);
  assert.ok(chart.points.every((p) => p.data.source === 'measured'));
});

test('table chart: table.svg and table.png are written; the PNG decodes at twice the SVG size', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'adasde-chart-'));
  const out = await writeTableChart(dir, TABLE);
  const svg = parseChartSvg(readFileSync(out.svg, 'utf8'));
  const png = await sharp(readFileSync(out.png)).metadata();
  assert.equal(png.format, 'png');
  assert.equal(png.width, Math.round(svg.width * PNG_SCALE));
  assert.equal(png.height, Math.round(svg.height * PNG_SCALE));
  // Not a blank image: the lines leave many distinct colours.
  const { data, info } = await sharp(readFileSync(out.png)).raw().toBuffer({ resolveWithObject: true });
  const colours = new Set<number>();
  for (let k = 0; k < data.length; k += info.channels) colours.add((data[k]! << 16) | (data[k + 1]! << 8) | data[k + 2]!);
  assert.ok(colours.size > 50, `${colours.size} colours`);
});

/** Records of a 3-interval, K = 1 run whose loss halves every tick. */
function records(kimgs: number[], scale = 1): StatsRecord[] {
  return kimgs.map((kimg, t) => ({
    kimg,
    loss: [8 * scale * 0.5 ** t, 2 * scale * 0.5 ** t, 50 * scale * 0.7 ** t],
    coefficients: {
      r: [[0.5 - 0.01 * t], [0.4 + 0.01 * t], [0.3]],
      scale_dir: [[1.01], [1 - 0.001 * t], [1.02]],
      scale_time: [[1.1], [0.95 + 0.01 * t], [1.0]],
      gamma: [[0.011], [0.01 + 0.001 * t], [0.005]],
    },
  }));
}

test('train chart: stats.jsonl with a resumed stretch and a cut line is read in kimg order, later records winning', () => {
  const dir = mkdtempSync(join(tmpdir(), 'adasde-chart-'));
  const first = records([0.1, 0.2, 0.3]);
  const resumed = records([0.1, 0.2, 0.3, 0.4], 2).slice(1); // the run restarted from its 0.1 snapshot
  const lines = [...first, ...resumed].map((r) => JSON.stringify({ ...r, lr: 0.1, batches: 3 }));
  writeFileSync(join(dir, 'stats.jsonl'), [...lines, '{"kimg": 0.5, "loss": [1,'].join('\n') + '\n');
  const got = readStats(join(dir, 'stats.jsonl'));
  assert.deepEqual(got.map((r) => r.kimg), [0.1, 0.2, 0.3, 0.4]);
  assert.deepEqual(got[1]!.loss, resumed[0]!.loss);
  assert.deepEqual(got[0]!.loss, first[0]!.loss);
});

test('train chart: a loss panel on a log axis and four linear coefficient panels, every point at its datum', async () => {
  const recs = records([0.05, 0.1, 0.15, 0.2]);
  const chart = parseChartSvg(await renderSvg(trainChartSpec(recs, 'run')));
  const yAxes = chart.axes.filter((a) => a.startsWith('Y-axis'));
  assert.equal(yAxes.length, 5);
  assert.equal(yAxes.filter((a) => /log scale/.test(a)).length, 1);
  assert.match(yAxes.find((a) => /log scale/.test(a))!, /titled 'loss'/);
  // One line per interval in each panel; gamma has none for interval 0 (gamma_0 = 0).
  assert.equal(chart.lines.length, 3 * 4 + 2);
  const panels = ['loss', 'r', 'scale_dir', 'scale_time', 'gamma'] as const;
  for (const panel of panels) {
    const pts = chart.points.filter((p) => p.data.panel === panel);
    const want = recs.flatMap((r) => {
      const tab = panel === 'loss' ? r.loss.map((v) => [v]) : r.coefficients![panel];
      return tab.flatMap((row, i) => (panel === 'gamma' && i === 0 ? [] : [`interval ${i}/${r.kimg}/${row[0]}`]));
    });
    assert.deepEqual(pts.map((p) => `${p.data.interval}/${Number(p.data.kimg)}/${Number(p.data.value)}`).sort(), want.sort(), panel);
    // Positions follow the panel's scales: log for the loss, linear for the coefficients.
    const yFit = fit(pts, (p) => (panel === 'loss' ? Math.log(Number(p.data.value)) : Number(p.data.value)));
    assert.ok(yFit.b < 0 && yFit.worst < 1e-6, `${panel}: ${JSON.stringify(yFit)}`);
    const xFit = fit(pts, (p) => Number(p.data.kimg), (p) => p.x);
    assert.ok(xFit.b > 0 && xFit.worst < 1e-6, `${panel}: ${JSON.stringify(xFit)}`);
  }
});

test('train chart: K > 1 intermediate points are separate series; nothing is written without a record', async () => {
  const recs = records([0.1, 0.2]).map((r) => ({ ...r, coefficients: { ...r.coefficients!, r: r.coefficients!.r.map((row) => [row[0]!, row[0]! / 2]) } }));
  const chart = parseChartSvg(await renderSvg(trainChartSpec(recs, 'run')));
  const rSeries = new Set(chart.points.filter((p) => p.data.panel === 'r').map((p) => p.data.interval));
  assert.deepEqual([...rSeries].sort(), ['interval 0 point 0', 'interval 0 point 1', 'interval 1 point 0', 'interval 1 point 1', 'interval 2 point 0', 'interval 2 point 1']);
  const dir = mkdtempSync(join(tmpdir(), 'adasde-chart-'));
  assert.equal(await writeTrainChart(dir, 'empty'), undefined);
  writeFileSync(join(dir, 'stats.jsonl'), recs.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const out = await writeTrainChart(dir, 'run');
  const png = await sharp(readFileSync(out!.png)).metadata();
  const svg = parseChartSvg(readFileSync(out!.svg, 'utf8'));
  assert.equal(png.width, Math.round(svg.width * PNG_SCALE));
  assert.equal(png.height, Math.round(svg.height * PNG_SCALE));
});
