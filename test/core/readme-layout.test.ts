import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { readJson, repoRoot } from '../helpers.js';
import type { LayerMap } from '../support/layers.js';
import { layoutSection, layoutViolations } from '../support/readme-layout.js';

const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
const map = readJson<LayerMap>(path.join(repoRoot, 'src', 'layers.json'));
const folders = fs.readdirSync(path.join(repoRoot, 'src'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);

test('readme layout: the layout section lists every folder of src/, names none that is missing, and its layer table is src/layers.json', () => {
  assert.ok(folders.length > 10, `only ${folders.length} folders under ${repoRoot}/src`);
  assert.deepEqual(layoutViolations(readme, folders, map), []);
});

test('readme layout: a missing row, a stale folder, a doubled row and a layer table that disagrees with the map are each reported', () => {
  const section = layoutSection(readme);
  assert.ok(section !== undefined);
  const coreRow = readme.split('\n').find((l) => l.startsWith('| `src/core/` |'));
  assert.ok(coreRow !== undefined, 'the layout table has a src/core/ row');
  // A folder of the tree the table does not list.
  assert.deepEqual(layoutViolations(readme.replace(`${coreRow}\n`, ''), folders, map), ['src/core/ is missing from the README\'s layout table']);
  // A row naming a folder that is not in the tree (also a mention of a missing folder).
  assert.deepEqual(layoutViolations(readme.replace(coreRow, `${coreRow}\n| \`src/gone/\` | removed last year |`), folders, map), [
    'the README\'s layout section names src/gone/, which does not exist',
  ]);
  assert.deepEqual(layoutViolations(readme.replace(coreRow, `${coreRow}\n${coreRow}`), folders, map), ['src/core/ has 2 rows in the README\'s layout table']);
  // The tree gains a folder (the README then lacks it).
  assert.deepEqual(layoutViolations(readme, [...folders, 'fuse2'], map), ['src/fuse2/ is missing from the README\'s layout table']);

  // The map changes under the README: a new import, a moved folder, a new and a dropped layer.
  const changed: LayerMap = structuredClone(map);
  changed.layers['solvers']!.imports.push('io');
  changed.layers['onnx']!.folders = ['src/onnx'];
  changed.layers['extra'] = { folders: ['src/extra'], imports: ['core'] };
  delete changed.layers['text'];
  assert.deepEqual(layoutViolations(readme, folders, changed), [
    'layer onnx: the README lists folders src/graph, src/onnx, src/layers.json src/onnx',
    'layer solvers: the README lets it import core, rng, src/layers.json core, io, rng',
    'layer extra of src/layers.json is missing from the README\'s layer table',
    'the README\'s layer table has layer text, which src/layers.json does not',
  ]);
  // "nothing of the project" is core's empty import list; a stray import there is reported.
  const coreLayerRow = readme.split('\n').find((l) => l.startsWith('| `core` |'));
  assert.ok(coreLayerRow !== undefined && coreLayerRow.includes('nothing of the project'));
  assert.deepEqual(layoutViolations(readme.replace(coreLayerRow, '| `core` | `src/core/` | `io` |'), folders, map), [
    'layer core: the README lets it import io, src/layers.json nothing',
  ]);
  assert.deepEqual(layoutViolations('# adasde\n\n## Commands\n', folders, map), ['README.md has no "## Layout" section']);
});
