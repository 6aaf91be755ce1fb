/**
 * Which denoiser file a command runs: `--model`, else the file `--dataset_name` names in
 * `--model_dir` (sample, train and table resolve it the same way).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../core/errors.js';

/**
 * `--dataset_name` resolves to the first existing file of its list inside `--model_dir`:
 * `<name>.onnx`, then the upstream checkpoint's name. The list is the one table
 * tools/export/dataset_models.json, which the exporters read too (README, "Exporting models").
 */
export const DATASET_MODEL_FILES: Record<string, readonly string[]> = (() => {
  const table = JSON.parse(readFileSync(new URL('../../../tools/export/dataset_models.json', import.meta.url), 'utf8')) as { datasets: Record<string, { files: string[] }> };
  return Object.fromEntries(Object.entries(table.datasets).map(([k, v]) => [k, v.files]));
})();

/** The last entry of a dataset's list that is shipped with the package, not downloaded. */
const BUNDLED_FALLBACK: Record<string, string> = { cifar10: 'cifar10-tiny-edm.onnx' };

export function resolveModelFile(model: string | undefined, datasetName: string | undefined, modelDir: string, note?: (line: string) => void): string {
  if (model) {
    if (!existsSync(model)) throw new UsageError(`--model: ${model} does not exist (expected an ONNX denoiser file)`);
    if (statSync(model).isDirectory()) throw new UsageError(`--model: ${model} is a folder (expected an ONNX denoiser file)`);
    return model;
  }
  if (!datasetName) throw new UsageError('--model, --dataset_name or an AdaSDE --predictor_path (whose dataset names the model) is required');
  const names = DATASET_MODEL_FILES[datasetName] ?? [`${datasetName}.onnx`];
  for (const n of names) {
    const p = join(modelDir, n);
    if (!existsSync(p)) continue;
    if (n === BUNDLED_FALLBACK[datasetName]) {
      // Not what a user naming the dataset expects by default: say which network runs.
      note?.(`--dataset_name ${datasetName}: using the bundled tiny network ${p} (no ${names.filter((x) => x !== n).join(' or ')} in ${modelDir})`);
    }
    return p;
  }
  throw new UsageError(`--dataset_name ${datasetName}: no model in ${modelDir} (looked for ${names.join(', ')}); pass --model FILE or export one (README, "Exporting models")`);
}


/** A note for stderr in the CLI's one-line form (what `note` sinks print unless --quiet). */
export function noteLine(line: string): void {
  process.stderr.write(`adasde: ${line}\n`);
}
