/**
 * Gradient accuracy of the finite-difference schemes on the bundled float32 U-Net
 * (models/cifar10-tiny-edm.onnx): one NFE-5 student trajectory (num_steps 4, K 1, AFS) from a
 * random start, the L2 loss of every interval against fixed targets, and the gradient of each
 * with respect to every raw coefficient computed with forward differences at several relative
 * steps and with central differences, against the central-difference reference at 1e-3.
 *
 *   npm run build && node dist/bench/jvp_bundled.js [--batch 4] [--model models/cifar10-tiny-edm.onnx]
 */
import { loadDenoiserModel } from '../src/runtime/model.js';
import { SeedStream } from '../src/rng/streams.js';
import type { CoefficientBounds } from '../src/solvers/coefficients.js';
import { getSchedule } from '../src/solvers/schedule.js';
import type { JvpScheme } from '../src/train/jvp.js';
import { studentLossGradients } from '../test/train/student-gradients.js';
import { elementCount } from '../src/core/shape.js';

const arg = (name: string, def: string) => {
  const k = process.argv.indexOf(`--${name}`);
  return k > 0 ? process.argv[k + 1]! : def;
};
const B = Number(arg('batch', '4'));
const model = await loadDenoiserModel(arg('model', 'models/cifar10-tiny-edm.onnx'), { threads: 2 });
const dim = elementCount(model.sampleShape);
const N = 4;
const bounds: CoefficientBounds = { scaleDir: 0.05, scaleTime: 0.2, gamma: 0.01, gammaMin: 2e-4, fcn: false };
const tSteps = getSchedule({ numSteps: N, sigmaMin: model.meta.sigmaMin, sigmaMax: model.meta.sigmaMax, type: 'time_uniform', rho: 1 });
const seeds = Array.from({ length: B }, (_, k) => 1000 + k);
// Fixed targets: the student's own states shifted by a random offset, so every interval's
// loss has a non-trivial gradient.
const g = new SeedStream(5, 'init');

const gradients = (scheme: JvpScheme, relStep: number, targets?: Float64Array[]) =>
  studentLossGradients({ denoise: (req) => model.denoise(req), dim, tSteps, bounds, seeds, scheme, relStep, targets });

const base = await gradients('central', 1e-3);
const targets = base.xs.map((x) => x.map((v) => v + 0.05 * g.normal()));
const ref = await gradients('central', 1e-3, targets);
const relErr = (a: Float64Array, b: Float64Array) => Math.sqrt(a.reduce((s, v, k) => s + (v - b[k]!) ** 2, 0) / b.reduce((s, v) => s + v * v, 0));
console.log(`bundled U-Net, NFE 5, batch ${B}: relative error of each interval's loss gradient against central differences at 1e-3\n`);
console.log('| scheme | rel. step | model rows | interval 0 | interval 1 | interval 2 |\n|---|---|---|---|---|---|');
for (const [scheme, step] of [['central', 3e-4], ['central', 3e-3], ['forward', 3e-3], ['forward', 1e-3], ['forward', 5e-4], ['forward', 2.5e-4], ['forward', 1.25e-4], ['forward', 6e-5]] as const) {
  const r = await gradients(scheme, step, targets);
  const errs = r.grads.map((gr, i) => relErr(gr, ref.grads[i]!).toExponential(1));
  console.log(`| ${scheme} | ${step} | ${r.rows} | ${errs.join(' | ')} |`);
}
console.log(`| central (reference) | 0.001 | ${ref.rows} | - | - | - |`);
await model.dispose();
