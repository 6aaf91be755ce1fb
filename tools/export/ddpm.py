"""Export a generic discrete-time DDPM network (eps-, v- or x0-prediction) as an adasde
denoiser of the discrete VP family (ALGORITHM.md section 8; metadata family `ddpm`).

Your own network class and a state dict:
    python3 tools/export/ddpm.py --module mypkg.unet:UNet --module-kwargs '{"ch": 64}' \
        --weights ema.pt --img-channels 1 --img-resolution 28 --out models/mnist.onnx \
        --beta-schedule linear --beta-start 1e-4 --beta-end 0.02 --num-train-timesteps 1000 \
        --data-range [0,1] --time-input index --prediction eps [--upstream DIR]
A diffusers folder (UNet2DModel + DDPMScheduler config, e.g. google/ddpm-cifar10-32; needs
diffusers; the schedule and prediction type come from scheduler_config.json):
    python3 tools/export/ddpm.py --diffusers /path/to/ddpm-cifar10-32 --out models/ddpm-cifar10.onnx

Conventions (each a flag; for --diffusers read from its configs unless given):
  --beta-schedule linear | scaled_linear | cosine (= squaredcos_cap_v2), with --beta-start,
      --beta-end, --num-train-timesteps; or --betas FILE / --alphas-cumprod FILE (.npy, .json
      list or whitespace-separated text) for any other table.
  --data-range [-1,1] | [-0.5,0.5] | [0,1]: the range of the data the network was trained on.
      The contract's x is always in [-1, 1]: with y = k x + m the network's data (k = 1, 1/2,
      1/2; m = 0, 0, 1/2), a contract sample x0 + sigma n is the network's y0 + k sigma n, so
      the graph runs the network at noise level k sigma, and `adasde.alphas_cumprod` holds the
      equivalent table in x units, ac_k' = k^2 ac_k / (k^2 ac_k + 1 - ac_k), which is what the
      sampler's `--schedule_type discrete` steps through (identical to ac for [-1, 1]).
  --time-input index (float DDPM timestep tau in [0, T-1], diffusers' and the original code's
      convention; fractional between steps) | index_int (tau rounded to the nearest integer,
      int64: networks with an embedding table) | fraction (tau / T) | continuous
      ((tau + 1) / T, DPM-Solver's continuous time of a discrete schedule).
  --prediction eps | v (v = sqrt(ac) eps - sqrt(1 - ac) y0) | x0. Networks with a learned
      variance (2C output channels) give the prediction in the first C.

The graph: with s = k sigma, y = k x + m, a = 1 / sqrt(1 + s^2), b = s a,
tau = T sigma_inv(s) - 1 on the network's own alphas_cumprod (piecewise-linear log alpha,
common.DiscreteTime), out = net(a y, time(tau)); y0 = y - s eps, a (a y) - b v or out; and
D(x, sigma) = (y0 - m) / k. Inputs x [N, C, H, W], sigma [N]; output denoised.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections import OrderedDict
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
common.isolate_from_upstream()  # our cm.py / ldm.py must not shadow upstream packages

# data range -> (k, m) with y = k x + m
DATA_RANGES = OrderedDict([('[-1,1]', (1.0, 0.0)), ('[-0.5,0.5]', (0.5, 0.0)), ('[0,1]', (0.5, 0.5))])
TIME_INPUTS = ('index', 'index_int', 'fraction', 'continuous')
PREDICTIONS = ('eps', 'v', 'x0')
BETA_SCHEDULES = ('linear', 'scaled_linear', 'cosine', 'squaredcos_cap_v2')
# diffusers' scheduler_config.json names
DIFFUSERS_PREDICTION = {'epsilon': 'eps', 'v_prediction': 'v', 'sample': 'x0'}


class ExportError(Exception):
    """A user mistake: printed as one line, exit code 2."""


def fail(message: str) -> None:
    raise ExportError(message)


# ---------------------------------------------------------------------------------------
# Schedules (float64)

def cosine_betas(T: int, max_beta: float = 0.999) -> np.ndarray:
    """Nichol & Dhariwal's cosine schedule as diffusers' `squaredcos_cap_v2`:
    alpha_bar(t) = cos((t + 0.008) / 1.008 * pi / 2)^2, beta_i = min(1 - alpha_bar((i+1)/T) / alpha_bar(i/T), max_beta)."""
    def abar(t):
        return np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2
    i = np.arange(T, dtype=np.float64)
    return np.minimum(1 - abar((i + 1) / T) / abar(i / T), max_beta)


def betas_of(schedule: str, T: int, beta_start: float, beta_end: float) -> np.ndarray:
    if schedule == 'linear':
        return np.linspace(beta_start, beta_end, T, dtype=np.float64)
    if schedule == 'scaled_linear':
        return np.linspace(beta_start ** 0.5, beta_end ** 0.5, T, dtype=np.float64) ** 2
    if schedule in ('cosine', 'squaredcos_cap_v2'):
        return cosine_betas(T)
    fail(f'--beta-schedule: expected one of {", ".join(BETA_SCHEDULES)}, got {schedule!r}')


def read_table(path: str, flag: str) -> np.ndarray:
    """A 1-D table from .npy, a JSON list or whitespace/comma-separated text."""
    if not os.path.isfile(path):
        fail(f'{flag}: {path} does not exist')
    try:
        if path.endswith('.npy'):
            arr = np.load(path)
        elif path.endswith('.json'):
            with open(path) as f:
                arr = np.asarray(json.load(f), dtype=np.float64)
        else:
            with open(path) as f:
                arr = np.asarray([float(v) for v in f.read().replace(',', ' ').split()], dtype=np.float64)
    except (ValueError, OSError, json.JSONDecodeError) as e:
        fail(f'{flag}: {path} is not a table of numbers ({str(e).splitlines()[0]})')
    arr = np.asarray(arr, dtype=np.float64).reshape(-1)
    if arr.size < 2:
        fail(f'{flag}: {path} holds {arr.size} values; expected one per training step (at least 2)')
    return arr


def check_alphas_cumprod(ac: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(ac)) or not np.all(np.diff(ac) < 0) or ac[0] >= 1 or ac[-1] <= 0:
        fail(f'{what}: alphas_cumprod must decrease strictly inside (0, 1) (a schedule with a zero '
             f'terminal SNR, alphas_cumprod[-1] = 0, has no finite sigma_max)')
    return ac


def alphas_cumprod_from(args) -> np.ndarray:
    if args.alphas_cumprod:
        return check_alphas_cumprod(read_table(args.alphas_cumprod, '--alphas-cumprod'), '--alphas-cumprod')
    if args.betas:
        betas = read_table(args.betas, '--betas')
        if not np.all((betas > 0) & (betas < 1)):
            fail(f'--betas: {args.betas}: every beta must lie in (0, 1)')
        return check_alphas_cumprod(np.cumprod(1.0 - betas), '--betas')
    T = int(args.num_train_timesteps)
    if T < 2:
        fail(f'--num-train-timesteps: expected an integer >= 2, got {T}')
    betas = betas_of(args.beta_schedule, T, float(args.beta_start), float(args.beta_end))
    if not np.all((betas > 0) & (betas < 1)):
        fail(f'--beta-start/--beta-end: the {args.beta_schedule} betas must lie in (0, 1)')
    return check_alphas_cumprod(np.cumprod(1.0 - betas), f'--beta-schedule {args.beta_schedule}')


def contract_alphas_cumprod(ac: np.ndarray, k: float) -> np.ndarray:
    """The table in the contract's x units: noise level sigma_x = sigma_y / k."""
    ac = np.asarray(ac, dtype=np.float64)
    return (k * k * ac) / (k * k * ac + 1.0 - ac)


# ---------------------------------------------------------------------------------------
# The wrapper

def call_net(net: nn.Module, x: torch.Tensor, t: torch.Tensor, kind: str) -> torch.Tensor:
    """`positional`: net(x, t) giving a tensor, a tuple (first item) or an object with
    `.sample`; `diffusers`: UNet2DModel(x, t, return_dict=False)[0]."""
    out = net(x, t, return_dict=False) if kind == 'diffusers' else net(x, t)
    if isinstance(out, (tuple, list)):
        out = out[0]
    elif not torch.is_tensor(out) and hasattr(out, 'sample'):
        out = out.sample
    return out


class DDPMDenoiser(nn.Module):
    """D(x, sigma) of a discrete-time DDPM network (see the module docstring for the formulas)."""

    def __init__(self, net: nn.Module, alphas_cumprod, *, img_channels: int, data_range: str = '[-1,1]',
                 time_input: str = 'index', prediction: str = 'eps', net_call: str = 'positional'):
        super().__init__()
        if data_range not in DATA_RANGES:
            fail(f'--data-range: expected one of {", ".join(DATA_RANGES)}, got {data_range!r}')
        if time_input not in TIME_INPUTS:
            fail(f'--time-input: expected one of {", ".join(TIME_INPUTS)}, got {time_input!r}')
        if prediction not in PREDICTIONS:
            fail(f'--prediction: expected one of {", ".join(PREDICTIONS)}, got {prediction!r}')
        self.net = net
        self.time = common.DiscreteTime(alphas_cumprod)   # the network's own schedule
        self.k, self.m = DATA_RANGES[data_range]
        self.img_channels, self.time_input, self.prediction, self.net_call = int(img_channels), time_input, prediction, net_call
        self.compute_dtype = torch.float32

    def net_time(self, tau: torch.Tensor) -> torch.Tensor:
        M = self.time.M
        if self.time_input == 'index':
            return tau
        if self.time_input == 'index_int':
            return torch.clamp(torch.round(tau), 0, M - 1).to(torch.int64)
        if self.time_input == 'fraction':
            return tau / M
        return (tau + 1) / M

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        x = x.to(self.compute_dtype)
        sigma = sigma.to(self.compute_dtype)
        s = self.k * sigma                                   # noise level in the network's data units
        y = self.k * x + self.m if self.m else self.k * x    # the noisy sample in those units
        s4 = s.reshape(-1, 1, 1, 1)
        a = 1 / (s4 * s4 + 1).sqrt()
        y_in = a * y                                          # sqrt(ac) y0 + sqrt(1 - ac) eps
        out = call_net(self.net, y_in, self.net_time(self.time(s)), self.net_call)
        out = out[:, :self.img_channels].to(self.compute_dtype)
        if self.prediction == 'eps':
            y0 = y - s4 * out
        elif self.prediction == 'v':
            y0 = a * y_in - (s4 * a) * out
        else:
            y0 = out
        return (y0 - self.m) / self.k if self.m else y0 / self.k


# ---------------------------------------------------------------------------------------
# Loading

def load_state_dict(path: str, key: Optional[str]):
    if not os.path.isfile(path):
        fail(f'--weights: {path} does not exist')
    try:
        state = torch.load(path, map_location='cpu')
    except Exception as e:  # noqa: BLE001 - any unpickling problem is the file's
        fail(f'--weights: {path} is not a torch state dict ({str(e).splitlines()[0] if str(e) else type(e).__name__})')
    if key:
        for part in key.split('.'):
            if not isinstance(state, dict) or part not in state:
                fail(f'--state-key: {path} has no entry {key!r}')
            state = state[part]
    elif isinstance(state, dict) and not any(torch.is_tensor(v) for v in state.values()):
        # Training checkpoints often nest the weights; take the usual names (EMA first).
        for k in ('ema', 'ema_model', 'model_ema', 'state_dict', 'model', 'net'):
            if isinstance(state.get(k), dict):
                state = state[k]
                break
    if isinstance(state, nn.Module):
        state = state.state_dict()
    if not isinstance(state, dict):
        fail(f'--weights: {path} holds a {type(state).__name__}, not a state dict (use --state-key)')
    return state


def load_module(spec: str, kwargs_text: Optional[str], weights: Optional[str], state_key: Optional[str]) -> nn.Module:
    if ':' not in spec:
        fail(f'--module: expected pkg.mod:Class, got {spec!r}')
    mod_name, cls_name = spec.split(':', 1)
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        fail(f'--module: cannot import {mod_name} ({e}); put its folder on PYTHONPATH or pass --upstream')
    cls = mod
    for part in cls_name.split('.'):
        cls = getattr(cls, part, None)
        if cls is None:
            fail(f'--module: {mod_name} has no {cls_name}')
    kwargs = {}
    if kwargs_text:
        text = kwargs_text
        if text.startswith('@'):
            if not os.path.isfile(text[1:]):
                fail(f'--module-kwargs: {text[1:]} does not exist')
            with open(text[1:]) as f:
                text = f.read()
        try:
            kwargs = json.loads(text)
        except json.JSONDecodeError as e:
            fail(f'--module-kwargs: not a JSON object ({e})')
        if not isinstance(kwargs, dict):
            fail('--module-kwargs: expected a JSON object of constructor arguments')
    net = cls(**kwargs)
    if weights:
        state = load_state_dict(weights, state_key)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing:
            fail(f'--weights: {len(missing)} parameters of {cls_name} are not in {weights} (e.g. {missing[0]}); '
                 f'check --module-kwargs or --state-key')
        if unexpected:
            print(f'[ddpm] note: {len(unexpected)} entries of {weights} are not parameters of {cls_name} '
                  f'(e.g. {unexpected[0]})', flush=True)
    return net.eval().requires_grad_(False).float()


def diffusers_paths(folder: str):
    """(unet folder, scheduler_config.json) of a model folder or a pipeline folder (unet/, scheduler/)."""
    if not os.path.isdir(folder):
        fail(f'--diffusers: {folder} is not a folder')
    unet = os.path.join(folder, 'unet') if os.path.isfile(os.path.join(folder, 'unet', 'config.json')) else folder
    if not os.path.isfile(os.path.join(unet, 'config.json')):
        fail(f'--diffusers: {folder} has no config.json (nor unet/config.json) of a UNet2DModel')
    for cand in (os.path.join(folder, 'scheduler', 'scheduler_config.json'), os.path.join(folder, 'scheduler_config.json')):
        if os.path.isfile(cand):
            return unet, cand
    fail(f'--diffusers: {folder} has no scheduler_config.json (nor scheduler/scheduler_config.json)')


def read_diffusers_config(folder: str):
    """What the UNet2DModel config and the scheduler config say about the conventions."""
    unet_dir, sched_path = diffusers_paths(folder)
    with open(os.path.join(unet_dir, 'config.json')) as f:
        uc = json.load(f)
    with open(sched_path) as f:
        sc = json.load(f)
    cls = uc.get('_class_name', 'UNet2DModel')
    if cls != 'UNet2DModel':
        fail(f'--diffusers: {unet_dir}/config.json describes a {cls}; this exporter takes UNet2DModel '
             f'(text-conditional UNet2DConditionModel folders: tools/export/sd.py --diffusers)')
    pred = sc.get('prediction_type', 'epsilon')
    if pred not in DIFFUSERS_PREDICTION:
        fail(f'--diffusers: {sched_path}: prediction_type {pred!r} is not one of {", ".join(DIFFUSERS_PREDICTION)}')
    info = dict(unet_dir=unet_dir, scheduler_config=sched_path,
                img_channels=int(uc.get('in_channels', 3)), out_channels=int(uc.get('out_channels', uc.get('in_channels', 3))),
                img_resolution=int(uc['sample_size'] if not isinstance(uc.get('sample_size'), list) else uc['sample_size'][0]),
                prediction=DIFFUSERS_PREDICTION[pred], num_train_timesteps=int(sc.get('num_train_timesteps', 1000)),
                beta_schedule=sc.get('beta_schedule', 'linear'), beta_start=float(sc.get('beta_start', 1e-4)),
                beta_end=float(sc.get('beta_end', 0.02)), trained_betas=sc.get('trained_betas'))
    if isinstance(uc.get('sample_size'), list) and len(set(uc['sample_size'])) > 1:
        fail(f'--diffusers: sample_size {uc["sample_size"]} is not square; the contract needs H = W')
    return info


def load_diffusers_unet(unet_dir: str, unet_class=None) -> nn.Module:
    if unet_class is None:
        try:
            from diffusers import UNet2DModel as unet_class
        except ImportError as e:
            fail(f'--diffusers needs the diffusers package ({e})')
    return unet_class.from_pretrained(unet_dir).eval().requires_grad_(False).float()


# ---------------------------------------------------------------------------------------
# Export

def example_inputs(batch: int, C: int, R: int, time: common.DiscreteTime, k: float, seed: int = 0):
    """Sigmas (contract units) from below sigma_min to above sigma_max, x = x0 + sigma n."""
    g = torch.Generator().manual_seed(seed)
    smin, smax = time.sigma_min / k, time.sigma_max / k
    sig = [0.5 * smin, 0.1, 1.0, smax, 1.2 * smax, float(np.sqrt(smin * smax))]
    x0 = torch.rand(batch, C, R, R, generator=g) * 2 - 1
    sigma = torch.tensor([sig[i % len(sig)] for i in range(batch)], dtype=torch.float32)
    x = x0 + sigma.reshape(-1, 1, 1, 1) * torch.randn(x0.shape, generator=g)
    return OrderedDict(x=x, sigma=sigma)


def export_ddpm(net: nn.Module, alphas_cumprod, out_path: str, *, img_channels: int, img_resolution: int,
                data_range: str = '[-1,1]', time_input: str = 'index', prediction: str = 'eps',
                net_call: str = 'positional', dataset_name: Optional[str] = None, source: str = '',
                fp16=False, fp16_io=False, opset=common.CONTRACT_OPSET, external_data=None, batch=2, verbose=True):
    """Wrap and export; returns (wrapper, metadata)."""
    ac = np.asarray(alphas_cumprod, dtype=np.float64)
    wrapper = DDPMDenoiser(net, ac, img_channels=img_channels, data_range=data_range, time_input=time_input,
                           prediction=prediction, net_call=net_call).eval()
    k = wrapper.k
    ac_x = contract_alphas_cumprod(ac, k)
    tx = common.DiscreteTime(ac_x)   # the sampler's view (x units)
    name = dataset_name or os.path.splitext(os.path.basename(out_path))[0]
    convention = OrderedDict(data_range=data_range, time_input=time_input, prediction=prediction,
                             num_train_timesteps=int(ac.size), network_alphas_cumprod_first_last=[float(ac[0]), float(ac[-1])],
                             source=source)
    meta = common.contract_metadata(family='ddpm', dataset_name=name, sigma_min=tx.sigma_min, sigma_max=tx.sigma_max,
                                    img_resolution=img_resolution, img_channels=img_channels, label_dim=0,
                                    alphas_cumprod=ac_x, extra={'adasde.ddpm_convention': json.dumps(convention)})
    common.export_onnx(wrapper, example_inputs(batch, img_channels, img_resolution, wrapper.time, k), out_path,
                       metadata=meta, fp16=fp16, fp16_io=fp16_io, opset=opset, external_data=external_data,
                       verbose=verbose)
    return wrapper, meta


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__)

    def opt(name, **kw):
        # --beta-schedule and --beta_schedule both work (the CLI's reference spelling uses underscores).
        p.add_argument(name, '--' + name[2:].replace('-', '_'), **kw)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--module', help='the network class, pkg.mod:Class (importable from PYTHONPATH or --upstream)')
    src.add_argument('--diffusers', help='a diffusers UNet2DModel folder with scheduler_config.json (or unet/ + scheduler/)')
    opt('--module-kwargs', help="constructor arguments as a JSON object, or @file.json")
    p.add_argument('--weights', help='state dict for --module (.pt/.pth/.bin; EMA/state_dict/model entries are found)')
    opt('--state-key', help='dotted key of the state dict inside --weights (e.g. ema)')
    opt('--img-channels', type=int, help='channels C of x (--module; --diffusers reads in_channels)')
    opt('--img-resolution', type=int, help='H = W of x (--module; --diffusers reads sample_size)')
    opt('--beta-schedule', choices=BETA_SCHEDULES, help='default linear (--diffusers: its beta_schedule)')
    opt('--beta-start', type=float, help='default 1e-4')
    opt('--beta-end', type=float, help='default 0.02')
    opt('--num-train-timesteps', type=int, help='T, default 1000')
    p.add_argument('--betas', help='table of T betas (.npy, .json or text) instead of --beta-schedule')
    opt('--alphas-cumprod', help='table of T alphas_cumprod instead of --beta-schedule')
    opt('--data-range', choices=list(DATA_RANGES), help='data range of the training data (default [-1,1])')
    opt('--time-input', choices=TIME_INPUTS, help='network time input (default index)')
    p.add_argument('--prediction', choices=PREDICTIONS, help='eps, v or x0 (default eps; --diffusers: prediction_type)')
    opt('--dataset-name', help='adasde.dataset_name (default: the --out file name without .onnx)')
    common.add_common_args(p)
    return p


def resolve(args, unet_class=None):
    """(net, alphas_cumprod, conventions dict) from the parsed flags."""
    conv = {}
    if args.diffusers:
        info = read_diffusers_config(args.diffusers)
        net = load_diffusers_unet(info['unet_dir'], unet_class)
        conv.update(img_channels=args.img_channels or info['img_channels'], img_resolution=args.img_resolution or info['img_resolution'],
                    prediction=args.prediction or info['prediction'], net_call='diffusers',
                    source=f'diffusers folder {os.path.basename(os.path.abspath(args.diffusers))}')
        if not (args.betas or args.alphas_cumprod or args.beta_schedule):
            if info['trained_betas']:
                args.alphas_cumprod = None
                ac = check_alphas_cumprod(np.cumprod(1.0 - np.asarray(info['trained_betas'], dtype=np.float64)), 'trained_betas')
            else:
                args.beta_schedule = info['beta_schedule']
                if args.beta_schedule not in BETA_SCHEDULES:
                    fail(f'--diffusers: beta_schedule {args.beta_schedule!r} of {info["scheduler_config"]} is not one of '
                         f'{", ".join(BETA_SCHEDULES)}; pass --betas or --alphas-cumprod')
                args.beta_start = args.beta_start if args.beta_start is not None else info['beta_start']
                args.beta_end = args.beta_end if args.beta_end is not None else info['beta_end']
                args.num_train_timesteps = args.num_train_timesteps or info['num_train_timesteps']
                ac = None
        else:
            ac = None
    else:
        if args.img_channels is None or args.img_resolution is None:
            fail('--module needs --img-channels and --img-resolution (the shape of x)')
        net = load_module(args.module, args.module_kwargs, args.weights, args.state_key)
        conv.update(img_channels=args.img_channels, img_resolution=args.img_resolution, prediction=args.prediction or 'eps',
                    net_call='positional', source=f'module {args.module}')
        ac = None
    if ac is None:
        args.beta_schedule = args.beta_schedule or 'linear'
        args.beta_start = 1e-4 if args.beta_start is None else args.beta_start
        args.beta_end = 0.02 if args.beta_end is None else args.beta_end
        args.num_train_timesteps = args.num_train_timesteps or 1000
        ac = alphas_cumprod_from(args)
    for flag, v in (('--img-channels', conv['img_channels']), ('--img-resolution', conv['img_resolution'])):
        if v < 1:
            fail(f'{flag}: expected a positive integer, got {v}')
    conv.update(data_range=args.data_range or '[-1,1]', time_input=args.time_input or 'index')
    return net, ac, conv


def main(argv=None, unet_class=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    try:
        common.add_upstream_path(args.upstream)
        net, ac, conv = resolve(args, unet_class)
        print(f'[ddpm] {conv["img_channels"]}x{conv["img_resolution"]}x{conv["img_resolution"]}, T = {ac.size}, '
              f'data {conv["data_range"]}, time input {conv["time_input"]}, {conv["prediction"]}-prediction', flush=True)
        export_ddpm(net, ac, args.out, dataset_name=args.dataset_name, fp16=args.fp16, fp16_io=args.fp16_io, opset=args.opset,
                    external_data=common.external_flag(args), batch=args.batch, **conv)
    except ExportError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print('\nsample with:\n  ' + common.sample_command(args.out, extra='--schedule_type discrete --schedule_rho 1'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
