/**
 * Reads the README's "## Layout" section and compares it with the tree and with src/layers.json:
 * the folder table must name every folder of src/ once, the section may name no src/ folder that
 * does not exist, and the layer table (layer | folders | may import) must say what the map says.
 */
import type { LayerMap } from './layers.js';

/** The text from the "## Layout" heading to the next level-2 heading (without either). */
export function layoutSection(readme: string): string | undefined {
  const m = /^## Layout[ \t]*$/m.exec(readme);
  if (!m) return undefined;
  const rest = readme.slice(m.index + m[0].length);
  const next = /^## /m.exec(rest);
  return next ? rest.slice(0, next.index) : rest;
}

/** The cells of each table row that follows a header row whose cells are exactly `header`. */
function tableRows(section: string, header: readonly string[]): string[][] {
  const lines = section.split('\n');
  const cellsOf = (line: string): string[] => line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
  const start = lines.findIndex((l) => l.trim().startsWith('|') && cellsOf(l).join('|') === header.join('|'));
  if (start < 0) return [];
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.trim().startsWith('|')) break;
    rows.push(cellsOf(line));
  }
  return rows;
}

/** The backticked words of a cell: "`core`, `io`" -> ["core", "io"]. */
const ticked = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);

/** `src/<name>/` as a folder name, or undefined for anything else (files, deeper paths). */
function srcFolder(word: string): string | undefined {
  return /^src\/([A-Za-z0-9_-]+)\/?$/.exec(word)?.[1];
}

/** Every disagreement, one sentence each; [] when the section matches. */
export function layoutViolations(readme: string, srcFolders: readonly string[], map: LayerMap): string[] {
  const section = layoutSection(readme);
  if (section === undefined) return ['README.md has no "## Layout" section'];
  const out: string[] = [];

  // The folder table: each folder of src/ in the first cell of a row, once.
  const listed = tableRows(section, ['folder', 'what']).flatMap((r) => ticked(r[0] ?? '').map(srcFolder).filter((f): f is string => f !== undefined));
  for (const f of srcFolders) {
    const n = listed.filter((l) => l === f).length;
    if (n === 0) out.push(`src/${f}/ is missing from the README's layout table`);
    else if (n > 1) out.push(`src/${f}/ has ${n} rows in the README's layout table`);
  }
  // Any src/<name>/ the section mentions, in any table or sentence, must exist.
  const mentioned = new Set([...section.matchAll(/\bsrc\/([A-Za-z0-9_-]+)\//g)].map((m) => m[1]!));
  for (const f of mentioned) if (!srcFolders.includes(f)) out.push(`the README's layout section names src/${f}/, which does not exist`);

  // The layer table against src/layers.json.
  const layerRows = tableRows(section, ['layer', 'folders', 'may import']);
  if (layerRows.length === 0) return [...out, 'the README\'s layout section has no "| layer | folders | may import |" table'];
  const readmeLayers = new Map<string, { folders: string[]; imports: string[] }>();
  for (const r of layerRows) {
    const name = ticked(r[0] ?? '')[0] ?? r[0] ?? '';
    const folders = ticked(r[1] ?? '').map((w) => w.replace(/\/$/, ''));
    // "nothing of the project" (no backticks) is the empty list.
    readmeLayers.set(name, { folders, imports: ticked(r[2] ?? '') });
  }
  const sorted = (xs: readonly string[]): string => [...xs].sort().join(', ') || 'nothing';
  for (const [name, layer] of Object.entries(map.layers)) {
    const row = readmeLayers.get(name);
    if (!row) {
      out.push(`layer ${name} of src/layers.json is missing from the README's layer table`);
      continue;
    }
    if (sorted(row.folders) !== sorted(layer.folders)) out.push(`layer ${name}: the README lists folders ${sorted(row.folders)}, src/layers.json ${sorted(layer.folders)}`);
    if (sorted(row.imports) !== sorted(layer.imports)) out.push(`layer ${name}: the README lets it import ${sorted(row.imports)}, src/layers.json ${sorted(layer.imports)}`);
  }
  for (const name of readmeLayers.keys()) if (!Object.hasOwn(map.layers, name)) out.push(`the README's layer table has layer ${name}, which src/layers.json does not`);
  return out;
}
