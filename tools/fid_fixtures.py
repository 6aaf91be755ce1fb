#!/usr/bin/env python3
"""Generate the FID test fixtures in test/fixtures/fid/ (see the README written there).

Run with the system interpreter (NumPy + SciPy from Debian):

    apt-get install -y python3-numpy python3-scipy
    /usr/bin/python3 tools/fid_fixtures.py            # writes test/fixtures/fid/
    /usr/bin/python3 tools/fid_fixtures.py --check    # recompute, compare with the files

What it writes, and why this shape:

* Synthetic "features" from a seeded generator (numpy PCG64): Gaussian with a random
  rotation, a power-law spectrum and per-dimension means well away from zero (so the
  sum f f^T - n mu mu^T cancellation is exercised).
* 64-d sets: features as raw little-endian float32 (`*.f32`) and their statistics as raw
  little-endian float64 (`*_mu.f64`, `*_sigma.f64`, row-major), i.e. the arrays of a
  reference .npz without the container (src/io/npz.ts is being written separately).
* 2048-d sets: a full 2048 x 2048 float64 covariance is 32 MiB, and a full-rank one needs
  more than 2048 samples (2100 x 2048 float32 = 17 MiB per set). Instead the features are
  small integers (int8, gzip: ~1.7 MiB per set); the test accumulates their statistics
  with FeatureStats (so this also checks the 2048-d accumulation against checksums of
  np.cov), and the expected distances are computed here from np.mean/np.cov of exactly the
  same integers. Three 2048-d inputs come from two stored sets: "near" is the first 2049
  rows of set b (rank 2048 but smallest eigenvalue ~1e-7 of the largest) and the singular
  pair is the first 100 rows of a and of b (rank 99 each).
* expected.json: for every pair the reference value exactly as the reference computes it,
    s, _ = scipy.linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    fid = real(|mu1 - mu2|^2 + trace(sigma1 + sigma2 - 2 s))
  (no eps * I offset: the reference does not add one), sqrtm's own error estimate, and an
  independent high-accuracy value: with centred sample matrices X1, X2,
  tr (S1 S2)^(1/2) = ||X1 X2^T||_* / sqrt((n1 - 1)(n2 - 1)) (nuclear norm = sum of singular
  values of an n1 x n2 matrix), which takes no square roots of rounding noise and so stays
  accurate for singular covariances, where sqrtm does not.
"""
import argparse
import gzip
import hashlib
import json
import os
import sys
import time

import numpy as np
import scipy
import scipy.linalg

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, '..', 'test', 'fixtures', 'fid')


def synth(rng, n, mean, decay, feat_std):
    """n samples of a Gaussian with the given mean: random rotation Q, spectrum
    ~ (i+1)^-decay scaled so the average per-feature standard deviation is feat_std."""
    d = len(mean)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    s = (np.arange(d) + 1.0) ** -decay
    s *= feat_std / np.sqrt((s ** 2).sum() / d)
    return mean + (rng.standard_normal((n, d)) * s) @ q.T


def stats(x):
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def fid_reference(mu1, s1, mu2, s2):
    """The reference implementation's calculate_fid_from_inception_stats, verbatim."""
    m = np.square(mu1 - mu2).sum()
    s, errest = scipy.linalg.sqrtm(np.dot(s1, s2), disp=False)
    fid = m + np.trace(s1 + s2 - s * 2)
    return float(np.real(fid)), float(np.real(np.trace(s))), float(errest)


def trace_sqrt_exact(x1, x2):
    a = np.asarray(x1, np.float64)
    b = np.asarray(x2, np.float64)
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    sv = np.linalg.svd(a @ b.T, compute_uv=False)
    return float(sv.sum() / np.sqrt((len(a) - 1) * (len(b) - 1)))


def numerical_rank(s):
    w = np.linalg.eigvalsh(s)
    return int((w > len(s) * np.finfo(float).eps * w.max()).sum()), float(w.min()), float(w.max())


def sha256(path):
    with open(path, 'rb') as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def build(out, log):
    os.makedirs(out, exist_ok=True)
    files = {}

    def write(name, data):
        path = os.path.join(out, name)
        with open(path, 'wb') as fh:
            fh.write(data)
        files[name] = sha256(path)

    # ---- 64-d: float32 features, float64 statistics ----
    # The two distributions have nearly the same means (so |mu1 - mu2|^2 does not swamp the
    # trace term the tests are about) and different covariance spectra and rotations. Each
    # distribution is drawn once and its sets are row ranges of that pool.
    rng = np.random.default_rng(20251123)
    d = 64
    mean_a = rng.uniform(0.5, 3.0, d)
    mean_b = mean_a + rng.normal(0.0, 0.05, d)
    pool_a = synth(np.random.default_rng(11), 430, mean_a, decay=0.6, feat_std=0.4).astype(np.float32)
    pool_b = synth(np.random.default_rng(12), 385, mean_b, decay=0.9, feat_std=0.5).astype(np.float32)
    sets64 = {
        'a64': pool_a[:400],  # full rank
        'b64': pool_b[:300],  # full rank, another distribution
        'c64': pool_b[300:365],  # 65 samples in 64-d: full rank, nearly singular
        'd64': pool_a[400:430],  # 30 samples: rank 29
        'e64': pool_b[365:385],  # 20 samples: rank 19
    }
    sets = {}
    for name, x in sets64.items():
        mu, sigma = stats(x)
        write(f'{name}.f32', x.astype('<f4').tobytes())
        write(f'{name}_mu.f64', mu.astype('<f8').tobytes())
        write(f'{name}_sigma.f64', sigma.astype('<f8').tobytes())
        rank, wmin, wmax = numerical_rank(sigma)
        sets[name] = {
            'features': f'{name}.f32', 'dtype': 'float32', 'rows': int(len(x)), 'dim': d,
            'mu': f'{name}_mu.f64', 'sigma': f'{name}_sigma.f64',
            'rank': rank, 'eig_min': wmin, 'eig_max': wmax,
        }

    # ---- 2048-d: int8 features (gzip), statistics only as checksums ----
    # Means near 20 (so the raw sum f f^T - n mu mu^T would cancel ~2-3 digits) with a small
    # spread: gzip codes bytes with one table per block, so the spread of the means across
    # dimensions, not just the per-feature spread, sets the file size.
    d = 2048
    mean_a = 20.0 + rng.uniform(-3.0, 3.0, d)
    mean_b = mean_a + rng.normal(0.0, 0.1, d)
    raw = {}
    for name, seed, mean, gen in (
        ('a2048', 1001, mean_a, dict(decay=0.5, feat_std=1.5)),
        ('b2048', 2002, mean_b, dict(decay=0.7, feat_std=1.6)),
    ):
        t = time.time()
        x = synth(np.random.default_rng(seed), 2100, mean, **gen)
        q = np.clip(np.rint(x), -128, 127).astype(np.int8)
        raw[name] = q
        write(f'{name}.i8.gz', gzip.compress(q.tobytes(), compresslevel=9, mtime=0))
        log(f'{name}: {time.time() - t:.1f} s')
    views = {
        'a2048': ('a2048', 0, 2100),
        'b2048': ('b2048', 0, 2100),
        'b2048_near': ('b2048', 0, 2049),
        'a2048_100': ('a2048', 0, 100),
        'b2048_100': ('b2048', 0, 100),
    }
    feats2048 = {}
    for name, (src, r0, r1) in views.items():
        x = raw[src][r0:r1].astype(np.float64)
        feats2048[name] = x
        mu, sigma = stats(x)
        rank, wmin, wmax = numerical_rank(sigma)
        probe = np.random.default_rng(7).integers(0, d, size=(8, 2))
        sets[name] = {
            'features': f'{src}.i8.gz', 'dtype': 'int8', 'gzip': True, 'rows_total': 2100,
            'row_range': [r0, r1], 'rows': r1 - r0, 'dim': d,
            'mu_sum': float(mu.sum()), 'mu_first': [float(v) for v in mu[:4]],
            'sigma_trace': float(np.trace(sigma)), 'sigma_sum': float(sigma.sum()),
            'sigma_probe': [[int(i), int(j), float(sigma[i, j])] for i, j in probe],
            'rank': rank, 'eig_min': wmin, 'eig_max': wmax,
        }
        log(f'{name}: rank {rank}, eig [{wmin:.3g}, {wmax:.3g}]')

    # ---- pairs ----
    pairs = []

    def pair(name, a, b, kind, xa, xb, sa, sb):
        t = time.time()
        fid, tr_sqrt, errest = fid_reference(sa[0], sa[1], sb[0], sb[1])
        t_scipy = time.time() - t
        exact_ts = trace_sqrt_exact(xa, xb)
        mean_term = float(np.square(sa[0] - sb[0]).sum())
        tr_a = float(np.trace(sa[1]))
        tr_b = float(np.trace(sb[1]))
        pairs.append({
            'name': name, 'dim': int(len(sa[0])), 'a': a, 'b': b, 'kind': kind,
            'fid_scipy': fid, 'trace_sqrt_scipy': tr_sqrt, 'sqrtm_errest': errest,
            'fid_exact': mean_term + tr_a + tr_b - 2 * exact_ts, 'trace_sqrt_exact': exact_ts,
            'mean_term': mean_term, 'trace_a': tr_a, 'trace_b': tr_b,
            'scipy_seconds': round(t_scipy, 2),
        })
        log(f'{name}: fid_scipy {fid!r} fid_exact {pairs[-1]["fid_exact"]!r} errest {errest:.3g} ({t_scipy:.1f} s)')

    st = {k: stats(v) for k, v in sets64.items()}
    for name, a, b, kind in (
        ('full-64', 'a64', 'b64', 'full'),
        ('near-64', 'a64', 'c64', 'near'),
        ('singular-64', 'd64', 'e64', 'singular'),
        ('mixed-64', 'a64', 'e64', 'mixed'),
    ):
        pair(name, a, b, kind, sets64[a], sets64[b], st[a], st[b])
    st = {k: stats(v) for k, v in feats2048.items()}
    for name, a, b, kind in (
        ('full-2048', 'a2048', 'b2048', 'full'),
        ('near-2048', 'a2048', 'b2048_near', 'near'),
        ('singular-2048', 'a2048_100', 'b2048_100', 'singular'),
        ('mixed-2048', 'a2048', 'b2048_100', 'mixed'),
    ):
        pair(name, a, b, kind, feats2048[a], feats2048[b], st[a], st[b])

    expected = {
        'generator': 'tools/fid_fixtures.py',
        'numpy': np.__version__,
        'scipy': scipy.__version__,
        'formats': {
            '.f32': 'raw little-endian float32, row-major [rows, dim]',
            '.f64': 'raw little-endian float64, row-major (mu: [dim], sigma: [dim, dim])',
            '.i8.gz': 'gzip of raw int8, row-major [rows_total, dim]; a set uses rows row_range[0]..row_range[1]-1',
        },
        'stats_reference': 'mu = np.mean(x, axis=0), sigma = np.cov(x, rowvar=False), x in float64',
        'fid_reference': 'real(|mu1-mu2|^2 + trace(s1 + s2 - 2 sqrtm(s1.dot(s2), disp=False)[0]))',
        'exact_reference': 'trace_sqrt = nuclear_norm(X1c X2c^T) / sqrt((n1-1)(n2-1)) from the centred samples',
        'sets': sets,
        'pairs': pairs,
        'files_sha256': files,
    }
    return expected


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=DEFAULT_OUT)
    ap.add_argument('--check', action='store_true', help='regenerate into a temp dir and compare hashes/values')
    args = ap.parse_args()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    if args.check:
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            exp = build(tmp, log)
        with open(os.path.join(args.out, 'expected.json')) as fh:
            old = json.load(fh)
        bad = [k for k, v in exp['files_sha256'].items() if old['files_sha256'].get(k) != v]
        for p, q in zip(exp['pairs'], old['pairs']):
            for key in ('fid_scipy', 'fid_exact'):
                if abs(p[key] - q[key]) > 1e-9 * abs(q[key]):
                    bad.append(f"{p['name']}.{key}: {p[key]!r} != {q[key]!r}")
        print('OK' if not bad else 'DIFFERENT: ' + ', '.join(bad))
        sys.exit(1 if bad else 0)
    exp = build(args.out, log)
    with open(os.path.join(args.out, 'expected.json'), 'w') as fh:
        json.dump(exp, fh, indent=1)
        fh.write('\n')


if __name__ == '__main__':
    main()
