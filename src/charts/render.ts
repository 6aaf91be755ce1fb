/**
 * Charts as files: a Vega-Lite specification is compiled to Vega, rendered by Vega's headless
 * SVG renderer (no canvas package, so nothing native to build or download) and turned into a
 * PNG by sharp. Both files are written atomically beside each other.
 *
 * vega and vega-lite are imported on first use: loading them is a noticeable start-up cost
 * (bench/RESULTS.md, section "Command start-up") that the commands which never draw
 * (sample, fid, inspect) should not pay.
 */
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { writeFileAtomic } from '../io/atomic.js';

export type ChartSpec = TopLevelSpec;

/** PNG pixels per SVG pixel: the PNG is rasterised at twice the SVG's size, for sharp text. */
export const PNG_SCALE = 2;

/** Font both renderers see: vega measures text with it, librsvg (inside sharp) draws with it. */
const FONT = 'DejaVu Sans, Verdana, sans-serif';

/** The common look: white background, the same font for every text. */
function withTheme(spec: ChartSpec): ChartSpec {
  return {
    background: 'white',
    ...spec,
    config: {
      font: FONT,
      title: { fontSize: 14, subtitleFontSize: 11, subtitleColor: '#555' },
      ...(spec.config ?? {}),
    },
  } as ChartSpec;
}

/** The SVG text of a Vega-Lite chart. */
export async function renderSvg(spec: ChartSpec): Promise<string> {
  const vega = await import('vega');
  const vl = await import('vega-lite');
  const compiled = vl.compile(withTheme(spec)).spec;
  // renderer 'none': no scenegraph rendering on construction; toSVG renders on its own.
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** PNG bytes of an SVG document, `scale` pixels per SVG pixel (librsvg's 72 dpi is 1). */
export async function svgToPng(svg: string, scale = PNG_SCALE): Promise<Buffer> {
  const { default: sharp } = await import('sharp');
  return sharp(Buffer.from(svg), { density: 72 * scale }).png().toBuffer();
}

/** Writes `<dir>/<base>.svg` and `<dir>/<base>.png`; returns both paths. */
export async function writeChart(dir: string, base: string, spec: ChartSpec): Promise<{ svg: string; png: string }> {
  const svg = await renderSvg(spec);
  const png = await svgToPng(svg);
  const paths = { svg: join(dir, `${base}.svg`), png: join(dir, `${base}.png`) };
  await writeFileAtomic(paths.svg, svg);
  await writeFileAtomic(paths.png, png);
  return paths;
}
