"""Train a small EDM-preconditioned U-Net on CIFAR-10 on a CPU, and export it as the
bundled model `models/cifar10-tiny-edm.onnx` (adasde.family=edm, dataset_name=cifar10).

    /usr/bin/python3 tools/train_tiny_edm.py --minutes 150 --threads 2
    /usr/bin/python3 tools/train_tiny_edm.py --minutes 60 --resume      # continue from the checkpoint
    /usr/bin/python3 tools/train_tiny_edm.py --benchmark                # img/s of candidate widths

Default network: channels 32,64,64 at 32/16/8 px, one residual block per level, attention
at 8x8: 1.19M parameters, a 4.7 MiB ONNX file. Measured on this 2-core machine (train
step, batch 64): about 80-93 img/s with 2 threads and 65 img/s with 1 thread when the
machine is otherwise idle, i.e. roughly 0.6-0.8 Mimg in 150 minutes; 24,48,48 is ~1.4x
faster, 48,96,96 ~2x and 64,128,128 ~3x slower. When other jobs share the cores, 2
OpenMP threads can drop to <10 img/s while 1 thread keeps ~50: prefer --threads 1 then.

* Network F(x_in, c_noise, class_labels=None): a DDPM++-style U-Net (GroupNorm, SiLU,
  scale-shift time conditioning, skip connections, attention at 8x8), unconditional.
* Preconditioning: tools/export/common.EDMDenoiser (sigma_data 0.5), the same module the
  exporter puts in the graph, so training and export share one definition of D(x, sigma).
* Loss (EDM): ln(sigma) ~ N(P_mean = -1.2, P_std = 1.2), weight (s^2 + sd^2) / (s sd)^2,
  loss = weight * |D(y + s n, s) - y|^2, y = images in [-1, 1] with random horizontal flips.
* Adam (lr --lr, warm-up --lr-warmup-kimg), EMA of the weights with EDM's half-life rule
  (half-life min(--ema-halflife-kimg, 5% of the images seen)).
* Resumable: `<outdir>/checkpoint.pt` (network, EMA, optimiser, RNG states, counters) is
  written atomically every --ckpt-minutes and at the end; --resume continues from it with
  a fresh --minutes budget. The loss curve is appended to `<outdir>/loss.csv`.
* At the end (unless --no-export) the EMA network is exported through
  tools/export/edm.export_denoiser to --export (sigma range [0.002, 80]) and a preview
  grid of 64 samples (EDM Heun, 18 steps) is written to `<outdir>/preview.png`.
* Data: `../shared/data/cifar10-train.zip` (EDM dataset-zip layout), decoded once with
  PIL and cached as `<outdir>/cifar10-train-u8.npy`.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
import zipfile

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, 'export'))
import common  # noqa: E402
common.isolate_from_upstream()  # our cm.py / ldm.py must not shadow upstream packages
edm_export = common.load_sibling('edm')

SIGMA_MIN, SIGMA_MAX, SIGMA_DATA = 0.002, 80.0, 0.5
P_MEAN, P_STD = -1.2, 1.2


# =======================================================================================
# network

class PositionalEmbedding(nn.Module):
    def __init__(self, num_channels, max_positions=10000):
        super().__init__()
        self.num_channels, self.max_positions = num_channels, max_positions

    def forward(self, x):
        half = self.num_channels // 2
        freqs = torch.arange(half, dtype=torch.float32, device=x.device) / (half - 1)
        freqs = (1 / self.max_positions) ** freqs
        x = x.reshape(-1, 1) * freqs.reshape(1, -1).to(x.dtype)
        return torch.cat([x.cos(), x.sin()], dim=1)


def group_norm(ch):
    return nn.GroupNorm(min(8, ch // 4), ch, eps=1e-6)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, emb_ch, dropout=0.0, attention=False, heads_ch=32):
        super().__init__()
        self.norm0, self.conv0 = group_norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.affine = nn.Linear(emb_ch, 2 * cout)
        self.norm1, self.conv1 = group_norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.dropout = dropout
        nn.init.zeros_(self.conv1.weight)
        nn.init.zeros_(self.conv1.bias)
        self.attention = attention
        if attention:
            self.heads = max(1, cout // heads_ch)
            self.norm2, self.qkv, self.proj = group_norm(cout), nn.Conv2d(cout, 3 * cout, 1), nn.Conv2d(cout, cout, 1)
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)

    def forward(self, x, emb):
        h = self.conv0(F.silu(self.norm0(x)))
        scale, shift = self.affine(emb).unsqueeze(2).unsqueeze(3).chunk(2, dim=1)
        h = F.silu(torch.addcmul(shift, self.norm1(h), scale + 1))
        h = self.conv1(F.dropout(h, p=self.dropout, training=self.training))
        x = (h + (self.skip(x) if self.skip is not None else x)) * math.sqrt(0.5)
        if self.attention:
            b, c, hh, ww = x.shape
            q, k, v = self.qkv(self.norm2(x)).reshape(b * self.heads, c // self.heads, 3, hh * ww).unbind(2)
            w = torch.einsum('ncq,nck->nqk', q, k / math.sqrt(c // self.heads)).softmax(dim=2)
            a = torch.einsum('nqk,nck->ncq', w, v).reshape(b, c, hh, ww)
            x = (x + self.proj(a)) * math.sqrt(0.5)
        return x


class TinyUNet(nn.Module):
    """F(x_in, c_noise, class_labels=None) -> [N, 3, 32, 32] (EDM network interface)."""

    def __init__(self, channels=(32, 64, 64), blocks=1, attn_res=(8,), img_resolution=32, img_channels=3,
                 dropout=0.0):
        super().__init__()
        self.config = dict(channels=list(channels), blocks=blocks, attn_res=list(attn_res),
                           img_resolution=img_resolution, img_channels=img_channels, dropout=dropout)
        c0 = channels[0]
        emb_ch = 4 * c0
        self.map_noise = PositionalEmbedding(c0)
        self.map0, self.map1 = nn.Linear(c0, emb_ch), nn.Linear(emb_ch, emb_ch)
        self.conv_in = nn.Conv2d(img_channels, c0, 3, padding=1)
        self.enc = nn.ModuleList()
        skips = [c0]
        cin, res = c0, img_resolution
        for level, ch in enumerate(channels):
            if level > 0:
                self.enc.append(nn.ModuleDict({'down': nn.Conv2d(cin, cin, 3, stride=2, padding=1)}))
                res //= 2
                skips.append(cin)
            for _ in range(blocks):
                self.enc.append(nn.ModuleDict({'block': ResBlock(cin, ch, emb_ch, dropout, res in attn_res)}))
                cin = ch
                skips.append(cin)
        self.mid0 = ResBlock(cin, cin, emb_ch, dropout, attention=True)
        self.mid1 = ResBlock(cin, cin, emb_ch, dropout)
        self.dec = nn.ModuleList()
        for level, ch in reversed(list(enumerate(channels))):
            for _ in range(blocks + 1):
                self.dec.append(nn.ModuleDict({'block': ResBlock(cin + skips.pop(), ch, emb_ch, dropout, res in attn_res)}))
                cin = ch
            if level > 0:
                self.dec.append(nn.ModuleDict({'up': nn.Conv2d(cin, cin, 3, padding=1)}))
                res *= 2
        self.norm_out, self.conv_out = group_norm(cin), nn.Conv2d(cin, img_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x, noise_labels, class_labels=None):
        emb = self.map_noise(noise_labels)
        emb = F.silu(self.map1(F.silu(self.map0(emb))))
        h = self.conv_in(x)
        hs = [h]
        for m in self.enc:
            h = m['down'](h) if 'down' in m else m['block'](h, emb)
            hs.append(h)
        h = self.mid1(self.mid0(h, emb), emb)
        for m in self.dec:
            if 'up' in m:
                h = m['up'](F.interpolate(h, scale_factor=2.0, mode='nearest'))
            else:
                h = m['block'](torch.cat([h, hs.pop()], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))


def build(config):
    net = TinyUNet(**config)
    return common.EDMDenoiser(net, img_channels=3, label_dim=0, sigma_data=SIGMA_DATA)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


# =======================================================================================
# data

def load_cifar(zip_path, cache):
    if cache and os.path.isfile(cache):
        return np.load(cache, mmap_mode=None)
    from PIL import Image
    t0 = time.time()
    with zipfile.ZipFile(zip_path) as z:
        meta = json.loads(z.read('dataset.json'))
        files = [f for f, _ in meta['labels']] if meta.get('labels') else \
            sorted(n for n in z.namelist() if n.lower().endswith(('.png', '.jpg', '.jpeg')))
        out = np.empty((len(files), 3, 32, 32), dtype=np.uint8)
        for i, f in enumerate(files):
            img = Image.open(io.BytesIO(z.read(f))).convert('RGB')
            out[i] = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    print(f'[data] decoded {len(files)} images in {time.time() - t0:.1f}s', flush=True)
    if cache:
        tmp = cache + '.tmp.npy'
        np.save(tmp, out)
        os.replace(tmp, cache)
    return out


# =======================================================================================
# training

def edm_loss(model, images, gen):
    n = images.shape[0]
    sigma = (torch.randn(n, generator=gen) * P_STD + P_MEAN).exp()
    weight = (sigma ** 2 + SIGMA_DATA ** 2) / (sigma * SIGMA_DATA) ** 2
    noise = torch.randn(images.shape, generator=gen) * sigma.reshape(-1, 1, 1, 1)
    D = model(images + noise, sigma)
    return (weight.reshape(-1, 1, 1, 1) * (D - images) ** 2).mean()


def get_batch(data, idx, gen):
    x = torch.from_numpy(data[idx]).to(torch.float32) / 127.5 - 1
    flip = torch.rand(len(idx), generator=gen) < 0.5
    x[flip] = x[flip].flip(3)
    return x


def save_checkpoint(path, state):
    tmp = path + '.tmp'
    torch.save(state, tmp)
    with open(tmp, 'rb') as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


@torch.no_grad()
def heun_sample(model, n, steps=18, seed=0, rho=7.0):
    g = torch.Generator().manual_seed(seed)
    i = torch.arange(steps, dtype=torch.float64)
    t = (SIGMA_MAX ** (1 / rho) + i / (steps - 1) * (SIGMA_MIN ** (1 / rho) - SIGMA_MAX ** (1 / rho))) ** rho
    t = torch.cat([t, torch.zeros(1, dtype=torch.float64)])
    x = torch.randn(n, 3, 32, 32, generator=g, dtype=torch.float64) * t[0]
    for k in range(steps):
        tc, tn = t[k], t[k + 1]
        d = (x - model(x.float(), torch.full((n,), float(tc))).double()) / tc
        xn = x + (tn - tc) * d
        if tn > 0:
            d2 = (xn - model(xn.float(), torch.full((n,), float(tn))).double()) / tn
            xn = x + (tn - tc) * 0.5 * (d + d2)
        x = xn
    return x.float()


def save_grid(images, path):
    from PIL import Image
    n = images.shape[0]
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    arr = (images * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    grid = np.zeros((rows * 32, cols * 32, 3), dtype=np.uint8)
    for k in range(n):
        r, c = divmod(k, cols)
        grid[r * 32:(r + 1) * 32, c * 32:(c + 1) * 32] = arr[k]
    Image.fromarray(grid).save(path)


def benchmark(args):
    torch.set_num_threads(args.threads)
    candidates = [
        dict(channels=[24, 48, 48], blocks=1),
        dict(channels=[32, 64, 64], blocks=1),
        dict(channels=[48, 96, 96], blocks=1),
    ]
    gen = torch.Generator().manual_seed(0)
    data = torch.rand(args.batch, 3, 32, 32) * 2 - 1
    print(f'threads {args.threads}, batch {args.batch}')
    results = []
    for c in candidates:
        cfg = dict(c, attn_res=[8], img_resolution=32, img_channels=3, dropout=0.0)
        model = build(cfg).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        times = []
        for it in range(2 + args.bench_steps):
            t0 = time.time()
            loss = edm_loss(model, data, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if it >= 2:
                times.append(time.time() - t0)
        # the machine may be shared: the fastest steps estimate the rate of an idle machine
        best = args.batch / min(times)
        median = args.batch / float(np.median(times))
        results.append(dict(cfg, params=n_params(model), img_per_s_best=round(best, 1),
                            img_per_s_median=round(median, 1)))
        print(f'  channels {c["channels"]} blocks {c["blocks"]}: {n_params(model) / 1e6:.2f}M params, '
              f'{best:.1f} img/s best step, {median:.1f} median (load {os.getloadavg()[0]:.1f}); '
              f'{best * 60 * 150 / 1000:.0f} kimg in 150 min at the best rate', flush=True)
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('--outdir', default=os.path.join(os.path.expanduser('~'), '.cache', 'adasde', 'tiny-edm'),
                   help='checkpoint, loss.csv, preview, decoded-data cache (default outside the work tree)')
    p.add_argument('--data', default=os.path.join(ROOT, '..', 'shared', 'data', 'cifar10-train.zip'))
    p.add_argument('--minutes', type=float, default=150.0, help='wall-clock training budget of this invocation')
    p.add_argument('--threads', type=int, default=2,
                   help='torch threads; use 1 when other jobs share the 2 cores (2 OpenMP threads then stall)')
    p.add_argument('--resume', nargs='?', const='auto', default=None,
                   help='continue from <outdir>/checkpoint.pt (or the given checkpoint)')
    p.add_argument('--channels', default='32,64,64', help='channels per resolution level (32, 16, 8)')
    p.add_argument('--blocks', type=int, default=1, help='residual blocks per level')
    p.add_argument('--dropout', type=float, default=0.0)
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--lr-warmup-kimg', type=float, default=20.0)
    p.add_argument('--ema-halflife-kimg', type=float, default=50.0)
    p.add_argument('--ema-rampup', type=float, default=0.05)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--log-every', type=int, default=50, help='steps per loss.csv row')
    p.add_argument('--ckpt-minutes', type=float, default=10.0)
    p.add_argument('--export', default=os.path.join(ROOT, 'models', 'cifar10-tiny-edm.onnx'))
    p.add_argument('--no-export', action='store_true')
    p.add_argument('--preview', type=int, default=64, help='samples in preview.png (0: none)')
    p.add_argument('--benchmark', action='store_true', help='measure img/s of candidate widths and exit')
    p.add_argument('--bench-steps', type=int, default=8)
    args = p.parse_args(argv)
    if args.benchmark:
        benchmark(args)
        return 0
    torch.set_num_threads(args.threads)
    os.makedirs(args.outdir, exist_ok=True)
    ckpt_path = os.path.join(args.outdir, 'checkpoint.pt')
    config = dict(channels=[int(c) for c in args.channels.split(',')], blocks=args.blocks, attn_res=[8],
                  img_resolution=32, img_channels=3, dropout=args.dropout)
    state = None
    if args.resume:
        path = ckpt_path if args.resume == 'auto' else args.resume
        if os.path.isfile(path):
            state = torch.load(path, map_location='cpu')
            config = state['config']
            print(f'[resume] {path}: step {state["step"]}, {state["nimg"] / 1000:.1f} kimg, '
                  f'{state["train_seconds"] / 60:.1f} min trained so far', flush=True)
        elif args.resume != 'auto':
            raise SystemExit(f'error: no checkpoint {path}')
    model = build(config).train()
    ema = build(config).eval().requires_grad_(False)
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    gen = torch.Generator().manual_seed(args.seed)
    step, nimg, train_seconds = 0, 0, 0.0
    if state is not None:
        model.load_state_dict(state['model'])
        ema.load_state_dict(state['ema'])
        opt.load_state_dict(state['opt'])
        gen.set_state(state['gen'])
        step, nimg, train_seconds = state['step'], state['nimg'], state['train_seconds']
    print(f'[model] {n_params(model.net) / 1e6:.3f}M parameters, config {json.dumps(config)}', flush=True)
    data = load_cifar(args.data, os.path.join(args.outdir, 'cifar10-train-u8.npy'))
    perm_gen = np.random.default_rng(args.seed + 1000 * (step + 1))
    perm, pos = perm_gen.permutation(len(data)), 0

    csv_path = os.path.join(args.outdir, 'loss.csv')
    new_csv = not os.path.isfile(csv_path) or state is None
    csv_file = open(csv_path, 'w' if new_csv else 'a', newline='')
    writer = csv.writer(csv_file)
    if new_csv:
        writer.writerow(['step', 'kimg', 'train_minutes', 'loss', 'lr', 'img_per_s'])
    budget = args.minutes * 60
    t_start = time.time()
    t_ckpt = t_start
    acc_loss, acc_n, t_log = 0.0, 0, time.time()

    def checkpoint():
        save_checkpoint(ckpt_path, dict(model=model.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(),
                                        gen=gen.get_state(), step=step, nimg=nimg,
                                        train_seconds=train_seconds + (time.time() - t_start),
                                        config=config, args=vars(args)))

    while time.time() - t_start < budget:
        if pos + args.batch > len(perm):
            perm, pos = perm_gen.permutation(len(data)), 0
        idx = np.sort(perm[pos:pos + args.batch])
        pos += args.batch
        images = get_batch(data, idx, gen)
        lr = args.lr * min(1.0, (nimg + args.batch) / max(args.lr_warmup_kimg * 1000, 1e-8))
        for g in opt.param_groups:
            g['lr'] = lr
        loss = edm_loss(model, images, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for prm in model.parameters():
            if prm.grad is not None:
                torch.nan_to_num(prm.grad, nan=0, posinf=1e5, neginf=-1e5, out=prm.grad)
        opt.step()
        nimg += args.batch
        step += 1
        halflife = min(args.ema_halflife_kimg * 1000, nimg * args.ema_rampup)
        beta = 0.5 ** (args.batch / max(halflife, 1e-8))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.copy_(pm.detach().lerp(pe, beta))
        acc_loss += float(loss)
        acc_n += 1
        if step % args.log_every == 0:
            now = time.time()
            ips = acc_n * args.batch / (now - t_log)
            minutes = (train_seconds + now - t_start) / 60
            writer.writerow([step, f'{nimg / 1000:.2f}', f'{minutes:.2f}', f'{acc_loss / acc_n:.5f}', f'{lr:.3g}',
                             f'{ips:.1f}'])
            csv_file.flush()
            print(f'step {step:7d}  {nimg / 1000:8.1f} kimg  {minutes:6.1f} min  loss {acc_loss / acc_n:.4f}  '
                  f'lr {lr:.2g}  {ips:.0f} img/s', flush=True)
            acc_loss, acc_n, t_log = 0.0, 0, now
        if time.time() - t_ckpt > args.ckpt_minutes * 60:
            checkpoint()
            t_ckpt = time.time()
    checkpoint()
    csv_file.close()
    total_min = (train_seconds + time.time() - t_start) / 60
    print(f'[done] step {step}, {nimg / 1000:.1f} kimg, {total_min:.1f} min in total; checkpoint {ckpt_path}', flush=True)

    if args.preview:
        imgs = heun_sample(ema, args.preview)
        save_grid(imgs, os.path.join(args.outdir, 'preview.png'))
        print(f'[preview] {os.path.join(args.outdir, "preview.png")}', flush=True)
    if not args.no_export:
        extra = {'adasde.train_kimg': f'{nimg / 1000:.1f}', 'adasde.architecture': json.dumps(config),
                 'adasde.note': 'tiny EDM U-Net trained on CPU by tools/train_tiny_edm.py (EMA weights)'}
        edm_export.export_denoiser(ema.net, args.export, img_resolution=32, img_channels=3, label_dim=0,
                                   dataset_name='cifar10', family='edm', sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX,
                                   extra_meta=extra, verbose=True)
        size = os.path.getsize(args.export)
        if size > 16 * 2 ** 20:
            raise SystemExit(f'error: {args.export} is {size / 2**20:.1f} MiB (> 16 MiB)')
        # the exported graph and the EMA network agree (onnxruntime runs are in tools/export/verify_ort.mjs)
        print(f'[export] {args.export}: {size / 2**20:.2f} MiB', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
