/**
 * Adam (Kingma & Ba) with PyTorch's semantics: per-tensor step counts, bias correction,
 * eps added after the square root. One tensor per raw-parameter table.
 */
export interface AdamTensorState {
  m: number[][];
  v: number[][];
  step: number;
}

export interface AdamConfig {
  beta1: number;
  beta2: number;
  eps: number;
}

export const ADAM_DEFAULTS: AdamConfig = { beta1: 0.9, beta2: 0.999, eps: 1e-8 };

export function adamInit(shape: number[][]): AdamTensorState {
  return { m: shape.map((r) => r.map(() => 0)), v: shape.map((r) => r.map(() => 0)), step: 0 };
}

/** In-place update of `param` with gradient `grad` at learning rate `lr`. */
export function adamStep(param: number[][], grad: number[][], st: AdamTensorState, lr: number, cfg: AdamConfig = ADAM_DEFAULTS): void {
  st.step += 1;
  const bc1 = 1 - cfg.beta1 ** st.step;
  const bc2 = 1 - cfg.beta2 ** st.step;
  for (let i = 0; i < param.length; i++) {
    for (let j = 0; j < param[i]!.length; j++) {
      const g = grad[i]![j]!;
      const m = cfg.beta1 * st.m[i]![j]! + (1 - cfg.beta1) * g;
      const v = cfg.beta2 * st.v[i]![j]! + (1 - cfg.beta2) * g * g;
      st.m[i]![j] = m;
      st.v[i]![j] = v;
      param[i]![j] = param[i]![j]! - ((lr / bc1) * m) / (Math.sqrt(v) / Math.sqrt(bc2) + cfg.eps);
    }
  }
}

/**
 * Cosine annealing per batch (torch CosineAnnealingLRScheduler's closed form) from `lr` to
 * `etaMin` over `tMax` batches.
 */
export function cosineLr(lr: number, etaMin: number, t: number, tMax: number): number {
  return etaMin + ((lr - etaMin) * (1 + Math.cos((Math.PI * t) / tMax))) / 2;
}

/** torch.nan_to_num(g, nan=0, posinf=1e5, neginf=-1e5) */
export function sanitizeGrad(g: number): number {
  if (Number.isNaN(g)) return 0;
  if (g === Infinity) return 1e5;
  if (g === -Infinity) return -1e5;
  return g;
}
