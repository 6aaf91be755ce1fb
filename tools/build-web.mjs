#!/usr/bin/env node
/**
 * Builds the browser page (web/) into dist/web/: web/page.ts bundled by esbuild with the
 * project's own modules it imports (src/rng, src/config, src/onnx/proto.ts) and their
 * npm dependencies (seedrandom is CommonJS, hence a bundler), plus index.html and page.css.
 * onnxruntime-web is left out of the bundle: the page's import map loads it from ort/,
 * where `adasde web` serves node_modules/onnxruntime-web/dist (it must sit beside its wasm
 * and worker files). Type checking is `tsc -p web` (npm run build runs both).
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'web');
mkdirSync(out, { recursive: true });
const stub = join(root, 'web', 'node-stub.ts');
await build({
  entryPoints: [join(root, 'web', 'page.ts')],
  outfile: join(out, 'page.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  minify: true,
  external: ['onnxruntime-web/webgpu'],
  alias: { 'node:fs': stub, 'node:os': stub },
  logLevel: 'warning',
});
for (const f of ['index.html', 'page.css']) copyFileSync(join(root, 'web', f), join(out, f));
