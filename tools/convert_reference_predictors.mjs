#!/usr/bin/env node
// Converts the coefficients released with the AdaSDE paper (EDM CIFAR-10, NFE 3/5/7/9) into
// adasde predictor files: exp/<reference folder name>/predictor.json.
//   npm run build && node tools/convert_reference_predictors.mjs [../shared/reference/adasde-cifar10-predictors.json]
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { parsePredictor, PREDICTOR_FORMAT, PREDICTOR_VERSION } = await import(join(root, 'dist/src/config/predictor.js'));
const { writeFileAtomic } = await import(join(root, 'dist/src/io/atomic.js'));

const src = resolve(process.argv[2] ?? join(root, '..', 'shared', 'reference', 'adasde-cifar10-predictors.json'));
const runs = JSON.parse(readFileSync(src, 'utf8'));
const pick = (o, keys) => Object.fromEntries(keys.map((k) => [k, o[k]]));

for (const [name, run] of Object.entries(runs)) {
  const file = {
    format: PREDICTOR_FORMAT,
    version: PREDICTOR_VERSION,
    options: {
      ...pick(run, ['dataset_name', 'num_steps', 'num_points', 'M', 'afs', 'schedule_type', 'schedule_rho', 'scale_dir', 'scale_time', 'gamma', 'gamma_min', 'fcn', 'sampler_stu', 'sampler_tea', 'guidance_type', 'guidance_rate', 'max_order', 'predict_x0', 'lower_order_final', 'alpha']),
      sigma_min: 0.002,
      sigma_max: 80,
    },
    params: {
      r: run.raw_params.r_params,
      scale_dir: run.raw_params.scale_dir_params,
      scale_time: run.raw_params.scale_time_params,
      weight: run.raw_params.weight_s,
      gamma: run.raw_params.gamma_params,
    },
    provenance: {
      source: 'coefficients released with the AdaSDE paper (NeurIPS 2025) for the EDM CIFAR-10 model',
      reference_run: name,
      converted_from: relative(root, src).split('\\').join('/'),
    },
  };
  const text = JSON.stringify(file, null, 1) + '\n';
  parsePredictor(text, name); // validate before writing
  const dir = join(root, 'exp', name);
  mkdirSync(dir, { recursive: true });
  await writeFileAtomic(join(dir, 'predictor.json'), text);
  console.log(`wrote exp/${name}/predictor.json`);
}
