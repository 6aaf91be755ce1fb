/** The metadata key and value that mark a fused sampler, and the prefix of its other keys. */
export const FUSED_FORMAT_KEY = 'adasde.fused.format';
export const FUSED_FORMAT = 'adasde-fused-sampler';
export const FUSED_PREFIX = 'adasde.fused.';
