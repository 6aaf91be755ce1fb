"""Shared code of the adasde ONNX exporters (tools/export/*.py).

Every exporter builds one of the wrapper modules below around the upstream network and
hands it to `export_onnx`, so the graph written to disk computes the denoiser
`D(x, sigma[, class_labels | condition])` of ALGORITHM.md section 1 with the family's
preconditioning of ALGORITHM.md section 8 inside it (README.md, "The model contract").

Conventions
* The wrapped upstream network is always registered as the submodule `net`. The
  exporter uses the resulting ONNX node-name scope (`/net/...`) to tell the network from
  the preconditioning: with `--fp16` only the network runs in float16, the
  preconditioning (sigma -> c_in, c_out, timestep) stays in float32, as in EDM's
  `use_fp16` path.
* Graph inputs `x` [N,C,H,W], `sigma` [N], optional `class_labels` [N,label_dim] or
  `condition` [N,L,E]; output `denoised` [N,C,H,W]; N is dynamic.
* Companion graphs: decoder `z` -> `image` (in [-1, 1]), text encoder `input_ids`
  (int64 [N, L]) -> `condition`, classifier (`x`, `sigma`) -> `log_probs`.

Needs: torch (>= 1.13, opset 17), onnx (>= 1.12), numpy.  Also a small CLI:
    python3 tools/export/common.py meta MODEL.onnx [--set KEY=VALUE ...] [--delete KEY ...]
prints (and edits) the metadata of an exported file without touching its weights.
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import math
import os
import shutil
import sys
import tempfile
from collections import OrderedDict
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

import onnx
from onnx import TensorProto, helper, numpy_helper

EXPORT_DIR = os.path.dirname(os.path.abspath(__file__))
CONTRACT_OPSET = 17
SIGMA_DATA = 0.5
NET_SCOPE = '/net/'
TWO_GB = 2 ** 31
META_PREFIX = 'adasde.'

# ---------------------------------------------------------------------------------------
# Noise schedules of the discrete/VP families (ALGORITHM.md section 8).
# Every class has float64 NumPy methods (reference math, metadata, self-tests) and a
# torch forward(sigma) -> network timestep used inside the exported graph (float32).


def _log1p_f32(u: torch.Tensor) -> torch.Tensor:
    """log(1 + u) accurate for small u with ONNX-exportable ops (no Log1p in ONNX).

    Goldberg's trick: log(w) * u / (w - 1) with w = fl(1 + u) cancels the rounding of 1 + u.
    """
    w = 1.0 + u
    d = w - 1.0
    safe_d = torch.where(d == 0, torch.ones_like(d), d)
    return torch.where(d == 0, u, torch.log(w) * u / safe_d)


class VPContinuousTime(nn.Module):
    """Continuous VP schedule of ADM (beta_min 0.1, beta_d 19.9, M = 1000 steps).

    sigma(t) = sqrt(exp(0.5 beta_d t^2 + beta_min t) - 1)
    sigma_inv(s) = (sqrt(beta_min^2 + 2 beta_d ln(1 + s^2)) - beta_min) / beta_d
    network timestep = (M - 1) * sigma_inv(s); sigma range [sigma(1e-3), sigma(1)].
    """

    def __init__(self, beta_min: float = 0.1, beta_d: float = 19.9, M: int = 1000, eps_t: float = 1e-3):
        super().__init__()
        self.beta_min, self.beta_d, self.M, self.eps_t = float(beta_min), float(beta_d), int(M), float(eps_t)
        self.compute_dtype = torch.float32

    # float64 reference math
    def sigma_np(self, t):
        t = np.asarray(t, dtype=np.float64)
        return np.sqrt(np.expm1(0.5 * self.beta_d * t ** 2 + self.beta_min * t))

    def sigma_inv_np(self, s):
        s = np.asarray(s, dtype=np.float64)
        return (np.sqrt(self.beta_min ** 2 + 2 * self.beta_d * np.log1p(s ** 2)) - self.beta_min) / self.beta_d

    def timestep_np(self, s):
        return (self.M - 1) * self.sigma_inv_np(s)

    @property
    def sigma_min(self) -> float:
        return float(self.sigma_np(self.eps_t))

    @property
    def sigma_max(self) -> float:
        return float(self.sigma_np(1.0))

    # graph math
    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        sigma = sigma.to(self.compute_dtype)
        t = (torch.sqrt(self.beta_min ** 2 + 2 * self.beta_d * _log1p_f32(sigma * sigma)) - self.beta_min) / self.beta_d
        return (self.M - 1) * t


class DiscreteTime(nn.Module):
    """Discrete-time `alphas_cumprod` schedule of LDM / Stable Diffusion (M entries).

    log_alpha_k = 0.5 ln(alphas_cumprod_k) on t_k = (k + 1) / M; log_alpha(t) is
    piecewise linear in t with linear extrapolation from the end segments (DPM-Solver's
    `interpolate_fn`); sigma(t) = sqrt(1 - alpha^2) / alpha; sigma_inv inverts it through
    log_alpha = -0.5 ln(1 + s^2); network timestep = M * sigma_inv(s) - 1;
    sigma range [sigma(1e-3), sigma(1)].
    """

    def __init__(self, alphas_cumprod: Sequence[float], eps_t: float = 1e-3):
        super().__init__()
        ac = np.asarray(alphas_cumprod, dtype=np.float64).reshape(-1)
        if ac.size < 2 or not np.all(np.diff(ac) < 0) or ac[0] >= 1 or ac[-1] <= 0:
            raise ValueError('alphas_cumprod must be strictly decreasing values in (0, 1)')
        self.alphas_cumprod = ac
        self.M = int(ac.size)
        self.eps_t = float(eps_t)
        self.t_knots = (np.arange(self.M, dtype=np.float64) + 1) / self.M
        self.log_alpha_knots = 0.5 * np.log(ac)
        # float32 copies inside the graph (outside the /net/ scope: never converted to fp16)
        self.register_buffer('t_knots_f32', torch.tensor(self.t_knots, dtype=torch.float32), persistent=False)
        self.register_buffer('la_knots_f32', torch.tensor(self.log_alpha_knots, dtype=torch.float32), persistent=False)
        self.compute_dtype = torch.float32

    @staticmethod
    def _interp(x, xp, fp):
        """Piecewise-linear interpolation with linear extrapolation (xp increasing)."""
        x = np.asarray(x, dtype=np.float64)
        K = len(xp)
        i1 = np.clip(np.searchsorted(xp, x, side='right'), 1, K - 1)
        i0 = i1 - 1
        return fp[i0] + (x - xp[i0]) * (fp[i1] - fp[i0]) / (xp[i1] - xp[i0])

    def log_alpha_np(self, t):
        return self._interp(t, self.t_knots, self.log_alpha_knots)

    def sigma_np(self, t):
        la = self.log_alpha_np(t)
        return np.sqrt(np.expm1(-2.0 * la))

    def sigma_inv_np(self, s):
        la = -0.5 * np.log1p(np.asarray(s, dtype=np.float64) ** 2)
        # log_alpha decreases with t: flip to an increasing abscissa
        return self._interp(la, self.log_alpha_knots[::-1], self.t_knots[::-1])

    def timestep_np(self, s):
        return self.M * self.sigma_inv_np(s) - 1

    @property
    def sigma_min(self) -> float:
        return float(self.sigma_np(self.eps_t))

    @property
    def sigma_max(self) -> float:
        return float(self.sigma_np(1.0))

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        sigma = sigma.to(self.compute_dtype)
        la = -0.5 * _log1p_f32(sigma * sigma)                      # [N]
        if self.compute_dtype == torch.float32:
            knots, tk = self.la_knots_f32, self.t_knots_f32         # [M]; log_alpha decreasing
        else:  # float64 reference evaluation (self-test), never traced
            knots, tk = torch.from_numpy(self.log_alpha_knots), torch.from_numpy(self.t_knots)
        count = (knots.unsqueeze(0) > la.unsqueeze(1)).to(torch.int64).sum(dim=1)
        i1 = torch.clamp(count, 1, self.M - 1)
        i0 = i1 - 1
        la0, la1 = knots[i0], knots[i1]
        t0, t1 = tk[i0], tk[i1]
        t = t0 + (la - la0) * (t1 - t0) / (la1 - la0)
        return self.M * t - 1


def alphas_cumprod_from_betas(beta_schedule: str, beta_start: float, beta_end: float, M: int = 1000) -> np.ndarray:
    """alphas_cumprod of the usual discrete schedules, computed as CompVis' `make_beta_schedule`
    (their 'linear' = diffusers' 'scaled_linear': linspace of sqrt(beta), squared)."""
    if beta_schedule in ('scaled_linear', 'compvis_linear'):
        betas = np.linspace(beta_start ** 0.5, beta_end ** 0.5, M, dtype=np.float64) ** 2
    elif beta_schedule == 'linear':
        betas = np.linspace(beta_start, beta_end, M, dtype=np.float64)
    else:
        raise ValueError(f'unsupported beta schedule {beta_schedule!r}')
    return np.cumprod(1.0 - betas)


# ---------------------------------------------------------------------------------------
# Denoiser wrappers. The upstream network is always `self.net`.

def _net_call(net: nn.Module, kind: str, x_in, t, extra):
    """Call the upstream network with its own interface.

    edm       : F(x_in, c_noise, class_labels)           EDM SongUNet / DhariwalUNet
    openai    : F(x_in, timesteps[, y=int labels])        guided-diffusion / consistency-models UNetModel
    compvis   : F(x_in, timesteps[, context=condition])   CompVis ldm UNetModel
    diffusers : F(x_in, timesteps, encoder_hidden_states=condition).sample
    """
    if kind == 'edm':
        return net(x_in, t, extra)
    if kind == 'openai':
        return net(x_in, t) if extra is None else net(x_in, t, y=extra)
    if kind == 'compvis':
        return net(x_in, t) if extra is None else net(x_in, t, context=extra)
    if kind == 'diffusers':
        out = net(x_in, t, encoder_hidden_states=extra, return_dict=False)
        return out[0]
    raise ValueError(f'unknown network interface {kind!r}')


class EDMDenoiser(nn.Module):
    """EDM preconditioning (EDMPrecond; Consistency-Models `KarrasDenoiser.denoise`).

    D = c_skip x + c_out F(c_in x, c_noise, labels) with c_skip = sd^2/(s^2+sd^2),
    c_out = s sd / sqrt(s^2+sd^2), c_in = 1/sqrt(sd^2+s^2), c_noise = time_scale * ln(s)/4
    (time_scale 1 for EDM, 1000 for the CM bedroom network).
    """

    def __init__(self, net: nn.Module, *, img_channels: int, label_dim: int = 0, sigma_data: float = SIGMA_DATA,
                 time_scale: float = 1.0, net_call: str = 'edm'):
        super().__init__()
        self.net = net
        self.img_channels, self.label_dim = int(img_channels), int(label_dim)
        self.sigma_data, self.time_scale, self.net_call = float(sigma_data), float(time_scale), net_call
        self.compute_dtype = torch.float32

    def c_noise(self, sigma: torch.Tensor) -> torch.Tensor:
        return (self.time_scale * 0.25) * torch.log(sigma) if self.time_scale != 1.0 else torch.log(sigma) / 4

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, class_labels: Optional[torch.Tensor] = None):
        x = x.to(self.compute_dtype)
        sigma = sigma.to(self.compute_dtype).reshape(-1, 1, 1, 1)
        sd = self.sigma_data
        c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
        c_out = sigma * sd / (sigma ** 2 + sd ** 2).sqrt()
        c_in = 1 / (sd ** 2 + sigma ** 2).sqrt()
        c_noise = self.c_noise(sigma).flatten()
        labels = None
        if self.label_dim:
            labels = class_labels.to(self.compute_dtype).reshape(-1, self.label_dim)
            if self.net_call == 'openai':
                labels = labels.argmax(dim=1)
        F_x = _net_call(self.net, self.net_call, c_in * x, c_noise, labels)
        F_x = F_x[:, :self.img_channels]
        return c_skip * x + c_out * F_x.to(self.compute_dtype)


class VPEpsDenoiser(nn.Module):
    """eps-prediction families (ADM, LDM, SD): D = x - s * eps(c_in x, tau(s)), c_in = 1/sqrt(s^2+1).

    `time` is VPContinuousTime (ADM) or DiscreteTime (LDM/SD). `cond` is None, 'class'
    (one-hot `class_labels` [N, label_dim], passed to the network as argmax integer labels)
    or 'condition' (text embedding [N, L, E]). The first `img_channels` output channels are
    eps (ADM with learned sigma outputs 2C channels). `clamp` clips D to [-1, 1] (ADM).
    """

    def __init__(self, net: nn.Module, time: nn.Module, *, img_channels: int, net_call: str,
                 cond: Optional[str] = None, label_dim: int = 0, clamp: bool = False):
        super().__init__()
        self.net = net
        self.time = time
        self.img_channels, self.net_call, self.cond = int(img_channels), net_call, cond
        self.label_dim, self.clamp = int(label_dim), bool(clamp)
        self.compute_dtype = torch.float32

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, extra: Optional[torch.Tensor] = None):
        x = x.to(self.compute_dtype)
        sigma = sigma.to(self.compute_dtype)
        s = sigma.reshape(-1, 1, 1, 1)
        c_in = 1 / (s * s + 1).sqrt()
        t = self.time(sigma)
        if self.cond == 'class':
            extra = extra.to(self.compute_dtype).reshape(-1, self.label_dim).argmax(dim=1)
        elif self.cond == 'condition':
            extra = extra.to(self.compute_dtype)
        else:
            extra = None
        eps = _net_call(self.net, self.net_call, c_in * x, t, extra)
        eps = eps[:, :self.img_channels].to(self.compute_dtype)
        D = x - s * eps
        if self.clamp:
            D = D.clamp(-1.0, 1.0)
        return D


class VPClassifier(nn.Module):
    """Noisy classifier of ADM as log p(y | x_in, t): inputs (x, sigma) as the denoiser,
    x_in = x / sqrt(s^2+1), t = time(sigma); output log_probs [N, classes]."""

    def __init__(self, net: nn.Module, time: nn.Module):
        super().__init__()
        self.net = net
        self.time = time
        self.compute_dtype = torch.float32

    def forward(self, x: torch.Tensor, sigma: torch.Tensor):
        x = x.to(self.compute_dtype)
        sigma = sigma.to(self.compute_dtype)
        s = sigma.reshape(-1, 1, 1, 1)
        logits = self.net(x / (s * s + 1).sqrt(), self.time(sigma))
        return torch.log_softmax(logits.to(self.compute_dtype), dim=-1)


class LatentDecoder(nn.Module):
    """First-stage decoder: image = clamp(decode(z / scale_factor), -1, 1).

    net_call 'compvis': net.decode(z) (CompVis AutoencoderKL / VQModelInterface: the VQ
    model quantizes inside decode, as LatentDiffusion.decode_first_stage does);
    'diffusers': net.decode(z, return_dict=False)[0].
    """

    def __init__(self, net: nn.Module, *, scale_factor: float = 1.0, net_call: str = 'compvis'):
        super().__init__()
        self.net = net
        self.scale_factor, self.net_call = float(scale_factor), net_call
        self.compute_dtype = torch.float32

    def forward(self, z: torch.Tensor):
        z = z.to(self.compute_dtype) / self.scale_factor
        if self.net_call == 'diffusers':
            img = self.net.decode(z, return_dict=False)[0]
        else:
            img = self.net.decode(z)
        return img.to(self.compute_dtype).clamp(-1.0, 1.0)


class TextEncoder(nn.Module):
    """CLIP text encoder: condition = net(input_ids=ids)[0] (last_hidden_state) [N, L, E]."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.compute_dtype = torch.float32

    def forward(self, input_ids: torch.Tensor):
        out = self.net(input_ids=input_ids)
        h = out[0] if isinstance(out, (tuple, list)) else getattr(out, 'last_hidden_state', out)
        return h.to(self.compute_dtype)


def set_compute_dtype(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Convert a wrapper (and its network) to `dtype` for reference evaluations (self-test:
    float64). Exports always use the float32 default."""
    module.to(dtype)
    for m in module.modules():
        if hasattr(m, 'compute_dtype'):
            m.compute_dtype = dtype
    return module


# ---------------------------------------------------------------------------------------
# Metadata

def contract_metadata(*, family: str, dataset_name: str, sigma_min: float, sigma_max: float,
                      img_resolution: int, img_channels: int, label_dim: int = 0,
                      alphas_cumprod: Optional[Sequence[float]] = None, decoder: Optional[str] = None,
                      text_encoder: Optional[str] = None, tokenizer: Optional[str] = None,
                      classifier: Optional[str] = None, extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """All adasde.* keys of the model contract as strings (decimal strings for numbers)."""
    m = OrderedDict()
    m['adasde.family'] = family
    m['adasde.dataset_name'] = dataset_name
    m['adasde.sigma_min'] = repr(float(sigma_min))
    m['adasde.sigma_max'] = repr(float(sigma_max))
    m['adasde.img_resolution'] = str(int(img_resolution))
    m['adasde.img_channels'] = str(int(img_channels))
    m['adasde.label_dim'] = str(int(label_dim))
    if alphas_cumprod is not None:
        m['adasde.alphas_cumprod'] = json.dumps([float(v) for v in np.asarray(alphas_cumprod, dtype=np.float64)])
    for key, val in (('decoder', decoder), ('text_encoder', text_encoder), ('tokenizer', tokenizer),
                     ('classifier', classifier)):
        if val is not None:
            m['adasde.' + key] = val
    for k, v in (extra or {}).items():
        m[k if k.startswith(META_PREFIX) else META_PREFIX + k] = str(v)
    return dict(m)


def set_metadata(model: onnx.ModelProto, entries: Mapping[str, str], delete: Iterable[str] = ()) -> None:
    """Set (replace) metadata_props entries of a ModelProto in place."""
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in entries and p.key not in set(delete)]
    del model.metadata_props[:]
    for k, v in kept + [(k, str(v)) for k, v in entries.items()]:
        p = model.metadata_props.add()
        p.key, p.value = k, v


def write_metadata(path: str, entries: Mapping[str, str], delete: Iterable[str] = ()) -> None:
    """Edit the metadata of an ONNX file in place; external weight files are left untouched."""
    model = onnx.load(path, load_external_data=False)
    set_metadata(model, entries, delete)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(model.SerializeToString())
    os.replace(tmp, path)


def read_metadata(path: str) -> Dict[str, str]:
    model = onnx.load(path, load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


# ---------------------------------------------------------------------------------------
# float16 conversion (network in fp16, preconditioning in fp32)

# Ops whose float inputs stay float32 (no or poor float16 support in onnxruntime kernels);
# the same list onnxconverter-common keeps in float32 by default.
FP32_OPS = {'ArrayFeatureExtractor', 'Binarizer', 'CastMap', 'CategoryMapper', 'DictVectorizer',
            'FeatureVectorizer', 'Imputer', 'LabelEncoder', 'LinearClassifier', 'LinearRegressor',
            'Normalizer', 'OneHotEncoder', 'RandomUniformLike', 'SVMClassifier', 'SVMRegressor', 'Scaler',
            'TreeEnsembleClassifier', 'TreeEnsembleRegressor', 'ZipMap', 'NonMaxSuppression', 'TopK',
            'RoiAlign', 'Resize', 'Range', 'CumSum', 'Min', 'Max', 'Upsample'}


def _value_types(model: onnx.ModelProto) -> Dict[str, int]:
    """elem_type of every value, by ONNX shape inference on a copy without large weights."""
    # A copy without the large weights (never copy a > 2 GB proto: only dims and types matter).
    light = onnx.ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    lg, g = light.graph, model.graph
    lg.node.extend(g.node)
    lg.input.extend(g.input)
    lg.output.extend(g.output)
    lg.value_info.extend(g.value_info)
    for init in g.initializer:
        n = int(np.prod(init.dims)) if len(init.dims) else 1
        if (n > 1024 and init.data_type != TensorProto.INT64) or init.data_location == TensorProto.EXTERNAL:
            stub = lg.initializer.add()
            stub.name, stub.data_type = init.name, init.data_type
            stub.dims.extend(init.dims)
        else:
            lg.initializer.add().CopyFrom(init)
    try:
        light = onnx.shape_inference.infer_shapes(light, strict_mode=False)
    except Exception as exc:  # pragma: no cover - fall back to what the exporter recorded
        print(f'warning: ONNX shape inference failed ({exc}); using exporter value_info', file=sys.stderr)
    types: Dict[str, int] = {}
    g = light.graph
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.HasField('tensor_type'):
            types[vi.name] = vi.type.tensor_type.elem_type
    for init in model.graph.initializer:
        types[init.name] = init.data_type
    for node in model.graph.node:
        if node.op_type == 'Constant':
            for a in node.attribute:
                if a.name == 'value':
                    types[node.output[0]] = a.t.data_type
    return types


def convert_float16(model: onnx.ModelProto, keep_fp32: Callable[[onnx.NodeProto], bool],
                    keep_io_types: bool = True) -> onnx.ModelProto:
    """Convert a float32 graph to float16 except for the nodes `keep_fp32` selects.

    Float initializers/Constants are converted per consumer, Cast nodes are inserted on
    every float edge whose two ends disagree, `Cast(to=FLOAT)` inside converted regions
    becomes `Cast(to=FLOAT16)`. With keep_io_types the graph inputs/outputs stay float32.
    """
    g = model.graph
    for node in g.node:
        for a in node.attribute:
            if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise NotImplementedError('float16 conversion of graphs with subgraphs (If/Loop) is not supported')
    types = _value_types(model)
    FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16

    # Constants become initializers so that they are converted per consumer like weights.
    consts: Dict[str, TensorProto] = {init.name: init for init in g.initializer}
    nodes = []
    for node in g.node:
        if node.op_type == 'Constant' and len(node.attribute) == 1 and node.attribute[0].name == 'value':
            t = TensorProto()
            t.CopyFrom(node.attribute[0].t)
            t.name = node.output[0]
            consts[t.name] = t
        else:
            nodes.append(node)

    def is_float(name: str) -> bool:
        return types.get(name) == FLOAT

    prec: Dict[str, int] = {}   # precision of values produced by nodes / graph inputs
    for inp in g.input:
        if is_float(inp.name):
            prec[inp.name] = FLOAT if keep_io_types else HALF
    node_half = {id(n): not (keep_fp32(n) or n.op_type in FP32_OPS) for n in nodes}
    for n in nodes:
        for o in n.output:
            if is_float(o):
                prec[o] = HALF if node_half[id(n)] else FLOAT

    new_inits: Dict[str, TensorProto] = {}
    used_names = set(consts) | {o for n in nodes for o in n.output} | {i.name for i in g.input}

    def const_variant(name: str, want: int) -> str:
        t = consts[name]
        if t.data_type != FLOAT or want == FLOAT:
            new_inits[name] = t
            return name
        key = name + '__fp16'
        if key not in new_inits:
            arr = numpy_helper.to_array(t).astype(np.float16)
            new_inits[key] = numpy_helper.from_array(arr, key)
        return key

    cast_cache: Dict[tuple, str] = {}
    out_nodes: List[onnx.NodeProto] = []
    counter = [0]

    def cast_to(name: str, want: int) -> str:
        key = (name, want)
        if key not in cast_cache:
            counter[0] += 1
            new = f'{name}__to{"fp16" if want == HALF else "fp32"}'
            while new in used_names:
                new += '_'
            used_names.add(new)
            out_nodes.append(helper.make_node('Cast', [name], [new], to=want, name=f'fp16conv/Cast_{counter[0]}'))
            prec[new] = want
            cast_cache[key] = new
        return cast_cache[key]

    for n in nodes:
        want = HALF if node_half[id(n)] else FLOAT
        for i, name in enumerate(n.input):
            if not name:
                continue
            if name in consts:
                n.input[i] = const_variant(name, want)
                continue
            if not is_float(name) or name not in prec:
                continue
            if prec[name] != want:
                n.input[i] = cast_to(name, want)
        if want == HALF:
            for a in n.attribute:
                if n.op_type == 'Cast' and a.name == 'to' and a.i == FLOAT:
                    a.i = HALF
                if n.op_type == 'ConstantOfShape' and a.name == 'value' and a.t.data_type == FLOAT:
                    arr = numpy_helper.to_array(a.t).astype(np.float16)
                    a.t.CopyFrom(numpy_helper.from_array(arr, a.t.name))
        out_nodes.append(n)

    # graph inputs
    if not keep_io_types:
        for inp in g.input:
            if inp.type.tensor_type.elem_type == FLOAT:
                inp.type.tensor_type.elem_type = HALF
    # graph outputs
    want_out = FLOAT if keep_io_types else HALF
    for out in g.output:
        name = out.name
        if out.type.tensor_type.elem_type not in (FLOAT, HALF):
            continue
        have = prec.get(name, FLOAT)
        if name in consts:
            raise NotImplementedError('graph output produced by a constant')
        if have != want_out:
            inner = name + ('__fp16' if have == HALF else '__fp32')
            for n in out_nodes:
                for j, o in enumerate(n.output):
                    if o == name:
                        n.output[j] = inner
                for j, i in enumerate(n.input):
                    if i == name:
                        n.input[j] = inner
            out_nodes.append(helper.make_node('Cast', [inner], [name], to=want_out, name=f'fp16conv/Cast_out_{name}'))
        out.type.tensor_type.elem_type = want_out

    del g.node[:]
    g.node.extend(out_nodes)
    del g.initializer[:]
    used = {i for n in out_nodes for i in n.input}
    g.initializer.extend(t for k, t in new_inits.items() if k in used)
    del g.value_info[:]
    return model


# ---------------------------------------------------------------------------------------
# Export

def _register_missing_symbolics() -> None:
    """torch 1.13's TorchScript exporter has no symbolic for `aten::tile`, which EDM's
    SongUNet resampling uses (`f.tile([in_channels, 1, 1, 1])`). tile(dims) is repeat(dims)
    with dims left-padded by ones to the tensor rank."""
    import importlib
    have = False
    for v in range(9, 21):
        try:
            mod = importlib.import_module(f'torch.onnx.symbolic_opset{v}')
        except ImportError:
            continue
        if hasattr(mod, 'tile'):
            have = True
    if have:
        return
    from torch.onnx import symbolic_helper as sh
    from torch.onnx import symbolic_opset9 as op9

    def tile(g, self, dims):
        rank = sh._get_tensor_rank(self)
        const = sh._maybe_get_const(dims, 'is')
        if not sh._is_value(const) and rank is not None and len(const) < rank:
            dims = g.op('Constant', value_t=torch.tensor([1] * (rank - len(const)) + list(const), dtype=torch.int64))
        return op9.repeat(g, self, dims)

    torch.onnx.register_custom_op_symbolic('aten::tile', tile, 9)


_register_missing_symbolics()


def check_opset(opset: int) -> int:
    if opset < CONTRACT_OPSET:
        raise SystemExit(f'error: the model contract needs ONNX opset >= {CONTRACT_OPSET}, got {opset}')
    try:
        from torch.onnx import _constants
        torch_max = int(getattr(_constants, 'ONNX_MAX_OPSET', getattr(_constants, 'onnx_main_opset', 0)))
    except Exception:  # pragma: no cover
        torch_max = 0
    if torch_max and opset > torch_max:
        raise SystemExit(f'error: this torch ({torch.__version__}) exports ONNX opsets up to {torch_max}, '
                         f'not {opset}; the contract needs >= {CONTRACT_OPSET}')
    onnx_max = onnx.defs.onnx_opset_version()
    if opset > onnx_max:
        raise SystemExit(f'error: this onnx ({onnx.__version__}) knows opsets up to {onnx_max}, not {opset}')
    return opset


def fold_constant_tiles(model: onnx.ModelProto) -> int:
    """Replace Tile nodes whose inputs are all constants (EDM's resampling filters) by
    initializers; torch does not fold them. Returns the number of folded nodes."""
    g = model.graph
    consts = {t.name: t for t in g.initializer}
    for n in g.node:
        if n.op_type == 'Constant' and len(n.attribute) == 1 and n.attribute[0].name == 'value':
            consts[n.output[0]] = n.attribute[0].t
    keep, folded = [], 0
    for n in g.node:
        if n.op_type == 'Tile' and all(i in consts for i in n.input):
            arr = np.tile(numpy_helper.to_array(consts[n.input[0]]), numpy_helper.to_array(consts[n.input[1]]))
            t = numpy_helper.from_array(arr, n.output[0])
            g.initializer.append(t)
            consts[t.name] = t
            folded += 1
        else:
            keep.append(n)
    if folded:
        del g.node[:]
        g.node.extend(keep)
        used = {i for n in keep for i in n.input} | {o.name for o in g.output}
        unused = [t for t in g.initializer if t.name not in used]
        for t in unused:
            g.initializer.remove(t)
    return folded


def _initializer_bytes(model: onnx.ModelProto) -> int:
    total = 0
    for t in model.graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            total += next((int(e.value) for e in t.external_data if e.key == 'length'), 0)
        else:
            total += len(t.raw_data) or t.ByteSize()
    return total


def disable_checkpointing(module: nn.Module) -> int:
    """Turn off gradient checkpointing flags (CompVis `checkpoint`/`use_checkpoint`, guided-diffusion
    and CM `use_checkpoint`, diffusers/transformers `gradient_checkpointing`): the same math, without
    the autograd.Function wrappers in the trace. Returns the number of flags changed."""
    changed = 0
    for m in module.modules():
        for flag in ('use_checkpoint', 'checkpoint', 'use_attention_checkpoint', 'gradient_checkpointing'):
            if isinstance(getattr(m, flag, None), bool) and getattr(m, flag):
                setattr(m, flag, False)
                changed += 1
    return changed


def export_onnx(module: nn.Module, inputs: 'OrderedDict[str, torch.Tensor]', out_path: str, *,
                output_names: Sequence[str] = ('denoised',), metadata: Optional[Mapping[str, str]] = None,
                fp16: bool = False, fp16_io: bool = False, opset: int = CONTRACT_OPSET,
                dynamic_batch: bool = True, external_data: Optional[bool] = None,
                keep_fp32: Optional[Callable[[onnx.NodeProto], bool]] = None,
                check: bool = True, verbose: bool = True) -> str:
    """Trace `module` with the example `inputs` (names = graph input names, in forward order) and
    write an ONNX file that satisfies the contract.

    * opset 17 (checked against what torch and onnx support)
    * dimension 0 of every input and output is the dynamic batch `N` (dynamic_batch)
    * metadata_props from `metadata`
    * fp16: weights and network math in float16 (nodes outside the `/net/` scope, i.e. the
      preconditioning, stay float32); fp16_io also makes the graph inputs/outputs float16
    * external data (`<file>.data` beside the model) when the weights exceed ~2 GB, or when
      external_data=True
    * onnx.checker on the written file
    """
    check_opset(opset)
    module = module.eval()
    disable_checkpointing(module)
    names = list(inputs.keys())
    args = tuple(inputs.values())
    dyn = {n: {0: 'N'} for n in list(names) + list(output_names)} if dynamic_batch else None
    out_path = os.path.abspath(out_path)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    kwargs = dict(input_names=names, output_names=list(output_names), dynamic_axes=dyn, opset_version=opset,
                  do_constant_folding=True, export_params=True)
    params = inspect.signature(torch.onnx.export).parameters
    if 'dynamo' in params:
        kwargs['dynamo'] = False  # the TorchScript exporter (tested path)
    tmpdir = tempfile.mkdtemp(prefix='adasde-export-', dir=os.path.dirname(out_path))
    try:
        tmp = os.path.join(tmpdir, 'model.onnx')
        if verbose:
            print(f'[export] tracing {type(module).__name__} -> {os.path.basename(out_path)} (opset {opset})', flush=True)
        with torch.no_grad():
            example_out = module(*args)
            torch.onnx.export(module, args, tmp, **kwargs)
        example_out = example_out if isinstance(example_out, (tuple, list)) else (example_out,)
        model = onnx.load(tmp, load_external_data=True)
        fold_constant_tiles(model)
        # the outputs' non-batch dimensions are static: write them (torch leaves symbolic names)
        for vi, t in zip(model.graph.output, example_out):
            dims = vi.type.tensor_type.shape.dim
            if len(dims) == t.dim():
                for k, d in enumerate(dims):
                    if k == 0 and dynamic_batch:
                        d.dim_param = 'N'
                    else:
                        d.dim_value = int(t.shape[k])
        if fp16:
            pred = keep_fp32 or (lambda node: not node.name.startswith(NET_SCOPE))
            model = convert_float16(model, pred, keep_io_types=not fp16_io)
        if metadata:
            set_metadata(model, metadata)
        model.producer_name = 'adasde-export'
        model.producer_version = f'torch {torch.__version__}, onnx {onnx.__version__}'
        size = _initializer_bytes(model)
        use_ext = external_data if external_data is not None else size > TWO_GB - (64 << 20)
        data_name = os.path.basename(out_path) + '.data'
        data_path = os.path.join(os.path.dirname(out_path), data_name)
        if os.path.exists(data_path):
            os.remove(data_path)  # onnx appends to an existing external-data file
        if use_ext:
            if verbose:
                print(f'[export] {size / 2**30:.2f} GiB of weights: external data in {data_name}', flush=True)
            onnx.save_model(model, out_path, save_as_external_data=True, all_tensors_to_one_file=True,
                            location=data_name, size_threshold=1024, convert_attribute=False)
        else:
            onnx.save_model(model, out_path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    if check:
        onnx.checker.check_model(out_path)
        verify_interface(out_path, names, list(output_names), dynamic_batch)
    if verbose:
        print(f'[export] wrote {out_path} ({os.path.getsize(out_path) / 2**20:.2f} MiB'
              f'{", + external data" if use_ext else ""}); onnx.checker ok', flush=True)
    return out_path


def verify_interface(path: str, input_names: Sequence[str], output_names: Sequence[str], dynamic_batch: bool = True):
    """Assert the graph's input/output names and the symbolic batch dimension."""
    model = onnx.load(path, load_external_data=False)
    got_in = [i.name for i in model.graph.input]
    got_out = [o.name for o in model.graph.output]
    if got_in != list(input_names) or got_out != list(output_names):
        raise AssertionError(f'{path}: inputs {got_in} / outputs {got_out}, expected {list(input_names)} / {list(output_names)}')
    if dynamic_batch:
        for vi in list(model.graph.input) + list(model.graph.output):
            dim0 = vi.type.tensor_type.shape.dim[0]
            if not dim0.dim_param:
                raise AssertionError(f'{path}: {vi.name} has a fixed batch dimension {dim0.dim_value}')
    return model


def dataset_models() -> dict:
    """The --dataset_name naming table (dataset_models.json), shared with `adasde sample`'s resolver."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'dataset_models.json')) as f:
        return json.load(f)['datasets']


def resolve_out(args: argparse.Namespace, dataset: str) -> str:
    """--out, or by default models/<the table's first name for the dataset> (what --dataset_name finds)."""
    if args.out is None:
        table = dataset_models()
        args.out = os.path.join('models', table[dataset]['files'][0] if dataset in table else f'{dataset}.onnx')
    return args.out


def sample_command(model_path: str, *, extra: str = '', dataset: Optional[str] = None) -> str:
    # A file under a name of the table in ./models is found by --dataset_name, as the reference names models.
    files = dataset_models().get(dataset or '', {}).get('files', [])
    by_name = dataset is not None and os.path.basename(model_path) in files and os.path.normpath(os.path.dirname(model_path)) == 'models'
    what = f'--dataset_name {dataset}' if by_name else f'--model {model_path}'
    cmd = f'adasde sample {what} --solver dpmpp --num_steps 6 --seeds 0-63 --grid'
    return cmd + (' ' + extra if extra else '')


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', default=None,
                        help='output .onnx file, companions beside it (default: models/<dataset>.onnx, found by --dataset_name)')
    parser.add_argument('--upstream', default=None,
                        help='path of the upstream repository checkout, prepended to sys.path')
    parser.add_argument('--fp16', action='store_true',
                        help='store weights and run the network in float16 (preconditioning stays float32)')
    parser.add_argument('--fp16-io', action='store_true',
                        help='with --fp16: make the graph inputs/outputs float16 too (default float32)')
    parser.add_argument('--opset', type=int, default=CONTRACT_OPSET, help=f'ONNX opset (>= {CONTRACT_OPSET})')
    parser.add_argument('--external-data', choices=['auto', 'yes', 'no'], default='auto',
                        help='write weights to <out>.data (auto: when over ~2 GB)')
    parser.add_argument('--batch', type=int, default=2, help='batch size of the tracing example (N stays dynamic)')


def external_flag(args) -> Optional[bool]:
    return {'auto': None, 'yes': True, 'no': False}[args.external_data]


def isolate_from_upstream() -> None:
    """Take tools/export off sys.path and out of sys.modules' top-level names.

    The exporters are named after the families (cm.py, ldm.py), and the upstream packages
    are too (consistency_models' `cm`, CompVis' `ldm`): without this, `import cm.unet` or
    `from ldm.util import ...` would find our scripts. Our modules load each other with
    `load_sibling` under private names instead."""
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != EXPORT_DIR]
    for name in ('cm', 'ldm', 'edm', 'adm', 'sd', 'ddpm', 'selftest', 'clip_tokenizer'):
        mod = sys.modules.get(name)
        f = getattr(mod, '__file__', None) if mod is not None else None
        if f and os.path.dirname(os.path.abspath(f)) == EXPORT_DIR:
            del sys.modules[name]


def load_sibling(name: str):
    """Import tools/export/<name>.py as module `adasde_export_<name>` (see isolate_from_upstream)."""
    key = f'adasde_export_{name}'
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, os.path.join(EXPORT_DIR, f'{name}.py'))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[key] = mod
        spec.loader.exec_module(mod)
    return sys.modules[key]


def add_upstream_path(path: Optional[str]) -> None:
    if path:
        path = os.path.abspath(path)
        if not os.path.isdir(path):
            raise SystemExit(f'error: --upstream {path} is not a folder')
        sys.path.insert(0, path)


def companion_name(out_path: str, suffix: str) -> str:
    """`models/foo.onnx` + 'decoder' -> 'foo.decoder.onnx' (relative to the model file)."""
    base = os.path.basename(out_path)
    stem = base[:-5] if base.endswith('.onnx') else base
    return f'{stem}.{suffix}.onnx'


# ---------------------------------------------------------------------------------------
# CLI: metadata viewer / editor

def _main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description='adasde export helpers')
    sub = p.add_subparsers(dest='cmd', required=True)
    m = sub.add_parser('meta', help='print (and edit) the metadata_props of an ONNX file')
    m.add_argument('model')
    m.add_argument('--set', action='append', default=[], metavar='KEY=VALUE')
    m.add_argument('--delete', action='append', default=[], metavar='KEY')
    a = p.parse_args(argv)
    if a.cmd == 'meta':
        entries = {}
        for kv in a.set:
            if '=' not in kv:
                p.error(f'--set expects KEY=VALUE, got {kv!r}')
            k, v = kv.split('=', 1)
            entries[k] = v
        if entries or a.delete:
            write_metadata(a.model, entries, a.delete)
        for k, v in read_metadata(a.model).items():
            print(f'{k} = {v if len(v) < 200 else v[:200] + "..."}')
    return 0


if __name__ == '__main__':
    sys.exit(_main())
