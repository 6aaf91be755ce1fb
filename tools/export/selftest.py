"""Self-test of the exporters: tiny random networks with the upstream call interfaces go
through the same wrappers and export code as real weights, and the results become the
fixtures under test/fixtures/export/<family>/ for the Node suite.

    /usr/bin/python3 tools/export/selftest.py [--out test/fixtures/export] [--no-ort]

For each family it writes the ONNX file(s), `.npy` inputs and PyTorch outputs (float32,
plus a float64 evaluation of the same wrapper and network) and a manifest.json. It checks:
  * the wrapper formulas against direct float64 formulas (ALGORITHM.md section 8):
    sigma_inv(sigma(t)) = t for the VP and discrete schedules, DPM-Solver's interpolate_fn,
    EDM c_in / c_noise and the network time input seen by the network;
  * every exported graph with onnx.checker (and onnx.reference when this onnx has it);
  * finally, when node and onnxruntime-node are installed (the project's runtime), every
    fixture case through tools/export/verify_ort.mjs.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import common  # noqa: E402
common.isolate_from_upstream()  # our cm.py / ldm.py must not shadow upstream packages
edm = common.load_sibling('edm')
cm = common.load_sibling('cm')
adm = common.load_sibling('adm')
ldm = common.load_sibling('ldm')
sd = common.load_sibling('sd')
ddpm = common.load_sibling('ddpm')
clip_tokenizer = common.load_sibling('clip_tokenizer')

RTOL = 1e-4
RTOL_FP16 = 2e-2
PRODUCED_BY = '/usr/bin/python3 tools/export/selftest.py'
TOL_RULE = 'per sample i: max_j |onnx_ij - ref_ij| <= tolerance * max(1, max_j |ref_ij|)'

# =======================================================================================
# Tiny networks with the upstream interfaces (random weights)


class AttentionOp(torch.autograd.Function):
    """EDM's attention weights op (torch_utils/training networks.py): an autograd.Function."""

    @staticmethod
    def forward(ctx, q, k):
        w = torch.einsum('ncq,nck->nqk', q.to(torch.float32),
                         (k / np.sqrt(k.shape[1])).to(torch.float32)).softmax(dim=2).to(q.dtype)
        return w

    @staticmethod
    def backward(ctx, dw):  # pragma: no cover
        raise NotImplementedError


class PositionalEmbedding(nn.Module):
    """EDM PositionalEmbedding (endpoint=True, as in DDPM++)."""

    def __init__(self, num_channels, max_positions=10000, endpoint=True):
        super().__init__()
        self.num_channels, self.max_positions, self.endpoint = num_channels, max_positions, endpoint

    def forward(self, x):
        freqs = torch.arange(start=0, end=self.num_channels // 2, dtype=torch.float32, device=x.device)
        freqs = freqs / (self.num_channels // 2 - (1 if self.endpoint else 0))
        freqs = (1 / self.max_positions) ** freqs
        x = x.ger(freqs.to(x.dtype))
        return torch.cat([x.cos(), x.sin()], dim=1)


class TinyEDMUNet(nn.Module):
    """EDM SongUNet-like F(x, noise_labels, class_labels, augment_labels=None)."""

    def __init__(self, img_channels=3, label_dim=10, ch=16, emb=32, groups=4):
        super().__init__()
        self.label_dim, self.groups = label_dim, groups
        self.map_noise = PositionalEmbedding(ch)
        self.map_label = nn.Linear(label_dim, ch) if label_dim else None
        self.map_layer0, self.map_layer1 = nn.Linear(ch, emb), nn.Linear(emb, emb)
        self.conv_in = nn.Conv2d(img_channels, ch, 3, padding=1)
        self.norm0_w, self.norm0_b = nn.Parameter(torch.ones(ch)), nn.Parameter(torch.zeros(ch))
        self.affine = nn.Linear(emb, ch)
        self.conv0 = nn.Conv2d(ch, ch, 3, padding=1)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        self.conv_out = nn.Conv2d(2 * ch, img_channels, 3, padding=1)
        self.register_buffer('resample_filter', torch.ones(1, 1, 2, 2) / 4)
        with torch.no_grad():
            self.conv_out.weight.mul_(4)

    def forward(self, x, noise_labels, class_labels, augment_labels=None):
        emb = self.map_noise(noise_labels)
        emb = emb.reshape(emb.shape[0], 2, -1).flip(1).reshape(*emb.shape)  # swap sin/cos
        if self.map_label is not None:
            emb = emb + self.map_label(class_labels * np.sqrt(self.map_label.in_features))
        emb = F.silu(self.map_layer0(emb))
        emb = F.silu(self.map_layer1(emb))
        h0 = self.conv_in(x)
        h = F.silu(F.group_norm(h0, self.groups, self.norm0_w, self.norm0_b, eps=1e-5))
        h = self.conv0(h + self.affine(emb).unsqueeze(2).unsqueeze(3))
        h = (h + h0) * np.sqrt(0.5)
        C = self.conv0.out_channels  # a python int, as EDM's `self.in_channels`
        f = self.resample_filter
        d = F.conv2d(h, f.tile([C, 1, 1, 1]), groups=C, stride=2)
        q, k, v = self.qkv(F.group_norm(d, self.groups, eps=1e-5)).reshape(d.shape[0] * 2, C // 2, 3, -1).unbind(2)
        w = AttentionOp.apply(q, k)
        a = torch.einsum('nqk,nck->ncq', w, v)
        d = d + self.proj(a.reshape(*d.shape))
        u = F.conv_transpose2d(d, f.mul(4).tile([C, 1, 1, 1]), groups=C, stride=2)
        return self.conv_out(F.silu(torch.cat([u, h], dim=1)))


def timestep_embedding(timesteps, dim, max_period=10000):
    """guided-diffusion / CompVis timestep_embedding."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32) / half)
    args = timesteps[:, None] * freqs[None].to(timesteps.dtype)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class QKVAttentionLegacy(nn.Module):
    """guided-diffusion's legacy attention: qkv [B, H*3*C, T]."""

    def __init__(self, n_heads):
        super().__init__()
        self.n_heads = n_heads

    def forward(self, qkv):
        bs, width, length = qkv.shape
        ch = width // (3 * self.n_heads)
        q, k, v = qkv.reshape(bs * self.n_heads, ch * 3, length).split(ch, dim=1)
        scale = 1 / math.sqrt(math.sqrt(ch))
        weight = torch.einsum('bct,bcs->bts', q * scale, k * scale)
        weight = torch.softmax(weight, dim=-1)
        a = torch.einsum('bts,bcs->bct', weight, v)
        return a.reshape(bs, -1, length)


class AttentionBlock(nn.Module):
    def __init__(self, ch, heads, attention):
        super().__init__()
        self.norm = nn.GroupNorm(4, ch)
        self.qkv = nn.Conv1d(ch, 3 * ch, 1)
        self.attention = cm.FlashLayoutAttention(ch, heads) if attention == 'flash' else QKVAttentionLegacy(heads)
        self.proj_out = nn.Conv1d(ch, ch, 1)

    def forward(self, x):
        b, c, *spatial = x.shape
        qkv = self.qkv(self.norm(x).reshape(b, c, -1))
        h = self.attention(qkv)
        return x + self.proj_out(h).reshape(b, c, *spatial)


class ResBlock(nn.Module):
    def __init__(self, ch, emb_ch, out_ch=None, scale_shift=True):
        super().__init__()
        out_ch = out_ch or ch
        self.scale_shift = scale_shift
        self.in_layers = nn.Sequential(nn.GroupNorm(4, ch), nn.SiLU(), nn.Conv2d(ch, out_ch, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_ch, 2 * out_ch if scale_shift else out_ch))
        self.out_norm = nn.GroupNorm(4, out_ch)
        self.out_rest = nn.Sequential(nn.SiLU(), nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(ch, out_ch, 1) if out_ch != ch else nn.Identity()

    def forward(self, x, emb):
        h = self.in_layers(x)
        e = self.emb_layers(emb)[:, :, None, None]
        if self.scale_shift:
            scale, shift = torch.chunk(e, 2, dim=1)
            h = self.out_norm(h) * (1 + scale) + shift
        else:
            h = self.out_norm(h + e)
        return self.skip(x) + self.out_rest(h)


class TinyOpenAIUNet(nn.Module):
    """guided-diffusion / consistency-models UNetModel-like eps(x, timesteps, y=None)."""

    def __init__(self, in_ch=3, out_ch=3, ch=16, num_classes=None, attention='legacy', heads=2):
        super().__init__()
        self.ch, self.num_classes = ch, num_classes
        self.time_embed = nn.Sequential(nn.Linear(ch, 4 * ch), nn.SiLU(), nn.Linear(4 * ch, 4 * ch))
        if num_classes:
            self.label_emb = nn.Embedding(num_classes, 4 * ch)
        self.inp = nn.Conv2d(in_ch, ch, 3, padding=1)
        self.res0 = ResBlock(ch, 4 * ch)
        self.res1 = ResBlock(ch, 4 * ch, 2 * ch)
        self.attn = AttentionBlock(2 * ch, heads, attention)
        self.up_conv = nn.Conv2d(2 * ch, ch, 3, padding=1)
        self.res2 = ResBlock(2 * ch, 4 * ch, ch)
        self.out = nn.Sequential(nn.GroupNorm(4, ch), nn.SiLU(), nn.Conv2d(ch, out_ch, 3, padding=1))
        with torch.no_grad():
            self.out[2].weight.mul_(4)

    def forward(self, x, timesteps, y=None):
        assert (y is not None) == bool(self.num_classes)
        emb = self.time_embed(timestep_embedding(timesteps, self.ch))
        if self.num_classes:
            emb = emb + self.label_emb(y)
        h0 = self.res0(self.inp(x), emb)
        h = F.avg_pool2d(h0, kernel_size=2, stride=2)
        h = self.attn(self.res1(h, emb))
        h = self.up_conv(F.interpolate(h, scale_factor=2, mode='nearest'))
        h = self.res2(torch.cat([h, h0], dim=1), emb)
        return self.out(h)


class TinyClassifier(nn.Module):
    """guided-diffusion EncoderUNetModel-like logits(x, timesteps)."""

    def __init__(self, in_ch=3, ch=16, classes=10):
        super().__init__()
        self.ch = ch
        self.time_embed = nn.Sequential(nn.Linear(ch, 4 * ch), nn.SiLU(), nn.Linear(4 * ch, 4 * ch))
        self.inp = nn.Conv2d(in_ch, ch, 3, padding=1)
        self.res = ResBlock(ch, 4 * ch)
        self.attn = AttentionBlock(ch, 2, 'legacy')
        self.out = nn.Sequential(nn.GroupNorm(4, ch), nn.SiLU(), nn.Linear(ch, classes))

    def forward(self, x, timesteps):
        emb = self.time_embed(timestep_embedding(timesteps, self.ch))
        h = self.attn(self.res(self.inp(x), emb))
        h = F.avg_pool2d(h, 2)
        h = self.out[1](self.out[0](h)).mean(dim=(2, 3))
        return self.out[2](h) * 3


class QKVAttention(nn.Module):
    """guided-diffusion's QKVAttention (q, k, v chunks first, then heads), as AttentionPool2d uses it."""

    def __init__(self, n_heads):
        super().__init__()
        self.n_heads = n_heads

    def forward(self, qkv):
        bs, width, length = qkv.shape
        ch = width // (3 * self.n_heads)
        q, k, v = qkv.chunk(3, dim=1)
        scale = 1 / math.sqrt(math.sqrt(ch))
        weight = torch.einsum('bct,bcs->bts', (q * scale).reshape(bs * self.n_heads, ch, length),
                              (k * scale).reshape(bs * self.n_heads, ch, length))
        weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
        a = torch.einsum('bts,bcs->bct', weight, v.reshape(bs * self.n_heads, ch, length))
        return a.reshape(bs, -1, length)


class AttentionPool2d(nn.Module):
    """guided-diffusion's AttentionPool2d: the mean token plus positions, attention, token 0."""

    def __init__(self, spacial_dim, embed_dim, num_heads_channels, output_dim):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(embed_dim, spacial_dim ** 2 + 1) / embed_dim ** 0.5)
        self.qkv_proj = nn.Conv1d(embed_dim, 3 * embed_dim, 1)
        self.c_proj = nn.Conv1d(embed_dim, output_dim, 1)
        self.attention = QKVAttention(embed_dim // num_heads_channels)

    def forward(self, x):
        b, c, *_spatial = x.shape
        x = x.reshape(b, c, -1)
        x = torch.cat([x.mean(dim=-1, keepdim=True), x], dim=-1)
        x = x + self.positional_embedding[None, :, :].to(x.dtype)
        x = self.attention(self.qkv_proj(x))
        return self.c_proj(x)[:, :, 0]


class TinyAttnPoolClassifier(nn.Module):
    """The 256x256 ADM classifier's layout in miniature (EncoderUNetModel, pool='attention'):
    conv, a scale-shift ResBlock, a stride-2 downsampling conv, attention, GroupNorm + SiLU,
    AttentionPool2d."""

    def __init__(self, in_ch=3, ch=16, classes=10, res=8):
        super().__init__()
        self.ch = ch
        self.time_embed = nn.Sequential(nn.Linear(ch, 4 * ch), nn.SiLU(), nn.Linear(4 * ch, 4 * ch))
        self.inp = nn.Conv2d(in_ch, ch, 3, padding=1)
        self.res = ResBlock(ch, 4 * ch)
        self.down = nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1)
        self.attn = AttentionBlock(2 * ch, 2, 'legacy')
        self.norm = nn.GroupNorm(4, 2 * ch)
        self.pool = AttentionPool2d(res // 2, 2 * ch, 8, classes)

    def forward(self, x, timesteps):
        emb = self.time_embed(timestep_embedding(timesteps, self.ch))
        h = self.attn(self.down(self.res(self.inp(x), emb)))
        return self.pool(F.silu(self.norm(h))) * 3


class CrossAttention(nn.Module):
    def __init__(self, ch, context_dim, heads=2):
        super().__init__()
        self.heads, self.scale = heads, (ch // heads) ** -0.5
        self.to_q = nn.Linear(ch, ch, bias=False)
        self.to_k = nn.Linear(context_dim or ch, ch, bias=False)
        self.to_v = nn.Linear(context_dim or ch, ch, bias=False)
        self.to_out = nn.Linear(ch, ch)

    def forward(self, x, context=None):
        context = x if context is None else context
        q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
        b, n, c = q.shape
        h = self.heads
        q, k, v = (t.reshape(b, -1, h, c // h).permute(0, 2, 1, 3).reshape(b * h, -1, c // h) for t in (q, k, v))
        sim = torch.einsum('b i d, b j d -> b i j', q, k) * self.scale
        out = torch.einsum('b i j, b j d -> b i d', sim.softmax(dim=-1), v)
        out = out.reshape(b, h, -1, c // h).permute(0, 2, 1, 3).reshape(b, -1, c)
        return self.to_out(out)


class TinyCompVisUNet(nn.Module):
    """CompVis ldm UNetModel-like eps(x, timesteps, context=None) with a SpatialTransformer."""

    def __init__(self, in_ch=3, ch=16, context_dim=None):
        super().__init__()
        self.ch = ch
        self.time_embed = nn.Sequential(nn.Linear(ch, 4 * ch), nn.SiLU(), nn.Linear(4 * ch, 4 * ch))
        self.inp = nn.Conv2d(in_ch, ch, 3, padding=1)
        self.res0 = ResBlock(ch, 4 * ch, scale_shift=False)
        self.down = nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1)
        self.norm1, self.attn1 = nn.LayerNorm(2 * ch), CrossAttention(2 * ch, None)
        self.norm2, self.attn2 = nn.LayerNorm(2 * ch), CrossAttention(2 * ch, context_dim)
        self.up = nn.Conv2d(2 * ch, ch, 3, padding=1)
        self.res1 = ResBlock(2 * ch, 4 * ch, ch, scale_shift=False)
        self.out = nn.Sequential(nn.GroupNorm(4, ch), nn.SiLU(), nn.Conv2d(ch, in_ch, 3, padding=1))
        with torch.no_grad():
            self.out[2].weight.mul_(4)

    def forward(self, x, timesteps=None, context=None):
        emb = self.time_embed(timestep_embedding(timesteps, self.ch))
        h0 = self.res0(self.inp(x), emb)
        h = self.down(h0)
        b, c, hh, ww = h.shape
        t = h.reshape(b, c, hh * ww).transpose(1, 2)
        t = t + self.attn1(self.norm1(t))
        t = t + self.attn2(self.norm2(t), context=context)
        h = t.transpose(1, 2).reshape(b, c, hh, ww)
        h = self.up(F.interpolate(h, scale_factor=2.0, mode='nearest'))
        h = self.res1(torch.cat([h, h0], dim=1), emb)
        return self.out(h)


class TinyVQFirstStage(nn.Module):
    """VQModelInterface-like: decode(h, force_not_quantize=False) quantizes to the codebook."""

    def __init__(self, embed_dim=3, n_embed=16, ch=16, out_ch=3):
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)
        self.embedding.weight.data.uniform_(-1.5, 1.5)
        self.post_quant_conv = nn.Conv2d(embed_dim, embed_dim, 1)
        self.conv_in = nn.Conv2d(embed_dim, ch, 3, padding=1)
        self.conv_out = nn.Conv2d(ch, out_ch, 3, padding=1)

    def quantize(self, z):
        zf = z.permute(0, 2, 3, 1)
        flat = zf.reshape(-1, zf.shape[-1])
        e = self.embedding.weight
        d = (flat ** 2).sum(dim=1, keepdim=True) + (e ** 2).sum(dim=1) - 2 * torch.einsum('bd,dn->bn', flat, e.t())
        idx = torch.argmin(d, dim=1)
        return self.embedding(idx).reshape(zf.shape).permute(0, 3, 1, 2)

    def decode(self, h, force_not_quantize=False):
        quant = h if force_not_quantize else self.quantize(h)
        x = F.silu(self.conv_in(self.post_quant_conv(quant)))
        x = F.interpolate(x, scale_factor=2.0, mode='nearest')
        return self.conv_out(x) * 2


class TinyKLFirstStage(nn.Module):
    """AutoencoderKL-like: decode(z)."""

    def __init__(self, embed_dim=4, ch=16, out_ch=3):
        super().__init__()
        self.post_quant_conv = nn.Conv2d(embed_dim, embed_dim, 1)
        self.conv_in = nn.Conv2d(embed_dim, ch, 3, padding=1)
        self.norm = nn.GroupNorm(4, ch)
        self.conv_out = nn.Conv2d(ch, out_ch, 3, padding=1)

    def decode(self, z):
        x = self.conv_in(self.post_quant_conv(z))
        x = F.interpolate(F.silu(self.norm(x)), scale_factor=2.0, mode='nearest')
        return self.conv_out(x) * 2


class TinyCLIPText(nn.Module):
    """transformers CLIPTextModel-like: forward(input_ids) -> (last_hidden_state,)."""

    def __init__(self, vocab_size, max_length=77, dim=32, heads=2):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.position_embedding = nn.Embedding(max_length, dim)
        self.register_buffer('position_ids', torch.arange(max_length).expand((1, -1)), persistent=False)
        self.ln1, self.attn = nn.LayerNorm(dim), CrossAttention(dim, None, heads)
        self.ln2, self.fc1, self.fc2 = nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.heads = heads

    def forward(self, input_ids=None):
        L = input_ids.shape[-1]
        h = self.token_embedding(input_ids) + self.position_embedding(self.position_ids[:, :L])
        # causal self-attention (CLIP text model)
        x = self.ln1(h)
        a = self.attn
        b, n, c = x.shape
        hd = self.heads
        q, k, v = (t.reshape(b, n, hd, c // hd).transpose(1, 2) for t in (a.to_q(x), a.to_k(x), a.to_v(x)))
        mask = torch.empty(n, n, dtype=x.dtype).fill_(float('-inf')).triu_(1)
        w = (torch.matmul(q, k.transpose(-1, -2)) * a.scale + mask).softmax(dim=-1)
        h = h + a.to_out(torch.matmul(w, v).transpose(1, 2).reshape(b, n, c))
        y = self.fc1(self.ln2(h))
        h = h + self.fc2(y * torch.sigmoid(1.702 * y))  # quick_gelu
        return (self.final_layer_norm(h),)


# =======================================================================================
# helpers

def np_save(folder, name, arr, files, role):
    arr = np.ascontiguousarray(arr)
    np.save(os.path.join(folder, name), arr)
    files[name] = {'role': role, 'dtype': str(arr.dtype), 'shape': list(arr.shape)}
    return name


def to_np(t):
    return t.detach().cpu().numpy()


def run(module, inputs, dtype=torch.float32):
    m = copy.deepcopy(module)
    common.set_compute_dtype(m, dtype)
    args = [v.to(dtype) if v.is_floating_point() else v for v in inputs.values()]
    with torch.no_grad():
        return m(*args)


def input_gradient(module, inputs, labels, dtype=torch.float32):
    """PyTorch autograd: d/dx sum_k labels_k module(x, ...)_k, the gradient classifier guidance uses."""
    m = copy.deepcopy(module)
    common.set_compute_dtype(m, dtype)
    args = [v.to(dtype).clone() for v in inputs.values()]
    args[0].requires_grad_(True)
    with torch.enable_grad():
        (m(*args) * labels.to(dtype)).sum().backward()
    return args[0].grad


def capture_net_inputs(module, inputs, dtype=torch.float32):
    """Arguments the wrapped network receives (x_in, time input), via a forward pre-hook."""
    m = copy.deepcopy(module)
    common.set_compute_dtype(m, dtype)
    seen = {}

    def hook(_mod, args, kwargs=None):
        seen['x_in'], seen['t'] = args[0], args[1]
    h = m.net.register_forward_pre_hook(hook)
    args = [v.to(dtype) if v.is_floating_point() else v for v in inputs.values()]
    with torch.no_grad():
        m(*args)
    h.remove()
    return seen


def max_rel_err(a, b):
    """The manifest's rule: max over samples of max|a-b| / max(1, max|b|)."""
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    return float(np.max(np.abs(a - b).max(axis=1) / np.maximum(1.0, np.abs(b).max(axis=1))))


def model_io(path):
    import onnx
    m = onnx.load(path, load_external_data=False)
    names = {1: 'float32', 10: 'float16', 7: 'int64', 6: 'int32', 11: 'float64'}

    def desc(vi):
        t = vi.type.tensor_type
        return {'dtype': names.get(t.elem_type, str(t.elem_type)),
                'shape': [d.dim_param if d.dim_param else d.dim_value for d in t.shape.dim]}
    return {'inputs': {i.name: desc(i) for i in m.graph.input},
            'outputs': {o.name: desc(o) for o in m.graph.output},
            'metadata': {p.key: (p.value if len(p.value) <= 300 else p.value[:300] + '...') for p in m.metadata_props},
            'opset': max(o.version for o in m.opset_import if o.domain in ('', 'ai.onnx')),
            'bytes': os.path.getsize(path)}


def reference_evaluator_check(path, feeds, expected, tol):
    """onnx.reference (onnx >= 1.13) on the exported graph, when available."""
    try:
        from onnx.reference import ReferenceEvaluator
    except ImportError:
        return 'unavailable (onnx %s has no onnx.reference)' % __import__('onnx').__version__
    sess = ReferenceEvaluator(path)
    outs = sess.run(None, feeds)
    err = max_rel_err(outs[0], expected)
    if err > tol:
        raise AssertionError(f'{path}: onnx.reference differs from torch by {err:.3g}')
    return f'ok, max rel err {err:.3g}'


class Family:
    def __init__(self, root, name, description):
        self.dir = os.path.join(root, name)
        if os.path.isdir(self.dir):
            shutil.rmtree(self.dir)
        os.makedirs(self.dir)
        self.name = name
        self.files = OrderedDict()
        self.models = OrderedDict()
        self.cases = []
        self.checks = OrderedDict()
        self.manifest = OrderedDict(family=name, description=description, produced_by=PRODUCED_BY,
                                    torch=torch.__version__, onnx=__import__('onnx').__version__,
                                    tolerance=RTOL, tolerance_rule=TOL_RULE)

    def path(self, name):
        return os.path.join(self.dir, name)

    def add_model(self, fname, role):
        info = model_io(self.path(fname))
        info['role'] = role
        self.models[fname] = info
        self.files[fname] = {'role': role, 'bytes': info['bytes']}

    def add_case(self, name, model, inputs, outputs, tolerance=RTOL, ref64=None, note=None):
        """inputs: {graph input: npy file}; outputs: {graph output: npy file (float32 torch)}."""
        case = OrderedDict(name=name, model=model, inputs=inputs, outputs=outputs, tolerance=tolerance)
        if ref64:
            case['reference_float64'] = ref64
        if note:
            case['note'] = note
        self.cases.append(case)

    def write(self):
        self.manifest['models'] = self.models
        self.manifest['cases'] = self.cases
        self.manifest['files'] = self.files
        self.manifest['checks'] = self.checks
        with open(self.path('manifest.json'), 'w') as f:
            json.dump(self.manifest, f, indent=1)
        total = sum(os.path.getsize(self.path(n)) for n in os.listdir(self.dir))
        print(f'[{self.name}] {len(self.cases)} cases, {total / 1024:.0f} KiB')
        return total


def save_case_io(fam, prefix, inputs, outputs_f32, outputs_f64=None):
    ins = OrderedDict()
    for k, v in inputs.items():
        ins[k] = np_save(fam.dir, f'{prefix}{k}.npy', to_np(v), fam.files, 'input')
    outs, outs64 = OrderedDict(), OrderedDict()
    for k, v in outputs_f32.items():
        outs[k] = np_save(fam.dir, f'{prefix}{k}.npy', to_np(v).astype(np.float32), fam.files, 'output (torch float32)')
    for k, v in (outputs_f64 or {}).items():
        outs64[k] = np_save(fam.dir, f'{prefix}{k}64.npy', to_np(v).astype(np.float64), fam.files,
                            'output (torch float64)')
    return ins, outs, outs64


def check_torch_vs_onnx_reference(fam, model_file, inputs, ref):
    feeds = {k: to_np(v) for k, v in inputs.items()}
    fam.checks.setdefault('onnx_reference_evaluator', {})[model_file] = \
        reference_evaluator_check(fam.path(model_file), feeds, to_np(ref), RTOL)


# =======================================================================================
# wrapper-math checks (float64 reference formulas)

def check_vp_schedule():
    vp = common.VPContinuousTime()
    t = np.linspace(1e-3, 1, 2001)
    s = vp.sigma_np(t)
    roundtrip = float(np.max(np.abs(vp.sigma_inv_np(s) - t)))
    direct_sigma = np.sqrt(np.exp(0.5 * 19.9 * t ** 2 + 0.1 * t) - 1)
    sig_err = float(np.max(np.abs(s - direct_sigma) / direct_sigma))
    with torch.no_grad():
        ts32 = vp(torch.tensor(s, dtype=torch.float32)).numpy().astype(np.float64)
    graph_err = float(np.max(np.abs(ts32 - 999 * t)))
    assert roundtrip < 1e-12 and sig_err < 1e-12, (roundtrip, sig_err)
    assert graph_err < 2e-3, graph_err
    return {'sigma_inv(sigma(t)) - t, max abs (float64, t in [1e-3, 1])': roundtrip,
            'sigma(t) vs sqrt(exp(0.5 beta_d t^2 + beta_min t) - 1), max rel': sig_err,
            'graph timestep (float32) - 999 t, max abs (timestep units)': graph_err,
            'sigma_min': vp.sigma_min, 'sigma_max': vp.sigma_max}


def interpolate_fn(x, xp, yp):
    """DPM-Solver's interpolate_fn (sort-based), float64: x [N, C], xp/yp [C, K] increasing xp."""
    N, K = x.shape[0], xp.shape[1]
    all_x = torch.cat([x.unsqueeze(2), xp.unsqueeze(0).repeat((N, 1, 1))], dim=2)
    sorted_all_x, x_indices = torch.sort(all_x, dim=2)
    x_idx = torch.argmin(x_indices, dim=2)
    cand_start_idx = x_idx - 1
    start_idx = torch.where(torch.eq(x_idx, 0), torch.tensor(1),
                            torch.where(torch.eq(x_idx, K), torch.tensor(K - 2), cand_start_idx))
    end_idx = torch.where(torch.eq(start_idx, cand_start_idx), start_idx + 2, start_idx + 1)
    start_x = torch.gather(sorted_all_x, dim=2, index=start_idx.unsqueeze(2)).squeeze(2)
    end_x = torch.gather(sorted_all_x, dim=2, index=end_idx.unsqueeze(2)).squeeze(2)
    start_idx2 = torch.where(torch.eq(x_idx, 0), torch.tensor(0),
                             torch.where(torch.eq(x_idx, K), torch.tensor(K - 2), cand_start_idx))
    y_positions_expanded = yp.unsqueeze(0).expand(N, -1, -1)
    start_y = torch.gather(y_positions_expanded, dim=2, index=start_idx2.unsqueeze(2)).squeeze(2)
    end_y = torch.gather(y_positions_expanded, dim=2, index=(start_idx2 + 1).unsqueeze(2)).squeeze(2)
    return start_y + (x - start_x) * (end_y - start_y) / (end_x - start_x)


def check_discrete_schedule(ac, label):
    dt = common.DiscreteTime(ac)
    M = dt.M
    # sigma at the knots is sqrt((1 - ac) / ac)
    knot_err = float(np.max(np.abs(dt.sigma_np(dt.t_knots) / np.sqrt((1 - dt.alphas_cumprod) / dt.alphas_cumprod) - 1)))
    t = np.concatenate([np.linspace(1e-3, 1, 4001), [5e-4, 1.05]])  # inside and extrapolated
    s = dt.sigma_np(t)
    roundtrip = float(np.max(np.abs(dt.sigma_inv_np(s) - t)))
    # against DPM-Solver's interpolate_fn (both directions)
    la_ref = interpolate_fn(torch.tensor(t).reshape(-1, 1), torch.tensor(dt.t_knots).reshape(1, -1),
                            torch.tensor(dt.log_alpha_knots).reshape(1, -1)).reshape(-1).numpy()
    la_err = float(np.max(np.abs(la_ref - dt.log_alpha_np(t))))
    lam = -0.5 * np.log1p(s ** 2)  # log_alpha of sigma
    t_ref = interpolate_fn(torch.tensor(lam).reshape(-1, 1), torch.flip(torch.tensor(dt.log_alpha_knots), [0]).reshape(1, -1),
                           torch.flip(torch.tensor(dt.t_knots), [0]).reshape(1, -1)).reshape(-1).numpy()
    inv_err = float(np.max(np.abs(t_ref - dt.sigma_inv_np(s))))
    with torch.no_grad():
        ts32 = dt(torch.tensor(s, dtype=torch.float32)).numpy().astype(np.float64)
    graph_err = float(np.max(np.abs(ts32 - (M * t - 1))))
    assert knot_err < 1e-12 and roundtrip < 1e-10 and la_err < 1e-12 and inv_err < 1e-12, \
        (knot_err, roundtrip, la_err, inv_err)
    assert graph_err < 0.05, graph_err
    return {'schedule': label,
            'sigma(t_k) vs sqrt((1 - ac_k) / ac_k), max rel': knot_err,
            'sigma_inv(sigma(t)) - t, max abs (float64, t in [5e-4, 1.05])': roundtrip,
            'log_alpha(t) vs DPM-Solver interpolate_fn, max abs': la_err,
            'sigma_inv vs interpolate_fn inverse_lambda, max abs': inv_err,
            'graph timestep (float32) - (M t - 1), max abs (timestep units)': graph_err,
            'sigma_min': dt.sigma_min, 'sigma_max': dt.sigma_max}


def check_net_inputs(wrapper, inputs, expected_x_in64, expected_t64):
    """The network inputs the wrapper computes in float32, against float64 formulas."""
    seen = capture_net_inputs(wrapper, inputs)
    x_err = float(np.max(np.abs(to_np(seen['x_in']).astype(np.float64) - expected_x_in64)
                         / np.maximum(1.0, np.abs(expected_x_in64))))
    t_err = float(np.max(np.abs(to_np(seen['t']).astype(np.float64) - expected_t64) / np.maximum(1.0, np.abs(expected_t64))))
    assert x_err < 1e-5 and t_err < 1e-5, (x_err, t_err)
    return {'network input x_in (float32) vs float64 formula, max rel': x_err,
            'network time input (float32) vs float64 formula, max rel': t_err}


# =======================================================================================
# families

def family_edm(root):
    fam = Family(root, 'edm', 'EDM preconditioning (EDMPrecond, sigma_data 0.5) around a tiny SongUNet-like '
                              'F(x_in, c_noise, class_labels); class-conditional (label_dim 10); also float16 exports')
    torch.manual_seed(1)
    net = TinyEDMUNet(img_channels=3, label_dim=10)
    kw = dict(img_resolution=8, img_channels=3, label_dim=10, dataset_name='tiny-edm', batch=2, verbose=False)
    wrapper, _ = edm.export_denoiser(net, fam.path('denoiser.onnx'), **kw)
    edm.export_denoiser(net, fam.path('denoiser.fp16.onnx'), fp16=True, **kw)
    edm.export_denoiser(net, fam.path('denoiser.fp16io.onnx'), fp16=True, fp16_io=True, **kw)
    inputs = edm.example_inputs(4, 3, 8, 10, seed=123)  # N = 4 (traced with N = 2)
    y32, y64 = run(wrapper, inputs), run(wrapper, inputs, torch.float64)
    ins, outs, outs64 = save_case_io(fam, '', inputs, {'denoised': y32}, {'denoised': y64})
    for f, role in (('denoiser.onnx', 'denoiser'), ('denoiser.fp16.onnx', 'denoiser (fp16 weights/network, float32 io)'),
                    ('denoiser.fp16io.onnx', 'denoiser (fp16 weights/network, float16 io)')):
        fam.add_model(f, role)
    fam.add_case('denoiser', 'denoiser.onnx', ins, outs, ref64=outs64)
    fam.add_case('denoiser-fp16', 'denoiser.fp16.onnx', ins, outs, tolerance=RTOL_FP16)
    ins16 = OrderedDict((k, np_save(fam.dir, f'{k}_f16.npy', to_np(v).astype(np.float16), fam.files, 'input (float16)'))
                        for k, v in inputs.items())
    fam.add_case('denoiser-fp16io', 'denoiser.fp16io.onnx', ins16, outs, tolerance=RTOL_FP16,
                 note='float16 inputs and output; compare the output converted to float64')
    # wrapper math in float64
    x64, s64 = inputs['x'].double(), inputs['sigma'].double().reshape(-1, 1, 1, 1)
    c_in = 1 / torch.sqrt(0.25 + s64 ** 2)
    c_noise = torch.log(s64.flatten()) / 4
    np_save(fam.dir, 'net_time64.npy', to_np(c_noise), fam.files, 'check: c_noise = ln(sigma)/4 (float64)')
    fam.checks['edm_wrapper'] = check_net_inputs(wrapper, inputs, to_np(c_in * x64), to_np(c_noise))
    D_direct = to_np(((0.25 / (s64 ** 2 + 0.25)) * x64 + (s64 * 0.5 / torch.sqrt(s64 ** 2 + 0.25))
                      * copy.deepcopy(net).double()(c_in * x64, c_noise, inputs['class_labels'].double())))
    fam.checks['edm_wrapper']['D float64 vs c_skip x + c_out F(c_in x, ln(s)/4, labels), max rel'] = \
        max_rel_err(to_np(y64), D_direct)
    fam.checks['float32 torch vs float64 torch, max rel'] = max_rel_err(to_np(y32), to_np(y64))
    check_torch_vs_onnx_reference(fam, 'denoiser.onnx', inputs, y32)
    return fam.write()


def family_cm(root):
    fam = Family(root, 'cm', 'Consistency-Models EDM bedroom preconditioning: EDM with network time input '
                             '1000 ln(sigma)/4, around a tiny UNetModel-like F(x_in, timesteps) with CM flash-layout '
                             'attention (cm.FlashLayoutAttention); unconditional')
    torch.manual_seed(2)
    net = TinyOpenAIUNet(attention='flash')
    wrapper, _ = cm.export_denoiser(net, fam.path('denoiser.onnx'), img_resolution=8, dataset_name='tiny-cm',
                                    batch=2, verbose=False)
    fam.add_model('denoiser.onnx', 'denoiser')
    inputs = edm.example_inputs(3, 3, 8, 0, sigmas=(0.002, 1.0, 80.0), seed=7)
    y32, y64 = run(wrapper, inputs), run(wrapper, inputs, torch.float64)
    ins, outs, outs64 = save_case_io(fam, '', inputs, {'denoised': y32}, {'denoised': y64})
    fam.add_case('denoiser', 'denoiser.onnx', ins, outs, ref64=outs64)
    s64 = inputs['sigma'].double()
    t64 = 1000 * 0.25 * torch.log(s64)
    np_save(fam.dir, 'net_time64.npy', to_np(t64), fam.files, 'check: 1000 ln(sigma)/4 (float64)')
    fam.checks['cm_wrapper'] = check_net_inputs(wrapper, inputs, to_np(inputs['x'].double() / torch.sqrt(0.25 + s64.reshape(-1, 1, 1, 1) ** 2)),
                                                to_np(t64))
    # the flash-layout attention equals the "(three h d)" reference layout
    qkv = torch.randn(2, 3 * 2 * 8, 5, dtype=torch.float64)
    att = cm.FlashLayoutAttention(16, 2)
    q, k, v = qkv.reshape(2, 3, 2, 8, 5).permute(0, 4, 1, 2, 3).unbind(2)  # "b (three h d) s -> b s three h d"
    w = torch.einsum('bthd,bshd->bhts', q, k) / math.sqrt(8)
    ref = torch.einsum('bhts,bshd->bthd', w.softmax(-1), v).reshape(2, 5, 16).transpose(1, 2)  # "b s h d -> b (h d) s"
    fam.checks['flash layout attention vs einops-layout reference, max abs'] = float((att(qkv) - ref).abs().max())
    assert fam.checks['flash layout attention vs einops-layout reference, max abs'] < 1e-12
    fam.checks['float32 torch vs float64 torch, max rel'] = max_rel_err(to_np(y32), to_np(y64))
    check_torch_vs_onnx_reference(fam, 'denoiser.onnx', inputs, y32)
    return fam.write()


def family_adm(root):
    fam = Family(root, 'adm', 'ADM: VP eps-prediction (continuous VP beta_min 0.1, beta_d 19.9, timestep '
                              '999 sigma_inv(s)), learned-sigma output (6 channels, eps = first 3), one-hot labels -> '
                              'argmax, D clamped to [-1, 1]; plus the noisy classifier companion (log_probs)')
    torch.manual_seed(3)
    net = TinyOpenAIUNet(out_ch=6, num_classes=10, attention='legacy')
    clf = TinyClassifier(classes=10)
    wrapper, clf_wrapper, meta = adm.export_adm(net, clf, fam.path('denoiser.onnx'), img_resolution=8, label_dim=10,
                                                dataset_name='tiny-adm', batch=2, verbose=False)
    clf_file = meta['adasde.classifier']
    fam.add_model('denoiser.onnx', 'denoiser')
    fam.add_model(clf_file, 'classifier (companion adasde.classifier)')
    vp = common.VPContinuousTime()
    g = torch.Generator().manual_seed(11)
    sig = torch.tensor([vp.sigma_min, 0.1, 0.5, vp.sigma_max], dtype=torch.float32)
    x = (torch.rand(4, 3, 8, 8, generator=g) * 2 - 1) + sig.reshape(-1, 1, 1, 1) * torch.randn(4, 3, 8, 8, generator=g)
    labels = F.one_hot(torch.tensor([3, 0, 9, 5]), 10).to(torch.float32)
    inputs = OrderedDict(x=x, sigma=sig, class_labels=labels)
    y32, y64 = run(wrapper, inputs), run(wrapper, inputs, torch.float64)
    ins, outs, outs64 = save_case_io(fam, '', inputs, {'denoised': y32}, {'denoised': y64})
    fam.add_case('denoiser', 'denoiser.onnx', ins, outs, ref64=outs64, tolerance=1e-3,
                 note='tolerance 1e-3, not 1e-4: at sigma_max = 152 the unclamped entries of x - s*eps cancel '
                      'two ~150-sized float32 numbers (torch float32 itself differs from float64 by ~1.3e-4 there)')
    cin = OrderedDict(x=x, sigma=sig)
    lp32, lp64 = run(clf_wrapper, cin), run(clf_wrapper, cin, torch.float64)
    _, couts, couts64 = save_case_io(fam, '', {}, {'log_probs': lp32}, {'log_probs': lp64})
    fam.add_case('classifier', clf_file, OrderedDict(x=ins['x'], sigma=ins['sigma']), couts, ref64=couts64)
    # Classifier guidance: PyTorch autograd's d/dx sum_k labels_k log_probs (float32 and float64) for
    # the TypeScript gradient transform (src/graph/gradient.ts), for the companion and for a
    # classifier with the released model's attention pooling.
    torch.manual_seed(5)
    pool_clf = common.VPClassifier(TinyAttnPoolClassifier(classes=10, res=8), vp).eval()
    pool_file = 'classifier-attnpool.onnx'
    common.export_onnx(pool_clf, OrderedDict(x=x[:2], sigma=sig[:2]), fam.path(pool_file), output_names=('log_probs',),
                       metadata={'adasde.role': 'classifier', 'adasde.family': 'adm', 'adasde.dataset_name': 'tiny-adm'},
                       verbose=False)
    fam.add_model(pool_file, 'classifier (attention pooling, as the 256x256 ADM classifier)')
    plp32, plp64 = run(pool_clf, cin), run(pool_clf, cin, torch.float64)
    _, pouts, pouts64 = save_case_io(fam, 'attnpool_', {}, {'log_probs': plp32}, {'log_probs': plp64})
    fam.add_case('classifier-attnpool', pool_file, OrderedDict(x=ins['x'], sigma=ins['sigma']), pouts, ref64=pouts64)
    gcases = []
    for name, module, model_file, prefix in (('classifier', clf_wrapper, clf_file, ''),
                                             ('classifier-attnpool', pool_clf, pool_file, 'attnpool_')):
        g32, g64 = input_gradient(module, cin, labels), input_gradient(module, cin, labels, torch.float64)
        _, gouts, gouts64 = save_case_io(fam, prefix, {}, {'grad_x': g32}, {'grad_x': g64})
        gcases.append(OrderedDict(name=f'{name}-gradient', model=model_file,
                                  inputs=OrderedDict(x=ins['x'], sigma=ins['sigma'], class_labels=ins['class_labels']),
                                  outputs=gouts, reference_float64=gouts64, tolerance=RTOL))
        fam.checks[f'{name} gradient: float32 torch vs float64 torch, max rel'] = max_rel_err(to_np(g32), to_np(g64))
    fam.manifest['gradient_cases'] = gcases
    s64 = sig.double()
    t64 = torch.tensor(vp.timestep_np(s64.numpy()))
    np_save(fam.dir, 'net_time64.npy', to_np(t64), fam.files, 'check: 999 sigma_inv(sigma) (float64)')
    fam.checks['vp_schedule'] = check_vp_schedule()
    fam.checks['adm_wrapper'] = check_net_inputs(wrapper, inputs, to_np(x.double() / torch.sqrt(1 + s64.reshape(-1, 1, 1, 1) ** 2)),
                                                 to_np(t64))
    fam.checks['float32 torch vs float64 torch, max rel'] = max_rel_err(to_np(y32), to_np(y64))
    fam.checks['fraction of denoised inside (-1, 1) (clamp not saturating)'] = float((to_np(y32).__abs__() < 1).mean())
    check_torch_vs_onnx_reference(fam, 'denoiser.onnx', inputs, y32)
    return fam.write()


def ldm_alphas():
    """LSUN-bedroom LDM: CompVis 'linear' schedule, linear_start 0.0015, linear_end 0.0155."""
    return common.alphas_cumprod_from_betas('compvis_linear', 0.0015, 0.0155).astype(np.float32).astype(np.float64)


def sd_alphas():
    """Stable Diffusion v1: CompVis 'linear' (= scaled_linear) 0.00085 .. 0.012."""
    return common.alphas_cumprod_from_betas('scaled_linear', 0.00085, 0.012).astype(np.float32).astype(np.float64)


def family_ldm(root):
    fam = Family(root, 'ldm', 'LDM: discrete alphas_cumprod (LSUN-bedroom LDM schedule), timestep 1000 '
                              'sigma_inv(s) - 1 (piecewise-linear log_alpha), tiny CompVis UNetModel-like eps(x, '
                              'timesteps); VQ first-stage decoder companion (codebook quantization inside)')
    torch.manual_seed(4)
    unet = TinyCompVisUNet(in_ch=3)
    first = TinyVQFirstStage()
    ac = ldm_alphas()
    wrapper, dec, meta = ldm.export_ldm(unet, first, ac, fam.path('denoiser.onnx'), scale_factor=1.0, latent_channels=3,
                                        latent_resolution=8, dataset_name='tiny-ldm', batch=2, verbose=False)
    dec_file = meta['adasde.decoder']
    fam.add_model('denoiser.onnx', 'denoiser')
    fam.add_model(dec_file, 'decoder (companion adasde.decoder)')
    time = common.DiscreteTime(ac)
    inputs = ldm.latent_inputs(4, 3, 8, time, seed=5)
    y32, y64 = run(wrapper, inputs), run(wrapper, inputs, torch.float64)
    ins, outs, outs64 = save_case_io(fam, '', inputs, {'denoised': y32}, {'denoised': y64})
    fam.add_case('denoiser', 'denoiser.onnx', ins, outs, ref64=outs64,
                 note='sigma[0] < sigma_min and sigma[3] > sigma_max exercise the linear extrapolation')
    # decoder: latents with a clear nearest codebook entry (no argmin near-ties)
    g = torch.Generator().manual_seed(6)
    e = first.embedding.weight.detach()
    idx = torch.randint(0, e.shape[0], (3, 8, 8), generator=g)
    z = e[idx].permute(0, 3, 1, 2) + 0.05 * torch.randn(3, 3, 8, 8, generator=g)
    d = ((z.permute(0, 2, 3, 1).reshape(-1, 1, 3) - e.reshape(1, -1, 3)) ** 2).sum(-1).sort(dim=1).values
    margin = float((d[:, 1] - d[:, 0]).min())
    assert margin > 1e-3, margin
    zin = OrderedDict(z=z)
    im32, im64 = run(dec, zin), run(dec, zin, torch.float64)
    zins, zouts, zouts64 = save_case_io(fam, '', zin, {'image': im32}, {'image': im64})
    fam.add_case('decoder', dec_file, zins, zouts, ref64=zouts64)
    fam.checks['codebook distance margin of the decoder fixture (min 2nd - 1st)'] = margin
    fam.checks['discrete_schedule'] = check_discrete_schedule(ac, 'LDM linear 0.0015..0.0155')
    s64 = inputs['sigma'].double()
    t64 = torch.tensor(time.timestep_np(s64.numpy()))
    np_save(fam.dir, 'net_time64.npy', to_np(t64), fam.files, 'check: 1000 sigma_inv(sigma) - 1 (float64)')
    fam.checks['ldm_wrapper'] = check_net_inputs(wrapper, inputs, to_np(inputs['x'].double() / torch.sqrt(1 + s64.reshape(-1, 1, 1, 1) ** 2)),
                                                 to_np(t64))
    fam.checks['float32 torch vs float64 torch, max rel'] = max_rel_err(to_np(y32), to_np(y64))
    check_torch_vs_onnx_reference(fam, 'denoiser.onnx', inputs, y32)
    return fam.write()


PROMPTS = ['a photograph of an astronaut riding a horse', '', 'A bedroom with a large window, 4k photo!',
           'two cats & a dog']


def family_sd(root):
    fam = Family(root, 'sd', 'Stable Diffusion: discrete alphas_cumprod (SD v1 schedule), text condition '
                             '[N, 77, E], tiny CompVis UNetModel-like eps(x, timesteps, context); KL decoder, tiny '
                             'CLIP-like text encoder and a tiny CLIP BPE vocabulary as companions')
    torch.manual_seed(5)
    corpus = PROMPTS + ['a photo of a cat', 'a painting of a horse in a field', 'the bedroom window', 'a red car']
    vocab, merges = clip_tokenizer.build_tiny_vocab(corpus, num_merges=40)
    tmp_tok = os.path.join(fam.dir, '.tok')
    clip_tokenizer.write_files(vocab, merges, tmp_tok)
    text = TinyCLIPText(len(vocab), 77, dim=32)
    parts = dict(unet=TinyCompVisUNet(in_ch=4, context_dim=32), unet_call='compvis', first_stage=TinyKLFirstStage(),
                 decoder_call='compvis', scale_factor=0.18215, alphas_cumprod=sd_alphas(), text_model=text,
                 latent_channels=4, latent_resolution=8, max_length=77,
                 save_tokenizer=lambda dest: shutil.copytree(tmp_tok, dest))
    wrapper, dec, enc, meta = sd.export_sd(parts, fam.path('denoiser.onnx'), dataset_name='tiny-sd', batch=2,
                                           text_kw=dict(vocab_size=len(vocab)), verbose=False)
    shutil.rmtree(tmp_tok)
    dec_file, txt_file, tok_dir = meta['adasde.decoder'], meta['adasde.text_encoder'], meta['adasde.tokenizer']
    fam.add_model('denoiser.onnx', 'denoiser')
    fam.add_model(dec_file, 'decoder (companion adasde.decoder)')
    fam.add_model(txt_file, 'text encoder (companion adasde.text_encoder)')
    for n in sd.TOKENIZER_FILES:
        fam.files[f'{tok_dir}/{n}'] = {'role': 'tokenizer (companion adasde.tokenizer)',
                                       'bytes': os.path.getsize(fam.path(f'{tok_dir}/{n}'))}
    # tokenizer -> ids (reference python BPE) -> text encoder -> condition -> denoiser
    tok = clip_tokenizer.CLIPTokenizer.from_files(fam.path(f'{tok_dir}/vocab.json'), fam.path(f'{tok_dir}/merges.txt'))
    ids = torch.tensor([tok.encode(p, 77) for p in PROMPTS], dtype=torch.int64)
    with open(fam.path('prompts.json'), 'w') as f:
        json.dump({'prompts': PROMPTS, 'max_length': 77, 'bos': tok.bos, 'eos': tok.eos, 'pad': tok.eos,
                   'input_ids_file': 'input_ids.npy',
                   'tokens_without_padding': [tok.tokenize(p) for p in PROMPTS]}, f, indent=1)
    fam.files['prompts.json'] = {'role': 'tokenizer check: prompts and their ids'}
    tin = OrderedDict(input_ids=ids)
    c32, c64 = run(enc, tin), run(enc, tin, torch.float64)
    tins, touts, touts64 = save_case_io(fam, '', tin, {'condition': c32}, {'condition': c64})
    fam.add_case('text_encoder', txt_file, tins, touts, ref64=touts64,
                 note='input_ids.npy are the tokens of prompts.json (CLIP BPE with the tiny vocabulary)')
    time = common.DiscreteTime(sd_alphas())
    inputs = ldm.latent_inputs(4, 4, 8, time, seed=8)
    inputs['condition'] = c32.detach().clone()
    y32, y64 = run(wrapper, inputs), run(wrapper, inputs, torch.float64)
    ins, outs, outs64 = save_case_io(fam, '', OrderedDict((k, v) for k, v in inputs.items() if k != 'condition'),
                                     {'denoised': y32}, {'denoised': y64})
    ins['condition'] = touts['condition']
    fam.add_case('denoiser', 'denoiser.onnx', ins, outs, ref64=outs64,
                 note='condition = the text encoder output of the 4 prompts (prompts[1] is the empty, CFG-unconditional one)')
    g = torch.Generator().manual_seed(9)
    zin = OrderedDict(z=torch.randn(3, 4, 8, 8, generator=g) * 0.18215 * 4)
    im32, im64 = run(dec, zin), run(dec, zin, torch.float64)
    zins, zouts, zouts64 = save_case_io(fam, '', zin, {'image': im32}, {'image': im64})
    fam.add_case('decoder', dec_file, zins, zouts, ref64=zouts64)
    fam.checks['discrete_schedule'] = check_discrete_schedule(sd_alphas(), 'SD v1 scaled_linear 0.00085..0.012')
    s64 = inputs['sigma'].double()
    t64 = torch.tensor(time.timestep_np(s64.numpy()))
    np_save(fam.dir, 'net_time64.npy', to_np(t64), fam.files, 'check: 1000 sigma_inv(sigma) - 1 (float64)')
    fam.checks['sd_wrapper'] = check_net_inputs(wrapper, inputs, to_np(inputs['x'].double() / torch.sqrt(1 + s64.reshape(-1, 1, 1, 1) ** 2)),
                                                to_np(t64))
    fam.checks['float32 torch vs float64 torch, max rel'] = max_rel_err(to_np(y32), to_np(y64))
    check_torch_vs_onnx_reference(fam, 'denoiser.onnx', inputs, y32)
    return fam.write()


# ---------------------------------------------------------------------------------------
# ddpm: generic discrete-time DDPM checkpoints (tools/export/ddpm.py), one model per convention

TESTNETS = os.path.join(HERE, 'testnets')


def _tiny_ddpm():
    if TESTNETS not in sys.path:
        sys.path.insert(0, TESTNETS)
    import tiny_ddpm
    return tiny_ddpm


def _ddpm_case(fam, fname, wrapper, ac, inputs, note, gauss=None):
    """One model's case, the network-input check and (Gaussian models) the closed-form check."""
    y32, y64 = run(wrapper, inputs), run(wrapper, inputs, torch.float64)
    stem = fname[:-len('.onnx')] + '.'
    ins, outs, outs64 = save_case_io(fam, stem, inputs, {'denoised': y32}, {'denoised': y64})
    fam.add_model(fname, 'denoiser')
    fam.add_case(stem[:-1], fname, ins, outs, ref64=outs64, note=note)
    k, m = wrapper.k, wrapper.m
    s64 = inputs['sigma'].double()
    sy = k * s64
    tau64 = common.DiscreteTime(ac).timestep_np(sy.numpy())
    M = len(ac)
    want_t = {'index': tau64, 'index_int': np.clip(np.round(tau64), 0, M - 1), 'fraction': tau64 / M,
              'continuous': (tau64 + 1) / M}[wrapper.time_input]
    a = 1 / torch.sqrt(1 + sy.reshape(-1, 1, 1, 1) ** 2)
    want_x = to_np(a * (k * inputs['x'].double() + m))
    seen = capture_net_inputs(wrapper, inputs)
    x_err = float(np.max(np.abs(to_np(seen['x_in']).astype(np.float64) - want_x)))
    # float32 timesteps of the piecewise-linear inverse are good to ~0.05 steps (check_discrete_schedule)
    t_err = float(np.max(np.abs(to_np(seen['t']).astype(np.float64) - want_t))) * (M if wrapper.time_input in ('fraction', 'continuous') else 1)
    assert x_err < 1e-5 and t_err < 0.05, (fname, x_err, t_err)
    checks = {'network input a (k x + m) (float32) vs float64, max abs': x_err,
              'network time input (float32) vs float64 convention, max abs in timesteps': t_err,
              'float32 torch vs float64 torch, max rel': max_rel_err(to_np(y32), to_np(y64))}
    if gauss is not None:
        mu_x, s_x = gauss
        x64 = inputs['x'].double()
        s4 = s64.reshape(-1, 1, 1, 1)
        exact = mu_x + s_x ** 2 / (s_x ** 2 + s4 ** 2) * (x64 - mu_x)   # ALGORITHM.md 9
        e64, e32 = max_rel_err(to_np(y64), to_np(exact)), max_rel_err(to_np(y32), to_np(exact))
        # mu is a float32 buffer in network units (k mu + m): float64 agrees to its rounding
        assert e64 < 1e-6 and e32 < 1e-4, (fname, e64, e32)
        checks['D (float64) vs the Gaussian closed form mu + s^2/(s^2+sigma^2)(x - mu), max rel'] = e64
        checks['D (float32) vs the Gaussian closed form, max rel'] = e32
    fam.checks[fname] = checks
    check_torch_vs_onnx_reference(fam, fname, inputs, y32)


def family_ddpm(root):
    fam = Family(root, 'ddpm', 'generic DDPM checkpoints (tools/export/ddpm.py): one model per convention '
                               '(beta schedule, data range, time input, prediction type), through --module, '
                               '--diffusers and the Python API; two exact Gaussian-data predictors for end-to-end checks')
    tiny = _tiny_ddpm()
    tmp = fam.path('.work')
    os.makedirs(tmp)
    ac_linear = ddpm.alphas_cumprod_from(argparse.Namespace(alphas_cumprod=None, betas=None, num_train_timesteps=1000,
                                                            beta_schedule='linear', beta_start=1e-4, beta_end=0.02))
    base = ['--batch', '2', '--dataset-name']

    # 1. --module: a 1-channel 28x28 course-project CNN, linear betas, data in [0, 1], time index/T, eps
    torch.manual_seed(11)
    net = tiny.GreyNet(in_ch=1, ch=8, time_scale=1000.0)
    torch.save({'ema': net.state_dict(), 'step': 5}, os.path.join(tmp, 'grey.pt'))
    assert ddpm.main(['--module', 'tiny_ddpm:GreyNet', '--module-kwargs', '{"in_ch": 1, "ch": 8, "time_scale": 1000.0}',
                      '--upstream', TESTNETS, '--weights', os.path.join(tmp, 'grey.pt'), '--img-channels', '1',
                      '--img-resolution', '28', '--data-range', '[0,1]', '--time-input', 'fraction',
                      '--out', fam.path('grey28.onnx')] + base + ['tiny-grey28']) == 0
    w = ddpm.DDPMDenoiser(net.eval(), ac_linear, img_channels=1, data_range='[0,1]', time_input='fraction')
    _ddpm_case(fam, 'grey28.onnx', w, ac_linear, ddpm.example_inputs(6, 1, 28, w.time, w.k, seed=21),
               '--module with a nested (ema) state dict; y = (x + 1) / 2, noise level sigma / 2')

    # 2. --diffusers: a UNet2DModel folder (stand-in class with diffusers' call interface and
    #    files), squaredcos_cap_v2, v_prediction, learned variance (6 output channels), index
    torch.manual_seed(12)
    unet = tiny.FakeUNet2DModel(in_channels=3, out_channels=6, sample_size=16, block_out_channels=(8,))
    folder = os.path.join(tmp, 'ddpm-rgb16')
    unet.save_pretrained(os.path.join(folder, 'unet'))
    os.makedirs(os.path.join(folder, 'scheduler'))
    with open(os.path.join(folder, 'scheduler', 'scheduler_config.json'), 'w') as f:
        json.dump({'_class_name': 'DDPMScheduler', 'num_train_timesteps': 1000, 'beta_schedule': 'squaredcos_cap_v2',
                   'beta_start': 0.0001, 'beta_end': 0.02, 'prediction_type': 'v_prediction',
                   'variance_type': 'learned_range', 'clip_sample': True}, f)
    assert ddpm.main(['--diffusers', folder, '--out', fam.path('rgb16-diffusers.onnx')] + base + ['tiny-rgb16'],
                     unet_class=tiny.FakeUNet2DModel) == 0
    ac_cos = np.cumprod(1 - ddpm.cosine_betas(1000))
    w = ddpm.DDPMDenoiser(tiny.FakeUNet2DModel.from_pretrained(os.path.join(folder, 'unet')).eval(), ac_cos,
                          img_channels=3, time_input='index', prediction='v', net_call='diffusers')
    _ddpm_case(fam, 'rgb16-diffusers.onnx', w, ac_cos, ddpm.example_inputs(5, 3, 16, w.time, w.k, seed=22),
               'diffusers folder: schedule, prediction type and channels from its configs; eps/v = first 3 of 6 channels')

    # 3. Python API: an embedding-table network, scaled_linear, data in [-0.5, 0.5], integer index, x0
    torch.manual_seed(13)
    ac_sl = ddpm.betas_of('scaled_linear', 1000, 0.00085, 0.012)
    ac_sl = np.cumprod(1 - ac_sl)
    embed = tiny.EmbedNet(in_ch=3, ch=8, T=1000).eval()
    w, _ = ddpm.export_ddpm(embed, ac_sl, fam.path('embed8.onnx'), img_channels=3, img_resolution=8,
                            data_range='[-0.5,0.5]', time_input='index_int', prediction='x0', dataset_name='tiny-embed8',
                            verbose=False)
    # sigmas a quarter step off the integers: float32 rounding cannot flip the embedding row
    tq = common.DiscreteTime(ac_sl)
    taus = np.array([0.25, 17.25, 250.25, 640.25, 998.75])
    sig = torch.tensor(tq.sigma_np((taus + 1) / 1000) / w.k, dtype=torch.float32)
    g = torch.Generator().manual_seed(23)
    x = torch.rand(5, 3, 8, 8, generator=g) * 2 - 1 + sig.reshape(-1, 1, 1, 1) * torch.randn(5, 3, 8, 8, generator=g)
    _ddpm_case(fam, 'embed8.onnx', w, ac_sl, OrderedDict(x=x, sigma=sig),
               'integer timesteps (Round, int64) into an nn.Embedding; sigmas at tau = j + 1/4 or 3/4')

    # 4. --betas table file, continuous time (tau + 1) / T, eps, a 2-channel 12x12 network
    torch.manual_seed(14)
    betas = np.linspace(2e-4, 0.03, 400)
    np.savetxt(os.path.join(tmp, 'betas.txt'), betas)
    net4 = tiny.GreyNet(in_ch=2, ch=8, time_scale=1000.0)
    torch.save(net4.state_dict(), os.path.join(tmp, 'net4.pt'))
    assert ddpm.main(['--module', 'tiny_ddpm:GreyNet', '--module-kwargs', '{"in_ch": 2, "ch": 8, "time_scale": 1000.0}',
                      '--upstream', TESTNETS, '--weights', os.path.join(tmp, 'net4.pt'), '--img-channels', '2',
                      '--img-resolution', '12', '--betas', os.path.join(tmp, 'betas.txt'), '--time-input', 'continuous',
                      '--out', fam.path('table12.onnx')] + base + ['tiny-table12']) == 0
    ac_tab = np.cumprod(1 - np.loadtxt(os.path.join(tmp, 'betas.txt')))
    w = ddpm.DDPMDenoiser(net4.eval(), ac_tab, img_channels=2, time_input='continuous')
    _ddpm_case(fam, 'table12.onnx', w, ac_tab, ddpm.example_inputs(4, 2, 12, w.time, w.k, seed=24),
               '--betas from a text file (T = 400), 2 channels (any C; PNG output needs 1 or 3)')

    # 5-6. exact predictors for Gaussian data: the exported D must be the closed-form Gaussian
    #      denoiser of ALGORITHM.md 9 in the contract's units whatever the network's conventions
    gauss = {}
    for fname, C, R, ac, rng, tin, pred, seed in (
            ('gauss28.onnx', 1, 28, ac_linear, '[0,1]', 'fraction', 'v', 31),
            ('gauss-rgb12.onnx', 3, 12, ac_sl, '[-0.5,0.5]', 'index', 'eps', 32)):
        k, m = ddpm.DATA_RANGES[rng]
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, R), torch.linspace(-1, 1, R), indexing='ij')
        mu_x = torch.stack([0.6 * torch.cos(2.5 * (xx + c * yy)) for c in range(C)]).to(torch.float32)   # pattern in [-0.6, 0.6]
        s_x = 0.25
        net = tiny.GaussianDDPM(ac, k * mu_x + m, k * s_x, time_input=tin, prediction=pred)
        w, _ = ddpm.export_ddpm(net, ac, fam.path(fname), img_channels=C, img_resolution=R, data_range=rng,
                                time_input=tin, prediction=pred, dataset_name=fname[:-5], verbose=False)
        _ddpm_case(fam, fname, w, ac, ddpm.example_inputs(6, C, R, w.time, w.k, seed=seed),
                   f'exact {pred}-prediction for Gaussian data N(mu, {s_x}^2 I) (x units; mu in gauss.json)', gauss=(mu_x.double(), s_x))
        gauss[fname] = {'mu': [float(v) for v in mu_x.reshape(-1)], 's': s_x, 'shape': [C, R, R], 'data_range': rng,
                        'time_input': tin, 'prediction': pred}
    with open(fam.path('gauss.json'), 'w') as f:
        json.dump(gauss, f)
    fam.files['gauss.json'] = {'role': 'the Gaussian data (x units) behind gauss28.onnx and gauss-rgb12.onnx'}
    # The cosine table ends at alphas_cumprod ~ 1e-9 (sigma_max in the thousands): check the
    # float32 graph's timesteps over the sampler's range t in [1e-3, 1] (past it float32 overflows).
    dt = common.DiscreteTime(ac_cos)
    t = np.linspace(1e-3, 1, 2001)
    with torch.no_grad():
        ts32 = dt(torch.tensor(dt.sigma_np(t), dtype=torch.float32)).numpy().astype(np.float64)
    cos_err = float(np.max(np.abs(ts32 - (1000 * t - 1))))
    assert cos_err < 0.05, cos_err
    # The product of the cosine betas telescopes to alpha_bar((i + 1) / T) / alpha_bar(0) wherever
    # the 0.999 cap does not bind (every step but the last).
    i = np.arange(1000)
    abar = np.cos(((i + 1) / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2 / np.cos(0.008 / 1.008 * np.pi / 2) ** 2
    tele = float(np.max(np.abs(ac_cos[:-1] / abar[:-1] - 1)))
    assert tele < 1e-12, tele
    # Bad input is one line and exit code 2 (the shape is required with --module).
    assert ddpm.main(['--module', 'tiny_ddpm:GreyNet', '--upstream', TESTNETS, '--out', os.path.join(tmp, 'x.onnx')]) == 2
    fam.checks['cosine (squaredcos_cap_v2) schedule'] = {
        'alphas_cumprod vs alpha_bar((i+1)/T) / alpha_bar(0) (telescoped), max rel, i < T - 1': tele,
        'sigma_min': dt.sigma_min, 'sigma_max': dt.sigma_max,
        'graph timestep (float32) - (M t - 1), t in [1e-3, 1], max abs (timestep units)': cos_err}
    shutil.rmtree(tmp)
    return fam.write()


FAMILIES = OrderedDict(edm=family_edm, cm=family_cm, adm=family_adm, ldm=family_ldm, sd=family_sd, ddpm=family_ddpm)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description='exporter self-test; writes test/fixtures/export')
    p.add_argument('--out', default=os.path.join(ROOT, 'test', 'fixtures', 'export'))
    p.add_argument('--only', nargs='*', choices=list(FAMILIES), default=None)
    p.add_argument('--no-ort', action='store_true', help='skip the onnxruntime-node run')
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    os.makedirs(args.out, exist_ok=True)
    total = 0
    for name, fn in FAMILIES.items():
        if args.only and name not in args.only:
            continue
        total += fn(args.out)
    print(f'fixtures: {total / 2**20:.2f} MiB under {args.out}')
    if not args.no_ort:
        node = shutil.which('node')
        script = os.path.join(HERE, 'verify_ort.mjs')
        if node and os.path.isdir(os.path.join(ROOT, 'node_modules', 'onnxruntime-node')):
            r = subprocess.run([node, script, args.out], cwd=ROOT)
            if r.returncode:
                print('onnxruntime-node verification FAILED', file=sys.stderr)
                return r.returncode
            # Classifier guidance: the TypeScript gradient transform (built into dist/) against
            # PyTorch autograd; without a build it says so and the check is skipped.
            r = subprocess.run([node, os.path.join(HERE, 'verify_grad.mjs'), args.out], cwd=ROOT)
            if r.returncode == 1:
                print('classifier gradient verification FAILED', file=sys.stderr)
                return r.returncode
        else:
            print('(node or onnxruntime-node not installed: skipped the onnxruntime check)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
