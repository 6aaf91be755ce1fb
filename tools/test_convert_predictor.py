"""Self-test of tools/convert_predictor.py (PyTorch needed; not part of the Node suite).

Builds a pickle the way the reference's train.py writes one (EDM's torch_utils.persistence
wrapper around an adasde_predictor state, tensors saved from a CUDA-less machine here), with a
reference module the converter cannot import, converts it in a subprocess and checks the JSON
field by field; also checks a truncated file is one line with exit 2.

    /usr/bin/python3 tools/test_convert_predictor.py [REFERENCE.pkl RELEASED.json]

With the two optional arguments it also converts a real reference pickle and compares its
tables with a released predictor JSON (exp/NNNNN-*/predictor.json).
"""
import json
import os
import pickle
import subprocess
import sys
import tempfile
import types

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, 'convert_predictor.py')


def fake_reference_pickle(path):
    # Stand-ins for the reference's modules, only so that pickle records their names.
    pers = types.ModuleType('torch_utils.persistence')
    sol = types.ModuleType('solvers_ref')

    class Marker:
        pass
    Marker.__module__ = 'solvers_ref'
    Marker.__qualname__ = 'Marker'
    Marker.__name__ = 'Marker'
    sol.Marker = Marker

    def _reconstruct_persistent_obj(meta):
        raise AssertionError('never called while dumping')
    _reconstruct_persistent_obj.__module__ = 'torch_utils.persistence'
    _reconstruct_persistent_obj.__qualname__ = '_reconstruct_persistent_obj'
    pers._reconstruct_persistent_obj = _reconstruct_persistent_obj
    sys.modules['torch_utils'] = types.ModuleType('torch_utils')
    sys.modules['torch_utils.persistence'] = pers
    sys.modules['solvers_ref'] = sol

    g = torch.Generator().manual_seed(0)
    state = {
        'training': False, 'dataset_name': 'ffhq', 'img_resolution': 64, 'num_steps': 4, 'sampler_stu': 'adasde',
        'sampler_tea': 'dpm', 'M': 3, 'guidance_type': None, 'guidance_rate': 0.0, 'schedule_type': 'time_uniform',
        'schedule_rho': 1, 'afs': True, 'scale_dir': 0.05, 'scale_time': 0.2, 'gamma': 0.02, 'max_order': 3,
        'predict_x0': True, 'lower_order_final': True, 'num_points': 2, 'fcn': False, 'alpha': 50, 'gamma_min': 0.0002,
        'solver_ref': Marker(),
        '_parameters': {k: torch.nn.Parameter(torch.randn(3, 2, generator=g)) for k in
                        ['r_params', 'scale_dir_params', 'scale_time_params', 'weight_s', 'gamma_params']},
    }

    class Wrapped:
        def __reduce__(self):
            return (_reconstruct_persistent_obj, ({'type': 'class', 'version': 6, 'module_src': '# source',
                                                   'class_name': 'adasde_predictor', 'state': state},))
    with open(path, 'wb') as f:
        pickle.dump({'model': Wrapped(), 'step': 10}, f)
    return state


def run(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True)


def main():
    with tempfile.TemporaryDirectory() as d:
        pkl = os.path.join(d, 'network-snapshot-000010.pkl')
        state = fake_reference_pickle(pkl)
        r = run(pkl)
        assert r.returncode == 0, r.stderr
        doc = json.load(open(os.path.join(d, 'network-snapshot-000010.json')))
        assert doc['format'] == 'adasde-predictor' and doc['version'] == 1
        for k in ['dataset_name', 'num_steps', 'num_points', 'M', 'afs', 'schedule_type', 'max_order', 'fcn']:
            assert doc['options'][k] == state[k], k
        assert doc['options']['alpha'] == 50.0 and doc['options']['gamma'] == 0.02
        for key, attr in [('r', 'r_params'), ('scale_dir', 'scale_dir_params'), ('scale_time', 'scale_time_params'),
                          ('weight', 'weight_s'), ('gamma', 'gamma_params')]:
            assert doc['params'][key] == state['_parameters'][attr].detach().double().tolist(), key
        assert 'adasde sample --predictor_path' in r.stdout
        with open(os.path.join(d, 'bad.pkl'), 'wb') as f:
            f.write(open(pkl, 'rb').read()[:100])
        r = run(os.path.join(d, 'bad.pkl'))
        assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'not a reference predictor pickle' in r.stderr, r.stderr
        assert not [n for n in os.listdir(d) if n.endswith('.tmp')]
    if len(sys.argv) == 3:
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, 'x.json')
            r = run(sys.argv[1], '--out', out)
            assert r.returncode == 0, r.stderr
            got, want = json.load(open(out)), json.load(open(sys.argv[2]))
            assert got['params'] == want['params'], 'tables differ'
            print('reference pickle matches', sys.argv[2])
    print('convert_predictor self-test passed')


if __name__ == '__main__':
    main()
