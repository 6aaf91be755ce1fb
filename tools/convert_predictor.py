#!/usr/bin/env python3
"""Convert a predictor trained with the Python AdaSDE reference (`network-snapshot-*.pkl`)
into this toolkit's predictor JSON (README, "adasde sample"; src/config/predictor.ts).

    python3 tools/convert_predictor.py exps/00000-.../network-snapshot-000010.pkl [--out X.json]

Needs PyTorch (the pickle holds torch tensors) but not the reference repository: the
reference pickles its predictor with EDM's torch_utils.persistence, which stores the class
source with the object's state; this script reads that state without running the source.
Writes atomically (a temporary file renamed into place) and prints the matching sample line.
"""
import argparse
import io
import json
import os
import pickle
import sys
import tempfile

OPTION_KEYS = ['dataset_name', 'num_steps', 'num_points', 'M', 'afs', 'schedule_type', 'schedule_rho', 'scale_dir',
               'scale_time', 'gamma', 'gamma_min', 'fcn', 'sampler_stu', 'sampler_tea', 'guidance_type', 'guidance_rate',
               'max_order', 'predict_x0', 'lower_order_final', 'alpha']
PARAMS = {'r': 'r_params', 'scale_dir': 'scale_dir_params', 'scale_time': 'scale_time_params', 'weight': 'weight_s',
          'gamma': 'gamma_params'}
# Defaults of the reference's adasde_predictor for attributes an older pickle may lack.
DEFAULTS = {'num_points': 1, 'gamma': 0.0, 'gamma_min': 0.0002, 'fcn': False, 'guidance_type': None,
            'guidance_rate': 0.0, 'max_order': None, 'predict_x0': True, 'lower_order_final': True, 'alpha': 10,
            'sampler_stu': 'adasde', 'sampler_tea': 'dpm'}


class Persistent:
    """What torch_utils.persistence would rebuild, kept as its recorded state."""

    def __init__(self, meta):
        self.meta = meta


class EasyDict(dict):
    pass


class Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == 'torch_utils.persistence' and name == '_reconstruct_persistent_obj':
            return Persistent
        if module == 'dnnlib.util' and name == 'EasyDict':
            return EasyDict
        if module == 'torch.storage' and name == '_load_from_bytes':
            # Tensors saved on a GPU: load their storage on the CPU.
            import torch
            return lambda b: torch.load(io.BytesIO(b), map_location='cpu')
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            # Names from the reference repository (its solvers, say) that the state refers to
            # but the conversion never needs: a placeholder that swallows any construction.
            return type(name, (Placeholder,), {'__module__': module})


class Placeholder:
    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state


def fail(msg, code=2):
    print(f'convert_predictor: {msg}', file=sys.stderr)
    sys.exit(code)


def to_table(t, name):
    rows = t.detach().cpu().double().tolist()
    if not (isinstance(rows, list) and rows and all(isinstance(r, list) and r for r in rows)):
        fail(f'{name} is not a 2-D table (got shape {list(t.shape)})')
    return rows


def convert(path):
    try:
        import torch  # noqa: F401  (the tensors inside need it)
    except ImportError:
        fail('PyTorch is needed to read the pickle (pip install torch, or run where the reference ran)', 1)
    try:
        with open(path, 'rb') as f:
            data = Unpickler(f).load()
    except FileNotFoundError:
        fail(f'{path} does not exist')
    except Exception as e:  # a truncated or foreign file
        fail(f'{path} is not a reference predictor pickle ({type(e).__name__}: {e})')
    model = data.get('model') if isinstance(data, dict) else None
    if not isinstance(model, Persistent) or not isinstance(model.meta, dict) or 'state' not in model.meta:
        fail(f'{path} has no persistent "model" entry (expected a network-snapshot-*.pkl of AdaSDE train.py)')
    state = model.meta['state']
    if model.meta.get('class_name') not in (None, 'adasde_predictor'):
        fail(f'{path}: model class is {model.meta.get("class_name")}, expected adasde_predictor')
    params_src = state.get('_parameters', {})
    params = {}
    for key, attr in PARAMS.items():
        if attr not in params_src:
            fail(f'{path}: parameter {attr} missing')
        params[key] = to_table(params_src[attr], attr)
    options = {}
    for k in OPTION_KEYS:
        if k in state:
            options[k] = state[k]
        elif k in DEFAULTS:
            options[k] = DEFAULTS[k]
        else:
            fail(f'{path}: attribute {k} missing')
    for k in ('schedule_rho', 'scale_dir', 'scale_time', 'gamma', 'gamma_min', 'guidance_rate', 'alpha'):
        if options[k] is not None:
            options[k] = float(options[k])
    if options['guidance_rate'] is None:
        options['guidance_rate'] = 0.0
    return {
        'format': 'adasde-predictor',
        'version': 1,
        'options': options,
        'params': params,
        'provenance': {'source': 'AdaSDE reference predictor pickle', 'converted_from': os.path.basename(path),
                       'class': model.meta.get('class_name')},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('pkl', help='network-snapshot-*.pkl written by the reference train.py')
    ap.add_argument('--out', help='output .json (default: the pickle\'s name with .json)')
    a = ap.parse_args()
    out = a.out or os.path.splitext(a.pkl)[0] + '.json'
    doc = convert(a.pkl)
    text = json.dumps(doc, indent=1) + '\n'
    d = os.path.dirname(os.path.abspath(out))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix='.' + os.path.basename(out) + '.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    o = doc['options']
    print(f'wrote {out}: {o["dataset_name"]}, num_steps {o["num_steps"]}, num_points {o["num_points"]}')
    print(f'adasde sample --predictor_path {out} --seeds 0-49999')


if __name__ == '__main__':
    main()
