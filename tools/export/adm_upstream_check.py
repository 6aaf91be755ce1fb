"""Classifier guidance on guided-diffusion's own code: random, reduced-size networks built by
`create_model_and_diffusion` / `create_classifier` (the released 256x256 classifier's layout:
EncoderUNetModel with attention pooling, resblock_updown, scale-shift norm; smaller width and
resolution) go through adm.export_adm, and PyTorch autograd's input gradient of the exported
classifier wrapper is compared with the TypeScript gradient graph in onnxruntime-node
(tools/export/verify_grad.mjs; needs `npm run build`).

    /usr/bin/python3 tools/export/adm_upstream_check.py --upstream ../guided-diffusion [--out DIR]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import OrderedDict

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
common.isolate_from_upstream()
adm = common.load_sibling('adm')
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--upstream', required=True, help='a guided-diffusion checkout')
    p.add_argument('--out', default=None, help='folder for the files (default: a temporary one, removed)')
    p.add_argument('--image-size', type=int, default=64)
    p.add_argument('--width', type=int, default=64)
    args = p.parse_args(argv)
    common.add_upstream_path(args.upstream)
    from guided_diffusion.script_util import (create_model_and_diffusion, model_and_diffusion_defaults,
                                              create_classifier, classifier_defaults)
    adm.plain_checkpoint()
    torch.manual_seed(0)
    R = args.image_size
    margs = model_and_diffusion_defaults()
    margs.update(adm.MODEL_FLAGS)
    margs.update(image_size=R, num_channels=args.width, num_res_blocks=1, attention_resolutions='16,8')
    net, _ = create_model_and_diffusion(**margs)
    cargs = classifier_defaults()
    cargs.update(adm.CLASSIFIER_FLAGS)
    cargs.update(image_size=R, classifier_width=args.width, classifier_depth=1, classifier_attention_resolutions='16,8')
    clf = create_classifier(**cargs)
    with torch.no_grad():  # zero-initialised output layers would hide whole paths from the check
        for m in (net, clf):
            for prm in m.parameters():
                if prm.abs().sum() == 0:
                    prm.normal_(0, 0.05)
    net.eval().requires_grad_(False)
    clf.eval().requires_grad_(False)
    tmp = args.out is None
    root = tempfile.mkdtemp(prefix='adasde-adm-upstream-') if tmp else os.path.abspath(args.out)
    fam = os.path.join(root, 'adm-upstream')
    os.makedirs(fam, exist_ok=True)
    try:
        _, clf_wrapper, meta = adm.export_adm(net, clf, os.path.join(fam, 'denoiser.onnx'), img_resolution=R, label_dim=1000,
                                              dataset_name='adm-upstream-check', batch=2, verbose=False)
        g = torch.Generator().manual_seed(1)
        sig = torch.tensor([0.05, 0.7, 3.0], dtype=torch.float32)
        x = torch.rand(3, 3, R, R, generator=g) * 2 - 1 + sig.reshape(-1, 1, 1, 1) * torch.randn(3, 3, R, R, generator=g)
        labels = torch.nn.functional.one_hot(torch.tensor([3, 500, 999]), 1000).to(torch.float32)
        m = copy.deepcopy(clf_wrapper)
        xx = x.clone().requires_grad_(True)
        with torch.enable_grad():
            (m(xx, sig) * labels).sum().backward()
        for name, arr in (('x', x), ('sigma', sig), ('class_labels', labels), ('grad_x', xx.grad)):
            np.save(os.path.join(fam, f'{name}.npy'), arr.detach().numpy().astype(np.float32))
        # torch float32 only: guided-diffusion's GroupNorm32 and timestep_embedding compute in float32.
        manifest = OrderedDict(family='adm-upstream', gradient_cases=[OrderedDict(
            name='guided-diffusion classifier', model=meta['adasde.classifier'],
            inputs=OrderedDict(x='x.npy', sigma='sigma.npy', class_labels='class_labels.npy'),
            outputs=OrderedDict(grad_x='grad_x.npy'), tolerance=1e-4)])
        with open(os.path.join(fam, 'manifest.json'), 'w') as f:
            json.dump(manifest, f, indent=1)
        node = shutil.which('node')
        if not node:
            print('node not found: exported, not compared')
            return 0
        return subprocess.run([node, os.path.join(HERE, 'verify_grad.mjs'), root], cwd=ROOT).returncode
    finally:
        if tmp:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
