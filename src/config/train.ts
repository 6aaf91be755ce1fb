/** `adasde train` options, in the spelling of the reference's train.py. */
import { z } from 'zod';
import { boolFlag, device, guidanceType, intFlag, numFlag, optStr, posNumFlag, scheduleType } from './common.js';
import { defineOptions, type OptionsOf } from './options.js';

export const trainTable = defineOptions({
  datasetName: { flag: 'dataset_name', schema: optStr, help: 'reference dataset name (resolves the model inside --model_dir)', expect: 'a dataset name such as cifar10' },
  model: { flag: 'model', schema: optStr, help: 'denoiser ONNX file', expect: 'a path to an .onnx file' },
  modelDir: { flag: 'model_dir', schema: z.string(), default: './models', help: 'where --dataset_name models live', expect: 'a folder' },
  outdir: { flag: 'outdir', schema: z.string(), default: './exp', help: 'where numbered runs are written', expect: 'a folder' },
  totalKimg: { flag: 'total_kimg', schema: posNumFlag(), default: 10, help: 'training length in thousands of trajectories', expect: 'a positive number' },
  numSteps: { flag: 'num_steps', schema: intFlag(2, 100), default: 4, help: 'student time points N', expect: 'an integer >= 2' },
  samplerStu: { flag: 'sampler_stu', schema: z.enum(['adasde']), default: 'adasde', help: 'student solver', expect: 'adasde' },
  samplerTea: { flag: 'sampler_tea', schema: z.enum(['dpm', 'heun']), default: 'dpm', help: 'teacher solver', expect: 'dpm or heun' },
  M: { flag: 'M', schema: intFlag(0, 100), default: 3, help: 'points inserted between two student points for the teacher', expect: 'a non-negative integer' },
  guidanceType: { flag: 'guidance_type', schema: guidanceType, help: 'cfg or cg', expect: 'cfg or cg' },
  guidanceRate: { flag: 'guidance_rate', schema: numFlag(0), default: 0, help: 'guidance scale', expect: 'a non-negative number' },
  scheduleType: { flag: 'schedule_type', schema: scheduleType, default: 'time_uniform', help: 'time schedule', expect: 'one of polynomial, logsnr, time_uniform, discrete' },
  scheduleRho: { flag: 'schedule_rho', schema: posNumFlag(), default: 1, help: 'schedule exponent', expect: 'a positive number' },
  afs: { flag: 'afs', schema: boolFlag, default: true, kind: 'bool', help: 'analytic first step', expect: 'True or False' },
  scaleDir: { flag: 'scale_dir', schema: numFlag(0, 0.99), default: 0.05, help: 'bound of |scale_dir - 1| (0 disables)', expect: 'a number in [0, 0.99]' },
  scaleTime: { flag: 'scale_time', schema: numFlag(0, 0.99), default: 0.2, help: 'bound of |scale_time - 1| (0 disables)', expect: 'a number in [0, 0.99]' },
  gamma: { flag: 'gamma', schema: numFlag(0, 10), default: 0.02, help: 'gamma_max of the noise injection (0 disables)', expect: 'a non-negative number' },
  maxOrder: { flag: 'max_order', schema: intFlag(1, 4).optional(), help: 'multistep order (stored with the predictor)', expect: 'an integer from 1 to 4' },
  predictX0: { flag: 'predict_x0', schema: boolFlag, default: true, kind: 'bool', help: 'data prediction (stored with the predictor)', expect: 'True or False' },
  lowerOrderFinal: { flag: 'lower_order_final', schema: boolFlag, default: true, kind: 'bool', help: 'stored with the predictor', expect: 'True or False' },
  batch: { flag: 'batch', schema: intFlag(1, 1 << 16), default: 32, help: 'total batch size', expect: 'an integer >= 1' },
  batchGpu: { flag: 'batch-gpu', schema: intFlag(1, 1 << 16).optional(), help: 'limit batch size per model call', expect: 'an integer >= 1' },
  lr: { flag: 'lr', schema: posNumFlag(), default: 0.2, help: 'learning rate', expect: 'a positive number' },
  seed: { flag: 'seed', schema: intFlag(0, 2 ** 31 - 1).optional(), help: 'random seed (default: random)', expect: 'a non-negative integer' },
  desc: { flag: 'desc', schema: optStr, help: 'string appended to the run folder name', expect: 'a string' },
  nosubdir: { flag: 'nosubdir', schema: boolFlag, default: false, kind: 'switch', help: 'write into --outdir itself, no numbered run folder', expect: 'a switch' },
  tick: { flag: 'tick', schema: posNumFlag(), default: 1, help: 'progress interval in kimg', expect: 'a positive number' },
  snap: { flag: 'snap', schema: intFlag(1), default: 5, help: 'snapshot interval in ticks', expect: 'an integer >= 1' },
  dryRun: { flag: 'dry-run', short: '-n', schema: boolFlag, default: false, kind: 'switch', help: 'print the resolved options and exit', expect: 'a switch' },
  numPoints: { flag: 'num_points', schema: intFlag(1, 16), default: 1, help: 'parallel intermediate points K', expect: 'an integer from 1 to 16' },
  coslr: { flag: 'coslr', schema: boolFlag, default: false, kind: 'bool', help: 'cosine learning-rate annealing', expect: 'True or False' },
  fcn: { flag: 'fcn', schema: boolFlag, default: false, kind: 'bool', help: 'force scale_dir = 1 on the last interval', expect: 'True or False' },
  alpha: { flag: 'alpha', schema: numFlag(0), default: 20, help: 'weight of the final-step feature loss', expect: 'a non-negative number' },
  promptPath: { flag: 'prompt_path', schema: optStr, help: 'prompts for text-conditional models', expect: 'a path' },
  detector: { flag: 'detector', schema: optStr, help: 'feature extractor ONNX for the final-step loss (default models/inception-2015-12-05.onnx)', expect: 'a path to an .onnx file' },
  resume: { flag: 'resume', schema: optStr, help: 'continue a run folder (or its number) from its latest snapshot', expect: 'a run folder or number' },
  device: { flag: 'device', schema: device, default: 'cpu', help: 'cpu, cuda or cuda:N', expect: 'cpu, cuda or cuda:N' },
  threads: { flag: 'threads', schema: intFlag(0, 1024), default: 0, help: 'intra-op threads per process (0: onnxruntime default)', expect: 'a non-negative integer' },
  nprocPerNode: { flag: 'nproc_per_node', schema: intFlag(1, 1024), default: 1, help: 'data-parallel worker processes', expect: 'an integer >= 1' },
  quiet: { flag: 'quiet', schema: boolFlag, default: false, kind: 'switch', help: 'no progress output', expect: 'a switch' },
});

export type TrainOptions = OptionsOf<typeof trainTable>;
