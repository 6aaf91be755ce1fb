/**
 * The exporters' committed fixtures (test/fixtures/export/<family>/, written by
 * tools/export/selftest.py) through the project's own loaders: every case of every
 * manifest runs through loadDenoiserModel / loadDecoder / loadTextEncoder / loadClassifier
 * and must match the stored PyTorch outputs by the manifest's rule
 *   per sample i: max_j |onnx_ij - ref_ij| <= tolerance * max(1, max_j |ref_ij|),
 * at the full batch and for the first sample alone. The SD fixture is also checked as a
 * chain: prompts -> tokenizer -> text encoder -> condition, and `adasde sample --prompt`.
 *
 * Without test/fixtures/export/ (exporters not landed yet) the suite is skipped with a
 * message; once it exists every family its README lists must be present and pass.
 * ADASDE_EXPORT_FIXTURES=<folder> checks another fixture folder the same way.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { inspectFile } from '../../src/app/inspect.js';
import { inspectTable } from '../../src/config/inspect.js';
import { recognise } from '../../src/runtime/recognise.js';
import { main } from '../../src/cli/main.js';
import { parseOptions } from '../../src/config/options.js';
import { readNpy, toFloat64, type NdArray } from '../../src/io/npy.js';
import { loadClassifier, loadDecoder, loadTextEncoder } from '../../src/runtime/companions.js';
import { loadDenoiserModel } from '../../src/runtime/model.js';
import { readModelSignature } from '../../src/runtime/session.js';
import { PromptEncoder } from '../../src/sample/companions.js';
import type { Conditioning } from '../../src/core/denoiser.js';
import { loadTokenizer } from '../../src/text/tokenizer.js';
import { repoRoot } from '../helpers.js';

/** ADASDE_EXPORT_FIXTURES points elsewhere (e.g. a fresh selftest.py output). */
const ROOT = process.env.ADASDE_EXPORT_FIXTURES ?? join(repoRoot, 'test', 'fixtures', 'export');

interface Case {
  name: string;
  model: string;
  inputs: Record<string, string>;
  outputs: Record<string, string>;
  tolerance?: number;
}
interface Manifest {
  family: string;
  tolerance: number;
  cases: Case[];
}

/** Families the fixture README promises (its table's `<family>/` rows), else the folders present. */
function promisedFamilies(): string[] {
  const readme = join(ROOT, 'README.md');
  const listed = existsSync(readme) ? [...readFileSync(readme, 'utf8').matchAll(/^\| `([\w-]+)\/` \|/gm)].map((m) => m[1]!) : [];
  const present = readdirSync(ROOT).filter((d) => statSync(join(ROOT, d)).isDirectory());
  return [...new Set([...listed, ...present])].sort();
}

/** The manifest's rule; returns the worst ratio error / (tolerance-free) allowance. */
function scaledErrors(got: ArrayLike<number>, ref: ArrayLike<number>, n: number): number {
  assert.equal(got.length, ref.length, 'output size');
  const per = ref.length / n;
  let worst = 0;
  for (let i = 0; i < n; i++) {
    let d = 0;
    let m = 0;
    for (let j = i * per; j < (i + 1) * per; j++) {
      const e = Math.abs(got[j]! - ref[j]!);
      d = Number.isNaN(e) ? Infinity : Math.max(d, e);
      m = Math.max(m, Math.abs(ref[j]!));
    }
    worst = Math.max(worst, d / Math.max(1, m));
  }
  return worst;
}

type Runner = (inputs: Map<string, NdArray>, n: number, rows: number) => Promise<Record<string, ArrayLike<number>>>;

/** Runs `rows` leading samples of the case's inputs through the matching project loader. */
async function runnerFor(file: string): Promise<{ run: Runner; dispose: () => Promise<void> }> {
  const sig = readModelSignature(file);
  const kind = recognise(sig);
  const take = (a: NdArray, rows: number): Float64Array => {
    const all = toFloat64(a);
    return all.subarray(0, (all.length / a.shape[0]!) * rows);
  };
  switch (kind) {
    case 'denoiser': {
      const m = await loadDenoiserModel(file, { maxBatch: 64 });
      return {
        run: async (inp, _n, rows) => {
          const cond: Conditioning = {};
          const labels = inp.get('class_labels');
          if (labels) Object.assign(cond, { classLabels: Float32Array.from(take(labels, rows)), labelDim: labels.shape[1]! });
          const c = inp.get('condition');
          if (c) Object.assign(cond, { condition: Float32Array.from(take(c, rows)), conditionShape: [c.shape[1]!, c.shape[2]!] });
          const out = await m.denoise({ x: take(inp.get('x')!, rows), sigma: take(inp.get('sigma')!, rows), batch: rows, cond });
          return { denoised: out };
        },
        dispose: () => m.dispose(),
      };
    }
    case 'decoder': {
      const m = await loadDecoder(file);
      return {
        run: async (inp, _n, rows) => {
          const z = [...inp.values()][0]!;
          return { image: (await m.decode(take(z, rows), rows, z.shape.slice(1))).data };
        },
        dispose: () => m.dispose(),
      };
    }
    case 'text_encoder': {
      const m = await loadTextEncoder(file);
      return {
        run: async (inp, _n, rows) => {
          const ids = inp.get('input_ids')!;
          const L = ids.shape[1]!;
          const res = await m.encode(Int32Array.from(take(ids, rows)), rows, L);
          return { condition: res.data, last_hidden_state: res.data };
        },
        dispose: () => m.dispose(),
      };
    }
    case 'classifier': {
      const m = await loadClassifier(file);
      return {
        run: async (inp, _n, rows) => {
          const x = inp.get('x')!;
          return { log_probs: (await m.classify(take(x, rows), take(inp.get('sigma')!, rows), rows, x.shape.slice(1))).data };
        },
        dispose: () => m.dispose(),
      };
    }
    default:
      throw new Error(`${file}: recognised as ${kind ?? 'no contract'}; no project loader to run it`);
  }
}

if (!existsSync(ROOT)) {
  test('exported model fixtures', (t) => {
    t.skip(`${ROOT} does not exist yet: the exporters (tools/export, selftest.py) have not committed their fixtures`);
  });
} else {
  const families = promisedFamilies();
  test('the fixture folder lists at least one family', () => assert.ok(families.length > 0));
  for (const fam of families) {
    describe(`export fixture ${fam}`, () => {
      const dir = join(ROOT, fam);
      const mpath = join(dir, 'manifest.json');
      test('is present with a manifest', () => {
        assert.ok(existsSync(mpath), `${mpath} is missing although test/fixtures/export/README.md lists ${fam}/`);
      });
      if (!existsSync(mpath)) return;
      const manifest = JSON.parse(readFileSync(mpath, 'utf8')) as Manifest;
      for (const c of manifest.cases) {
        const tol = c.tolerance ?? manifest.tolerance ?? 1e-4;
        test(`${c.name}: ${c.model} matches PyTorch (tolerance ${tol}, batch n and batch 1)`, async () => {
          const inputs = new Map<string, NdArray>();
          for (const [k, f] of Object.entries(c.inputs)) inputs.set(k, await readNpy(join(dir, f)));
          const n = [...inputs.values()][0]!.shape[0]!;
          const r = await runnerFor(join(dir, c.model));
          try {
            const full = await r.run(inputs, n, n);
            const one = await r.run(inputs, n, 1);
            for (const [name, f] of Object.entries(c.outputs)) {
              const ref = toFloat64(await readNpy(join(dir, f)));
              assert.ok(full[name], `no output ${name}`);
              const e = scaledErrors(full[name], ref, n);
              assert.ok(e <= tol, `${name}: scaled error ${e.toExponential(2)} > ${tol} (batch ${n})`);
              const e1 = scaledErrors(one[name]!, ref.subarray(0, ref.length / n), 1);
              assert.ok(e1 <= tol, `${name}: scaled error ${e1.toExponential(2)} > ${tol} (batch 1)`);
            }
          } finally {
            await r.dispose();
          }
        });
      }
      test('every ONNX file satisfies its contract under `adasde inspect` (with forward passes)', async () => {
        // Graphs derived from these files (classifier gradients, VJP graphs) are caches that
        // other tests' runs may leave beside them, not exported files.
        const onnx = readdirSync(dir).filter((f) => f.endsWith('.onnx') && !/\.(grad|vjp(-\d+x\d+)?)\.onnx$/.test(f));
        assert.ok(onnx.length > 0);
        const o = parseOptions(inspectTable, {});
        for (const f of onnx) {
          const res = await inspectFile(join(dir, f), o);
          assert.deepEqual(res.problems, [], `${fam}/${f}`);
          assert.ok(res.lines.some((l) => l.startsWith('forward')), `${fam}/${f}: forward pass ran`);
        }
      });
    });
  }

  const sd = join(ROOT, 'sd');
  if (existsSync(join(sd, 'prompts.json'))) {
    describe('SD fixture as a chain: prompts -> tokenizer -> text encoder -> sampler', () => {
      const P = JSON.parse(readFileSync(join(sd, 'prompts.json'), 'utf8')) as { prompts: string[]; bos: number; eos: number; pad: number; tokens_without_padding: number[][] };
      const out = mkdtempSync(join(tmpdir(), 'adasde-sd-'));
      after(() => rmSync(out, { recursive: true, force: true }));

      test('the TypeScript tokenizer gives the exporter\'s input_ids for every prompt', async () => {
        const tok = loadTokenizer(join(sd, 'denoiser.tokenizer'));
        const ids = toFloat64(await readNpy(join(sd, 'input_ids.npy')));
        assert.equal(tok.bos, P.bos);
        assert.equal(tok.eos, P.eos);
        assert.equal(tok.pad, P.pad);
        P.prompts.forEach((p, k) => {
          const got = Array.from(tok.encode(p));
          assert.deepEqual(got, Array.from(ids.subarray(k * 77, (k + 1) * 77)), JSON.stringify(p));
          assert.deepEqual(got.slice(1, 1 + P.tokens_without_padding[k]!.length), P.tokens_without_padding[k]);
        });
      });

      test('PromptEncoder states equal the stored condition.npy', async () => {
        const model = await loadDenoiserModel(join(sd, 'denoiser.onnx'));
        const pe = await PromptEncoder.open(model);
        try {
          const ref = toFloat64(await readNpy(join(sd, 'condition.npy')));
          const got = await pe.rows(P.prompts);
          const e = scaledErrors(got, ref, P.prompts.length);
          assert.ok(e <= 1e-4, `scaled error ${e}`);
        } finally {
          await pe.dispose();
          await model.dispose();
        }
      });

      test('adasde sample --prompt with CFG writes decoded 16x16 PNGs', async () => {
        const code = await main(['node', 'adasde', 'sample', '--model', join(sd, 'denoiser.onnx'), '--solver', 'dpmpp', '--num_steps', '4', '--seeds', '0-2', '--prompt', P.prompts[0]!, '--guidance_type', 'cfg', '--guidance_rate', '7.5', '--outdir', out, '--quiet']);
        assert.equal(code, 0);
        for (const s of [0, 1, 2]) {
          const png = readFileSync(join(out, '000000', `00000${s}.png`));
          assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [16, 16]);
        }
      });
    });
  }
}
