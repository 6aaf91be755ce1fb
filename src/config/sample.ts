/** `adasde sample` options, in the spelling of the reference's sample.py. */
import { z } from 'zod';
import { boolFlag, device, deviceOption, guidanceType, intFlag, numFlag, optStr, posNumFlag, quietOption, scheduleType, seedList, solverFlagOptions, solverName, SOLVERS, threadsOption, tStepsFlag } from './common.js';
import type { BaseSolverOptions } from '../solvers/common.js';
import type { SolverOptions } from '../solvers/registry.js';
import { defineOptions, type OptionsOf } from './options.js';

export const sampleBase = defineOptions({
  model: { flag: 'model', schema: optStr, help: 'denoiser ONNX file (the adasde model contract)', expect: 'a path to an .onnx file' },
  modelPath: { flag: 'model_path', schema: optStr, help: 'the reference\'s spelling of --model', expect: 'a path to an .onnx file' },
  datasetName: { flag: 'dataset_name', schema: optStr, help: 'reference dataset name, resolved to a model file inside --model_dir', expect: 'a dataset name such as cifar10' },
  modelDir: { flag: 'model_dir', schema: z.string(), default: './models', help: 'where --dataset_name models live', expect: 'a folder' },
  fused: { flag: 'fused', schema: optStr, help: 'sample with a fused sampler ONNX file (adasde fuse) instead of a model and a solver', expect: 'a path to a fused sampler .onnx file' },
  predictorPath: { flag: 'predictor_path', schema: optStr, help: 'AdaSDE predictor: an experiment number under --exp_dir, a run folder or a predictor .json', expect: 'an experiment number or a path' },
  expDir: { flag: 'exp_dir', schema: z.string(), default: './exp', help: 'where numbered experiments live', expect: 'a folder' },
  solver: { flag: 'solver', schema: solverName.optional(), help: `${SOLVERS.join('|')} (default adasde with --predictor_path)`, expect: `one of ${SOLVERS.join(', ')}` },
  numSteps: { flag: 'num_steps', schema: intFlag(2, 1000).optional(), help: 'time points N (N-1 intervals); AdaSDE takes it from the predictor (default 6 for baselines)', expect: 'an integer >= 2' },
  scheduleType: { flag: 'schedule_type', schema: scheduleType.optional(), help: 'polynomial|logsnr|time_uniform|discrete (default polynomial; AdaSDE: the predictor\'s)', expect: 'one of polynomial, logsnr, time_uniform, discrete' },
  scheduleRho: { flag: 'schedule_rho', schema: posNumFlag().optional(), help: 'schedule exponent (default 7; AdaSDE: the predictor\'s)', expect: 'a positive number' },
  tSteps: { flag: 't_steps', schema: tStepsFlag, help: 'explicit decreasing time points, e.g. [80,10,1,0.002] (baselines)', expect: 'a list of decreasing positive numbers like [80,10,1,0.002]' },
  sigmaMin: { flag: 'sigma_min', schema: posNumFlag().optional(), help: 'override the model\'s sigma_min', expect: 'a positive number' },
  sigmaMax: { flag: 'sigma_max', schema: posNumFlag().optional(), help: 'override the model\'s sigma_max', expect: 'a positive number' },
  afs: { flag: 'afs', schema: boolFlag.optional(), kind: 'bool', help: 'analytic first step (saves one NFE); AdaSDE: the predictor\'s', expect: 'True or False' },
  denoiseToZero: { flag: 'denoise_to_zero', schema: boolFlag, default: false, kind: 'bool', help: 'final x <- D(x, sigma_min) (+1 NFE)', expect: 'True or False' },
  seeds: { flag: 'seeds', schema: seedList, default: '0-63', help: 'seed list, e.g. 0-49999 or 1,2,5-10', expect: 'a seed list like 0-63 or 1,2,5-10' },
  batch: { flag: 'batch', schema: intFlag(1, 1 << 16), default: 64, help: 'images per model call', expect: 'an integer >= 1' },
  outdir: { flag: 'outdir', schema: optStr, help: 'output folder (default samples/<dataset>/<solver>_nfe<k>)', expect: 'a folder' },
  subdirs: { flag: 'subdirs', schema: boolFlag, default: true, kind: 'bool', help: 'one subfolder per 1000 seeds', expect: 'True or False' },
  grid: { flag: 'grid', schema: boolFlag, default: false, kind: 'bool', help: 'also write all images as one grid.png', expect: 'True or False' },
  classIdx: { flag: 'class', schema: intFlag(0).optional(), help: 'class label for class-conditional models (default: drawn per seed)', expect: 'a non-negative integer' },
  prompt: { flag: 'prompt', schema: optStr, help: 'text prompt for every seed (text-conditional models)', expect: 'a string' },
  promptFile: { flag: 'prompt_file', schema: optStr, help: 'CSV with a text column, or one prompt per line; seed s takes prompt s', expect: 'a path' },
  guidanceType: { flag: 'guidance_type', schema: guidanceType, help: 'cfg (classifier-free), cg (classifier) or uncond (no guidance, as the reference runs lsun_bedroom_ldm)', expect: 'cfg, cg or uncond' },
  guidanceRate: { flag: 'guidance_rate', schema: numFlag(0).optional(), help: 'guidance scale (SD default 7.5)', expect: 'a non-negative number' },
  latents: { flag: 'latents', schema: optStr, help: 'float32 .npy [n, C, H, W] of standard-normal latents replacing the seed-drawn ones', expect: 'a path to a .npy file' },
  outputFormat: { flag: 'output_format', schema: z.enum(['png', 'npy']), default: 'png', help: 'png images, or one float32 .npy of the final states in seed order', expect: 'png or npy' },
  useFp16: { flag: 'use_fp16', schema: boolFlag, default: false, kind: 'bool', help: 'half precision at the model boundary: a float32 model gets x and sigma rounded to float16 and its output rounded back (an fp16 export runs in fp16 anyway)', expect: 'True or False' },
  returnInters: { flag: 'return_inters', schema: boolFlag, default: false, kind: 'bool', help: 'also write inters.npy: float32 [steps+1, n, C, H, W], the state before the first and after every step, seeds in --seeds order (one process)', expect: 'True or False' },
  resume: { flag: 'resume', schema: boolFlag, default: true, kind: 'bool', help: 'skip images that already exist', expect: 'True or False' },
  device: deviceOption,
  threads: threadsOption,
  nprocPerNode: { flag: 'nproc_per_node', schema: intFlag(1, 1024), default: 1, help: 'worker processes sharing the seed list', expect: 'an integer >= 1' },
  dryRun: { flag: 'dry-run', short: '-n', schema: boolFlag, default: false, kind: 'switch', help: 'print the resolved plan and exit without writing anything', expect: 'a switch' },
  quiet: quietOption,
});

/** The flags that set a solver's own options, given or not (each solver's range and default apply later). */
export type SolverFlagValues = Omit<SolverOptions, keyof BaseSolverOptions | 'coeffs'>;

/** Every `adasde sample` flag: the command's own, the solvers' after --denoise_to_zero. */
export const sampleOptionTable = (() => {
  const entries = Object.entries(sampleBase);
  const at = entries.findIndex(([k]) => k === 'denoiseToZero') + 1;
  return Object.fromEntries([...entries.slice(0, at), ...Object.entries(solverFlagOptions()), ...entries.slice(at)]) as typeof sampleBase;
})();

export type SampleOptions = OptionsOf<typeof sampleBase> & SolverFlagValues;
