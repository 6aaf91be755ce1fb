/**
 * The picture of an `adasde table`: the distance (FID or the bundled-feature distance)
 * against NFE, one line per table row, on a log-scaled distance axis, as the paper's
 * comparison figure. Published numbers (`--compare`) are drawn dashed in the row's colour.
 * The chart is made from the table.json record alone, so a committed table.json can be
 * drawn again without its cells (tools/plot_table.mjs).
 */
import { basename } from 'node:path';
import { z } from 'zod';
import { writeChart, type ChartSpec } from './render.js';

/** The fields of table.json the chart reads. */
export const tableChartSchema = z.object({
  metric_name: z.string(),
  model: z.string().optional(),
  seeds: z.number().optional(),
  cells: z.array(
    z.object({
      label: z.string(),
      nfe: z.number(),
      value: z.number().nullable(),
      published: z.number().nullable().optional(),
    }),
  ),
});

export type TableChartInput = z.infer<typeof tableChartSchema>;

interface Point {
  row: string;
  nfe: number;
  value: number;
  source: 'measured' | 'published';
}

/** The points of the chart; values a log axis cannot show (<= 0, non-finite) are counted apart. */
export function tableChartPoints(t: TableChartInput): { rows: string[]; points: Point[]; dropped: number } {
  const rows: string[] = [];
  const points: Point[] = [];
  let dropped = 0;
  const add = (row: string, nfe: number, value: number | null | undefined, source: Point['source']) => {
    if (value === null || value === undefined) return;
    if (!(value > 0) || !Number.isFinite(value)) {
      dropped++;
      return;
    }
    points.push({ row, nfe, value, source });
  };
  for (const c of t.cells) {
    if (!rows.includes(c.label)) rows.push(c.label);
    add(c.label, c.nfe, c.value, 'measured');
    add(c.label, c.nfe, c.published, 'published');
  }
  return { rows, points, dropped };
}

export function tableChartSpec(t: TableChartInput): ChartSpec {
  const { rows, points, dropped } = tableChartPoints(t);
  const nfe = [...new Set(t.cells.map((c) => c.nfe))].sort((a, b) => a - b);
  const withPublished = points.some((p) => p.source === 'published');
  const subtitle = [
    t.model ? `model ${basename(t.model)}` : undefined,
    t.seeds ? `${t.seeds} images per cell` : undefined,
    dropped ? `${dropped} value${dropped > 1 ? 's' : ''} <= 0 not shown` : undefined,
  ].filter((s): s is string => s !== undefined);
  const lo = nfe[0] ?? 0;
  const hi = nfe[nfe.length - 1] ?? 1;
  // The distance axis spans the data with a margin (a nice power-of-ten domain would squeeze
  // tables whose values all lie within one decade).
  const values = points.map((p) => p.value);
  const vmin = values.length ? Math.min(...values) : 1;
  const vmax = values.length ? Math.max(...values) : 10;
  const rowScale = { domain: rows, ...(rows.length > 10 ? { scheme: 'tableau20' } : {}) };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `${t.metric_name} against NFE (log scale, lower is better)`, subtitle: subtitle.join(', ') },
    width: 460,
    height: 320,
    data: { values: points },
    mark: { type: 'line', point: { filled: true, size: 50 }, strokeWidth: 2 },
    encoding: {
      x: {
        field: 'nfe',
        type: 'quantitative',
        title: 'NFE',
        // Only the table's columns as ticks; half a step of margin keeps end points off the frame.
        scale: { domain: lo === hi ? [lo - 1, hi + 1] : [lo - 0.5, hi + 0.5], nice: false, zero: false },
        axis: { values: nfe, format: 'd', grid: false },
      },
      y: {
        field: 'value',
        type: 'quantitative',
        title: t.metric_name,
        scale: { type: 'log', domain: [vmin / 1.15, vmax * 1.15], nice: false },
        axis: { grid: true, tickCount: 8 },
      },
      // Colour and marker shape both name the row, so rows whose lines coincide stay apart.
      color: { field: 'row', type: 'nominal', title: 'solver', scale: rowScale, sort: rows },
      shape: { field: 'row', type: 'nominal', title: 'solver', scale: { domain: rows }, sort: rows },
      ...(withPublished
        ? { strokeDash: { field: 'source', type: 'nominal', title: 'numbers', scale: { domain: ['measured', 'published'], range: [[1, 0], [5, 3]] } } }
        : {}),
      // Also the SVG's aria-label of every point: the data behind it, in full precision.
      tooltip: [{ field: 'row' }, { field: 'nfe' }, { field: 'value' }, { field: 'source' }],
    },
  } as ChartSpec;
}

/** Writes `<dir>/table.svg` and `<dir>/table.png`. */
export async function writeTableChart(dir: string, t: TableChartInput): Promise<{ svg: string; png: string }> {
  return writeChart(dir, 'table', tableChartSpec(t));
}
