"""Export ADM (openai/guided-diffusion) ImageNet 256x256 class-conditional as an adasde
denoiser, plus its noisy classifier as a companion graph.

    python3 tools/export/adm.py --upstream /path/to/guided-diffusion \
        --weights 256x256_diffusion.pt --classifier 256x256_classifier.pt
    (writes models/imagenet256.onnx, the name --dataset_name imagenet256 finds: dataset_models.json)

(1) Upstream: `guided_diffusion.script_util.create_model_and_diffusion` with the flags of
    the released 256x256 conditional model (attention 32,16,8, class_cond, learn_sigma,
    256 channels, 64 channels per head, 2 res blocks, resblock_updown, scale-shift norm,
    linear noise schedule) and `use_fp16=False`; the classifier through `create_classifier`
    (depth 2, width 128, attention pooling, attention 32,16,8, resblock_updown,
    scale-shift norm).
(2) Wrap: common.VPEpsDenoiser with the continuous VP schedule (beta_min 0.1, beta_d 19.9):
    D = clamp(x - s * eps(x / sqrt(s^2+1), 999 * sigma_inv(s), y = argmax(class_labels)), -1, 1),
    eps = the first 3 of the 6 output channels (learned sigma dropped).
    Classifier: common.VPClassifier, (x, sigma) -> log_softmax(classifier(x_in, t)) [N, 1000].
(3) Export: common.export_onnx; the denoiser's metadata names the classifier file in
    `adasde.classifier`.

Classifier guidance is not baked into the exported denoiser (torch.onnx.export records
forward computations only): the denoiser written here is the unguided conditional model,
and `adasde sample --guidance_type cg` differentiates the classifier graph itself
(src/graph/gradient.ts, cached as `*.classifier.grad.onnx` beside it; README, "Classifier
guidance").
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import OrderedDict
from typing import Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
common.isolate_from_upstream()  # our cm.py / ldm.py must not shadow upstream packages

MODEL_FLAGS = dict(attention_resolutions='32,16,8', class_cond=True, diffusion_steps=1000, image_size=256,
                   learn_sigma=True, noise_schedule='linear', num_channels=256, num_head_channels=64,
                   num_res_blocks=2, resblock_updown=True, use_fp16=False, use_scale_shift_norm=True)
CLASSIFIER_FLAGS = dict(image_size=256, classifier_attention_resolutions='32,16,8', classifier_depth=2,
                        classifier_width=128, classifier_pool='attention', classifier_resblock_updown=True,
                        classifier_use_scale_shift_norm=True, classifier_use_fp16=False)
GUIDANCE_NOTE = ('the exported denoiser is unguided; adasde sample --guidance_type cg differentiates this '
                 'classifier graph (src/graph/gradient.ts) for classifier guidance')


def plain_checkpoint() -> None:
    """guided-diffusion's AttentionBlock calls `checkpoint(..., True)` whatever use_checkpoint says,
    and torch.onnx cannot trace that autograd.Function (RuntimeError: unordered_map::at): run the
    wrapped function directly (the same math; checkpointing only saves training memory)."""
    import guided_diffusion.unet as gunet
    gunet.checkpoint = lambda func, inputs, params, flag: func(*inputs)


def load_adm(weights: str, classifier: Optional[str], model_flags: dict, classifier_flags: dict):
    from guided_diffusion.script_util import (create_model_and_diffusion, model_and_diffusion_defaults,
                                              create_classifier, classifier_defaults)
    plain_checkpoint()
    args = model_and_diffusion_defaults()
    args.update(model_flags)
    args['use_fp16'] = False
    model, _ = create_model_and_diffusion(**args)
    model.load_state_dict(torch.load(weights, map_location='cpu'))
    model.eval().requires_grad_(False).float()
    clf = None
    if classifier:
        cargs = classifier_defaults()
        cargs.update(classifier_flags)
        cargs['classifier_use_fp16'] = False
        clf = create_classifier(**cargs)
        clf.load_state_dict(torch.load(classifier, map_location='cpu'))
        clf.eval().requires_grad_(False).float()
    return model, clf


def example_inputs(batch, img_channels, img_resolution, label_dim, time, seed=0, with_labels=True):
    g = torch.Generator().manual_seed(seed)
    sig = [time.sigma_min, 0.5, 5.0, time.sigma_max]
    x0 = torch.rand(batch, img_channels, img_resolution, img_resolution, generator=g) * 2 - 1
    sigma = torch.tensor([sig[i % len(sig)] for i in range(batch)], dtype=torch.float32)
    x = x0 + sigma.reshape(-1, 1, 1, 1) * torch.randn(x0.shape, generator=g)
    inputs = OrderedDict(x=x, sigma=sigma)
    if with_labels and label_dim:
        idx = torch.randint(0, label_dim, (batch,), generator=g)
        inputs['class_labels'] = torch.nn.functional.one_hot(idx, label_dim).to(torch.float32)
    return inputs


def export_adm(net, classifier, out_path, *, img_resolution, img_channels=3, label_dim=1000,
               dataset_name='imagenet256', fp16=False, fp16_io=False, opset=common.CONTRACT_OPSET,
               external_data=None, batch=2, verbose=True):
    """ADM eps network (+ optional classifier) -> ONNX. Returns (denoiser wrapper, classifier wrapper|None, meta)."""
    time = common.VPContinuousTime()
    clf_wrapper, clf_name = None, None
    if classifier is not None:
        clf_name = common.companion_name(out_path, 'classifier')
        clf_wrapper = common.VPClassifier(classifier, common.VPContinuousTime()).eval()
        clf_meta = {'adasde.role': 'classifier', 'adasde.family': 'adm', 'adasde.dataset_name': dataset_name,
                    'adasde.note': 'log p(y | x / sqrt(sigma^2+1), 999 sigma_inv(sigma)); ' + GUIDANCE_NOTE}
        common.export_onnx(clf_wrapper, example_inputs(batch, img_channels, img_resolution, label_dim, time,
                                                       with_labels=False),
                           os.path.join(os.path.dirname(os.path.abspath(out_path)), clf_name),
                           output_names=('log_probs',), metadata=clf_meta, fp16=fp16, fp16_io=fp16_io,
                           opset=opset, external_data=external_data, verbose=verbose)
    wrapper = common.VPEpsDenoiser(net, time, img_channels=img_channels, net_call='openai',
                                   cond='class' if label_dim else None, label_dim=label_dim, clamp=True).eval()
    meta = common.contract_metadata(family='adm', dataset_name=dataset_name, sigma_min=time.sigma_min,
                                    sigma_max=time.sigma_max, img_resolution=img_resolution,
                                    img_channels=img_channels, label_dim=label_dim, classifier=clf_name)
    common.export_onnx(wrapper, example_inputs(batch, img_channels, img_resolution, label_dim, time), out_path,
                       metadata=meta, fp16=fp16, fp16_io=fp16_io, opset=opset, external_data=external_data,
                       verbose=verbose)
    return wrapper, clf_wrapper, meta


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('--weights', required=True, help='256x256_diffusion.pt')
    p.add_argument('--classifier', default=None, help='256x256_classifier.pt (optional companion graph)')
    p.add_argument('--model-flags', default=None, help='JSON object overriding the model flags')
    p.add_argument('--classifier-flags', default=None, help='JSON object overriding the classifier flags')
    p.add_argument('--dataset-name', default='imagenet256')
    common.add_common_args(p)
    args = p.parse_args(argv)
    common.add_upstream_path(args.upstream)
    mflags, cflags = dict(MODEL_FLAGS), dict(CLASSIFIER_FLAGS)
    mflags.update(json.loads(args.model_flags or '{}'))
    cflags.update(json.loads(args.classifier_flags or '{}'))
    common.resolve_out(args, args.dataset_name)
    net, clf = load_adm(args.weights, args.classifier, mflags, cflags)
    label_dim = 1000 if mflags.get('class_cond') else 0
    print(f'[adm] UNetModel {mflags["image_size"]}x{mflags["image_size"]}, label_dim {label_dim}; '
          f'classifier: {"yes" if clf is not None else "no"}')
    export_adm(net, clf, args.out, img_resolution=mflags['image_size'], label_dim=label_dim,
               dataset_name=args.dataset_name, fp16=args.fp16, fp16_io=args.fp16_io, opset=args.opset,
               external_data=common.external_flag(args), batch=args.batch)
    print('\nsample with (add --guidance_type cg --guidance_rate W for classifier guidance):\n  '
          + common.sample_command(args.out, extra='--batch 4', dataset=args.dataset_name))
    return 0


if __name__ == '__main__':
    sys.exit(main())
