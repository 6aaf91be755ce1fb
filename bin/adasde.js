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
// No exit timer: the process ends when the command's work is done and nothing holds it open
// (test/cli/exit.test.ts runs every command to its own exit).
process.exitCode = await main(process.argv);
