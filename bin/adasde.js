#!/usr/bin/env node
// Thin launcher: the CLI is compiled from src/ by `npm run build` (run automatically by `npm ci`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('adasde: error: the CLI is not built; run `npm run build` in the package folder\n');
  process.exit(2);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv);
// Safety net: the command is over, so nothing left may hold the process open (a forgotten
// timer or handle would otherwise look like a hang). An unref'd timer fires only if
// something else still keeps the event loop alive; normal exits never wait for it.
setTimeout(() => process.exit(), 3000).unref();
