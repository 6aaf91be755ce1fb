import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { readJson, repoRoot } from '../helpers.js';
import { importsOf, layerOf, layerViolations, mapViolations, sourceFiles, type LayerMap } from '../support/layers.js';

const map = readJson<LayerMap>(path.join(repoRoot, 'src', 'layers.json'));

test('layers: every import in src/ is an arrow src/layers.json allows', () => {
  const files = sourceFiles(repoRoot);
  assert.ok(files.length > 50, `only ${files.length} source files found under ${repoRoot}/src`);
  assert.deepEqual(layerViolations(map, files), []);
});

test('layers: the map keeps the fixed rules (core imports nothing, solvers core+rng, runtime core+io+onnx, nothing imports cli, app only from cli)', () => {
  assert.deepEqual(mapViolations(map), []);
  const loosened: LayerMap = structuredClone(map);
  loosened.layers['core']!.imports.push('io');
  loosened.layers['solvers']!.imports.push('config');
  loosened.layers['io']!.imports.push('cli');
  loosened.layers['app'] = { folders: ['src/app'], imports: ['core'] };
  loosened.layers['table']!.imports.push('app');
  assert.deepEqual(mapViolations(loosened), [
    'layer core may import only nothing, the map lets it import io',
    'layer solvers may import only core, rng, the map lets it import config',
    'layer io may not import cli (nothing in src imports the CLI)',
    'layer table may not import app (only cli does)',
  ]);
});

test('layers: every folder of src/ belongs to a layer and every mapped folder exists', () => {
  const folders = fs.readdirSync(path.join(repoRoot, 'src'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => `src/${e.name}`);
  const mapped = Object.values(map.layers).flatMap((l) => l.folders);
  assert.deepEqual(folders.filter((f) => !mapped.includes(f)), []);
  assert.deepEqual(mapped.filter((f) => !folders.includes(f)), []);
});

test('layers: the parser sees static, type-only, re-export, side-effect and dynamic imports and import types', () => {
  const src = [
    "import { a } from './a.js';",
    "import type { B } from '../b/b.js';",
    "export { c } from './c.js';",
    "export * from './d.js';",
    "import './e.js';",
    "const f = await import('./f.js');",
    "type G = import('./g.js').G;",
    "// import { h } from './h.js';",
    "const s = \"import { i } from './i.js'\";",
    "const dyn = await import(name);",
  ].join('\n');
  assert.deepEqual(importsOf('x.ts', src), ['./a.js', '../b/b.js', './c.js', './d.js', './e.js', './f.js', './g.js', '<computed import()>']);
});

test('layers: synthetic forbidden imports are reported, each naming the file and the arrow', () => {
  assert.equal(layerOf(map, 'src/graph/gradient.ts'), 'onnx');
  assert.equal(layerOf(map, 'src/solvers/euler.ts'), 'solvers');
  const files = [
    { file: 'src/core/errors.ts', text: "import { writeFileAtomic } from '../io/atomic.js';" },
    { file: 'src/solvers/euler.ts', text: "import type { SampleOptions } from '../config/sample.js';" },
    { file: 'src/runtime/model.ts', text: "const { solveEuler } = await import('../solvers/euler.js');" },
    { file: 'src/fid/stats.ts', text: "export { UsageError } from '../cli/main.js';" },
    { file: 'src/io/npy.ts', text: "type P = import('../sample/pipeline.js').SamplePlan;" },
    { file: 'src/solvers/heun.ts', text: "import { SeedStream } from '../rng/streams.js';\nimport type { Denoiser } from '../core/denoiser.js';\nimport { x } from './common.js';" },
    { file: 'src/newlayer/x.ts', text: '' },
    { file: 'src/io/zip.ts', text: "import { repoRoot } from '../../test/helpers.js';" },
  ];
  assert.deepEqual(layerViolations(map, files), [
    'src/core/errors.ts (core) imports src/io/atomic.ts (io): core may import only nothing of the project',
    'src/solvers/euler.ts (solvers) imports src/config/sample.ts (config): solvers may import only core, rng',
    'src/runtime/model.ts (runtime) imports src/solvers/euler.ts (solvers): runtime may import only core, io, onnx',
    `src/fid/stats.ts (fid) imports src/cli/main.ts (cli): fid may import only ${map.layers['fid']!.imports.join(', ')}`,
    'src/io/npy.ts (io) imports src/sample/pipeline.ts (sample): io may import only core',
    'src/newlayer/x.ts is in no layer of src/layers.json',
    'src/io/zip.ts imports test/helpers.ts, outside src/',
  ]);
});
