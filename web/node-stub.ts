/**
 * What the page's bundle gets for `node:fs` and `node:os` (tools/build-web.mjs aliases them
 * here). The page decodes a sampler's header from bytes it fetched (src/onnx/proto.ts's
 * MemorySource), so the file-reading half of that module is never called in the browser;
 * reaching it is a bug, said in one line.
 */
function unavailable(name: string): never {
  throw new Error(`${name} is not available in the browser`);
}
// Typed as node's, so that src/onnx/proto.ts type-checks against this module as well.
export const openSync = (..._: unknown[]): number => unavailable('fs.openSync');
export const fstatSync = (..._: unknown[]): { size: number } => unavailable('fs.fstatSync');
export const readSync = (..._: unknown[]): number => unavailable('fs.readSync');
export const closeSync = (..._: unknown[]): void => unavailable('fs.closeSync');
/** Browsers run on little-endian hosts only (WebAssembly is little-endian by definition). */
export const endianness = (): 'LE' => 'LE';
