#!/usr/bin/env python3
"""Time the reference's Frechet distance (scipy.linalg.sqrtm of sigma1 @ sigma2) on the
same committed fixture pair that bench/frechet.ts times (test/fixtures/fid).

    /usr/bin/python3 bench/frechet_scipy.py [--pair full-2048] [--reps 1] [--eigh]

--eigh also times the symmetric-eigenvalue formulation (what frechet.ts computes) with
NumPy/SciPy's LAPACK, for comparison. Statistics come from np.mean / np.cov of the same
int8 features FeatureStats accumulates in the Node bench.
"""
import argparse
import gzip
import json
import os
import platform
import resource
import time

import numpy as np
import scipy
import scipy.linalg

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, '..', 'test', 'fixtures', 'fid')


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def features(info):
    path = os.path.join(FIX, info['features'])
    if info['dtype'] == 'float32':
        return np.fromfile(path, '<f4').reshape(-1, info['dim']).astype(np.float64)
    with gzip.open(path) as fh:
        x = np.frombuffer(fh.read(), np.int8).reshape(-1, info['dim'])
    r0, r1 = info.get('row_range', [0, len(x)])
    return x[r0:r1].astype(np.float64)


def fid_sqrtm(mu1, s1, mu2, s2):
    m = np.square(mu1 - mu2).sum()
    s, _ = scipy.linalg.sqrtm(np.dot(s1, s2), disp=False)
    return float(np.real(m + np.trace(s1 + s2 - s * 2)))


def fid_eigh(mu1, s1, mu2, s2):
    # tr sqrt(S1 S2) = sum sqrt(eig(L^T S2 L)), S1 = L L^T (Cholesky; full rank assumed here)
    l = np.linalg.cholesky(s1)
    ev = scipy.linalg.eigvalsh(l.T @ s2 @ l)
    return float(np.square(mu1 - mu2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(ev, 0, None)).sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--pair', default='full-2048')
    ap.add_argument('--reps', type=int, default=1)
    ap.add_argument('--eigh', action='store_true')
    args = ap.parse_args()
    with open(os.path.join(FIX, 'expected.json')) as fh:
        exp = json.load(fh)
    pair = next(p for p in exp['pairs'] if p['name'] == args.pair)
    model = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    print(f'cpu: {model} x {os.cpu_count()}, load average {" ".join(f"{v:.2f}" for v in os.getloadavg())}')
    print(f'numpy {np.__version__}, scipy {scipy.__version__}; pair {pair["name"]} ({pair["a"]} vs {pair["b"]})')
    xa = features(exp['sets'][pair['a']])
    xb = features(exp['sets'][pair['b']])
    mu1, s1 = xa.mean(0), np.cov(xa, rowvar=False)
    mu2, s2 = xb.mean(0), np.cov(xb, rowvar=False)
    methods = [('sqrtm', fid_sqrtm)] + ([('eigh', fid_eigh)] if args.eigh else [])
    for name, fn in methods:
        for k in range(args.reps):
            c0, t0 = cpu_seconds(), time.perf_counter()
            fid = fn(mu1, s1, mu2, s2)
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            rel = abs(fid - pair['fid_scipy']) / abs(pair['fid_scipy'])
            print(f'{name} #{k + 1}: {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms cpu; fid {fid!r} (rel. diff. to expected.json {rel:.2e})')


if __name__ == '__main__':
    main()
