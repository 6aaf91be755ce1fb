/**
 * Reads back what a chart SVG written by Vega shows: the line marks, the points (position in
 * their panel and the data of their aria-label) and the axes' descriptions. Vega writes one
 * aria-label per mark naming the fields behind it ("nfe: 3; value: 10.5; ..."), which is what
 * lets a test tie every drawn point to its datum.
 */
export interface SvgPoint {
  x: number;
  y: number;
  data: Record<string, string>;
}

export interface SvgChart {
  width: number;
  height: number;
  lines: Record<string, string>[];
  points: SvgPoint[];
  axes: string[];
}

const unescape = (s: string): string => s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

function ariaData(label: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of unescape(label).split('; ')) {
    const k = part.indexOf(': ');
    if (k > 0) out[part.slice(0, k)] = part.slice(k + 2);
  }
  return out;
}

export function parseChartSvg(svg: string): SvgChart {
  const root = /^<svg[^>]*\swidth="([\d.]+)"[^>]*\sheight="([\d.]+)"/.exec(svg);
  if (!root) throw new Error('not an SVG document with width and height');
  const lines: Record<string, string>[] = [];
  const points: SvgPoint[] = [];
  for (const m of svg.matchAll(/<path aria-label="([^"]*)" role="graphics-symbol" aria-roledescription="(line mark|point)"([^>]*)>/g)) {
    const data = ariaData(m[1]!);
    if (m[2] === 'line mark') {
      lines.push(data);
      continue;
    }
    const t = /transform="translate\(([-\d.e]+),([-\d.e]+)\)"/.exec(m[3]!);
    if (!t) throw new Error(`point without a position: ${m[0]}`);
    points.push({ x: Number(t[1]), y: Number(t[2]), data });
  }
  const axes = [...svg.matchAll(/aria-roledescription="axis" aria-label="([^"]*)"/g)].map((m) => unescape(m[1]!));
  return { width: Number(root[1]), height: Number(root[2]), lines, points, axes };
}
