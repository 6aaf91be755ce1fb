/**
 * `adasde fuse` as an application: `resolveFuse` turns the flags into a `FusePlan` through
 * `adasde sample`'s own resolution (model file, predictor, solver, options, grid, guidance),
 * so a fused sampler is exactly the sampler `adasde sample` would run with the same flags;
 * `runFuse` reads the denoiser (and a latent model's decoder) with its weights, emits the
 * graph (src/fuse/build.ts) and writes it atomically.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { FuseOptions } from '../config/fuse.js';
import { UsageError } from '../core/errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { buildFusedSampler } from '../fuse/build.js';
import { FUSED_FORMAT, FUSED_FORMAT_KEY } from '../fuse/format.js';
import { modelBytes } from '../onnx/builder.js';
import { readModelWithData } from '../onnx/load.js';
import { readModelHeader, type ModelProto } from '../onnx/proto.js';
import { throwUsage } from '../runtime/contract.js';
import { checkDenoiserSignature, parseDenoiserMetadata } from '../runtime/model.js';
import { readModelSignature, writeOptimizedModel } from '../runtime/session.js';
import { needsDecoder, preflightCompanions } from '../sample/companions.js';
import { SOLVER_REGISTRY } from '../solvers/registry.js';
import { fileSha256 } from '../io/sha256.js';
import { cfgRate, coefficientsHash, describeSolverChoice, resolveSolver, sampleInputs, solverOptionRecord, type SolverChoice } from './sample.js';

export interface FusePlan {
  modelFile: string;
  dataset: string;
  solver: SolverChoice;
  /** Model evaluations per image, CFG's doubled rows counted as `adasde sample` counts them. */
  nfe: number;
  sampleShape: [number, number, number];
  labelDim: number;
  condition?: [number | string, number | string];
  cfgRate?: number;
  /** Latent models: the first-stage decoder inlined after the last step. */
  decoder?: string;
  out: string;
  /** Each evaluation in an If subgraph (faster loading, slower runs). */
  subgraphs: boolean;
  /** onnxruntime's rewrites of the model before fusing (`--optimize`, auto resolved). */
  optimize: OptimizeLevel;
  /** The same for the decoder (auto: on the decoder's own precision; 'none' without a decoder). */
  decoderOptimize: OptimizeLevel;
  quiet: boolean;
}

type OptimizeLevel = 'none' | 'basic' | 'extended';

/**
 * `--optimize auto` for one file. A subgraph-layout file is loaded with optimisations off (its
 * evaluations would each be optimised separately, which costs what the layout saves), so it
 * gets them here, once. Not for float16 graphs: onnxruntime's CPU rewrite would bake in the
 * Casts it inserts around float16 operators it lacks, which a GPU runtime does not need.
 */
function autoOptimize(subgraphs: boolean, dtype: string): OptimizeLevel {
  return subgraphs && dtype === 'float32' ? 'basic' : 'none';
}

/** The plan of one `adasde fuse` run: reads signatures and the predictor, writes nothing. */
export function resolveFuse(flags: FuseOptions): FusePlan {
  const inputs = sampleInputs(flags);
  const o = inputs.flags;
  const file = inputs.modelFile;
  const sig = readModelSignature(file);
  const meta = parseDenoiserMetadata(file, sig.metadata);
  const io = checkDenoiserSignature(file, sig, meta, throwUsage);
  if (io.fixedBatch !== undefined) {
    throw new UsageError(`${file}: the model has a fixed batch of ${io.fixedBatch}; a fused sampler stacks several evaluations into one, so it needs a model exported with a dynamic batch dimension`);
  }
  if (o.guidanceType === 'cg') throw new UsageError('--guidance_type cg: classifier guidance is not fused (its gradient graph runs beside the denoiser); use adasde sample without --fused, or cfg');
  const choice = resolveSolver(o, meta, inputs.predictor);
  const cfg = cfgRate(o);
  const C = meta.imgChannels;
  const R = meta.imgResolution;
  const model = { path: file, meta, sampleShape: [C, R, R] as const, hasCondition: io.condition !== undefined, conditionShape: io.condition ? ([io.condition.seqLen, io.condition.embedDim] as const) : undefined };
  const decode = needsDecoder(model);
  const companions = preflightCompanions(model, { text: false, decoder: decode });
  if (!decode && C !== 1 && C !== 3) throw new UsageError(`${file}: ${C} channels; a fused sampler's images output needs 1 (grey) or 3 (RGB) channels`);
  const nfe = choice.solverNfe * (cfg !== undefined ? 2 : 1);
  const points = SOLVER_REGISTRY[choice.solver].usesPredictor ? `-npoints${choice.options.coeffs?.r[0]?.length ?? 1}` : '';
  return {
    modelFile: file,
    dataset: meta.datasetName,
    solver: choice,
    nfe,
    sampleShape: [C, R, R],
    labelDim: meta.labelDim,
    condition: io.condition ? [io.condition.seqLen ?? 'L', io.condition.embedDim ?? 'E'] : undefined,
    cfgRate: cfg,
    decoder: decode ? meta.decoder : undefined,
    out: o.out ?? `${meta.datasetName}-${choice.solver}${points}-nfe${nfe}.onnx`,
    subgraphs: o.subgraphs,
    optimize: o.optimize === 'auto' ? autoOptimize(o.subgraphs, io.x) : o.optimize,
    // Each file on its own precision: a float32 latent denoiser may come with a float16 decoder.
    decoderOptimize: !companions.decoder ? 'none' : o.optimize === 'auto' ? autoOptimize(o.subgraphs, companions.decoder.inKind) : o.optimize,
    quiet: o.quiet,
  };
}

/** The plan as `--dry-run` prints it. */
export function describeFusePlan(plan: FusePlan): Record<string, unknown> {
  return {
    model: plan.modelFile,
    dataset: plan.dataset,
    ...describeSolverChoice(plan.solver, plan.nfe),
    label_dim: plan.labelDim,
    guidance: plan.cfgRate !== undefined ? { type: 'cfg', rate: plan.cfgRate } : { type: 'none' },
    decoder: plan.decoder ?? null,
    layout: plan.subgraphs ? 'subgraphs' : 'inline',
    optimize: plan.optimize,
    ...(plan.decoder ? { decoder_optimize: plan.decoderOptimize } : {}),
    out: plan.out,
  };
}

export interface FuseResult {
  out: string;
  /** Bytes of the fused file and of the source model (with its external data). */
  bytes: number;
  modelBytes: number;
  nfe: number;
  noiseIntervals: number[];
  inputs: string[];
}

/** Size of a model file plus the external-data files it names. */
function modelFileBytes(file: string): number {
  let total = statSync(file).size;
  const header = readModelHeader(file);
  const seen = new Set<string>();
  for (const t of header.graph?.initializer ?? []) {
    const loc = t.externalData?.find((e) => e.key === 'location')?.value;
    if (loc && !seen.has(loc)) {
      seen.add(loc);
      const p = resolve(dirname(file), loc);
      if (existsSync(p)) total += statSync(p).size;
    }
  }
  return total;
}

/**
 * A model with its weights as the fuser reads it: the file itself, or onnxruntime's rewrite of
 * it at `level` (written to a temporary folder, read back, removed), with the opset imports
 * onnxruntime adds for domains no node uses dropped again.
 */
async function readForFusing(file: string, level: OptimizeLevel): Promise<ModelProto> {
  if (level === 'none') return readModelWithData(file);
  const dir = mkdtempSync(join(tmpdir(), 'adasde-fuse-'));
  try {
    const out = join(dir, 'optimized.onnx');
    await writeOptimizedModel(file, out, level);
    const m = readModelWithData(out);
    const used = new Set((m.graph?.node ?? []).map((n) => (n.domain === 'ai.onnx' ? '' : n.domain)));
    return { ...m, opsetImport: m.opsetImport.filter((o) => o.domain === '' || o.domain === 'ai.onnx' || used.has(o.domain)) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Emits the plan's fused sampler and writes it to `plan.out` (atomically: a reader never sees half a file). */
export async function runFuse(plan: FusePlan): Promise<FuseResult> {
  const s = plan.solver;
  const d = SOLVER_REGISTRY[s.solver];
  const model = await readForFusing(plan.modelFile, plan.optimize);
  const decoder = plan.decoder ? await readForFusing(plan.decoder, plan.decoderOptimize) : undefined;
  const metadata: Record<string, string> = {
    solver: s.solver,
    solver_nfe: String(s.solverNfe),
    t_steps: JSON.stringify(Array.from(s.tSteps)),
    schedule: s.scheduleType ? `${s.scheduleType} rho ${s.scheduleRho}` : 'given (--t_steps)',
    options: JSON.stringify(solverOptionRecord(s.options)),
    predictor: s.predictor ? `${basename(dirname(s.predictor))}/${basename(s.predictor)}` : '',
    predictor_sha256: s.options.coeffs ? coefficientsHash(s.options.coeffs) : '',
    guidance: plan.cfgRate !== undefined ? `cfg ${plan.cfgRate}` : 'none',
    source_model: basename(plan.modelFile),
    source_model_sha256: await fileSha256(plan.modelFile),
    dataset_name: plan.dataset,
    optimized: plan.optimize,
  };
  if (plan.decoder) {
    metadata['decoder'] = basename(plan.decoder);
    metadata['decoder_optimized'] = plan.decoderOptimize;
  }
  const fused = await buildFusedSampler(model, {
    solve: (o, x0, t) => d.solve(o, x0, t, s.options),
    tSteps: s.tSteps,
    sampleShape: plan.sampleShape,
    labelDim: plan.labelDim,
    condition: plan.condition,
    cfgRate: plan.cfgRate,
    decoder,
    metadata,
    modelName: plan.modelFile,
    decoderName: plan.decoder,
    subgraphs: plan.subgraphs,
  });
  // The graph's own count of evaluations is the solver's formula (a check on both).
  if (fused.nfe !== s.solverNfe) throw new Error(`fuse: the graph evaluates the model ${fused.nfe} times; ${s.solver}'s formula says ${s.solverNfe}`);
  const bytes = modelBytes(fused.model);
  mkdirSync(dirname(resolve(plan.out)), { recursive: true });
  await writeFileAtomic(plan.out, bytes);
  return { out: resolve(plan.out), bytes: bytes.length, modelBytes: modelFileBytes(plan.modelFile), nfe: plan.nfe, noiseIntervals: fused.noiseIntervals, inputs: fused.inputs };
}

/** True when `file` carries the fused-sampler marker. */
export function isFusedSampler(file: string): boolean {
  try {
    return readModelHeader(file).metadataProps.some((e) => e.key === FUSED_FORMAT_KEY && e.value === FUSED_FORMAT);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// The bundled model's sampler for `adasde web`.

/** The project folder (dist/src/app -> the repository root). */
const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '..', '..', '..');

/**
 * The bundled network's fused AdaSDE 5-NFE sampler in the subgraph layout (models/cifar10-tiny-edm.onnx with the
 * newest exp/NNNNN-cifar10-4-5-adasde-*-tiny predictor, the demo's pair), built on first use
 * into the user's cache; the file name carries both inputs' hashes, so a changed model or
 * predictor is rebuilt instead of served stale.
 */
export async function bundledFusedSampler(note: (line: string) => void = () => undefined): Promise<string> {
  const model = join(ROOT, 'models', 'cifar10-tiny-edm.onnx');
  const expDir = join(ROOT, 'exp');
  if (!existsSync(model)) throw new UsageError(`the bundled model ${model} is missing; pass --sampler FILE`);
  const run = existsSync(expDir) ? readdirSync(expDir).filter((n) => /^\d{5}-cifar10-4-5-adasde-.*-tiny$/.test(n)).sort().pop() : undefined;
  if (!run) throw new UsageError(`no exp/NNNNN-cifar10-4-5-adasde-*-tiny predictor under ${expDir}; pass --sampler FILE`);
  const flags = { model, predictorPath: join(expDir, run), expDir, modelDir: join(ROOT, 'models'), quiet: true } as const;
  // The subgraph layout, optimised here once: the page loads it without optimisations, in a
  // fraction of the inline layout's session creation and at about its speed (bench/RESULTS.md,
  // "Fused samplers").
  const plan = resolveFuse({ ...flags, denoiseToZero: false, dryRun: false, subgraphs: true, optimize: 'auto' } as FuseOptions);
  const key = createHash('sha256')
    .update(await fileSha256(model))
    .update(plan.solver.options.coeffs ? coefficientsHash(plan.solver.options.coeffs) : '')
    .update(JSON.stringify(Array.from(plan.solver.tSteps)))
    .update(`${plan.subgraphs ? 'subgraphs' : 'inline'} ${plan.optimize}`)
    .digest('hex')
    .slice(0, 16);
  const cacheDir = process.env['XDG_CACHE_HOME'] ? join(process.env['XDG_CACHE_HOME'], 'adasde') : join(homedir(), '.cache', 'adasde');
  const out = join(cacheDir, `cifar10-tiny-adasde-nfe${plan.nfe}-${key}.onnx`);
  if (existsSync(out) && isFusedSampler(out)) return out;
  note(`adasde: building the bundled fused sampler (exp/${run}, ${plan.nfe} NFE) -> ${out}`);
  await runFuse({ ...plan, out });
  return out;
}
