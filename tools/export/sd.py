"""Export Stable Diffusion v1.5 as an adasde text-conditional latent denoiser plus its
companions: the first-stage (VAE) decoder, the CLIP text encoder and the tokenizer files.

CompVis checkpoint (the reference implementation's path):
    python3 tools/export/sd.py --upstream /path/to/stable-diffusion \
        --config configs/stable-diffusion/v1-inference.yaml \
        --weights v1-5-pruned-emaonly.ckpt --fp16     # writes models/ms_coco.onnx (dataset_models.json)
diffusers folder (runwayml/stable-diffusion-v1-5 layout: unet/, vae/, text_encoder/,
tokenizer/, scheduler/; needs `diffusers` and `transformers`):
    python3 tools/export/sd.py --diffusers /path/to/stable-diffusion-v1-5 --fp16

writes (beside --out):
    ms_coco.onnx                  denoiser: x [N,4,64,64], sigma [N], condition [N,77,768] -> denoised
    ms_coco.onnx.data             weights, when over 2 GB (the fp32 UNet is 3.4 GB; --fp16 halves it)
    ms_coco.decoder.onnx          z [N,4,64,64] -> image [N,3,512,512] in [-1,1] (z / 0.18215 inside)
    ms_coco.text_encoder.onnx     input_ids int64 [N,77] -> condition [N,77,768] (last_hidden_state)
    ms_coco.tokenizer/            vocab.json, merges.txt (CLIP BPE; pad with <|endoftext|>, length 77)

(1) Upstream, CompVis: `ldm.util.instantiate_from_config` (see ldm.py); UNet
    `model.model.diffusion_model(x, timesteps, context=condition)`, schedule
    `model.alphas_cumprod`, decoder `model.first_stage_model` / `model.scale_factor`, text
    encoder `model.cond_stage_model.transformer` (transformers CLIPTextModel) and tokenizer
    `model.cond_stage_model.tokenizer` (CLIPTokenizer, saved with save_pretrained).
    diffusers: UNet2DConditionModel / AutoencoderKL / CLIPTextModel `from_pretrained`, the
    schedule from scheduler/scheduler_config.json (scaled_linear 0.00085..0.012, 1000 steps).
(2) Wrap: common.VPEpsDenoiser with common.DiscreteTime (network timestep
    1000 * sigma_inv(s) - 1), common.LatentDecoder, common.TextEncoder.
(3) Export: common.export_onnx for each graph. Classifier-free guidance is done by the
    sampler (two denoiser evaluations, the unconditional one with the empty prompt's
    condition), not inside the graph.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections import OrderedDict

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
common.isolate_from_upstream()  # our cm.py / ldm.py must not shadow upstream packages
ldm = common.load_sibling('ldm')

TOKENIZER_FILES = ('vocab.json', 'merges.txt')


def load_compvis(config, weights):
    model, cfg = ldm.load_compvis_model(config, weights)
    params = cfg.model.params
    clip = model.cond_stage_model
    parts = dict(unet=model.model.diffusion_model, unet_call='compvis', first_stage=model.first_stage_model,
                 decoder_call='compvis', scale_factor=float(model.scale_factor),
                 alphas_cumprod=model.alphas_cumprod.detach().cpu().double().numpy(),
                 text_model=clip.transformer, latent_channels=int(params.channels),
                 latent_resolution=int(params.image_size), max_length=int(getattr(clip, 'max_length', 77)))

    def save_tokenizer(dest):
        clip.tokenizer.save_pretrained(dest)
    parts['save_tokenizer'] = save_tokenizer
    return parts


def load_diffusers(root):
    from diffusers import UNet2DConditionModel, AutoencoderKL
    from transformers import CLIPTextModel
    unet = UNet2DConditionModel.from_pretrained(os.path.join(root, 'unet')).eval().float()
    vae = AutoencoderKL.from_pretrained(os.path.join(root, 'vae')).eval().float()
    text = CLIPTextModel.from_pretrained(os.path.join(root, 'text_encoder')).eval().float()
    with open(os.path.join(root, 'scheduler', 'scheduler_config.json')) as f:
        sc = json.load(f)
    ac = common.alphas_cumprod_from_betas(sc.get('beta_schedule', 'scaled_linear'), float(sc['beta_start']),
                                          float(sc['beta_end']), int(sc.get('num_train_timesteps', 1000)))
    ac = ac.astype(np.float32).astype(np.float64)  # the models see float32 alphas_cumprod

    def save_tokenizer(dest):
        os.makedirs(dest, exist_ok=True)
        for name in TOKENIZER_FILES:
            shutil.copyfile(os.path.join(root, 'tokenizer', name), os.path.join(dest, name))
    return dict(unet=unet, unet_call='diffusers', first_stage=vae, decoder_call='diffusers',
                scale_factor=float(getattr(vae.config, 'scaling_factor', 0.18215)), alphas_cumprod=ac,
                text_model=text, latent_channels=int(unet.config.in_channels),
                latent_resolution=int(unet.config.sample_size), max_length=77, save_tokenizer=save_tokenizer)


def export_text_encoder(text_model, out_path, *, max_length, vocab_size=None, bos=None, eos=None,
                        fp16=False, fp16_io=False, opset=common.CONTRACT_OPSET, external_data=None, batch=2,
                        verbose=True):
    enc = common.TextEncoder(text_model).eval()
    if vocab_size is None:
        cfg = getattr(text_model, 'config', None)
        vocab_size = getattr(cfg, 'vocab_size', None) or max(
            m.num_embeddings for m in text_model.modules() if isinstance(m, torch.nn.Embedding))
    bos = vocab_size - 2 if bos is None else bos
    eos = vocab_size - 1 if eos is None else eos
    ids = torch.full((batch, max_length), eos, dtype=torch.int64)
    ids[:, 0] = bos
    ids[:, 1:4] = torch.arange(3) + 300
    meta = {'adasde.role': 'text_encoder', 'adasde.family': 'sd',
            'adasde.note': 'input_ids: CLIP BPE tokens [<|startoftext|>, ..., <|endoftext|>] padded with '
                           '<|endoftext|> to max_length; output: last_hidden_state'}
    common.export_onnx(enc, OrderedDict(input_ids=ids), out_path, output_names=('condition',), metadata=meta,
                       fp16=fp16, fp16_io=fp16_io, opset=opset, external_data=external_data, verbose=verbose)
    return enc


def export_sd(parts, out_path, *, dataset_name='ms_coco', fp16=False, fp16_io=False, opset=common.CONTRACT_OPSET,
              external_data=None, batch=2, text_kw=None, verbose=True):
    """Denoiser + decoder + text encoder + tokenizer. Returns (denoiser, decoder, text encoder, meta)."""
    out_dir = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(out_dir, exist_ok=True)
    stem = common.companion_name(out_path, 'x')[:-len('.x.onnx')]
    dec_name = common.companion_name(out_path, 'decoder')
    txt_name = common.companion_name(out_path, 'text_encoder')
    tok_name = f'{stem}.tokenizer'
    C, R = parts['latent_channels'], parts['latent_resolution']
    kw = dict(fp16=fp16, fp16_io=fp16_io, opset=opset, external_data=external_data, batch=batch, verbose=verbose)
    dec = ldm.export_decoder(parts['first_stage'], os.path.join(out_dir, dec_name), scale_factor=parts['scale_factor'],
                             latent_channels=C, latent_resolution=R, net_call=parts['decoder_call'], family='sd', **kw)
    enc = export_text_encoder(parts['text_model'], os.path.join(out_dir, txt_name), max_length=parts['max_length'],
                              **(text_kw or {}), **kw)
    tok_dir = os.path.join(out_dir, tok_name)
    parts['save_tokenizer'](tok_dir)
    for name in TOKENIZER_FILES:
        if not os.path.isfile(os.path.join(tok_dir, name)):
            raise SystemExit(f'error: the tokenizer folder {tok_dir} has no {name}')
    with torch.no_grad():
        ids = torch.full((1, parts['max_length']), 0, dtype=torch.int64)
        cond_shape = tuple(enc(ids).shape[1:])
    time = common.DiscreteTime(parts['alphas_cumprod'])
    wrapper = common.VPEpsDenoiser(parts['unet'], time, img_channels=C, net_call=parts['unet_call'],
                                   cond='condition').eval()
    meta = common.contract_metadata(family='sd', dataset_name=dataset_name, sigma_min=time.sigma_min,
                                    sigma_max=time.sigma_max, img_resolution=R, img_channels=C, label_dim=0,
                                    alphas_cumprod=parts['alphas_cumprod'], decoder=dec_name, text_encoder=txt_name,
                                    tokenizer=tok_name,
                                    extra={'adasde.condition_shape': json.dumps(list(cond_shape)),
                                           'adasde.guidance_rate_default': '7.5'})
    common.export_onnx(wrapper, ldm.latent_inputs(batch, C, R, time, cond_shape=cond_shape), out_path,
                       metadata=meta, fp16=fp16, fp16_io=fp16_io, opset=opset, external_data=external_data,
                       verbose=verbose)
    return wrapper, dec, enc, meta


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--weights', help='CompVis checkpoint (v1-5-pruned-emaonly.ckpt); with --config')
    src.add_argument('--diffusers', help='diffusers model folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/)')
    p.add_argument('--config', default=None,
                   help='CompVis config (default: <upstream>/configs/stable-diffusion/v1-inference.yaml)')
    p.add_argument('--dataset-name', default='ms_coco')
    common.add_common_args(p)
    args = p.parse_args(argv)
    common.add_upstream_path(args.upstream)
    common.resolve_out(args, args.dataset_name)
    if args.weights:
        config = args.config or os.path.join(args.upstream or '.', 'configs/stable-diffusion/v1-inference.yaml')
        parts = load_compvis(config, args.weights)
    else:
        parts = load_diffusers(args.diffusers)
    print(f'[sd] latents {parts["latent_channels"]}x{parts["latent_resolution"]}^2, '
          f'{len(parts["alphas_cumprod"])} alphas_cumprod, scale_factor {parts["scale_factor"]}')
    export_sd(parts, args.out, dataset_name=args.dataset_name, fp16=args.fp16, fp16_io=args.fp16_io,
              opset=args.opset, external_data=common.external_flag(args), batch=args.batch)
    print('\nsample with:\n  ' + common.sample_command(
        args.out, extra='--schedule_type discrete --schedule_rho 1 --guidance_type cfg --guidance_rate 7.5 '
                        '--prompt "a photograph of an astronaut riding a horse" --batch 2', dataset=args.dataset_name))
    return 0


if __name__ == '__main__':
    sys.exit(main())
