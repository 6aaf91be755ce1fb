/**
 * A text-conditional latent model written by the TypeScript graph builder: a Gaussian
 * mixture over latents [4, 4, 4] whose component weights follow the prompt (the mean over
 * tokens of the `condition` states, see buildMixtureModel), a tiny text encoder over the
 * tiny CLIP vocabulary, and a decoder to [3, 8, 8] images, linked by `adasde.text_encoder`,
 * `adasde.tokenizer` and `adasde.decoder`. Closed forms of the encoder and decoder let the
 * tests check every stage.
 */
import { join } from 'node:path';
import { saveModel } from '../../src/onnx/builder.js';
import { buildDecoderModel, buildMixtureModel, buildTextEncoderModel, seededUniform } from '../support/models.js';
import type { MixtureParams } from '../../src/solvers/analytic.js';
import { TINY_BOS, TINY_EOS, tinyVocab, writeTinyTokenizer } from './tiny-vocab.js';

export const LATENT = [4, 4, 4] as const;
export const LATENT_DIM = 64;
export const IMAGE = [3, 8, 8] as const;
export const SEQ = 77;
export const EMB = 4;
export const VOCAB = Object.keys(tinyVocab()).length;
const K = 6;

function uniform(seed: number, n: number, scale: number): Float32Array {
  const u = seededUniform(seed);
  return Float32Array.from({ length: n }, () => (2 * u() - 1) * scale);
}

/** Token embeddings: special tokens 0 (so padding does not blur prompts), others of size ~3. */
export const EMBEDDING = (() => {
  const e = uniform(11, VOCAB * EMB, 3);
  for (const t of [TINY_BOS, TINY_EOS]) e.fill(0, t * EMB, (t + 1) * EMB);
  return e;
})();
export const POSITION = uniform(12, SEQ * EMB, 0.05);
export const DEC_W = uniform(13, 3 * LATENT[0], 0.8);
export const DEC_B = uniform(14, 3, 0.1);
/** [E, K] prompt -> component log-weight slopes. */
export const COND_LOGITS = Float64Array.from(uniform(15, EMB * K, 25));

export const MIXTURE: MixtureParams = {
  weights: Float64Array.from({ length: K }, () => 1),
  means: Float64Array.from({ length: K * LATENT_DIM }, (_, q) => 0.9 * Math.sin(1.3 * q + 2.1 * Math.floor(q / LATENT_DIM))),
  stds: Float64Array.from({ length: K }, (_, k) => 0.05 + 0.02 * k),
};

/** states[l] = emb[ids[l]] + pos[l] + mean_l' emb[ids[l']] (float64) for one row of ids. */
export function encodeClosedForm(ids: ArrayLike<number>): Float64Array {
  const out = new Float64Array(SEQ * EMB);
  const mean = new Float64Array(EMB);
  for (let l = 0; l < SEQ; l++) for (let e = 0; e < EMB; e++) mean[e]! += EMBEDDING[ids[l]! * EMB + e]! / SEQ;
  for (let l = 0; l < SEQ; l++) for (let e = 0; e < EMB; e++) out[l * EMB + e] = EMBEDDING[ids[l]! * EMB + e]! + POSITION[l * EMB + e]! + mean[e]!;
  return out;
}

/** image[c, y, x] = tanh(b[c] + sum_k W[c, k] z[k, y/2, x/2]) (float64) for one latent. */
export function decodeClosedForm(z: ArrayLike<number>): Float64Array {
  const [C, h, w] = LATENT;
  const out = new Float64Array(3 * 4 * h * w);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 2 * h; y++) {
      for (let x = 0; x < 2 * w; x++) {
        let acc = DEC_B[c]!;
        for (let k = 0; k < C; k++) acc += DEC_W[c * C + k]! * z[k * h * w + (y >> 1) * w + (x >> 1)]!;
        out[c * 4 * h * w + y * 2 * w + x] = Math.tanh(acc);
      }
    }
  }
  return out;
}

export interface TextModelFiles {
  dir: string;
  model: string;
  encoder: string;
  decoder: string;
  tokenizer: string;
}

/** Writes the denoiser and its companions into `dir`; `metadata` adds to or replaces the denoiser's metadata entries. */
export function writeTextModel(dir: string, opts: { metadata?: Record<string, string>; omit?: string[]; name?: string } = {}): TextModelFiles {
  const name = opts.name ?? 'txt';
  const files = {
    dir,
    model: join(dir, `${name}.onnx`),
    encoder: join(dir, `${name}.text_encoder.onnx`),
    decoder: join(dir, `${name}.decoder.onnx`),
    tokenizer: join(dir, `${name}.tokenizer`),
  };
  writeTinyTokenizer(files.tokenizer);
  saveModel(buildTextEncoderModel({ vocabSize: VOCAB, embedDim: EMB, seqLen: SEQ, embedding: EMBEDDING, position: POSITION }), files.encoder);
  saveModel(buildDecoderModel({ latent: LATENT, weight: DEC_W, bias: DEC_B }), files.decoder);
  saveModel(
    buildMixtureModel(MIXTURE, LATENT, {
      datasetName: 'txt',
      sigmaMin: 0.01,
      sigmaMax: 20,
      conditioning: { input: 'condition', seqLen: SEQ, embedDim: EMB, logits: COND_LOGITS },
      metadata: {
        'adasde.text_encoder': `${name}.text_encoder.onnx`,
        'adasde.tokenizer': `${name}.tokenizer`,
        'adasde.decoder': `${name}.decoder.onnx`,
        ...(opts.metadata ?? {}),
      },
      omit: opts.omit ?? [],
    }),
    files.model,
  );
  return files;
}
