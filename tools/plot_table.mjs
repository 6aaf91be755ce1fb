#!/usr/bin/env node
// Draws table.svg / table.png of an `adasde table` from its table.json alone, through the same
// chart code the command uses (src/charts/table.ts). For a table whose cells are not at hand
// (they are cached in a gitignored folder), e.g. the committed bench/quality/table.json:
//
//   npm run build && node tools/plot_table.mjs bench/quality/table.json [OUTDIR]
//
// OUTDIR defaults to the folder of the table.json. Needs a build (dist/).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const [file, outdir] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node tools/plot_table.mjs TABLE.json [OUTDIR]\n');
  process.exit(2);
}
if (!existsSync(file)) {
  process.stderr.write(`plot_table: ${file} does not exist (expected the table.json of an adasde table)\n`);
  process.exit(2);
}
const entry = join(root, 'dist', 'src', 'charts', 'table.js');
if (!existsSync(entry)) {
  process.stderr.write(`plot_table: ${entry} is missing; run npm run build first\n`);
  process.exit(1);
}
const { tableChartSchema, writeTableChart } = await import(entry);
let data;
try {
  data = JSON.parse(readFileSync(file, 'utf8'));
} catch (e) {
  process.stderr.write(`plot_table: ${file} is not JSON (${e.message.split('\n')[0]})\n`);
  process.exit(2);
}
const parsed = tableChartSchema.safeParse(data);
if (!parsed.success) {
  const issue = parsed.error.issues[0];
  process.stderr.write(`plot_table: ${file}: ${issue.path.join('.') || '(root)'}: ${issue.message} (expected the table.json of an adasde table)\n`);
  process.exit(2);
}
const out = await writeTableChart(outdir ?? dirname(file), parsed.data);
process.stdout.write(`${out.svg}\n${out.png}\n`);
