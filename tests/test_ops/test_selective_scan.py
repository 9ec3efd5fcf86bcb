"""Every backend of ``selective_scan_fn`` against the float64 per-step oracle."""
import importlib

import pytest
import torch
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


def test_under_torch_compile(backend):
    """torch.compile around code that calls the scan (as mmengine's ``compile=True`` wraps the
    model): same output and gradients as eager. Dynamo cannot trace the C++ kernel (no
    fake-tensor version), so the scan must stay out of its graphs."""
    import torch._dynamo
    x = make_inputs(batch=1, dim=4, length=9, n=3, groups=2)

    def block(u, delta, B, C):
        out, last = selective_scan_fn(u.tanh(), delta, x['A'], B, C, x['D'], x['z'],
                                      x['delta_bias'], True, True)
        return out.sin().sum() + last.cos().sum()

    results = []
    torch._dynamo.reset()
    for fn in (block, torch.compile(block, backend='aot_eager')):
        leaves = [x[k].clone().requires_grad_(True) for k in ('u', 'delta', 'B', 'C')]
        loss = fn(*leaves)
        loss.backward()
        results.append([loss] + [t.grad for t in leaves])
    for eager, compiled in zip(*results):
        torch.testing.assert_close(compiled, eager, rtol=1e-6, atol=1e-6)
