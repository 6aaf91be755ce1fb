/**
 * The checker behind test/core/layers.test.ts: the imports of a TypeScript file (read with the
 * TypeScript parser, so `import type`, `export ... from`, dynamic `import()` and `import('x').T`
 * type references all count), the layer of a file under src/layers.json, and the arrows the map
 * forbids.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';

export interface Layer {
  folders: string[];
  imports: string[];
  role?: string;
}

export interface LayerMap {
  layers: Record<string, Layer>;
}

/** Module specifiers a source file imports, in order of appearance. */
export function importsOf(fileName: string, source: string): string[] {
  const sf = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      out.push(node.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference) && ts.isStringLiteral(node.moduleReference.expression)) {
      out.push(node.moduleReference.expression.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const arg = node.arguments[0];
      // A computed specifier cannot be checked; the map forbids nothing it cannot see, so say so.
      if (arg && ts.isStringLiteralLike(arg)) out.push(arg.text);
      else out.push('<computed import()>');
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      out.push(node.argument.literal.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** The layer owning `file` (a path relative to the repository, with `/`), by its longest folder. */
export function layerOf(map: LayerMap, file: string): string | undefined {
  let best: { name: string; len: number } | undefined;
  for (const [name, layer] of Object.entries(map.layers)) {
    for (const folder of layer.folders) {
      if (file.startsWith(folder + '/') && (!best || folder.length > best.len)) best = { name, len: folder.length };
    }
  }
  return best?.name;
}

export interface SourceFile {
  /** Repository-relative path with `/`, e.g. src/runtime/model.ts. */
  file: string;
  text: string;
}

/**
 * Every problem of `files` under `map`, one line each: files in no layer, relative imports that
 * leave src/ or are computed, and arrows from one layer to another it does not list.
 */
export function layerViolations(map: LayerMap, files: readonly SourceFile[]): string[] {
  const problems: string[] = [];
  for (const { file, text } of files) {
    const from = layerOf(map, file);
    if (from === undefined) {
      problems.push(`${file} is in no layer of src/layers.json`);
      continue;
    }
    const allowed = new Set(map.layers[from]?.imports ?? []);
    for (const spec of importsOf(file, text)) {
      if (spec === '<computed import()>') {
        problems.push(`${file}: an import() with a computed specifier cannot be checked against the layer map`);
        continue;
      }
      if (!spec.startsWith('.')) continue; // packages and node: builtins
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.js$/, '.ts');
      if (!target.startsWith('src/')) {
        problems.push(`${file} imports ${target}, outside src/`);
        continue;
      }
      const to = layerOf(map, target);
      if (to === undefined) problems.push(`${file} imports ${target}, which is in no layer of src/layers.json`);
      else if (to !== from && !allowed.has(to)) problems.push(`${file} (${from}) imports ${target} (${to}): ${from} may import only ${[...allowed].join(', ') || 'nothing of the project'}`);
    }
  }
  return problems;
}

/**
 * The rules of issue 15 the map itself must keep, so that loosening the map cannot hide an
 * arrow: core imports nothing of ours, solvers only core and rng, runtime only core, io and
 * onnx, no layer imports cli, only cli imports app; every listed layer exists.
 */
export function mapViolations(map: LayerMap): string[] {
  const problems: string[] = [];
  const names = new Set(Object.keys(map.layers));
  const only = (layer: string, allowed: readonly string[]): void => {
    const extra = (map.layers[layer]?.imports ?? []).filter((l) => !allowed.includes(l));
    if (extra.length) problems.push(`layer ${layer} may import only ${allowed.join(', ') || 'nothing'}, the map lets it import ${extra.join(', ')}`);
  };
  for (const required of ['core', 'solvers', 'runtime', 'cli']) if (!names.has(required)) problems.push(`the map has no layer ${required}`);
  only('core', []);
  only('solvers', ['core', 'rng']);
  only('runtime', ['core', 'io', 'onnx']);
  for (const [name, layer] of Object.entries(map.layers)) {
    for (const l of layer.imports) {
      if (!names.has(l)) problems.push(`layer ${name} lists ${l}, which is no layer of the map`);
      if (l === 'cli') problems.push(`layer ${name} may not import cli (nothing in src imports the CLI)`);
      if (l === 'app' && name !== 'cli') problems.push(`layer ${name} may not import app (only cli does)`);
      if (l === name) problems.push(`layer ${name} lists itself`);
    }
  }
  return problems;
}

/** src/**\/*.ts of the repository at `root`, as repository-relative paths with `/`. */
export function sourceFiles(root: string): SourceFile[] {
  const out: SourceFile[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.ts')) out.push({ file: rel, text: fs.readFileSync(path.join(root, rel), 'utf8') });
    }
  };
  walk('src');
  return out.sort((a, b) => a.file.localeCompare(b.file));
}
