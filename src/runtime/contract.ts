/**
 * Building blocks of the contract checks shared by the loaders (model.ts, companions.ts)
 * and `adasde inspect`. Every check reports its problem as one line through a sink: the
 * loaders throw a UsageError on the first one, inspect collects them all and keeps going.
 */
import { UsageError } from '../core/errors.js';
import type { Dim } from '../onnx/proto.js';
import { formatDims, type ModelSignature, type TensorSignature } from './session.js';

/** Receives one-line contract problems. */
export type ProblemSink = (message: string) => void;

/** The loaders' sink: the first problem is a UsageError. */
export const throwUsage: ProblemSink = (message) => {
  throw new UsageError(message);
};

/** A sink that keeps every problem (for `inspect`). */
export function collector(): { sink: ProblemSink; problems: string[] } {
  const problems: string[] = [];
  return { problems, sink: (m) => void problems.push(m) };
}

export type FloatKind = 'float32' | 'float16';

/** The element type of a float input/output; reports other types (and answers float32). */
export function floatKind(file: string, s: TensorSignature, role: string, report: ProblemSink): FloatKind {
  if (s.dtype === 'float32' || s.dtype === 'float16') return s.dtype;
  report(`${file}: ${role} '${s.name}' has dtype ${s.dtype}; expected float32 or float16`);
  return 'float32';
}

/** An expected dimension: a fixed size, the batch dim, or any size (shown by its role's name). */
export type Want = number | 'batch' | { any: string };

/**
 * Checks `s.dims` against `want`; `why` explains where fixed sizes come from. Returns the
 * model's batch dimension (a number when fixed, undefined when dynamic or on a problem).
 */
export function checkDims(file: string, role: string, s: TensorSignature, want: readonly Want[], why: string, report: ProblemSink): number | undefined {
  // Unknown rank: nothing to check statically; the run itself will tell.
  if (!s.dims) return undefined;
  const dims = s.dims;
  const sameRank = dims.length === want.length;
  let bad = !sameRank;
  let batch: number | undefined;
  if (sameRank) {
    want.forEach((w, i) => {
      const d = dims[i];
      if (typeof d !== 'number') return; // symbolic or unknown: dynamic
      if (w === 'batch') {
        if (d <= 0) bad = true;
        else batch = d;
      } else if (typeof w === 'number' && d !== w) bad = true;
    });
  }
  if (!bad) return batch;
  const shown = want.map((w, i) => {
    if (w === 'batch') return typeof dims[0] === 'string' ? dims[0] : 'N';
    if (typeof w === 'number') return String(w);
    const d = sameRank ? dims[i] : undefined;
    return d === undefined || d === null ? w.any : String(d);
  });
  report(`${file}: ${role} '${s.name}' has shape ${formatDims(dims)}; expected [${shown.join(',')}]${why ? ` (${why})` : ''}`);
  return undefined;
}

/** One fixed batch size across inputs and outputs, or undefined when all are dynamic. */
export function commonBatch(file: string, batches: readonly (number | undefined)[], what: string, report: ProblemSink): number | undefined {
  const fixed = [...new Set(batches.filter((b): b is number => b !== undefined))];
  if (fixed.length > 1) {
    report(`${file}: ${what} disagree on a fixed batch size (${fixed.join(' vs ')})`);
    return undefined;
  }
  return fixed[0];
}

export function findInput(sig: ModelSignature, name: string): TensorSignature | undefined {
  return sig.inputs.find((s) => s.name === name);
}

export function findOutput(sig: ModelSignature, name: string): TensorSignature | undefined {
  return sig.outputs.find((s) => s.name === name);
}

/** `name dtype [dims]` for listings. */
export function describeTensor(s: TensorSignature): string {
  return `${s.name} ${s.dtype} ${formatDims(s.dims)}`;
}

/** The fixed size of dimension `i`, when the graph declares one. */
export function fixedDim(dims: readonly Dim[] | undefined, i: number): number | undefined {
  const d = dims?.[i];
  return typeof d === 'number' && d > 0 ? d : undefined;
}
