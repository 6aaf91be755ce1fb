/**
 * `adasde table`: flags and the table specification file (JSON or YAML). The file gives
 * everything; flags given on the command line override its top-level fields.
 */
import { z } from 'zod';
import { boolFlag, DEFAULT_DETECTOR, device, deviceOption, intFlag, optStr, quietOption, solverRowFields, SOLVERS, threadsOption } from './common.js';
import { SCHEDULE_TYPES } from '../solvers/schedule.js';
import { defineOptions, type OptionsOf } from './options.js';

/** One row of the table: a solver with its options (reference spelling). */
const rowFields = {
  solver: z.enum(SOLVERS),
  /** Row name; also the key looked up in the published table with --compare. */
  label: z.string().min(1).optional(),
  schedule_type: z.enum(SCHEDULE_TYPES).optional(),
  schedule_rho: z.number().positive().optional(),
  /** Unset: off when the NFE is reachable without it, else on (heun/dpm at odd NFE). */
  afs: z.boolean().optional(),
  /** AdaSDE: predictor per NFE ("5": "00002" or a path); unset NFEs are looked up in exp/. */
  predictors: z.record(z.string(), z.string()).optional(),
  /** AdaSDE lookup: runs with noise injection (gamma > 0, default) or without. */
  noise: z.boolean().optional(),
};

/** The row fields above plus every solver's own options under their flag names (max_order, deis_mode, ...). */
export const rowSchema = z.object({ ...rowFields, ...solverRowFields() }).strict();

/** A row: the fixed fields typed, the solvers' option fields by flag name (checked per solver in src/app/table-plan.ts). */
export type TableRow = z.infer<z.ZodObject<typeof rowFields>> & { readonly [flag: string]: unknown };


export const tableSpecSchema = z
  .object({
    model: z.string().optional(),
    dataset_name: z.string().optional(),
    model_dir: z.string().optional(),
    exp_dir: z.string().optional(),
    nfe: z.array(z.number().int().min(1)).min(1).optional(),
    seeds: z.union([z.string(), z.array(z.number().int().nonnegative())]).optional(),
    detector: z.string().optional(),
    ref: z.string().optional(),
    rows: z.array(rowSchema).min(1).optional(),
    batch: z.number().int().min(1).optional(),
    keep_images: z.boolean().optional(),
    compare: z.string().optional(),
    compare_dataset: z.string().optional(),
  })
  .strict();

export type TableSpec = z.infer<typeof tableSpecSchema>;

const nfeList = z.preprocess(
  (v) => (typeof v === 'string' ? v.split(',').map((s) => (s.trim() === '' ? NaN : Number(s))) : v),
  z.array(z.number().int().min(1)).min(1).optional(),
);
const solverList = z.preprocess(
  (v, ctx) => {
    if (typeof v !== 'string') return v;
    const names = v.split(',').map((s) => s.trim());
    // Name the offending entry: in a list of five, "expected a list of solvers" does not say which.
    const bad = names.find((n) => !(SOLVERS as readonly string[]).includes(n));
    if (bad !== undefined) {
      ctx.addIssue({ code: 'custom', message: `${bad === '' ? 'an empty entry' : `"${bad}"`} is not a solver (expected a comma-separated list of ${SOLVERS.join(', ')})` });
      return z.NEVER;
    }
    return names;
  },
  z.array(z.enum(SOLVERS)).min(1).optional(),
);

export const tableOptionTable = defineOptions({
  spec: { flag: 'spec', schema: optStr, help: 'table specification, JSON or YAML (README, "adasde table")', expect: 'a path to a .json or .yaml file' },
  model: { flag: 'model', schema: optStr, help: 'denoiser ONNX file', expect: 'a path to an .onnx file' },
  datasetName: { flag: 'dataset_name', schema: optStr, help: 'reference dataset name (resolves the model inside --model_dir)', expect: 'a dataset name' },
  modelDir: { flag: 'model_dir', schema: optStr, help: 'where --dataset_name models live (default ./models)', expect: 'a folder' },
  expDir: { flag: 'exp_dir', schema: optStr, help: 'where AdaSDE predictors are looked up (default ./exp)', expect: 'a folder' },
  solvers: { flag: 'solvers', schema: solverList, help: 'rows with default options, e.g. euler,dpmpp,unipc,adasde (overrides the spec rows)', expect: 'a comma-separated list of solvers' },
  nfe: { flag: 'nfe', schema: nfeList, help: 'columns, e.g. 3,5,7,9', expect: 'a comma-separated list of positive integers' },
  seeds: { flag: 'seeds', schema: optStr, help: 'seeds of every cell (default 0-49999)', expect: 'a seed list like 0-49999' },
  detector: { flag: 'detector', schema: optStr, help: `feature extractor ONNX (default ${DEFAULT_DETECTOR})`, expect: 'a path to an .onnx file' },
  ref: { flag: 'ref', schema: optStr, help: 'reference statistics .npz', expect: 'a path to an .npz file' },
  outdir: { flag: 'outdir', schema: optStr, help: 'where cells and the table are stored (default tables/<dataset>)', expect: 'a folder' },
  batch: { flag: 'batch', schema: intFlag(1, 1 << 16).optional(), help: 'images per model call (default 64)', expect: 'an integer >= 1' },
  keepImages: { flag: 'keep_images', schema: boolFlag.optional(), kind: 'bool', helpDefault: "False, or the spec's keep_images", help: 'also write every cell\'s PNGs', expect: 'True or False' },
  compare: { flag: 'compare', schema: optStr, help: 'published numbers to print beside the measured ones ("published" = the paper\'s table)', expect: 'a path or "published"' },
  compareDataset: { flag: 'compare_dataset', schema: optStr, help: 'dataset key in the --compare file (default: the model\'s dataset)', expect: 'a dataset name' },
  device: deviceOption,
  threads: threadsOption,
  nprocPerNode: { flag: 'nproc_per_node', schema: intFlag(1, 1024), default: 1, help: 'worker processes sharing every cell\'s seeds', expect: 'an integer >= 1' },
  dryRun: { flag: 'dry-run', short: '-n', schema: boolFlag, default: false, kind: 'switch', help: 'print every cell\'s resolution and whether it is stored, and exit without writing anything', expect: 'a switch' },
  quiet: quietOption,
});

export type TableOptions = OptionsOf<typeof tableOptionTable>;
