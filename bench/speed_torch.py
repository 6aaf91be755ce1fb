"""The PyTorch side of `bench/speed`: images per second of a plain float32 PyTorch sampling
loop over the bundled tiny EDM network, at the cost of AdaSDE at 5 NFE.

    /usr/bin/python3 bench/speed_torch.py --checkpoint models/tiny-edm/checkpoint.pt --batches 3 --threads 2

* Network: built exactly as tools/train_tiny_edm.py builds it (its `build(config)`: the
  TinyUNet inside tools/export/common.EDMDenoiser, the module the exporter puts in
  models/cifar10-tiny-edm.onnx), with the checkpoint's EMA weights, eval mode, float32,
  under torch.no_grad().
* Sampler: DPM-Solver-2 (r = 0.5, src/solvers/dpm.ts) with the analytic first step on the
  time_uniform rho 1 schedule of --num-steps points (default 4; sigma 80 -> 0.002, as
  src/solvers/schedule.ts): 2 (N - 1) - 1 = 5 NFE, the cost of the published AdaSDE
  predictor exp/00002 (num_steps 4, AFS). --t-steps overrides the schedule (bench/speed.ts
  passes the one adasde uses, so both sides run the same noise levels).
* Timing: one warm-up batch, then --batches batches of --batch (default 64) images, each
  from fresh standard-normal latents (torch.randn) to final states; no image writing.
* Output: one JSON line on stdout: images_per_s, seconds, nfe (counted), the schedule,
  torch version, threads, checkpoint kimg.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, 'tools'))
import train_tiny_edm as tte  # noqa: E402


def time_uniform(num_steps, sigma_min=0.002, sigma_max=80.0, rho=1.0):
    """src/solvers/schedule.ts `time_uniform`: uniform in the time of the VP-SDE with this sigma range."""
    eps_s = 1e-3
    beta_d = 2 * (math.log(sigma_min ** 2 + 1) / eps_s - math.log(sigma_max ** 2 + 1)) / (eps_s - 1)
    beta_min = math.log(sigma_max ** 2 + 1) - 0.5 * beta_d
    out = []
    for i in range(num_steps):
        u = i / (num_steps - 1)
        tau = (1 + u * (eps_s ** (1 / rho) - 1)) ** rho
        out.append(math.sqrt(math.exp(0.5 * beta_d * tau * tau + beta_min * tau) - 1))
    return out


class Counted:
    """D(x, t) for a whole batch at one noise level, counting evaluations per sample."""

    def __init__(self, model):
        self.model, self.nfe = model, 0

    def d(self, x, t):
        self.nfe += 1
        sigma = torch.full((x.shape[0],), t, dtype=torch.float32)
        return (x - self.model(x, sigma)) / t


@torch.no_grad()
def sample_dpm2_afs(den, t_steps, batch, shape, gen, r=0.5):
    """DPM-Solver-2 with AFS on t_steps (src/solvers/dpm.ts + common.ts stepwise/afsDirection)."""
    x = torch.randn((batch, *shape), generator=gen, dtype=torch.float32) * t_steps[0]
    for i in range(len(t_steps) - 1):
        t_cur, t_next = t_steps[i], t_steps[i + 1]
        d_cur = x / math.sqrt(1 + t_cur * t_cur) if i == 0 else den.d(x, t_cur)
        t_mid = t_next ** r * t_cur ** (1 - r)
        d_mid = den.d(x + (t_mid - t_cur) * d_cur, t_mid)
        x = x + (t_next - t_cur) * ((1 / (2 * r)) * d_mid + (1 - 1 / (2 * r)) * d_cur)
    return x


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('--checkpoint', default=os.path.join(ROOT, 'models', 'tiny-edm', 'checkpoint.pt'))
    p.add_argument('--batches', type=int, default=3, help='timed batches (after one warm-up batch)')
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    p.add_argument('--num-steps', type=int, default=4, help='schedule points (4 with AFS: 5 NFE)')
    p.add_argument('--sigma-min', type=float, default=0.002)
    p.add_argument('--sigma-max', type=float, default=80.0)
    p.add_argument('--t-steps', default=None, help='comma-separated schedule replacing the time_uniform one')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    if not os.path.isfile(args.checkpoint):
        print(f'error: --checkpoint {args.checkpoint}: no such file (tools/train_tiny_edm.py writes it)', file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    state = torch.load(args.checkpoint, map_location='cpu')
    model = tte.build(state['config']).eval().requires_grad_(False)
    model.load_state_dict(state['ema'])
    t_steps = [float(v) for v in args.t_steps.split(',')] if args.t_steps else \
        time_uniform(args.num_steps, args.sigma_min, args.sigma_max, rho=1.0)
    shape = (state['config'].get('img_channels', 3),) + (state['config'].get('img_resolution', 32),) * 2
    den = Counted(model)
    gen = torch.Generator().manual_seed(args.seed)

    sample_dpm2_afs(den, t_steps, args.batch, shape, gen)   # warm-up (allocator, oneDNN primitives)
    nfe = den.nfe
    t0 = time.perf_counter()
    finite = True
    for _ in range(args.batches):
        x = sample_dpm2_afs(den, t_steps, args.batch, shape, gen)
        finite = finite and bool(torch.isfinite(x).all())
    seconds = time.perf_counter() - t0
    images = args.batches * args.batch
    print(json.dumps(dict(
        impl='pytorch', torch=torch.__version__, threads=torch.get_num_threads(), solver='dpm', afs=True,
        nfe=nfe, batch=args.batch, batches=args.batches, images=images, seconds=round(seconds, 3),
        images_per_s=round(images / seconds, 2), t_steps=t_steps, finite=finite,
        checkpoint=args.checkpoint, checkpoint_kimg=round(state.get('nimg', 0) / 1000, 1))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
