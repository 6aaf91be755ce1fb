#!/usr/bin/env python3
"""Self-test of tools/export_inception.py on stand-in detectors (no download, no GPU).

    /usr/bin/python3 tools/test_export_inception.py [--keep DIR]

Needs Debian's python3-torch and python3-onnx, and node with the repository's
onnxruntime-node (npm install). The stand-ins have the NVIDIA detector's interface:
`forward(img, return_features=False, use_fp16=False, no_output_bias=False)` on uint8-valued
NCHW images of any size, an internal resize to 299 x 299, then layers giving [N, 2048]
features (or logits without return_features). Two resize styles: F.interpolate (bilinear)
and the TensorFlow-emulating affine_grid + grid_sample that NVIDIA's detector uses. Each is
wrapped the ways the real file may come: a TorchScript file (--torchscript), a pickle of
the module class (--pkl with --repo, like the EDM/StyleGAN3 pickles that need their code
base), and a pickle that rebuilds a TorchScript module (--pkl).

Every export is run by the exporter's command line, checked with onnx.checker, its
contract (names, dynamic dims, metadata) inspected, and its outputs compared with PyTorch
on float and uint8 inputs of several sizes. ONNX execution: onnx.reference when this onnx
has it (>= 1.13; Debian bookworm ships 1.12), and always onnxruntime-node, the runtime
adasde itself uses. Exit code 1 on any failure.
"""
import argparse
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
EXPORTER = os.path.join(HERE, 'export_inception.py')
TOL = 1e-4  # max |onnx - torch| <= TOL * max(1, max |torch|), float32 with reordered sums


class StandInBase(torch.nn.Module):
    """Tiny conv net with the detector interface; 2048 features after global average pooling."""

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1 = torch.nn.Conv2d(3, 16, 5, stride=4, padding=2)  # 299 -> 75
        self.conv2 = torch.nn.Conv2d(16, 32, 3, stride=3, padding=1)  # 75 -> 25
        self.conv3 = torch.nn.Conv2d(32, 2048, 1)
        self.fc = torch.nn.Linear(2048, 1008)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 / max(1, p[0].numel()) ** 0.5))

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, img: torch.Tensor, return_features: bool = False, use_fp16: bool = False,
                no_output_bias: bool = False) -> torch.Tensor:
        batch_size, channels, height, width = img.shape
        assert channels == 3
        x = img.to(torch.float16 if use_fp16 else torch.float32)
        x = self.resize(x)
        x = (x - 128) / 128
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        features = x.mean(dim=[2, 3])
        if return_features:
            return features
        logits = self.fc(features)
        if no_output_bias:
            logits = logits - self.fc.bias
        return logits


class InterpolateStandIn(StandInBase):
    def resize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] != 299 or x.shape[3] != 299:
            x = F.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False)
        return x


class GridSampleStandIn(StandInBase):
    def resize(self, x: torch.Tensor) -> torch.Tensor:
        # Emulate tf.image.resize_bilinear(x, [299, 299]) as NVIDIA's detector does.
        batch_size, channels, height, width = x.shape
        theta = torch.eye(2, 3, device=x.device)
        theta[0, 2] += theta[0, 0] / width - theta[0, 0] / 299
        theta[1, 2] += theta[1, 1] / height - theta[1, 1] / 299
        theta = theta.to(x.dtype).unsqueeze(0).repeat([batch_size, 1, 1])
        grid = F.affine_grid(theta, [batch_size, channels, 299, 299], align_corners=False)
        return F.grid_sample(x, grid, mode='bilinear', padding_mode='border', align_corners=False)


# Pickles must name an importable module, as the real ones name torch_utils / dnnlib.
for _cls in (StandInBase, InterpolateStandIn, GridSampleStandIn):
    _cls.__module__ = 'test_export_inception'


def torchscript_from_bytes(data):
    return torch.jit.load(io.BytesIO(data))


torchscript_from_bytes.__module__ = 'test_export_inception'


class PickledTorchScript:
    """Pickles to a call that rebuilds a TorchScript module (a 'pickled TorchScript module')."""

    def __init__(self, script_module):
        buf = io.BytesIO()
        torch.jit.save(script_module, buf)
        self.data = buf.getvalue()

    def __reduce__(self):
        return (torchscript_from_bytes, (self.data,))


PickledTorchScript.__module__ = 'test_export_inception'


NODE_RUNNER = r"""
import { readFileSync, writeFileSync } from 'node:fs';
import ort from 'onnxruntime-node';
const [model, spec] = process.argv.slice(-2);
const cases = JSON.parse(readFileSync(spec, 'utf8'));
const session = await ort.InferenceSession.create(model);
const info = { inputs: session.inputNames, outputs: session.outputNames };
for (const c of cases) {
  const buf = readFileSync(c.input);
  const x = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  const out = await session.run({ images: new ort.Tensor('float32', x, c.shape) });
  const f = out.features;
  writeFileSync(c.output, Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength));
  c.dims = f.dims;
}
console.log(JSON.stringify({ info, cases }));
"""


def run_ort(model_path, inputs, workdir):
    cases = []
    for k, x in enumerate(inputs):
        ip = os.path.join(workdir, f'in{k}.f32')
        x.astype('<f4').tofile(ip)
        cases.append({'input': ip, 'shape': list(x.shape), 'output': os.path.join(workdir, f'out{k}.f32')})
    spec = os.path.join(workdir, 'cases.json')
    with open(spec, 'w') as fh:
        json.dump(cases, fh)
    r = subprocess.run(['node', '--input-type=module', '-e', NODE_RUNNER, model_path, spec],
                       cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f'onnxruntime-node failed: {r.stderr.strip()}')
    res = json.loads(r.stdout.strip().splitlines()[-1])
    return [np.fromfile(c['output'], '<f4').reshape(c['dims']) for c in res['cases']], res['info']


def reference_evaluator():
    try:
        from onnx.reference import ReferenceEvaluator  # onnx >= 1.13
        return ReferenceEvaluator
    except ImportError:
        return None


def check_contract(model_path, fixed=False):
    import onnx
    m = onnx.load(model_path)
    onnx.checker.check_model(m)
    assert [i.name for i in m.graph.input] == ['images'], 'input name'
    assert [o.name for o in m.graph.output] == ['features'], 'output name'
    it = m.graph.input[0].type.tensor_type
    assert it.elem_type == onnx.TensorProto.FLOAT, 'images must be float32'
    dims = [d.dim_param or d.dim_value for d in it.shape.dim]
    assert dims[1] == 3 and isinstance(dims[0], str), f'images dims {dims}'
    if not fixed:
        assert all(isinstance(d, str) for d in (dims[2], dims[3])), f'H, W should be dynamic: {dims}'
    od = [d.dim_param or d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim]
    assert isinstance(od[0], str) and od[1] == 2048, f'features dims {od}'
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta.get('adasde.kind') == 'detector' and meta.get('adasde.feature_dim') == '2048', meta
    assert 'adasde.source_sha256' in meta
    return sorted({n.op_type for n in m.graph.node}), dims


def compare(name, got, want):
    scale = max(1.0, float(np.abs(want).max()))
    err = float(np.abs(got - want).max()) / scale
    ok = got.shape == want.shape and err <= TOL
    print(f'  {name}: shape {tuple(got.shape)} max rel. err {err:.2e} {"ok" if ok else "FAIL"}')
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--keep', help='write the exports here instead of a temporary folder')
    args = ap.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix='adasde-inception-')
    os.makedirs(work, exist_ok=True)
    sys.modules.setdefault('test_export_inception', sys.modules[__name__])
    rng = np.random.default_rng(0)
    float_inputs = [
        rng.uniform(0, 255, (2, 3, 256, 256)).astype(np.float32),  # fractional pixel values
        rng.uniform(0, 255, (1, 3, 299, 299)).astype(np.float32),  # exactly the internal size
        rng.uniform(0, 255, (3, 3, 200, 330)).astype(np.float32),  # non-square, another batch
    ]
    u8 = rng.integers(0, 256, (2, 3, 64, 48), dtype=np.uint8)
    evaluator = reference_evaluator()
    print(f'torch {torch.__version__}; onnx.reference {"available" if evaluator else "not available (onnx < 1.13)"}')

    failures = []
    for kind in ('interpolate', 'gridsample'):
        cls = InterpolateStandIn if kind == 'interpolate' else GridSampleStandIn
        det = cls(seed=1 if kind == 'interpolate' else 2).eval()
        scripted = torch.jit.script(det)
        sources = {}
        p = os.path.join(work, f'{kind}.pt')
        torch.jit.save(scripted, p)
        sources['torchscript'] = ['--torchscript', p]
        p = os.path.join(work, f'{kind}-module.pkl')
        with open(p, 'wb') as fh:
            pickle.dump(det, fh)
        sources['pickled module'] = ['--pkl', p, '--repo', HERE]
        p = os.path.join(work, f'{kind}-ts.pkl')
        with open(p, 'wb') as fh:
            pickle.dump(PickledTorchScript(scripted), fh)
        sources['pickled TorchScript'] = ['--pkl', p, '--repo', HERE]

        with torch.no_grad():
            want = [det(torch.from_numpy(x), return_features=True).numpy() for x in float_inputs]
            want_u8 = det(torch.from_numpy(u8), return_features=True).numpy()
        for label, argv in sources.items():
            out = os.path.join(work, f'{kind}-{label.replace(" ", "-")}.onnx')
            print(f'{kind} / {label}:')
            r = subprocess.run([sys.executable, EXPORTER, *argv, '--out', out], capture_output=True, text=True)
            if r.returncode != 0:
                print(r.stdout + r.stderr)
                failures.append(f'{kind}/{label}: export failed')
                continue
            print('  ' + r.stdout.strip().splitlines()[-1])
            try:
                ops, dims = check_contract(out)
                print(f'  contract ok: images {dims}')
            except AssertionError as e:
                failures.append(f'{kind}/{label}: contract: {e}')
                continue
            got, _ = run_ort(out, float_inputs + [u8.astype(np.float32)], work)
            for k in range(len(float_inputs)):
                if not compare(f'ort float {float_inputs[k].shape}', got[k], want[k]):
                    failures.append(f'{kind}/{label}: ort float input {k}')
            if not compare(f'ort uint8 cast to float {u8.shape}', got[-1], want_u8):
                failures.append(f'{kind}/{label}: ort uint8')
            if evaluator is not None:
                ref = evaluator(out)
                for k, x in enumerate(float_inputs[:1]):
                    if not compare(f'onnx.reference {x.shape}', ref.run(None, {'images': x})[0], want[k]):
                        failures.append(f'{kind}/{label}: onnx.reference')
        # --fixed-size exports only N as dynamic.
        out = os.path.join(work, f'{kind}-fixed.onnx')
        r = subprocess.run([sys.executable, EXPORTER, *sources['torchscript'], '--out', out, '--fixed-size', '256', '256'],
                           capture_output=True, text=True)
        try:
            assert r.returncode == 0, r.stderr
            check_contract(out, fixed=True)
            got, _ = run_ort(out, float_inputs[:1], work)
            if not compare(f'{kind} fixed 256x256', got[0], want[0]):
                failures.append(f'{kind}: fixed size')
        except AssertionError as e:
            failures.append(f'{kind}: fixed size: {e}')

    print('all exports match' if not failures else 'FAILURES:\n  ' + '\n  '.join(failures))
    if not args.keep:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == '__main__':
    main()
