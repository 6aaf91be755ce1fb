/**
 * The feature extractor behind `adasde fid`, and what its distance is called.
 *
 * The default detector is NVIDIA's `inception-2015-12-05` exported to ONNX by
 * tools/export_inception.py; its distance is the FID. A bundled small feature network
 * (metadata `adasde.kind=features`) gives a Frechet distance too, but not one comparable
 * with published FIDs, so every output names it the "bundled-feature distance"
 * (`fd_bundled` in JSON), never FID. Without `adasde.kind=features` the metadata key
 * `adasde.metric` decides (`fid` or `fd_bundled`); without that, 2048 features mean FID.
 */
import { existsSync, statSync } from 'node:fs';
import { UsageError } from '../core/errors.js';
import { readModelSignature, type ModelSignature } from '../runtime/session.js';
import { recognise } from '../runtime/recognise.js';

export const exportCommand = (out: string): string =>
  `python3 tools/export_inception.py --pkl inception-2015-12-05.pkl --out ${out}`;

export type MetricKey = 'fid' | 'fd_bundled';

export interface Metric {
  /** JSON key. */
  key: MetricKey;
  /** For messages: `FID`, `bundled-feature distance`. */
  name: string;
}

export const METRICS: Record<MetricKey, Metric> = {
  fid: { key: 'fid', name: 'FID' },
  fd_bundled: { key: 'fd_bundled', name: 'bundled-feature distance' },
};

/** Inception-v3 pool features. */
export const INCEPTION_DIM = 2048;

/** The metric of a detector with metadata `meta` and feature dimension `dim`. */
export function metricOf(meta: Readonly<Record<string, string>>, dim: number | undefined, file: string): Metric {
  if (meta['adasde.kind'] === 'features') return METRICS.fd_bundled;
  const m = meta['adasde.metric'];
  if (m !== undefined) {
    if (m === 'fid' || m === 'fd_bundled') return METRICS[m];
    throw new UsageError(`${file}: metadata adasde.metric='${m}' is not fid or fd_bundled`);
  }
  return dim === INCEPTION_DIM ? METRICS.fid : METRICS.fd_bundled;
}

/** Metric of two statistics files compared directly (no detector): by dimension. */
export const metricOfDim = (dim: number): Metric => (dim === INCEPTION_DIM ? METRICS.fid : METRICS.fd_bundled);

export interface DetectorInfo {
  file: string;
  signature: ModelSignature;
  /** Feature dimension when the graph fixes it. */
  dim: number | undefined;
}

/**
 * Check that the detector exists and read its signature (no session yet). A missing file is
 * a one-line UsageError that gives the export command.
 */
export function inspectDetector(file: string): DetectorInfo {
  if (!existsSync(file)) {
    throw new UsageError(
      `--detector ${file}: no such file; export NVIDIA's inception-2015-12-05 detector to ONNX with \`${exportCommand(file)}\` (README, "## FID"), or pass --detector FILE`,
    );
  }
  if (statSync(file).isDirectory()) throw new UsageError(`--detector ${file}: is a folder, not an ONNX file`);
  const signature = readModelSignature(file);
  // Name the contract a wrong file satisfies (the recognition `adasde inspect` uses) rather
  // than complain about its output's dimension later.
  const contract = recognise(signature);
  if (contract === 'denoiser') {
    throw new UsageError(`--detector ${file}: is a denoiser (x, sigma -> denoised), not a feature extractor (images -> features)`);
  }
  if (contract === 'decoder' || contract === 'text_encoder' || contract === 'classifier') {
    throw new UsageError(`--detector ${file}: is a ${contract.replace('_', ' ')} companion, not a feature extractor (images -> features)`);
  }
  const out = signature.outputs.find((s) => s.name === 'features') ?? (signature.outputs.length === 1 ? signature.outputs[0] : undefined);
  const d = out?.dims?.[1];
  return { file, signature, dim: typeof d === 'number' ? d : undefined };
}
