/**
 * Which contract of the README an ONNX file is meant for: what `adasde inspect` checks it
 * against, and what a command that was handed the wrong kind of file names in its message.
 * The metadata decides first (`adasde.role`, `adasde.kind`), then the names of the inputs
 * and outputs. A new kind of model file adds its `ContractName` and one rule to `RULES`
 * (before the shape rules when its metadata declares it), and `inspect` a report for it
 * (src/app/inspect.ts).
 */
import { REQUIRED_KEYS } from './model.js';
import type { ModelSignature } from './session.js';

export type ContractName = 'denoiser' | 'decoder' | 'text_encoder' | 'classifier' | 'feature extractor' | 'fused sampler' | 'derived graph' | 'tokenizer';

/** `adasde.role` of the graphs src/graph/gradient.ts derives from a model (caches, not exports). */
export const DERIVED_ROLES = ['classifier_gradient', 'denoiser_vjp', 'feature_vjp', 'decoder_vjp'] as const;

/** What the rules look at: the metadata and the sets of input and output names. */
interface SignatureView {
  meta: Readonly<Record<string, string>>;
  inputs: ReadonlySet<string>;
  outputs: ReadonlySet<string>;
  /** Any of the denoiser's required `adasde.*` keys is present. */
  hasDenoiserMeta: boolean;
}

interface Rule {
  contract: ContractName;
  matches(s: SignatureView): boolean;
}

/** Tried in order; the first rule that matches names the contract. */
const RULES: readonly Rule[] = [
  // Declared in the metadata. A fused sampler (adasde fuse) also takes z and writes images,
  // so its marker is ruled on before any shape rule.
  { contract: 'fused sampler', matches: (s) => s.meta['adasde.fused.format'] !== undefined },
  // Derived graphs keep their source's inputs and outputs (and metadata), so their role comes first.
  { contract: 'derived graph', matches: (s) => (DERIVED_ROLES as readonly string[]).includes(s.meta['adasde.role'] ?? '') },
  { contract: 'decoder', matches: (s) => s.meta['adasde.role'] === 'decoder' },
  { contract: 'text_encoder', matches: (s) => s.meta['adasde.role'] === 'text_encoder' },
  { contract: 'classifier', matches: (s) => s.meta['adasde.role'] === 'classifier' },
  {
    contract: 'feature extractor',
    matches: (s) => s.meta['adasde.role'] === 'feature_extractor' || s.meta['adasde.role'] === 'detector' || s.meta['adasde.kind'] === 'detector' || s.meta['adasde.kind'] === 'features',
  },
  // By the names of inputs and outputs.
  { contract: 'feature extractor', matches: (s) => s.inputs.has('images') && !s.hasDenoiserMeta },
  { contract: 'text_encoder', matches: (s) => s.inputs.has('input_ids') },
  { contract: 'decoder', matches: (s) => (s.inputs.has('z') || s.inputs.has('latents')) && !s.inputs.has('x') },
  { contract: 'classifier', matches: (s) => s.outputs.has('log_probs') && !s.outputs.has('denoised') },
  { contract: 'denoiser', matches: (s) => s.inputs.has('x') || s.inputs.has('sigma') || s.outputs.has('denoised') || s.hasDenoiserMeta },
];

/** Which contract a file is meant for, or undefined when it matches none. */
export function recognise(sig: ModelSignature): ContractName | undefined {
  const view: SignatureView = {
    meta: sig.metadata,
    inputs: new Set(sig.inputs.map((s) => s.name)),
    outputs: new Set(sig.outputs.map((s) => s.name)),
    hasDenoiserMeta: REQUIRED_KEYS.some((k) => sig.metadata[k] !== undefined),
  };
  return RULES.find((r) => r.matches(view))?.contract;
}

