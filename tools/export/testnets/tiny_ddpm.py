"""Tiny DDPM-style networks for tools/export/selftest.py (family `ddpm`): each has the call
interface of a kind of checkpoint people bring to tools/export/ddpm.py, with random weights
(or, for GaussianDDPM, the exact answer for Gaussian data). Kept outside tools/export so the
self-test imports them the way a user's own code is imported: `--upstream
tools/export/testnets --module tiny_ddpm:GreyNet`.
"""
import json
import math
import os

import torch
from torch import nn


def sinusoid(t, dim, scale=1.0):
    """Transformer-style embedding of a float time (any range, `scale` brings it to ~1000)."""
    half = dim // 2
    dt = t.dtype if t.is_floating_point() else torch.float32   # float64 in the self-test's reference runs
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=dt) / half)
    a = (t.to(dt) * scale).reshape(-1, 1) * freqs.reshape(1, -1)
    return torch.cat([a.cos(), a.sin()], dim=1)


class GreyNet(nn.Module):
    """A course-project CNN: eps(x, t) with a sinusoidal embedding of t (scaled by `time_scale`)."""

    def __init__(self, in_ch=1, ch=8, emb=16, time_scale=1.0, out_ch=None):
        super().__init__()
        self.emb, self.time_scale = emb, float(time_scale)
        self.inp = nn.Conv2d(in_ch, ch, 3, padding=1)
        self.t1 = nn.Linear(emb, ch)
        self.mid = nn.Conv2d(ch, ch, 3, padding=1)
        self.norm = nn.GroupNorm(2, ch)
        self.out = nn.Conv2d(ch, out_ch or in_ch, 3, padding=1)

    def forward(self, x, t):
        h = self.inp(x)
        h = h + self.t1(sinusoid(t, self.emb, self.time_scale)).reshape(x.shape[0], -1, 1, 1)
        h = self.mid(torch.nn.functional.silu(self.norm(h)))
        return self.out(torch.nn.functional.silu(h))


class EmbedNet(nn.Module):
    """A network with a learned embedding table over the T integer timesteps (needs index_int)."""

    def __init__(self, in_ch=3, ch=8, T=1000):
        super().__init__()
        self.table = nn.Embedding(T, ch)
        self.inp = nn.Conv2d(in_ch, ch, 3, padding=1)
        self.out = nn.Conv2d(ch, in_ch, 3, padding=1)

    def forward(self, x, t):
        h = torch.nn.functional.silu(self.inp(x) + self.table(t).reshape(x.shape[0], -1, 1, 1))
        return self.out(h)


class UNet2DOutput:
    def __init__(self, sample):
        self.sample = sample


class FakeUNet2DModel(nn.Module):
    """diffusers' UNet2DModel call interface and on-disk format (config.json +
    diffusion_pytorch_model.bin), a tiny network inside; stands in for diffusers where it is
    not installed, so the exporter's --diffusers path (config reading, learned-variance
    channels, the diffusers call) runs for real."""

    def __init__(self, in_channels=3, out_channels=3, sample_size=16, block_out_channels=(8,)):
        super().__init__()
        self.config = dict(in_channels=in_channels, out_channels=out_channels, sample_size=sample_size,
                           block_out_channels=list(block_out_channels))
        self.net = GreyNet(in_ch=in_channels, ch=block_out_channels[0], emb=16, time_scale=1.0, out_ch=out_channels)

    def forward(self, sample, timestep, return_dict=True):
        out = self.net(sample, timestep)
        return UNet2DOutput(out) if return_dict else (out,)

    def save_pretrained(self, folder):
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, 'config.json'), 'w') as f:
            json.dump({'_class_name': 'UNet2DModel', '_diffusers_version': '0.21.0', **self.config,
                       'down_block_types': ['DownBlock2D'], 'up_block_types': ['UpBlock2D']}, f, indent=1)
        torch.save(self.state_dict(), os.path.join(folder, 'diffusion_pytorch_model.bin'))

    @classmethod
    def from_pretrained(cls, folder):
        with open(os.path.join(folder, 'config.json')) as f:
            c = json.load(f)
        m = cls(c['in_channels'], c['out_channels'], c['sample_size'], tuple(c['block_out_channels']))
        m.load_state_dict(torch.load(os.path.join(folder, 'diffusion_pytorch_model.bin'), map_location='cpu'))
        return m


class GaussianDDPM(nn.Module):
    """The exact eps / v / x0 predictor for Gaussian data y0 ~ N(mu, s^2 I) (in the network's
    data units) under a discrete schedule, reading its time input in the given convention:
    tau from the input, ac(tau) from piecewise-linear log alpha on t = (tau + 1) / T, then
    E[y0 | y_t] = mu + a s^2 / (a^2 s^2 + b^2) (y_t - a mu) with a = sqrt(ac), b = sqrt(1 - ac)."""

    def __init__(self, alphas_cumprod, mu, s, time_input='index', prediction='eps'):
        super().__init__()
        ac = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
        self.T = int(ac.numel())
        self.register_buffer('t_knots', (torch.arange(self.T, dtype=torch.float64) + 1) / self.T)
        self.register_buffer('la_knots', 0.5 * torch.log(ac))
        self.register_buffer('mu', torch.as_tensor(mu, dtype=torch.float32))
        self.s, self.time_input, self.prediction = float(s), time_input, prediction

    def forward(self, y, t):
        dt = y.dtype
        t = t.to(dt)
        tau = {'index': t, 'index_int': t, 'fraction': t * self.T, 'continuous': t * self.T - 1}[self.time_input]
        tc = (tau + 1) / self.T
        tk, lk = self.t_knots.to(dt), self.la_knots.to(dt)
        i1 = torch.clamp((tk.unsqueeze(0) < tc.unsqueeze(1)).to(torch.int64).sum(dim=1), 1, self.T - 1)
        i0 = i1 - 1
        la = lk[i0] + (tc - tk[i0]) * (lk[i1] - lk[i0]) / (tk[i1] - tk[i0])
        a = torch.exp(la).reshape(-1, 1, 1, 1)
        b = torch.sqrt(1 - a * a)
        mu = self.mu.to(dt)
        s2 = self.s ** 2
        x0 = mu + a * s2 / (a * a * s2 + b * b) * (y - a * mu)
        if self.prediction == 'x0':
            return x0
        eps = (y - a * x0) / b
        return eps if self.prediction == 'eps' else a * eps - b * x0
