"""Smoke tests of the benchmark tools on tiny problems."""
import os.path as osp

import torch
from _scan_testlib import make_inputs, rel_err, scan_oracle

from tests.tool_loader import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_analysis_tool(name):
    return load_tool('tools', 'analysis_tools', name)


def test_sequential_reference_matches_oracle():
    bs = load_analysis_tool('benchmark_scan')
    x = make_inputs(batch=2, dim=8, length=23, n=4, groups=4)
    x64 = {k: v.double() for k, v in x.items()}
    ref, _ = scan_oracle(**x64, delta_softplus=True)
    for fn in (bs.scan_sequential, bs.scan_sequential_ref):
        assert rel_err(fn(**x64, delta_softplus=True), ref) < 1e-12
        assert rel_err(fn(**x, delta_softplus=True), ref) < 1e-5
    # ungrouped B/C, no optional inputs
    x = make_inputs(batch=1, dim=4, length=9, n=3, dtype=torch.float64)
    ref, _ = scan_oracle(x['u'], x['delta'].abs(), x['A'], x['B'], x['C'])
    for fn in (bs.scan_sequential, bs.scan_sequential_ref):
        out = fn(x['u'], x['delta'].abs(), x['A'], x['B'], x['C'])
        assert rel_err(out, ref) < 1e-12


def test_benchmark_scan_quick_small_shape(capsys):
    """In this process (the fresh worker process per implementation, the default, is run by
    tests/test_tools/test_gpu_check_script.py's dry run)."""
    bs = load_analysis_tool('benchmark_scan')
    res = bs.main(['--quick', '--shapes', 'small', '--err-length', '64', '--in-process'])
    impls = {r['impl']: r for r in res['rows']}
    assert {'sequential', 'sequential-grouped', 'torch', 'cpp'} <= set(impls)
    for name, r in impls.items():
        # --quick skips the forward+backward of a backend slower than 1 s (a loaded machine)
        assert r['fwd_s'] > 0 and (r['train_s'] or 0) >= 0
        assert name == 'torch' or r['train_s'] > 0
        assert r['fwd_err'] < 1e-5 and r['grad_err'] < 1e-4
    assert '| small | 384 | 14x18 | cpp |' in capsys.readouterr().out


def test_benchmark_model_tiny_config(capsys):
    bm = load_analysis_tool('benchmark')
    res = bm.main([osp.join(REPO, 'configs', 'demo', 'mtmamba-tiny_synthetic-nyud.py'),
                   '--shape', '64', '96', '--iters', '1', '--warmup', '0', '--device', 'cpu'])
    assert res['infer_s'] > 0 and res['train_s'] > 0
    assert res['infer_scan_calls'] > 0 and 0 < res['infer_scan_share'] < 1
    assert 0 < res['train_scan_share'] < 1
    assert 'training step' in capsys.readouterr().out


def test_scan_train_step_keeps_no_gradients_between_runs():
    """peak_memory measures from what is allocated before a run: gradients a step left on its
    inputs were counted there and freed inside the measured run, hiding about the inputs' size
    of the forward+backward peak on a GPU."""
    bs = load_analysis_tool('benchmark_scan')
    x = make_inputs(batch=1, dim=4, length=9, n=3, groups=2)
    seen = {}

    def fn(**kw):
        seen.update(kw)
        return bs.backend_fn('torch')(**kw)

    step = bs.train_step(fn, x, torch.ones_like(x['u']))
    step()
    seen.pop('delta_softplus')
    assert set(seen) == set(x) and all(seen[k].requires_grad for k in bs.SCAN_GRAD_NAMES)
    assert [k for k, v in seen.items() if v.grad is not None] == []


def test_scan_roofline_arithmetic():
    bs = load_analysis_tool('benchmark_scan')
    nbytes = bs.scan_bytes(1536, 16128)  # Swin-L stage 3: u, delta, out and B, C in float32
    assert nbytes['fwd'] == 4 * (3 * 1536 * 16128 + 2 * 4 * 16 * 16128)
    assert nbytes['train'] == 4 * (8 * 1536 * 16128 + 6 * 4 * 16 * 16128)
    r = bs.roofline(dict(fwd_s=2e-3, train_s=None), nbytes, 2e12)
    assert r['fwd_roofline_s'] == nbytes['fwd'] / 2e12
    assert r['fwd_vs_roofline'] == 2e-3 / r['fwd_roofline_s']
    assert r['train_vs_roofline'] is None
    assert bs.peak_bandwidth('cpu') is None and bs.peak_bandwidth('cpu', 3350) == 3.35e12
    assert bs.roofline(dict(fwd_s=1.0, train_s=1.0), nbytes, None)['fwd_vs_roofline'] is None


def test_scan_parity_tool_in_the_triton_interpreter(triton_interpreter, tmp_path, monkeypatch,
                                                    capsys):
    """gpu_check.sh's parity step, on CPU tensors: each Triton kernel pair (float32 and
    bfloat16 activations) and the PyTorch scan against the C++ kernel; a backend that is off
    by 1% is reported as a mismatch."""
    import json

    from mmmt.ops import selective_scan_triton as triton_scan
    tool = load_analysis_tool('scan_parity')
    out = tmp_path / 'detail' / 'parity.json'  # its folder is made
    res = tool.main(['--device', 'cpu', '--size', '8', '3', '5', '--json', str(out)])
    assert json.loads(out.read_text()) == res
    assert [r['cuda'] for r in res['rows']] == [
        'triton-runs', 'triton-statewise', 'triton-tile', 'torch', 'triton-runs:bfloat16',
        'triton-statewise:bfloat16', 'triton-tile:bfloat16']
    assert res['ok'] and all(r['ok'] and r['cpu'] == 'cpp' for r in res['rows'])
    assert all(r['out_rel_err'] < 1e-5 for r in res['rows'] if ':' not in r['cuda'])
    assert 'PARITY OK' in capsys.readouterr().out

    real = triton_scan.scan_checked_inputs
    monkeypatch.setattr(triton_scan, 'scan_checked_inputs',
                        lambda *a, **k: real(*a, **k) * 1.01)
    res = tool.main(['--device', 'cpu', '--size', '8', '3', '5', '--backends', 'triton-tile',
                     'torch', '--no-bf16'])
    assert [(r['cuda'], r['ok']) for r in res['rows']] == [('triton-tile', False),
                                                           ('torch', True)]
    assert not res['ok'] and 'PARITY MISMATCH' in capsys.readouterr().out

    def broken(*args, **kwargs):
        raise RuntimeError('ptxas fatal: out of registers')

    monkeypatch.setattr(triton_scan, 'scan_checked_inputs', broken)
    res = tool.main(['--device', 'cpu', '--size', '8', '3', '5', '--no-bf16'])
    rows = {r['cuda']: r for r in res['rows']}
    assert 'ptxas fatal' in rows['triton-runs']['error'] and not res['ok']
    assert rows['torch']['ok']  # the backends after a failing one are still checked
