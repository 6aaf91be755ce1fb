/** `adasde fuse` options: the solver and model flags of `adasde sample`, plus the output file. */
import { z } from 'zod';
import { defineOptions, boolFlag, optStr, type OptionsOf } from './options.js';
import { solverFlagOptions } from './common.js';
import { sampleBase, type SolverFlagValues } from './sample.js';

const pick = <K extends keyof typeof sampleBase>(...keys: K[]): Pick<typeof sampleBase, K> =>
  Object.fromEntries(keys.map((k) => [k, sampleBase[k]])) as Pick<typeof sampleBase, K>;

const fuseBase = defineOptions({
  ...pick('model', 'modelPath', 'datasetName', 'modelDir', 'predictorPath', 'expDir', 'solver', 'numSteps', 'scheduleType', 'scheduleRho', 'tSteps', 'sigmaMin', 'sigmaMax', 'afs', 'denoiseToZero'),
  ...pick('guidanceType', 'guidanceRate'),
  out: { flag: 'out', schema: optStr, help: 'the fused sampler to write (default <dataset>-<solver>-nfe<k>.onnx)', expect: 'a path to an .onnx file' },
  subgraphs: {
    flag: 'subgraphs',
    schema: boolFlag,
    default: false,
    kind: 'bool',
    help: 'each model evaluation in a subgraph of its own (an If): sessions start several times faster, runs are somewhat slower (for pages and short jobs)',
    expect: 'True or False',
  },
  optimize: {
    flag: 'optimize',
    schema: z.enum(['auto', 'none', 'basic', 'extended']),
    default: 'auto',
    help: "onnxruntime's graph rewrites applied to the model once, before fusing: basic (constant and shape folding; standard operators), extended (also onnxruntime's fused operators: onnxruntime only), none; auto: basic for --subgraphs True with a float32 model (such files are loaded without optimisations), else none",
    expect: 'auto, none, basic or extended',
  },
  dryRun: sampleBase.dryRun,
  quiet: sampleBase.quiet,
});

/** Every `adasde fuse` flag: the command's own, the solvers' after --denoise_to_zero (as `adasde sample`). */
export const fuseOptionTable = (() => {
  const entries = Object.entries(fuseBase);
  const at = entries.findIndex(([k]) => k === 'denoiseToZero') + 1;
  return Object.fromEntries([...entries.slice(0, at), ...Object.entries(solverFlagOptions()), ...entries.slice(at)]) as typeof fuseBase;
})();

export type FuseOptions = OptionsOf<typeof fuseBase> & SolverFlagValues;
