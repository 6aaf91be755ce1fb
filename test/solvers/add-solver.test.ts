/**
 * Adding a solver touches its own file and one registry entry: a copy of src/ gets a tiny
 * extra solver (Euler with every interval split into `--substeps` equal steps) and its
 * import and list entry in src/solvers/registry.ts, nothing else; the copy compiles under
 * the project's strict tsconfig, `adasde sample --help` lists the new solver and its flag,
 * the new solver runs with the NFE of its own formula and its images equal Euler's on the
 * refined grid given as --t_steps, and its flag's range is enforced by its own schema.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readNpy, toFloat64 } from '../../src/io/npy.js';
import { repoRoot } from '../helpers.js';
import { makeModelDir } from '../cli/sample-fixture.js';

const SOLVER_FILE = `/** Euler with every interval split into \`substeps\` equal steps in t (added by a test). */
import { z } from 'zod';
import type { BaseSolverOptions } from './common.js';
import { defineSolver, endpointNfe } from './descriptor.js';
import { solveEuler } from './euler.js';

export interface EulerSubOptions extends BaseSolverOptions {
  substeps?: number;
}

/** The grid with every interval [t_i, t_{i+1}] cut into s equal parts. */
export function refine(t: Float64Array, s: number): Float64Array {
  const out: number[] = [];
  for (let i = 0; i + 1 < t.length; i++) for (let k = 0; k < s; k++) out.push(t[i]! + ((t[i + 1]! - t[i]!) * k) / s);
  out.push(t[t.length - 1]!);
  return Float64Array.from(out);
}

export const eulerSubSolver = defineSolver<EulerSubOptions, 'euler_sub'>({
  name: 'euler_sub',
  summary: 'Euler on a refined grid',
  flags: {
    substeps: { flag: 'substeps', schema: z.number().int().min(1).max(8).default(2), help: 'Euler steps per interval', expect: 'a positive integer', supports: '1 to 8 substeps' },
  },
  nfe: (N, o) => (o.substeps ?? 2) * (N - 1) + endpointNfe(o),
  solve: (o, x0, t, opts) => solveEuler(o, x0, refine(t, opts.substeps ?? 2), opts),
});
`;

/** The same refinement, computed here independently of the copy. */
function refine(t: readonly number[], s: number): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < t.length; i++) for (let k = 0; k < s; k++) out.push(t[i]! + ((t[i + 1]! - t[i]!) * k) / s);
  out.push(t[t.length - 1]!);
  return out;
}

test('adding a solver: its own file plus one registry entry; it compiles, shows in --help and runs', async () => {
  const root = mkdtempSync(join(tmpdir(), 'adasde-add-solver-'));
  cpSync(join(repoRoot, 'src'), join(root, 'src'), { recursive: true });
  cpSync(join(repoRoot, 'bin'), join(root, 'bin'), { recursive: true });
  mkdirSync(join(root, 'tools', 'export'), { recursive: true });
  cpSync(join(repoRoot, 'tools', 'export', 'dataset_models.json'), join(root, 'tools', 'export', 'dataset_models.json'));
  cpSync(join(repoRoot, 'package.json'), join(root, 'package.json'));
  symlinkSync(join(repoRoot, 'node_modules'), join(root, 'node_modules'));
  writeFileSync(
    join(root, 'tsconfig.json'),
    JSON.stringify({ extends: join(repoRoot, 'tsconfig.json'), compilerOptions: { rootDir: '.', outDir: 'dist', sourceMap: false }, include: ['src/**/*.ts'] }),
  );

  // The two touches: the solver's file, and its import and entry in the registry's list.
  writeFileSync(join(root, 'src', 'solvers', 'eulersub.ts'), SOLVER_FILE);
  const registryPath = join(root, 'src', 'solvers', 'registry.ts');
  const registry = readFileSync(registryPath, 'utf8');
  const listed = registry.replace(/(const SOLVER_LIST = \[)([^\]]*)(\] as const;)/, '$1$2, eulerSubSolver$3');
  assert.notEqual(listed, registry, 'registry.ts has no SOLVER_LIST = [...] as const');
  writeFileSync(registryPath, `import { eulerSubSolver } from './eulersub.js';\n${listed}`);

  const tsc = spawnSync(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')], { encoding: 'utf8' });
  assert.equal(tsc.status, 0, `the copy does not compile:\n${tsc.stdout}${tsc.stderr}`);

  const { dir, model } = makeModelDir();
  const adasde = (...args: string[]) => spawnSync(process.execPath, [join(root, 'bin', 'adasde.js'), ...args], { encoding: 'utf8', cwd: dir });

  const help = adasde('sample', '--help');
  assert.equal(help.status, 0, help.stderr);
  // Commander wraps long help lines: compare with the whitespace folded.
  const text = help.stdout.replace(/\s+/g, ' ');
  assert.match(text, /--substeps <value> Euler steps per interval \(euler_sub: 1 to 8 substeps, default 2\)/);
  assert.match(text, /--solver <value> euler\|heun\|\S*\|adasde\|euler_sub /);

  const a = join(dir, 'sub');
  const r = adasde('sample', '--model', model, '--solver', 'euler_sub', '--substeps', '3', '--num_steps', '4', '--seeds', '0-5', '--output_format', 'npy', '--outdir', a);
  assert.equal(r.status, 0, r.stderr);
  // 3 evaluations on each of the 3 intervals: the solver's own NFE formula.
  assert.match(r.stdout, /with euler_sub at 9 NFE/);

  // Euler on the refined grid, through the unchanged euler solver of the same copy.
  const dry = adasde('sample', '--model', model, '--solver', 'euler', '--num_steps', '4', '--seeds', '0-5', '--dry-run');
  assert.equal(dry.status, 0, dry.stderr);
  const grid = (JSON.parse(dry.stdout.slice(0, dry.stdout.lastIndexOf('}') + 1)) as { t_steps: number[] }).t_steps;
  const b = join(dir, 'refined');
  const e = adasde('sample', '--model', model, '--solver', 'euler', `--t_steps=[${refine(grid, 3).join(',')}]`, '--seeds', '0-5', '--output_format', 'npy', '--outdir', b, '--quiet');
  assert.equal(e.status, 0, e.stderr);
  assert.deepEqual(toFloat64(await readNpy(join(a, 'samples.npy'))), toFloat64(await readNpy(join(b, 'samples.npy'))));

  const bad = adasde('sample', '--model', model, '--solver', 'euler_sub', '--substeps', '9', '--outdir', join(dir, 'bad'));
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr.trim(), 'adasde: error: --substeps: euler_sub supports 1 to 8 substeps, got 9');
});
