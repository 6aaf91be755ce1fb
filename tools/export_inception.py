#!/usr/bin/env python3
"""Convert NVIDIA's FID Inception-v3 detector (inception-2015-12-05) to ONNX with
adasde's detector contract.

    /usr/bin/python3 tools/export_inception.py --pkl inception-2015-12-05.pkl \\
        --out models/inception-2015-12-05.onnx [--repo /path/to/edm]
    /usr/bin/python3 tools/export_inception.py --torchscript inception-2015-12-05.pt --out ...

Nothing is downloaded: fetch the detector yourself (EDM's fid.py uses
https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/metrics/inception-2015-12-05.pkl;
StyleGAN2-ADA's TorchScript file is inception-2015-12-05.pt).

Input: `--pkl` is unpickled exactly as the reference does (`pickle.load`). If the pickle
refers to helper modules of the NVIDIA code bases (torch_utils / dnnlib), pass the EDM or
StyleGAN3 checkout with `--repo` (it is put on sys.path). `--torchscript` uses
torch.jit.load. Either way the object is called as `detector(images, return_features=True)`
and must return [N, 2048] pool features for uint8-valued NCHW RGB images of any size (it
resizes to 299 x 299 internally).

Output contract (src/runtime/model.ts checkFeatureSignature):
  * input  `images`   float32 [N, 3, H, W], pixel values 0..255 (not normalised). float32
    rather than uint8 so that sub-integer perturbations survive (the training feature loss
    differentiates through pixel values); callers holding uint8 images cast them to
    float32 first, which is exact and gives the same features as the uint8 original.
  * output `features` float32 [N, 2048].
  * N, H and W are dynamic (the internal resize is part of the graph); with --fixed-size
    H W only N is.
  * metadata_props: adasde.kind=detector, adasde.detector=inception-2015-12-05,
    adasde.feature_dim=2048, adasde.input=float32 pixel values 0..255 NCHW RGB, and the
    SHA-256 of the source file.

How the export works: a wrapper module calls the detector with return_features=True and
torch.onnx.export traces it; for a TorchScript detector the wrapper is scripted as well
(a trace cannot call into a TorchScript submodule) and the detector's graph is inlined
with its control flow, constant branches such as `if return_features` folding away. The trace example
has a size other than 299 x 299, so a detector that skips its resize for 299-pixel inputs
still exports the resize (a 299 -> 299 bilinear resize is the identity, so exact-size
inputs are unaffected). Two resize styles are known to export:
  * F.interpolate(..., mode='bilinear', align_corners=False) -> ONNX Resize (opset >= 11);
  * the TensorFlow-emulating affine_grid + grid_sample(mode='bilinear',
    padding_mode='border', align_corners=False) that NVIDIA's detector uses -> ONNX
    GridSample (opset >= 16). torch 1.13 has no ONNX symbolic for affine_grid, so this
    script registers one (a constant base grid times theta^T via MatMul, for a constant
    output size); theta itself stays a function of the input's H and W.
tools/test_export_inception.py exercises both on stand-in detectors and compares the
exported graphs with PyTorch through onnxruntime-node.
"""
import argparse
import hashlib
import os
import pickle
import sys

import numpy as np
import torch

FEATURE_DIM = 2048
OPSET = 16


class FeatureWrapper(torch.nn.Module):
    """images (float32 0..255 NCHW) -> detector(images, return_features=True) as float32."""

    def __init__(self, detector):
        super().__init__()
        self.detector = detector

    def forward(self, images):
        return self.detector(images, return_features=True).to(torch.float32)


def _affine_grid_symbolic(g, theta, size, align_corners):
    """ONNX for aten::affine_grid_generator (2-D, constant output size H x W):
    grid[n, i, j] = theta[n] @ (x_j, y_i, 1), x_j = (2j + 1)/W - 1 (align_corners=False) or
    -1 + 2j/(W - 1) (True)."""
    from torch.onnx import symbolic_helper as sh
    corners = bool(sh._maybe_get_const(align_corners, 'b'))
    # size is [N, C, H, W]; N is usually traced (dynamic), only H and W must be constants.
    if sh._is_value(size) and size.node().kind() == 'prim::ListConstruct':
        hw = [sh._maybe_get_const(v, 'i') for v in list(size.node().inputs())[2:]]
    else:
        hw = list(sh._maybe_get_const(size, 'is'))[2:]
    if len(hw) != 2 or not all(isinstance(v, int) for v in hw):
        raise RuntimeError('affine_grid export supports 2-D grids with a constant output height and width only')
    h, w = int(hw[0]), int(hw[1])

    def lin(n):
        if corners:
            return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
        return (2.0 * np.arange(n) + 1.0) / n - 1.0
    ys, xs = np.meshgrid(lin(h), lin(w), indexing='ij')
    base = np.stack([xs, ys, np.ones_like(xs)], axis=-1).reshape(h * w, 3).astype(np.float32)
    base_c = g.op('Constant', value_t=torch.from_numpy(base))
    theta_t = g.op('Transpose', theta, perm_i=[0, 2, 1])  # [N, 3, 2]
    grid = g.op('MatMul', base_c, theta_t)  # [H*W, 3] @ [N, 3, 2] -> [N, H*W, 2]
    n = g.op('Slice', g.op('Shape', theta),
             g.op('Constant', value_t=torch.tensor([0], dtype=torch.int64)),
             g.op('Constant', value_t=torch.tensor([1], dtype=torch.int64)))
    shape = g.op('Concat', n, g.op('Constant', value_t=torch.tensor([h, w, 2], dtype=torch.int64)), axis_i=0)
    return g.op('Reshape', grid, shape)


def register_symbolics(opset):
    from torch.onnx import register_custom_op_symbolic
    register_custom_op_symbolic('aten::affine_grid_generator', _affine_grid_symbolic, opset)


def load_detector(pkl=None, torchscript=None, repo=None):
    if repo:
        sys.path.insert(0, os.path.abspath(repo))
    if torchscript:
        det = torch.jit.load(torchscript, map_location='cpu')
    else:
        try:
            with open(pkl, 'rb') as fh:
                det = pickle.load(fh)
        except ModuleNotFoundError as e:
            raise SystemExit(
                f'{pkl}: unpickling needs the Python module {e.name!r} of the code base that wrote it; '
                'pass that checkout (EDM or StyleGAN3) with --repo DIR') from e
    if not isinstance(det, torch.nn.Module):
        raise SystemExit(f'the loaded object is a {type(det).__name__}, not a torch.nn.Module')
    det = det.to('cpu').eval()
    for p in det.parameters():
        p.requires_grad_(False)
    return det


def export(det, out, source_sha256='', fixed_size=None, opset=OPSET, example_size=(256, 256), name='inception-2015-12-05'):
    """Export `det` to `out`; returns the ONNX ModelProto (already saved)."""
    import onnx
    register_symbolics(opset)
    wrapper = FeatureWrapper(det).eval()
    if isinstance(det, torch.jit.ScriptModule):
        # torch.onnx traces plain modules, and a trace cannot call into a TorchScript
        # submodule; script the wrapper too so the export takes the TorchScript path
        # (which also keeps every shape computation dynamic).
        wrapper = torch.jit.script(wrapper)
    h, w = fixed_size or example_size
    example = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        feats = wrapper(example)
    if feats.ndim != 2 or feats.shape[0] != 2:
        raise SystemExit(f'detector(images, return_features=True) returned shape {tuple(feats.shape)}, expected [N, D]')
    dim = int(feats.shape[1])
    if dim != FEATURE_DIM:
        print(f'note: feature dimension {dim} (the Inception detector has {FEATURE_DIM})', file=sys.stderr)
    axes = {'images': {0: 'N'}, 'features': {0: 'N'}}
    if not fixed_size:
        axes['images'].update({2: 'H', 3: 'W'})
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + '.tmp'
    with torch.no_grad():
        torch.onnx.export(wrapper, (example,), tmp, input_names=['images'], output_names=['features'],
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True)
    model = onnx.load(tmp)
    # Declare features as [N, D]: behind an If (a detector that resizes only when
    # H, W != 299, scripted) ONNX shape inference leaves D symbolic.
    out_dims = model.graph.output[0].type.tensor_type.shape.dim
    out_dims[0].dim_param = 'N'
    out_dims[1].Clear()
    out_dims[1].dim_value = dim
    meta = {
        'adasde.kind': 'detector',
        'adasde.detector': name,
        'adasde.feature_dim': str(dim),
        'adasde.input': 'float32 pixel values 0..255, NCHW RGB; cast uint8 images to float32',
        'adasde.exporter': f'tools/export_inception.py (torch {torch.__version__}, opset {opset})',
    }
    if source_sha256:
        meta['adasde.source_sha256'] = source_sha256
    del model.metadata_props[:]
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, tmp)
    os.replace(tmp, out)
    return model


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description='Export the FID Inception detector to ONNX (adasde detector contract).')
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument('--pkl', help='pickled detector (EDM / StyleGAN3 inception-2015-12-05.pkl)')
    src.add_argument('--torchscript', help='TorchScript detector (StyleGAN2-ADA inception-2015-12-05.pt)')
    ap.add_argument('--out', required=True, help='output .onnx path')
    ap.add_argument('--repo', help='checkout whose modules the pickle needs (put on sys.path)')
    ap.add_argument('--fixed-size', type=int, nargs=2, metavar=('H', 'W'), help='fixed input H W instead of dynamic')
    ap.add_argument('--opset', type=int, default=OPSET, help=f'ONNX opset (>= 16 for GridSample; default {OPSET})')
    ap.add_argument('--name', default='inception-2015-12-05', help='value of the adasde.detector metadata')
    args = ap.parse_args()
    path = args.pkl or args.torchscript
    det = load_detector(pkl=args.pkl, torchscript=args.torchscript, repo=args.repo)
    model = export(det, args.out, source_sha256=sha256_file(path), fixed_size=args.fixed_size,
                   opset=args.opset, name=args.name)
    ops = sorted({n.op_type for n in model.graph.node})
    print(f'wrote {args.out}: {len(model.graph.node)} nodes ({", ".join(ops)})')


if __name__ == '__main__':
    main()
