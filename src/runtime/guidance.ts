/**
 * Classifier guidance (`--guidance_type cg`, ALGORITHM.md section 8) for ONNX denoisers.
 *
 * The classifier companion (`adasde.classifier`: x, sigma -> log_probs) is turned into its
 * gradient graph by src/graph/gradient.ts and cached beside it as `<name>.grad.onnx`
 * (derived.ts: atomic, rebuilt when stale). The guided denoiser is then
 *
 *   D_cg(x, s) = D(x, s) + rate * s^2 * grad_x log p(y | x, s).
 *
 * Why: the spec guides the eps prediction, eps' = eps - sqrt(1 - 1/(1+s^2)) rate grad_{x_in}
 * log p with x_in = x / sqrt(1+s^2), and D = x - s eps. The classifier graph takes x itself, so
 * grad_x = grad_{x_in} / sqrt(1+s^2), and s sqrt(1 - 1/(1+s^2)) sqrt(1+s^2) = s^2: the same
 * shift of D, i.e. the score (D - x)/s^2 moves by rate * grad_x log p, for every family.
 * ADM's exported denoiser clamps D to [-1, 1] inside its graph; the guided D is clamped
 * again, which equals clamp(x - s eps') wherever the unguided D was not clipped.
 */
import { existsSync } from 'node:fs';
import { firstLine, UsageError } from '../core/errors.js';
import { classifierGradientModel, GRADIENT_IO, GRADIENT_TRANSFORM_VERSION } from '../graph/gradient.js';
import { derivedCachePath, prepareDerivedGraph } from './derived.js';
import type { Denoiser, DenoiseRequest } from '../core/denoiser.js';
import { checkClassifierSignature, type CompanionLoadOptions } from './companions.js';
import { throwUsage } from './contract.js';
import { floatFeed, readFloatOutput } from './model.js';
import { openSession, readModelSignature, type HostTensor } from './session.js';
import { elementCount } from '../core/shape.js';
import { inRuns, rowsOf } from './rows.js';

/** Where the gradient graph of `classifier` is cached: `<dir>/<name>.grad.onnx`. */
export function gradientCachePath(classifier: string): string {
  return derivedCachePath(classifier, 'grad');
}

/**
 * The gradient graph file of a classifier, built (or rebuilt) when its cache is missing or
 * stale (derived.ts). Unsupported operators end in a UsageError naming the node.
 */
export function prepareClassifierGradient(classifier: string): string {
  if (!existsSync(classifier)) throw new UsageError(`${classifier}: classifier not found`);
  return prepareDerivedGraph(classifier, {
    suffix: 'grad',
    stampPrefix: 'gradient',
    version: GRADIENT_TRANSFORM_VERSION,
    what: "classifier's gradient graph",
    build: (model, stamp) => classifierGradientModel(model, { file: classifier, metadata: stamp }),
  });
}

export interface ClassifierGradient {
  /** The classifier companion and its gradient graph file. */
  readonly classifier: string;
  readonly path: string;
  readonly numClasses: number;
  /** grad_x sum_k labels[n,k] log p(k | x_n, sigma_n), [n, ...sample] float64. */
  gradient(x: Float64Array, sigma: Float64Array, labels: Float32Array, n: number): Promise<Float64Array>;
  dispose(): Promise<void>;
}

/** Checks the classifier contract against the denoiser, builds/loads the gradient graph, opens it. */
export async function loadClassifierGradient(classifier: string, opts: CompanionLoadOptions & { sampleShape: readonly number[]; labelDim?: number }): Promise<ClassifierGradient> {
  const io = checkClassifierSignature(classifier, readModelSignature(classifier), throwUsage, opts.sampleShape, opts.labelDim)!;
  if (io.x !== 'float32' || io.sigma !== 'float32') throw new UsageError(`${classifier}: classifier guidance needs a float32 classifier (inputs are ${io.x}, ${io.sigma})`);
  const K = io.numClasses ?? opts.labelDim;
  if (!K) throw new UsageError(`${classifier}: output 'log_probs' has no fixed number of classes`);
  const file = prepareClassifierGradient(classifier);
  const session = await openSession(file, opts);
  const sample = opts.sampleShape;
  const dim = elementCount(sample);
  const cap = io.fixedBatch ?? opts.maxBatch ?? 64;
  async function gradient(x: Float64Array, sigma: Float64Array, labels: Float32Array, n: number): Promise<Float64Array> {
    if (x.length !== n * dim || sigma.length !== n || labels.length !== n * K!) throw new RangeError(`classifier gradient inputs do not match ${n} samples of [${sample.join(',')}] and ${K} classes`);
    const out = new Float64Array(n * dim);
    await inRuns(n, cap, io.fixedBatch, async (s, rows, padded) => {
      // A fixed-batch classifier's padding repeats the first row; its gradient is dropped.
      const xs = rowsOf(x, s, rows, padded, dim, (k) => new Float64Array(k));
      const ss = rowsOf(sigma, s, rows, padded, 1, (k) => new Float64Array(k));
      const ls = rowsOf(labels, s, rows, padded, K!, (k) => new Float32Array(k));
      let res: Record<string, HostTensor>;
      try {
        res = await session.run(
          {
            [GRADIENT_IO.x]: floatFeed('float32', xs, [padded, ...sample]),
            [GRADIENT_IO.sigma]: floatFeed('float32', ss, [padded]),
            [GRADIENT_IO.labels]: { type: 'float32', data: ls, dims: [padded, K!] },
          },
          [GRADIENT_IO.grad],
        );
      } catch (e) {
        const msg = firstLine(e);
        throw new Error(`${file}: classifier gradient run failed on ${padded} samples: ${msg}`);
      }
      readFloatOutput(res[GRADIENT_IO.grad]!, out, rows * dim, s * dim);
    });
    return out;
  }
  return { classifier, path: file, numClasses: K, gradient, dispose: () => session.dispose() };
}

export interface GuidanceOptions {
  rate: number;
  /** Clamp the guided estimate to [-1, 1] (ADM: its denoiser clamps D). */
  clamp?: boolean;
}

/** D_cg = D + rate s^2 grad_x log p(y | x, s), y = the request's class labels (see the file comment). */
export function classifierGuided(denoise: Denoiser, grad: Pick<ClassifierGradient, 'gradient' | 'numClasses' | 'classifier'>, opts: GuidanceOptions): Denoiser {
  const { rate } = opts;
  if (!Number.isFinite(rate)) throw new UsageError(`--guidance_rate must be a finite number, got ${rate}`);
  return async (req: DenoiseRequest): Promise<Float64Array> => {
    const labels = req.cond?.classLabels;
    if (rate !== 0 && (!labels || labels.length !== req.batch * grad.numClasses)) {
      throw new UsageError(`${grad.classifier}: classifier guidance needs one class label per sample over ${grad.numClasses} classes`);
    }
    const g = rate === 0 ? undefined : await grad.gradient(req.x, req.sigma, labels!, req.batch);
    const d = await denoise(req);
    if (!g) return d;
    const dim = d.length / req.batch;
    for (let b = 0; b < req.batch; b++) {
      const s = req.sigma[b]!;
      const k = rate * s * s;
      for (let j = b * dim; j < (b + 1) * dim; j++) {
        const v = d[j]! + k * g[j]!;
        d[j] = opts.clamp ? Math.min(1, Math.max(-1, v)) : v;
      }
    }
    return d;
  };
}
