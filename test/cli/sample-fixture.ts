/**
 * A Gaussian-mixture denoiser written as a real ONNX file by the TypeScript graph builder
 * (test/support/models.ts), and the same mixture as an in-process float64 denoiser: the CLI
 * tests run the first and compare with the second.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mixtureDenoiser, type MixtureParams } from '../../src/solvers/analytic.js';
import { saveModel } from '../../src/onnx/builder.js';
import { buildMixtureModel } from '../support/models.js';

export const SHAPE = [3, 8, 8] as const;
export const DIM = 3 * 8 * 8;
const K = 5;
export const MIX: MixtureParams = {
  weights: Float64Array.from({ length: K }, (_, k) => 1 + (k % 3)),
  means: Float64Array.from({ length: K * DIM }, (_, q) => 0.7 * Math.sin(q * 0.37 + Math.floor(q / DIM))),
  stds: Float64Array.from({ length: K }, (_, k) => 0.1 + 0.05 * (k % 3)),
};
export const denoiseTs = mixtureDenoiser(MIX);

/** A fresh temp folder holding gmm.onnx; returns its paths. */
export function makeModelDir(): { dir: string; model: string } {
  const dir = mkdtempSync(join(tmpdir(), 'adasde-sample-'));
  const model = join(dir, 'gmm.onnx');
  saveModel(buildMixtureModel(MIX, SHAPE, { datasetName: 'gmm' }), model);
  return { dir, model };
}
