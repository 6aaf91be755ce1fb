"""Export the Consistency-Models EDM bedroom network (openai/consistency_models,
`edm_bedroom256_ema.pt`, pixel space 256x256, unconditional) as an adasde denoiser.

    python3 tools/export/cm.py --upstream /path/to/consistency_models \
        --weights edm_bedroom256_ema.pt                   # writes models/lsun_bedroom.onnx (dataset_models.json)

(1) Upstream: `cm.script_util.create_model_and_diffusion` with the flags of the released
    EDM bedroom model (CM README: attention 32,16,8, 256 channels, 64 channels per head,
    2 res blocks, resblock_updown, no scale-shift norm, no learned sigma, dropout 0.1),
    `use_fp16=False`, then `load_state_dict(torch.load(weights))`.
    The checkpoint was trained with CM's default `attention_type="flash"`
    (QKVFlashAttention, qkv channel layout "(three heads dim)", softmax scale 1/sqrt(dim)),
    which needs the CUDA-only flash_attn package and cannot be traced. Before building the
    model, this script replaces `cm.unet.QKVFlashAttention` by `FlashLayoutAttention`
    below: the same math and channel layout in plain torch ops (no parameters, so the
    state dict is unchanged).
(2) Wrap: common.EDMDenoiser with the network time input 1000 * ln(sigma) / 4
    (KarrasDenoiser.denoise: `rescaled_t = 1000 * 0.25 * log(sigma + 1e-44)`; the 1e-44 is
    below float32 resolution for sigma >= 0.002 and is left out) and sigma_data 0.5.
(3) Export: common.export_onnx.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
common.isolate_from_upstream()  # our cm.py / ldm.py must not shadow upstream packages
edm = common.load_sibling('edm')

BEDROOM_FLAGS = dict(attention_resolutions='32,16,8', class_cond=False, dropout=0.1, image_size=256,
                     num_channels=256, num_head_channels=64, num_res_blocks=2, resblock_updown=True,
                     use_fp16=False, use_scale_shift_norm=False, learn_sigma=False, weight_schedule='karras',
                     sigma_min=0.002, sigma_max=80.0)


class FlashLayoutAttention(nn.Module):
    """Drop-in for CM's QKVFlashAttention(embed_dim, num_heads): qkv [B, 3*H*D, S] laid out as
    "(three h d)", softmax(q k^T / sqrt(D)) v, output [B, H*D, S] laid out as "(h d)"."""

    def __init__(self, embed_dim, num_heads, batch_first=True, attention_dropout=0.0, causal=False,
                 device=None, dtype=None, **kwargs):
        super().__init__()
        assert not causal
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads

    def forward(self, qkv, attn_mask=None, key_padding_mask=None, need_weights=False):
        b, width, s = qkv.shape
        h, d = self.num_heads, self.head_dim
        qkv = qkv.reshape(b, 3, h, d, s)
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]                          # [B, H, D, S]
        scale = d ** -0.25
        w = torch.einsum('bhdt,bhds->bhts', q * scale, k * scale).softmax(dim=-1)
        a = torch.einsum('bhts,bhds->bhdt', w, v)                          # [B, H, D, S]
        return a.reshape(b, h * d, s)


def load_cm_bedroom(weights: str, flags: dict):
    import cm.unet as cm_unet  # from openai/consistency_models
    cm_unet.QKVFlashAttention = FlashLayoutAttention
    from cm.script_util import create_model_and_diffusion, model_and_diffusion_defaults
    args = model_and_diffusion_defaults()
    args.update(flags)
    args['use_fp16'] = False
    model, diffusion = create_model_and_diffusion(**{k: v for k, v in args.items()
                                                     if k in create_model_and_diffusion.__code__.co_varnames})
    state = torch.load(weights, map_location='cpu')
    model.load_state_dict(state)
    model.eval().requires_grad_(False).float()
    return model, float(diffusion.sigma_data), float(diffusion.sigma_min), float(diffusion.sigma_max)


def export_denoiser(net, out_path, *, img_resolution, img_channels=3, dataset_name='lsun_bedroom',
                    sigma_data=common.SIGMA_DATA, sigma_min=0.002, sigma_max=80.0, **kw):
    """The CM bedroom network F(x_in, timesteps) -> ONNX denoiser (EDM with time input 1000*ln(s)/4)."""
    return edm.export_denoiser(net, out_path, img_resolution=img_resolution, img_channels=img_channels,
                               label_dim=0, dataset_name=dataset_name, family='cm', sigma_data=sigma_data,
                               time_scale=1000.0, net_call='openai', sigma_min=sigma_min, sigma_max=sigma_max, **kw)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('--weights', required=True, help='edm_bedroom256_ema.pt')
    p.add_argument('--model-flags', default=None,
                   help='JSON object overriding the model flags (default: the EDM bedroom flags)')
    p.add_argument('--dataset-name', default='lsun_bedroom')
    common.add_common_args(p)
    args = p.parse_args(argv)
    common.add_upstream_path(args.upstream)
    flags = dict(BEDROOM_FLAGS)
    if args.model_flags:
        flags.update(json.loads(args.model_flags))
    common.resolve_out(args, args.dataset_name)
    net, sigma_data, sigma_min, sigma_max = load_cm_bedroom(args.weights, flags)
    print(f'[cm] UNetModel {flags["image_size"]}x{flags["image_size"]}, sigma_data {sigma_data}, '
          f'sigma [{sigma_min}, {sigma_max}]')
    export_denoiser(net, args.out, img_resolution=flags['image_size'], dataset_name=args.dataset_name,
                    sigma_data=sigma_data, sigma_min=sigma_min, sigma_max=sigma_max, fp16=args.fp16,
                    fp16_io=args.fp16_io, opset=args.opset, external_data=common.external_flag(args),
                    batch=args.batch)
    print('\nsample with:\n  ' + common.sample_command(args.out, extra='--batch 4', dataset=args.dataset_name))
    return 0


if __name__ == '__main__':
    sys.exit(main())
