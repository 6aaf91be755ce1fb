"""Train the bundled feature network, a small CIFAR-10 classifier, on a CPU and export its
penultimate-layer activations as `models/cifar10-features.onnx`, a feature extractor with
the FID detector contract whose Frechet distance is the *bundled-feature distance*
(`fd_bundled`), never FID (README.md, "## FID"; src/fid/detector.ts).

    /usr/bin/python3 tools/train_cifar_features.py                     # 20 minutes, 2 threads
    /usr/bin/python3 tools/train_cifar_features.py --minutes 40        # same outdir: continue to 40 min in total
    /usr/bin/python3 tools/train_cifar_features.py --export-only       # re-export from the checkpoint
    /usr/bin/python3 tools/train_cifar_features.py --minutes 0.5 --threads 1 --test-limit 1000 \\
        --outdir /tmp/feat-smoke --export /tmp/feat-smoke/features.onnx   # smoke test

* Network (default --channels 32,64,128): three conv blocks at 32, 16 and 8 px, each
  [3x3 conv, BatchNorm, ReLU] (one in the first block, two in the others) followed by 2x2
  max pooling; then 2x2 average pooling (128 x 2 x 2 = 512 values), Linear 512 -> 256,
  BatchNorm, ReLU: these 256 values are the features; a final Linear 256 -> 10 gives the
  logits. About 0.42M parameters, ~29M multiply-adds per image. The network takes pixel
  values 0..255 and normalises them (CIFAR-10 channel mean / std) itself. Speed on this
  2-core machine: 250-275 training img/s with --threads 1 (niced) while another training
  job kept both cores busy, i.e. at least ~6 epochs in the default 20 minutes.
* Training: SGD (Nesterov momentum 0.9, weight decay 5e-4), batch 128, cross-entropy with
  label smoothing 0.1, random crops (4 px zero padding) and horizontal flips. The learning
  rate follows the *time* budget: linear warm-up over the first 10% of --minutes from 0.1x
  to --lr, then linear decay to 0 at the end of the budget, so any --minutes ends annealed.
* --minutes is the total training time of the run (time inside the training steps only;
  the per-epoch test evaluations, data loading and the export come on top). Started
  again with the same --outdir the script continues from `<outdir>/checkpoint.pt` until
  the total is reached (a larger --minutes extends it; the schedule then stretches from the
  current point); --restart discards the checkpoint. The checkpoint (network, optimiser,
  RNG states, position in the epoch, log rows) is written atomically every --ckpt-minutes,
  after every epoch, on Ctrl-C and at the end.
* `<outdir>/log.csv` (rewritten atomically from the checkpoint's rows): one row per epoch,
  and one when an invocation ends mid-epoch (covering that invocation's part of it), with
  train loss, train accuracy, test accuracy, learning rate, minutes and images/s.
* Data: `../shared/data/cifar10-{train,test}.zip` (EDM dataset-zip layout, labels from
  dataset.json), decoded once with PIL through tools/train_tiny_edm.load_cifar and cached
  as uint8 [N, 3, 32, 32] .npy files in --outdir. The training cache of
  tools/train_tiny_edm.py (`models/tiny-edm/cifar10-train-u8.npy`, same layout: the files
  of dataset.json's `labels` in order) is reused when present and consistent.
* Export (at the end, or --export-only): input `images` float32 [N, 3, H, W], pixel values
  0..255, N, H and W dynamic; the graph always resizes to 32 x 32 (bilinear,
  align_corners=False: the identity for 32 x 32 inputs) before the network. Output
  `features` float32 [N, 256]. Opset 17, checked with onnx.checker; metadata
  adasde.kind=features, adasde.role=feature_extractor (for `adasde inspect`), adasde.metric=fd_bundled,
  adasde.feature_dim, adasde.dataset_name=cifar10, adasde.test_accuracy (a fraction, e.g. 0.8123)
  and adasde.test_images (10000 unless --test-limit).
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
sys.path.insert(0, HERE)
import train_tiny_edm as tte  # noqa: E402  (data loading, atomic checkpoint writes)
import common  # noqa: E402  (tools/export/common.py, put on sys.path by train_tiny_edm)

OPSET = common.CONTRACT_OPSET
NUM_CLASSES = 10
CIFAR_MEAN = (125.31, 122.95, 113.87)   # per-channel mean of the training images, 0..255
CIFAR_STD = (62.99, 62.09, 66.70)
TINY_EDM_CACHE = os.path.join(ROOT, 'models', 'tiny-edm', 'cifar10-train-u8.npy')


# =======================================================================================
# network

def conv_bn(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class FeatureNet(nn.Module):
    """images (float 0..255, [N, 3, 32, 32]) -> logits [N, 10]; .features() -> [N, feature_dim]."""

    def __init__(self, channels=(32, 64, 128), feature_dim=256, num_classes=NUM_CLASSES):
        super().__init__()
        self.config = dict(channels=list(channels), feature_dim=feature_dim, num_classes=num_classes)
        c1, c2, c3 = channels
        self.register_buffer('mean', torch.tensor(CIFAR_MEAN).reshape(1, 3, 1, 1))
        self.register_buffer('inv_std', 1 / torch.tensor(CIFAR_STD).reshape(1, 3, 1, 1))
        self.body = nn.Sequential(
            *conv_bn(3, c1), nn.MaxPool2d(2),                       # 32 -> 16
            *conv_bn(c1, c2), *conv_bn(c2, c2), nn.MaxPool2d(2),    # 16 -> 8
            *conv_bn(c2, c3), *conv_bn(c3, c3), nn.MaxPool2d(2),    # 8 -> 4
            nn.AvgPool2d(2),                                        # 4 -> 2
        )
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(c3 * 4, feature_dim, bias=False),
                                   nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, images):
        return self.embed(self.body((images - self.mean) * self.inv_std))

    def forward(self, images):
        return self.head(self.features(images))


class FeatureGraph(nn.Module):
    """The exported graph: images (float32 0..255, [N, 3, H, W]) -> features [N, D]."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, images):
        x = F.interpolate(images.to(torch.float32), size=(32, 32), mode='bilinear', align_corners=False)
        return self.net.features(x)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


# =======================================================================================
# data

def zip_labels(zip_path):
    with zipfile.ZipFile(zip_path) as z:
        meta = json.loads(z.read('dataset.json'))
    if not meta.get('labels'):
        raise SystemExit(f'error: {zip_path}: dataset.json has no labels (a classifier needs them)')
    return [f for f, _ in meta['labels']], np.asarray([int(c) for _, c in meta['labels']], dtype=np.int64)


def cache_matches(path, zip_path, files, spot=4):
    """A cached uint8 array holds the zip's images in dataset.json order (shape + a few decoded images)."""
    try:
        arr = np.load(path, mmap_mode='r')
    except (OSError, ValueError):
        return False
    if arr.dtype != np.uint8 or arr.shape != (len(files), 3, 32, 32):
        return False
    from PIL import Image
    with zipfile.ZipFile(zip_path) as z:
        for i in np.linspace(0, len(files) - 1, spot).astype(int):
            img = np.asarray(Image.open(io.BytesIO(z.read(files[i]))).convert('RGB'), dtype=np.uint8).transpose(2, 0, 1)
            if not np.array_equal(arr[i], img):
                return False
    return True


def load_split(zip_path, outdir, name, extra_caches=()):
    """uint8 images [N, 3, 32, 32] and int64 labels [N] of one EDM dataset zip, cached in outdir."""
    if not os.path.isfile(zip_path):
        raise SystemExit(f'error: {zip_path}: no such file (EDM dataset zip of CIFAR-10 expected)')
    files, labels = zip_labels(zip_path)
    own = os.path.join(outdir, f'cifar10-{name}-u8.npy')
    for cache in (own, *extra_caches):
        if os.path.isfile(cache):
            if cache_matches(cache, zip_path, files):
                print(f'[data] {name}: {len(files)} images from {cache}', flush=True)
                return np.load(cache), labels
            print(f'[data] {cache} does not match {zip_path}; not used', flush=True)
    if os.path.isfile(own):
        os.remove(own)
    images = tte.load_cifar(zip_path, own)   # decodes dataset.json's files in order, writes the cache atomically
    return images, labels


def augment(data, idx, gen, pad=4):
    """Random crops (zero padding `pad`) and horizontal flips, one gather: uint8 -> float [B, 3, 32, 32]."""
    x = torch.from_numpy(data[idx])
    b, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    flip = torch.rand(b, generator=gen) < 0.5
    ar_h, ar_w = torch.arange(h), torch.arange(w)
    rows = dy[:, None] + ar_h[None, :]
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - ar_w[None, :], ar_w[None, :])
    out = xp[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None],
             rows[:, None, :, None], cols[:, None, None, :]]
    return out.to(torch.float32)


@torch.no_grad()
def evaluate(net, images, labels, batch=500):
    was = net.training
    net.eval()
    correct = 0
    for s in range(0, len(images), batch):
        x = torch.from_numpy(images[s:s + batch]).to(torch.float32)
        correct += int((net(x).argmax(1).numpy() == labels[s:s + batch]).sum())
    net.train(was)
    return correct / max(len(images), 1)


# =======================================================================================
# schedule, checkpoint, log

def lr_at(progress, peak, warmup=0.1):
    p = min(max(progress, 0.0), 1.0)
    if p < warmup:
        return peak * (0.1 + 0.9 * p / warmup)
    return peak * (1.0 - p) / (1.0 - warmup)


LOG_FIELDS = ['epoch', 'step', 'kimg', 'train_minutes', 'lr', 'train_loss', 'train_acc', 'test_acc', 'img_per_s']


def write_log(path, rows):
    tmp = path + '.tmp'
    with open(tmp, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def load_state(ckpt_path):
    state = torch.load(ckpt_path, map_location='cpu')
    net = FeatureNet(**state['config'])
    net.load_state_dict(state['net'])
    return state, net


# =======================================================================================
# export

def export_features(net, out, test_acc, test_images, extra=None, verbose=True):
    import onnx
    graph = FeatureGraph(net).eval()
    example = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(0)) * 255   # not 32x32: trace the resize
    with torch.no_grad():
        dim = int(graph(example).shape[1])
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + '.tmp'
    with torch.no_grad():
        torch.onnx.export(graph, (example,), tmp, input_names=['images'], output_names=['features'],
                          dynamic_axes={'images': {0: 'N', 2: 'H', 3: 'W'}, 'features': {0: 'N'}},
                          opset_version=OPSET, do_constant_folding=True)
    model = onnx.load(tmp)
    out_dims = model.graph.output[0].type.tensor_type.shape.dim
    out_dims[0].dim_param = 'N'
    out_dims[1].Clear()
    out_dims[1].dim_value = dim
    meta = {
        'adasde.kind': 'features',
        # `adasde inspect` recognises a file by adasde.role first; without it, adasde.dataset_name
        # (a denoiser-contract key) would make it check the file as a denoiser.
        'adasde.role': 'feature_extractor',
        'adasde.metric': 'fd_bundled',
        'adasde.feature_dim': str(dim),
        'adasde.dataset_name': 'cifar10',
        'adasde.test_accuracy': f'{test_acc:.4f}',
        'adasde.test_images': str(test_images),
        'adasde.input': 'float32 pixel values 0..255, NCHW RGB, any H x W (resized to 32x32 bilinear inside)',
        'adasde.architecture': json.dumps(net.config),
        'adasde.exporter': f'tools/train_cifar_features.py (torch {torch.__version__}, opset {OPSET})',
        'adasde.note': 'small CIFAR-10 classifier, penultimate-layer features: its Frechet distance is not FID',
    }
    meta.update(extra or {})
    common.set_metadata(model, meta)
    onnx.checker.check_model(model)
    inferred = onnx.shape_inference.infer_shapes(model)
    dims = [d.dim_param or d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    onnx.save(model, tmp)
    os.replace(tmp, out)
    if verbose:
        print(f'[export] {out}: features {dims}, {os.path.getsize(out) / 2**20:.2f} MiB, '
              f'{len(model.graph.node)} nodes ({", ".join(sorted({n.op_type for n in model.graph.node}))})', flush=True)
    return dims


def finish(net, state, args, test_images, test_labels):
    """Test accuracy (stored in the checkpoint when already measured for these weights) and export."""
    n_test = len(test_images)
    acc = state.get('final_test_acc')
    if acc is None or state.get('final_test_images') != n_test or state.get('final_step') != state['step']:
        acc = evaluate(net, test_images, test_labels)
    print(f'[test] accuracy {acc * 100:.2f}% on {n_test} CIFAR-10 test images '
          f'(step {state["step"]}, {state["nimg"] / 1000:.1f} kimg, {state["train_seconds"] / 60:.1f} min)', flush=True)
    if not args.no_export:
        export_features(net.eval(), args.export, acc, n_test,
                        extra={'adasde.train_kimg': f'{state["nimg"] / 1000:.1f}'})
    return acc


# =======================================================================================

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('--outdir', default=os.path.join(ROOT, 'models', 'features-run'),
                   help='checkpoint, log.csv, decoded-data caches')
    p.add_argument('--data', default=os.path.join(ROOT, '..', 'shared', 'data', 'cifar10-train.zip'))
    p.add_argument('--test-data', default=os.path.join(ROOT, '..', 'shared', 'data', 'cifar10-test.zip'))
    p.add_argument('--test-limit', type=int, default=0, help='evaluate on the first K test images only (smoke tests)')
    p.add_argument('--minutes', type=float, default=20.0, help='total training time of the run (all invocations)')
    p.add_argument('--threads', type=int, default=2, help='torch threads (1 when other jobs share the cores)')
    p.add_argument('--restart', action='store_true', help='ignore (and replace) an existing checkpoint')
    p.add_argument('--export-only', action='store_true', help='evaluate and export from the checkpoint, no training')
    p.add_argument('--channels', default='32,64,128', help='channels of the three conv blocks')
    p.add_argument('--feature-dim', type=int, default=256)
    p.add_argument('--batch', type=int, default=128)
    p.add_argument('--lr', type=float, default=0.2, help='peak learning rate (SGD, Nesterov)')
    p.add_argument('--weight-decay', type=float, default=5e-4)
    p.add_argument('--label-smoothing', type=float, default=0.1)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--ckpt-minutes', type=float, default=5.0)
    p.add_argument('--export', default=os.path.join(ROOT, 'models', 'cifar10-features.onnx'))
    p.add_argument('--no-export', action='store_true')
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.outdir, exist_ok=True)
    ckpt_path = os.path.join(args.outdir, 'checkpoint.pt')
    log_path = os.path.join(args.outdir, 'log.csv')

    test_images, test_labels = load_split(args.test_data, args.outdir, 'test')
    if args.test_limit > 0:
        test_images, test_labels = test_images[:args.test_limit], test_labels[:args.test_limit]

    if args.export_only:
        if not os.path.isfile(ckpt_path):
            raise SystemExit(f'error: --export-only: no checkpoint {ckpt_path}')
        state, net = load_state(ckpt_path)
        finish(net, state, args, test_images, test_labels)
        return 0

    config = dict(channels=[int(c) for c in args.channels.split(',')], feature_dim=args.feature_dim,
                  num_classes=NUM_CLASSES)
    if len(config['channels']) != 3:
        raise SystemExit('error: --channels takes three numbers (e.g. 32,64,128)')
    state = None
    if os.path.isfile(ckpt_path) and not args.restart:
        state, net = load_state(ckpt_path)
        if state['config'] != config:
            print(f'[resume] note: the checkpoint\'s network {json.dumps(state["config"])} is kept '
                  f'(--channels/--feature-dim ignored; --restart to start over)', flush=True)
        print(f'[resume] {ckpt_path}: epoch {state["epoch"]}, step {state["step"]}, '
              f'{state["train_seconds"] / 60:.2f} of {args.minutes:g} min trained', flush=True)
    else:
        torch.manual_seed(args.seed)
        net = FeatureNet(**config)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay)
    gen = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    step, nimg, epoch, train_seconds, pos, rows = 0, 0, 0, 0.0, 0, []
    perm = None
    if state is not None:
        opt.load_state_dict(state['opt'])
        gen.set_state(state['gen'])
        rng.bit_generator.state = state['rng']
        step, nimg, epoch, train_seconds = state['step'], state['nimg'], state['epoch'], state['train_seconds']
        perm, pos, rows = state['perm'], state['pos'], state['rows']
    print(f'[model] {n_params(net) / 1e6:.3f}M parameters, config {json.dumps(net.config)}; '
          f'torch {torch.__version__}, {args.threads} thread(s)', flush=True)

    train_images, train_labels = load_split(args.data, args.outdir, 'train', extra_caches=(TINY_EDM_CACHE,))
    if perm is None or len(perm) != len(train_images):
        perm, pos = rng.permutation(len(train_images)), 0
    budget = args.minutes * 60

    def snapshot(**extra):
        s = dict(net=net.state_dict(), opt=opt.state_dict(), gen=gen.get_state(), rng=rng.bit_generator.state,
                 step=step, nimg=nimg, epoch=epoch, train_seconds=train_seconds, perm=perm, pos=pos, rows=rows,
                 config=net.config, args=vars(args))
        s.update(extra)
        return s

    def log_row(epoch_value, loss_sum, correct, seen, seconds, test_acc):
        # test_acc None: not evaluated (Ctrl-C); seen 0: no training images in this row.
        row = dict(epoch=epoch_value, step=step, kimg=f'{nimg / 1000:.2f}', train_minutes=f'{train_seconds / 60:.2f}',
                   lr=f'{opt.param_groups[0]["lr"]:.4g}', train_loss=f'{loss_sum / seen:.4f}' if seen else '',
                   train_acc=f'{correct / seen:.4f}' if seen else '', test_acc='' if test_acc is None else f'{test_acc:.4f}',
                   img_per_s=f'{seen / max(seconds, 1e-9):.1f}' if seen else '')
        rows.append(row)
        write_log(log_path, rows)
        train = f'loss {row["train_loss"]}  train {float(row["train_acc"]) * 100:5.1f}%' if seen else 'no training images'
        test = f'test {test_acc * 100:5.2f}%' if test_acc is not None else 'test not evaluated'
        print(f'epoch {row["epoch"]:>6}  {row["kimg"]:>8} kimg  {row["train_minutes"]:>6} min  lr {row["lr"]:>7}  '
              f'{train}  {test}  {row["img_per_s"]} img/s', flush=True)

    loss_sum, correct, seen, ep_seconds = 0.0, 0, 0, 0.0
    t_ckpt = time.time()
    interrupted = False
    try:
        while train_seconds < budget:
            t0 = time.time()
            if pos + args.batch > len(perm):   # epoch boundary (the last partial batch is dropped)
                # Evaluate before counting the epoch: a Ctrl-C during the evaluation leaves the
                # state before the boundary. After a resume the epoch's training part may lie
                # in an earlier invocation (seen = 0: the row then carries the test accuracy only).
                test_acc = evaluate(net, test_images, test_labels)
                epoch += 1
                log_row(epoch, loss_sum, correct, seen, ep_seconds, test_acc)
                loss_sum, correct, seen, ep_seconds = 0.0, 0, 0, 0.0
                perm, pos = rng.permutation(len(train_images)), 0
                tte.save_checkpoint(ckpt_path, snapshot())
                t_ckpt = t0 = time.time()
            idx = np.sort(perm[pos:pos + args.batch])
            pos += args.batch
            x = augment(train_images, idx, gen)
            y = torch.from_numpy(train_labels[idx])
            lr = lr_at(train_seconds / budget, args.lr)
            for g in opt.param_groups:
                g['lr'] = lr
            logits = net(x)
            loss = F.cross_entropy(logits, y, label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            nimg += len(idx)
            loss_sum += float(loss) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
            dt = time.time() - t0
            train_seconds += dt
            ep_seconds += dt
            if time.time() - t_ckpt > args.ckpt_minutes * 60:
                tte.save_checkpoint(ckpt_path, snapshot())
                t_ckpt = time.time()
    except KeyboardInterrupt:
        interrupted = True
    if interrupted:
        if seen:   # this invocation's part of the epoch, without the test evaluation
            log_row(f'{epoch + pos / len(perm):.2f}', loss_sum, correct, seen, ep_seconds, None)
        tte.save_checkpoint(ckpt_path, snapshot())
        print(f'\n[interrupted] checkpoint {ckpt_path} (step {step}); run the same command again to continue', flush=True)
        return 130

    test_acc = evaluate(net, test_images, test_labels)
    if seen:
        log_row(f'{epoch + pos / len(perm):.2f}', loss_sum, correct, seen, ep_seconds, test_acc)
    tte.save_checkpoint(ckpt_path, snapshot(final_test_acc=test_acc, final_test_images=len(test_images),
                                            final_step=step))
    print(f'[done] step {step}, {nimg / 1000:.1f} kimg ({nimg / len(train_images):.2f} epochs), '
          f'{train_seconds / 60:.1f} min of training; checkpoint {ckpt_path}', flush=True)
    state = snapshot(final_test_acc=test_acc, final_test_images=len(test_images), final_step=step)
    finish(net, state, args, test_images, test_labels)
    return 0


if __name__ == '__main__':
    sys.exit(main())
