/**
 * The picture of an `adasde train` run (loss.svg / loss.png in its run folder): the loss of
 * every student interval against kimg (log scale), and under it the effective coefficients
 * r, scale_dir, scale_time and gamma of every interval against kimg. Drawn from the run's
 * stats.jsonl, one point per tick, so a resumed run draws its whole history.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeChart, type ChartSpec } from './render.js';

const table = z.array(z.array(z.number()));

/** The fields of a stats.jsonl record the chart reads (others are ignored). */
export const statsRecordSchema = z.object({
  kimg: z.number(),
  loss: z.array(z.number()),
  coefficients: z.object({ r: table, scale_dir: table, scale_time: table, gamma: table }).optional(),
});

export type StatsRecord = z.infer<typeof statsRecordSchema>;

export const COEFFICIENT_PANELS = ['r', 'scale_dir', 'scale_time', 'gamma'] as const;

/**
 * The records of stats.jsonl in kimg order. A resumed run repeats the ticks after its last
 * snapshot: a record whose kimg does not exceed the previous one replaces every earlier
 * record from that kimg on. Lines that are not such records (a line cut by a crash) are skipped.
 */
export function readStats(path: string): StatsRecord[] {
  if (!existsSync(path)) return [];
  const out: StatsRecord[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    let rec: StatsRecord;
    try {
      const r = statsRecordSchema.safeParse(JSON.parse(line));
      if (!r.success) continue;
      rec = r.data;
    } catch {
      continue;
    }
    while (out.length && out[out.length - 1]!.kimg >= rec.kimg) out.pop();
    out.push(rec);
  }
  return out;
}

interface Point {
  panel: string;
  kimg: number;
  value: number;
  interval: string;
}

/** Series name of interval i (and intermediate point j when K > 1). */
const seriesName = (i: number, j: number, K: number): string => (K > 1 ? `interval ${i} point ${j}` : `interval ${i}`);

/** Long-format points of one panel: 'loss' or a coefficient table. */
export function panelPoints(records: readonly StatsRecord[], panel: 'loss' | (typeof COEFFICIENT_PANELS)[number]): Point[] {
  const pts: Point[] = [];
  for (const rec of records) {
    if (panel === 'loss') {
      // A log axis cannot show a zero loss (an interval the teacher matches exactly).
      rec.loss.forEach((v, i) => v > 0 && Number.isFinite(v) && pts.push({ panel, kimg: rec.kimg, value: v, interval: seriesName(i, 0, 1) }));
      continue;
    }
    const tab = rec.coefficients?.[panel];
    if (!tab) continue;
    tab.forEach((row, i) => {
      // gamma_0 is 0 by construction (no noise before the first step): nothing to draw.
      if (panel === 'gamma' && i === 0) return;
      row.forEach((v, j) => Number.isFinite(v) && pts.push({ panel, kimg: rec.kimg, value: v, interval: seriesName(i, j, row.length) }));
    });
  }
  return pts;
}

const TITLES: Record<(typeof COEFFICIENT_PANELS)[number], string> = {
  r: 'r (intermediate time)',
  scale_dir: 'scale_dir',
  scale_time: 'scale_time',
  gamma: 'gamma (intervals 1+; gamma_0 = 0)',
};

export function trainChartSpec(records: readonly StatsRecord[], title: string): ChartSpec {
  const loss = panelPoints(records, 'loss');
  const series = [...new Set([...loss, ...COEFFICIENT_PANELS.flatMap((p) => panelPoints(records, p))].map((p) => p.interval))];
  const color = { field: 'interval', type: 'nominal', title: 'student interval', scale: { domain: series } };
  const x = { field: 'kimg', type: 'quantitative', title: 'kimg', scale: { zero: true } };
  const line = { type: 'line', point: { filled: true, size: 25 }, strokeWidth: 1.5 };
  // Also the SVG's aria-label of every point: which panel and the data behind it.
  const tooltip = [{ field: 'panel' }, { field: 'interval' }, { field: 'kimg' }, { field: 'value' }];
  const coefficientPanel = (p: (typeof COEFFICIENT_PANELS)[number]) => ({
    width: 190,
    height: 150,
    title: TITLES[p],
    data: { values: panelPoints(records, p) },
    mark: line,
    encoding: { x, y: { field: 'value', type: 'quantitative', title: p, scale: { zero: false } }, color, tooltip },
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, subtitle: `${records.length} tick${records.length === 1 ? '' : 's'} of stats.jsonl` },
    vconcat: [
      {
        // About the width of the four coefficient panels under it (each 190 plus its axis).
        width: 1060,
        height: 220,
        title: 'loss per interval (log scale; the last is the feature loss when a detector is used)',
        data: { values: loss },
        mark: line,
        encoding: { x, y: { field: 'value', type: 'quantitative', title: 'loss', scale: { type: 'log', nice: true }, axis: { tickCount: 6, format: '~g' } }, color, tooltip },
      },
      { hconcat: COEFFICIENT_PANELS.map(coefficientPanel) },
    ],
  } as ChartSpec;
}

/** Redraws `<runDir>/loss.svg` and `loss.png` from `<runDir>/stats.jsonl` (nothing without a record). */
export async function writeTrainChart(runDir: string, title: string): Promise<{ svg: string; png: string } | undefined> {
  const records = readStats(join(runDir, 'stats.jsonl'));
  if (!records.length) return undefined;
  return writeChart(runDir, 'loss', trainChartSpec(records, title));
}
