"""Every backend of ``selective_scan_fn`` against the float64 per-step oracle, and under
``torch.compile``."""
import importlib
import subprocess
import sys
import textwrap

import pytest
import torch
import torch._dynamo
from _scan_testlib import make_inputs, scan_oracle

from mmmt.ops import selective_scan_fn, selective_scan_torch

NAMES = ['u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias']


@pytest.mark.parametrize('groups', [None, 1, 4])
@pytest.mark.parametrize('length', [1, 5, 37, 64, 130])
def test_forward_matches_oracle(backend, groups, length):
    x = make_inputs(length=length, groups=groups)
    ref, ref_last = scan_oracle(**x, delta_softplus=True)
    out, last = selective_scan_fn(**x, delta_softplus=True, return_last_state=True)
    assert out.dtype == torch.float32 and out.shape == (2, 8, length)
    assert (out.double() - ref).abs().max() <= 1e-5
    assert last.shape == (2, 8, 4)
    assert (last.double() - ref_last).abs().max() <= 1e-5


def test_optional_arguments_default_to_plain_scan(backend):
    x = make_inputs(length=20)
    ref, _ = scan_oracle(x['u'], x['delta'].abs(), x['A'], x['B'], x['C'])
    out = selective_scan_fn(x['u'], x['delta'].abs(), x['A'], x['B'], x['C'])
    assert (out.double() - ref).abs().max() <= 1e-5


@pytest.mark.parametrize('vectorized', [False, True])
@pytest.mark.parametrize('chunk_size', [1, 3, 7, 50])
def test_chunking_does_not_change_result(chunk_size, vectorized):
    x = make_inputs(length=41, groups=2)
    ref, ref_last = scan_oracle(**x, delta_softplus=True)
    out, last = selective_scan_torch(
        **x, delta_softplus=True, return_last_state=True, chunk_size=chunk_size,
        vectorized=vectorized)
    assert (out.double() - ref).abs().max() <= 1e-5
    assert (last.double() - ref_last).abs().max() <= 1e-5


def test_gradcheck_float64(backend):
    x = make_inputs(batch=1, dim=4, length=9, n=3, groups=2, dtype=torch.float64)
    args = [x[k].clone().requires_grad_(True) for k in NAMES]

    def fn(*a):
        # the last state is an output too: its gradient flows back through the scan
        return selective_scan_fn(*a, delta_softplus=True, return_last_state=True)

    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6)


def test_grad_matches_oracle_grad(backend):
    x = make_inputs(batch=1, dim=4, length=12, n=3, groups=2, dtype=torch.float64)
    a1 = {k: x[k].clone().requires_grad_(True) for k in NAMES}
    a2 = {k: x[k].clone().requires_grad_(True) for k in NAMES}
    selective_scan_fn(**a1, delta_softplus=True).sum().backward()
    scan_oracle(**a2, delta_softplus=True)[0].sum().backward()
    for k in NAMES:
        assert torch.allclose(a1[k].grad, a2[k].grad, atol=1e-9), k


def test_half_input_returns_input_dtype(backend):
    x = make_inputs(length=10)
    out = selective_scan_fn(x['u'].bfloat16(), x['delta'], x['A'], x['B'], x['C'])
    assert out.dtype == torch.bfloat16


def test_forced_unknown_backend_is_rejected(monkeypatch):
    monkeypatch.setenv('MMMT_SCAN_BACKEND', 'fortran')
    x = make_inputs(length=4)
    with pytest.raises(ValueError, match='MMMT_SCAN_BACKEND'):
        selective_scan_fn(x['u'], x['delta'], x['A'], x['B'], x['C'])


def test_torch_backend_keeps_only_inputs_for_backward(monkeypatch):
    monkeypatch.setenv('MMMT_SCAN_BACKEND', 'torch')
    x = make_inputs(batch=1, dim=4, length=12, n=3, groups=2, dtype=torch.float64)
    a1 = {k: x[k].clone().requires_grad_(k in ('u', 'B')) for k in NAMES}
    a2 = {k: x[k].clone().requires_grad_(k in ('u', 'B')) for k in NAMES}
    out, last = selective_scan_fn(**a1, delta_softplus=True, return_last_state=True)
    assert 'Recompute' in type(out.grad_fn).__name__  # one node, no per-step graph
    last.sum().backward()  # gradient through the last state only
    ref_last = selective_scan_torch(**a2, delta_softplus=True, return_last_state=True)[1]
    ref_last.sum().backward()
    for k in ('u', 'B'):
        assert torch.allclose(a1[k].grad, a2[k].grad, atol=1e-12), k


@pytest.mark.parametrize('layout', ['grouped', 'ungrouped', 'mixed', 'constant_b'])
def test_torch_backend_recomputes_by_channel_slices(layout, monkeypatch):
    monkeypatch.setenv('MMMT_SCAN_BACKEND', 'torch')
    monkeypatch.setattr(importlib.import_module('mmmt.ops.selective_scan_recompute'),
                        'RECOMPUTE_BYTES', 1)  # one channel per slice
    x = make_inputs(batch=2, dim=8, length=10, n=3, groups=None if layout == 'ungrouped' else 4,
                    dtype=torch.float64)
    if layout == 'mixed':
        x['C'] = x['C'][:, 0]
    if layout == 'constant_b':
        x['B'] = torch.randn(8, 3, dtype=torch.float64)
    a1 = {k: x[k].clone().requires_grad_(True) for k in NAMES}
    a2 = {k: x[k].clone().requires_grad_(True) for k in NAMES}
    o1, l1 = selective_scan_fn(**a1, delta_softplus=True, return_last_state=True)
    (o1.sin().sum() + l1.cos().sum()).backward()
    o2, l2 = selective_scan_torch(**a2, delta_softplus=True, return_last_state=True)
    (o2.sin().sum() + l2.cos().sum()).backward()
    for k in NAMES:
        assert torch.allclose(a1[k].grad, a2[k].grad, atol=1e-12), k


@pytest.mark.parametrize('layout', ['grouped', 'ungrouped', 'constant_bc'])
def test_torch_vectorized_variant_gradcheck(layout):
    """The variant used on CUDA tensors (all steps' decays and inputs formed at once)."""
    x = make_inputs(batch=2, dim=4, length=10, n=3, groups=None if layout == 'ungrouped' else 2,
                    dtype=torch.float64)
    if layout == 'constant_bc':
        x['B'] = torch.randn(4, 3, dtype=torch.float64)
        x['C'] = torch.randn(4, 3, dtype=torch.float64)
    args = [x[k].clone().requires_grad_(True) for k in NAMES]

    def fn(*a):
        return selective_scan_torch(*a, delta_softplus=True, return_last_state=True,
                                    chunk_size=3, vectorized=True)

    ref = selective_scan_torch(*args, delta_softplus=True, return_last_state=True,
                               chunk_size=3, vectorized=False)
    out = fn(*args)
    assert torch.allclose(out[0], ref[0], atol=1e-12) and torch.allclose(out[1], ref[1])
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize('return_last_state', [True, False])
def test_under_torch_compile(backend, return_last_state):
    """torch.compile around code that calls the scan (as mmengine's ``compile=True`` wraps the
    model) traces the scan as one op (``fullgraph=True``: no graph break), and outputs and
    gradients of every input are those of eager calls to the bit (``aot_eager`` runs the same
    ops as eager code; the op runs the eager scan and recomputes it for the backward pass)."""
    x = make_inputs(batch=1, dim=4, length=9, n=3, groups=2)
    names = ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')  # z: an input without gradient

    def block(u, delta, A, B, C, D, delta_bias):
        res = selective_scan_fn(u.tanh(), delta, A, B, C, D, x['z'], delta_bias, True,
                                return_last_state)
        if not return_last_state:
            return res.sin().sum()
        out, last = res
        return out.sin().sum() + last.cos().sum()

    results = []
    torch._dynamo.reset()
    for fn in (block, torch.compile(block, backend='aot_eager', fullgraph=True)):
        leaves = [x[k].clone().requires_grad_(True) for k in names]
        loss = fn(*leaves)
        loss.backward()
        results.append([loss] + [t.grad for t in leaves])
    for name, eager, compiled in zip(('loss', ) + names, *results):
        assert torch.equal(compiled, eager), name


def test_compiled_model_with_scans_is_one_graph():
    """Scans between other ops (as in SS2D) compile to one graph, not one per scan stretch."""
    x = make_inputs(batch=1, dim=4, length=9, n=3)

    def block(u):
        y = selective_scan_fn(u, x['delta'], x['A'], x['B'], x['C'], x['D'], None, None, True)
        return selective_scan_fn(y.relu(), x['delta'], x['A'], x['B'], x['C']).sum()

    torch._dynamo.reset()
    explanation = torch._dynamo.explain(block)(x['u'])
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), \
        [b.reason for b in explanation.break_reasons]


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.float16])
def test_compile_ops_pass_opcheck(backend, dtype):
    """The ops' schemas, fake (meta) versions -- output in u's dtype, last state in the compute
    dtype -- and autograd registration agree with what they compute
    (:func:`torch.library.opcheck`)."""
    x = make_inputs(batch=1, dim=4, length=7, n=3, groups=2, dtype=dtype)
    args = [x[k] for k in NAMES]
    scan = torch.ops.mmmt.selective_scan.default
    out, last = scan(*args, True)
    assert out.dtype == dtype and out.shape == (1, 4, 7)
    assert last.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert last.shape == (1, 4, 3)
    # the tests that differentiate numerically want float32 or wider
    utils = ('test_schema', 'test_faketensor') if dtype == torch.float16 else None
    leaves = [t.clone().requires_grad_(True) for t in args]
    torch.library.opcheck(scan, (*leaves, True), **({'test_utils': utils} if utils else {}))
    needs = [True, True, False, True, True, False, True, True]
    grads = torch.ops.mmmt.selective_scan_backward.default(*args, torch.ones_like(out), None,
                                                           True, needs)
    assert [g.shape for g in grads] == [t.shape for t, n in zip(args, needs) if n]
    torch.library.opcheck(torch.ops.mmmt.selective_scan_backward.default,
                          (*args, torch.ones_like(out), None, True, needs),
                          test_utils=('test_schema', 'test_faketensor'))


def test_eager_calls_do_not_load_dynamo():
    """``import mmmt.ops`` and an eager scan load nothing of torch.compile's (about 1.5 s of
    import time): the compile path is taken only while Dynamo traces."""
    code = textwrap.dedent("""
        import sys, torch
        from mmmt.ops import selective_scan_fn
        u = torch.randn(1, 4, 9)
        selective_scan_fn(u, u.abs(), -torch.rand(4, 3), torch.randn(1, 3, 9),
                          torch.randn(1, 3, 9))
        print('dynamo loaded' if 'torch._dynamo' in sys.modules else 'OK')
    """)
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0 and res.stdout.strip().endswith('OK'), res.stdout + res.stderr
