"""Export an EDM checkpoint (NVlabs/edm network pickles) as an adasde denoiser ONNX file.

    python3 tools/export/edm.py --upstream /path/to/edm \
        --weights edm-cifar10-32x32-uncond-vp.pkl          # writes models/cifar10.onnx (dataset_models.json)

Works for the EDM pickles of the reference datasets: cifar10 (32x32, uncond or cond with
10 labels), ffhq and afhqv2 (64x64), imagenet64 (64x64, `class_labels` [N, 1000]).

(1) Upstream: the pickles embed their classes through `torch_utils.persistence`, so the
    EDM repository (https://github.com/NVlabs/edm: `dnnlib`, `torch_utils`, `training`)
    must be importable: pass `--upstream` or set PYTHONPATH. `pickle.load(f)['ema']` is an
    `EDMPrecond`; its `.model` is the raw network F (SongUNet / DhariwalUNet) with the
    interface F(x_in, c_noise, class_labels).
(2) Wrap: common.EDMDenoiser recomputes EDMPrecond's preconditioning (sigma_data 0.5) in
    float32 around `.model`.
(3) Export: common.export_onnx (opset 17, dynamic N, metadata, optional --fp16, external
    data over 2 GB, onnx.checker).
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
from collections import OrderedDict
from typing import Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
common.isolate_from_upstream()  # our cm.py / ldm.py must not shadow upstream packages

DATASET_KEYS = [('cifar10', 'cifar10'), ('afhqv2', 'afhqv2'), ('ffhq', 'ffhq'), ('imagenet', 'imagenet64')]


def guess_dataset(path: str) -> Optional[str]:
    name = os.path.basename(path).lower()
    for key, ds in DATASET_KEYS:
        if key in name:
            return ds
    return None


def load_edm_pickle(path: str):
    """Load the EMA network of an EDM pickle; returns the EDMPrecond module."""
    with open(path, 'rb') as f:
        data = pickle.load(f)
    precond = data['ema'] if isinstance(data, dict) and 'ema' in data else data
    kind = type(precond).__name__
    if kind != 'EDMPrecond':
        raise SystemExit(f'error: {path} holds a {kind}, not an EDMPrecond; only EDM-preconditioned '
                         'networks are supported by edm.py (VP/VE/iDDPM baselines are not)')
    return precond.eval().requires_grad_(False).float()


def example_inputs(batch: int, img_channels: int, img_resolution: int, label_dim: int,
                   sigmas=(0.002, 0.3, 5.0, 80.0), seed: int = 0) -> 'OrderedDict[str, torch.Tensor]':
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(batch, img_channels, img_resolution, img_resolution, generator=g) * 2 - 1
    sigma = torch.tensor([sigmas[i % len(sigmas)] for i in range(batch)], dtype=torch.float32)
    x = x0 + sigma.reshape(-1, 1, 1, 1) * torch.randn(x0.shape, generator=g)
    inputs = OrderedDict(x=x, sigma=sigma)
    if label_dim:
        idx = torch.randint(0, label_dim, (batch,), generator=g)
        inputs['class_labels'] = torch.nn.functional.one_hot(idx, label_dim).to(torch.float32)
    return inputs


def export_denoiser(net: torch.nn.Module, out_path: str, *, img_resolution: int, img_channels: int,
                    label_dim: int, dataset_name: str, family: str = 'edm', sigma_data: float = common.SIGMA_DATA,
                    time_scale: float = 1.0, net_call: str = 'edm', sigma_min: float = 0.002,
                    sigma_max: float = 80.0, fp16: bool = False, fp16_io: bool = False,
                    opset: int = common.CONTRACT_OPSET, external_data: Optional[bool] = None, batch: int = 2,
                    extra_meta=None, verbose: bool = True):
    """EDM-preconditioned network F -> ONNX denoiser (shared by edm.py, cm.py, the self-test and
    tools/train_tiny_edm.py). Returns (wrapper module, metadata dict)."""
    wrapper = common.EDMDenoiser(net, img_channels=img_channels, label_dim=label_dim, sigma_data=sigma_data,
                                 time_scale=time_scale, net_call=net_call).eval()
    meta = common.contract_metadata(family=family, dataset_name=dataset_name, sigma_min=sigma_min,
                                    sigma_max=sigma_max, img_resolution=img_resolution,
                                    img_channels=img_channels, label_dim=label_dim, extra=extra_meta)
    inputs = example_inputs(batch, img_channels, img_resolution, label_dim)
    common.export_onnx(wrapper, inputs, out_path, metadata=meta, fp16=fp16, fp16_io=fp16_io, opset=opset,
                       external_data=external_data, verbose=verbose)
    return wrapper, meta


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('--weights', required=True, help='EDM network pickle (edm-<dataset>-...-<cond>-vp.pkl)')
    p.add_argument('--dataset-name', default=None,
                   help='adasde.dataset_name (default: guessed from the file name: cifar10, ffhq, afhqv2, imagenet64)')
    p.add_argument('--sigma-min', type=float, default=0.002)
    p.add_argument('--sigma-max', type=float, default=80.0)
    common.add_common_args(p)
    args = p.parse_args(argv)
    common.add_upstream_path(args.upstream)
    dataset = args.dataset_name or guess_dataset(args.weights)
    if not dataset:
        p.error('cannot guess the dataset from the file name; pass --dataset-name')
    common.resolve_out(args, dataset)
    precond = load_edm_pickle(args.weights)
    sigma_data = float(precond.sigma_data)
    print(f'[edm] {type(precond.model).__name__}: {precond.img_resolution}x{precond.img_resolution}x'
          f'{precond.img_channels}, label_dim {precond.label_dim}, sigma_data {sigma_data}, dataset {dataset}')
    export_denoiser(precond.model, args.out, img_resolution=precond.img_resolution,
                    img_channels=precond.img_channels, label_dim=precond.label_dim, dataset_name=dataset,
                    sigma_data=sigma_data, sigma_min=args.sigma_min, sigma_max=args.sigma_max, fp16=args.fp16,
                    fp16_io=args.fp16_io, opset=args.opset, external_data=common.external_flag(args),
                    batch=args.batch)
    print('\nsample with:\n  ' + common.sample_command(args.out, dataset=dataset))
    return 0


if __name__ == '__main__':
    sys.exit(main())
