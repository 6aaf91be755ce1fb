"""Export LDM LSUN-Bedroom (CompVis/latent-diffusion, `lsun_bedrooms-ldm-vq-4`) as an adasde
latent denoiser plus its first-stage decoder.

    python3 tools/export/ldm.py --upstream /path/to/latent-diffusion \
        --config configs/latent-diffusion/lsun_bedrooms-ldm-vq-4.yaml \
        --weights models/ldm/lsun_beds256/model.ckpt

writes `models/lsun_bedroom_ldm.onnx` (denoiser on latents [N, 3, 64, 64]; the name
--dataset_name lsun_bedroom_ldm finds, dataset_models.json) and
`lsun_bedroom_ldm.decoder.onnx` (latents -> images [N, 3, 256, 256] in [-1, 1]).

(1) Upstream: `ldm.util.instantiate_from_config(OmegaConf.load(config).model)`, then the
    checkpoint's `state_dict`. The eps network is `model.model.diffusion_model`
    (UNetModel(x, timesteps)); `model.alphas_cumprod` (1000 entries) is the schedule;
    `model.first_stage_model` (VQModelInterface) and `model.scale_factor` give the decoder.
(2) Wrap: common.VPEpsDenoiser with common.DiscreteTime(alphas_cumprod):
    D = x - s * eps(x / sqrt(s^2+1), 1000 * sigma_inv(s) - 1); common.LatentDecoder:
    image = clamp(first_stage_model.decode(z / scale_factor), -1, 1) (VQ decode quantizes
    to the codebook first, as LatentDiffusion.decode_first_stage does).
(3) Export both with common.export_onnx; metadata `adasde.alphas_cumprod` (JSON) and
    `adasde.decoder` (file name relative to the model).
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import OrderedDict

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
common.isolate_from_upstream()  # our cm.py / ldm.py must not shadow upstream packages


def load_compvis_model(config_path: str, weights: str):
    """A CompVis LatentDiffusion model (latent-diffusion or stable-diffusion repository)."""
    from omegaconf import OmegaConf
    from ldm.util import instantiate_from_config
    config = OmegaConf.load(config_path)
    model = instantiate_from_config(config.model)
    ckpt = torch.load(weights, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing:
        print(f'[load] warning: {len(missing)} missing keys, e.g. {missing[:3]}')
    model.eval().requires_grad_(False).float()
    return model, config


def latent_inputs(batch, channels, resolution, time, seed=0, cond_shape=None):
    """Example/fixture inputs: sigmas cover below sigma_min (extrapolation), inside, sigma_max, above."""
    g = torch.Generator().manual_seed(seed)
    sig = [0.5 * time.sigma_min, 1.0, time.sigma_max, 1.2 * time.sigma_max]
    x0 = torch.randn(batch, channels, resolution, resolution, generator=g)
    sigma = torch.tensor([sig[i % len(sig)] for i in range(batch)], dtype=torch.float32)
    x = x0 + sigma.reshape(-1, 1, 1, 1) * torch.randn(x0.shape, generator=g)
    inputs = OrderedDict(x=x, sigma=sigma)
    if cond_shape is not None:
        inputs['condition'] = torch.randn((batch,) + tuple(cond_shape), generator=g)
    return inputs


def export_decoder(first_stage, out_path, *, scale_factor, latent_channels, latent_resolution, net_call='compvis',
                   fp16=False, fp16_io=False, opset=common.CONTRACT_OPSET, external_data=None, batch=2,
                   family='ldm', verbose=True):
    dec = common.LatentDecoder(first_stage, scale_factor=scale_factor, net_call=net_call).eval()
    z = torch.randn(batch, latent_channels, latent_resolution, latent_resolution,
                    generator=torch.Generator().manual_seed(1))
    meta = {'adasde.role': 'decoder', 'adasde.family': family, 'adasde.scale_factor': repr(float(scale_factor)),
            'adasde.note': 'image = clamp(decode(z / scale_factor), -1, 1)'}
    common.export_onnx(dec, OrderedDict(z=z), out_path, output_names=('image',), metadata=meta, fp16=fp16,
                       fp16_io=fp16_io, opset=opset, external_data=external_data, verbose=verbose)
    return dec


def export_ldm(unet, first_stage, alphas_cumprod, out_path, *, scale_factor, latent_channels, latent_resolution,
               dataset_name='lsun_bedroom_ldm', fp16=False, fp16_io=False, opset=common.CONTRACT_OPSET,
               external_data=None, batch=2, verbose=True):
    """LDM eps UNet + first-stage model -> denoiser ONNX + decoder ONNX. Returns (denoiser, decoder, meta)."""
    out_dir = os.path.dirname(os.path.abspath(out_path))
    dec_name = common.companion_name(out_path, 'decoder')
    dec = export_decoder(first_stage, os.path.join(out_dir, dec_name), scale_factor=scale_factor,
                         latent_channels=latent_channels, latent_resolution=latent_resolution, fp16=fp16,
                         fp16_io=fp16_io, opset=opset, external_data=external_data, batch=batch, verbose=verbose)
    time = common.DiscreteTime(alphas_cumprod)
    wrapper = common.VPEpsDenoiser(unet, time, img_channels=latent_channels, net_call='compvis').eval()
    meta = common.contract_metadata(family='ldm', dataset_name=dataset_name, sigma_min=time.sigma_min,
                                    sigma_max=time.sigma_max, img_resolution=latent_resolution,
                                    img_channels=latent_channels, label_dim=0, alphas_cumprod=alphas_cumprod,
                                    decoder=dec_name)
    common.export_onnx(wrapper, latent_inputs(batch, latent_channels, latent_resolution, time), out_path,
                       metadata=meta, fp16=fp16, fp16_io=fp16_io, opset=opset, external_data=external_data,
                       verbose=verbose)
    return wrapper, dec, meta


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('--weights', required=True, help='models/ldm/lsun_beds256/model.ckpt')
    p.add_argument('--config', default=None,
                   help='model config (default: <upstream>/configs/latent-diffusion/lsun_bedrooms-ldm-vq-4.yaml)')
    p.add_argument('--dataset-name', default='lsun_bedroom_ldm')
    common.add_common_args(p)
    args = p.parse_args(argv)
    common.add_upstream_path(args.upstream)
    config = args.config or os.path.join(args.upstream or '.', 'configs/latent-diffusion/lsun_bedrooms-ldm-vq-4.yaml')
    common.resolve_out(args, args.dataset_name)
    model, cfg = load_compvis_model(config, args.weights)
    params = cfg.model.params
    ch, res = int(params.channels), int(params.image_size)
    ac = model.alphas_cumprod.detach().cpu().double().numpy()
    sf = float(model.scale_factor)
    print(f'[ldm] latents {ch}x{res}x{res}, {len(ac)} alphas_cumprod, scale_factor {sf}')
    export_ldm(model.model.diffusion_model, model.first_stage_model, ac, args.out, scale_factor=sf,
               latent_channels=ch, latent_resolution=res, dataset_name=args.dataset_name, fp16=args.fp16,
               fp16_io=args.fp16_io, opset=args.opset, external_data=common.external_flag(args), batch=args.batch)
    print('\nsample with:\n  ' + common.sample_command(args.out, extra='--schedule_type discrete --schedule_rho 1 --batch 8', dataset=args.dataset_name))
    return 0


if __name__ == '__main__':
    sys.exit(main())
