/**
 * Prompts for text-conditional sampling: `--prompt TEXT` for every seed, or `--prompt_file`,
 * where seed s takes prompt s (the reference's MS-COCO run: seed i <- caption i of the
 * 30k-caption CSV). A `.csv` file is read as RFC 4180 CSV with a header row and a `text`
 * column; any other file holds one prompt per line.
 */
import { readFileSync } from 'node:fs';
import { UsageError } from '../core/errors.js';

/** RFC 4180: quoted fields may hold commas, doubled quotes and line breaks; CRLF or LF rows. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let k = 0;
  const endField = () => {
    row.push(field);
    field = '';
  };
  const endRow = () => {
    endField();
    rows.push(row);
    row = [];
  };
  while (k < text.length) {
    const ch = text[k]!;
    if (quoted) {
      if (ch === '"') {
        if (text[k + 1] === '"') {
          field += '"';
          k += 2;
          continue;
        }
        quoted = false;
      } else field += ch;
      k++;
      continue;
    }
    if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') endField();
    else if (ch === '\n' || ch === '\r') {
      endRow();
      if (ch === '\r' && text[k + 1] === '\n') k++;
    } else field += ch;
    k++;
  }
  if (quoted) throw new UsageError('unterminated quoted field');
  if (field !== '' || row.length > 0) endRow();
  return rows;
}

/** The prompts of a file: the `text` column of a .csv, else one per line. */
export function readPromptFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`--prompt_file: ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(e)})`}`);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (/\.csv$/i.test(path)) {
    let rows: string[][];
    try {
      rows = parseCsv(text);
    } catch (e) {
      throw new UsageError(`--prompt_file: ${path}: ${e instanceof Error ? e.message : String(e)}`);
    }
    const header = rows[0]?.map((h) => h.trim()) ?? [];
    const col = header.indexOf('text');
    if (col < 0) throw new UsageError(`--prompt_file: ${path} has no 'text' column (header: ${header.join(', ') || 'empty'}); a CSV needs a header row with a text column`);
    // Blank lines are skipped, as pandas.read_csv (the reference's reader) does.
    const out = rows.slice(1).filter((r) => !(r.length === 1 && r[0] === '')).map((r, k) => {
      const v = r[col];
      if (v === undefined) throw new UsageError(`--prompt_file: ${path}: prompt ${k} has no field ${col + 1} ('text')`);
      return v;
    });
    if (out.length === 0) throw new UsageError(`--prompt_file: ${path} has no prompts below its header`);
    return out;
  }
  const lines = text.split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) throw new UsageError(`--prompt_file: ${path} is empty`);
  return lines;
}

export type PromptSource = { kind: 'prompt'; prompt: string } | { kind: 'file'; path: string; prompts: string[] };

/** From `--prompt` / `--prompt_file` (at most one); undefined when neither is given. */
export function promptSource(prompt: string | undefined, promptFile: string | undefined): PromptSource | undefined {
  if (prompt !== undefined && promptFile !== undefined) throw new UsageError('--prompt and --prompt_file exclude each other');
  if (prompt !== undefined) return { kind: 'prompt', prompt };
  if (promptFile !== undefined) return { kind: 'file', path: promptFile, prompts: readPromptFile(promptFile) };
  return undefined;
}

/** Checks that every seed has a prompt (seed s takes prompt s of a file). */
export function checkPromptSeeds(src: PromptSource, seeds: readonly number[]): void {
  if (src.kind === 'prompt') return;
  const n = src.prompts.length;
  const bad = seeds.filter((s) => s >= n);
  if (bad.length) {
    throw new UsageError(`--prompt_file: ${src.path} has ${n} prompts, so seeds must be below ${n} (seed s takes prompt s); got seed ${bad[0]}${bad.length > 1 ? ` and ${bad.length - 1} more` : ''}`);
  }
}

export function promptOf(src: PromptSource, seed: number): string {
  if (src.kind === 'prompt') return src.prompt;
  const p = src.prompts[seed];
  if (p === undefined) throw new UsageError(`--prompt_file: ${src.path} has no prompt for seed ${seed}`);
  return p;
}
