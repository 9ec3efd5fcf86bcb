"""The first-use check of the compiled Triton scan (mmmt/ops/triton_self_check.py), run here on
the interpreted kernels (on a GPU it runs on the compiled ones), and the dispatcher's fallback
when it fails."""
import importlib
import warnings

import pytest
import torch
from _scan_testlib import make_inputs, rel_err

from mmmt.ops import selective_scan_fn, selective_scan_torch

pytest.importorskip('triton')
dispatch = importlib.import_module('mmmt.ops.selective_scan')
triton_scan = importlib.import_module('mmmt.ops.selective_scan_triton')
check = importlib.import_module('mmmt.ops.triton_self_check')


@pytest.fixture
def small_check(triton_interpreter, monkeypatch):
    """A smaller check problem for the interpreter (70 steps in three 32-step chunks, 4
    channels per group), and no results kept from other tests."""
    monkeypatch.setattr(check, 'LENGTH', 70)
    monkeypatch.setattr(check, 'CHANNELS_PER_GROUP', 4)
    monkeypatch.setattr(check, '_results', {})
    monkeypatch.setenv(triton_scan.KERNEL_ENV, 'runs:32:128:1')


def _call(dtype=torch.float32, z=False, softplus=True):
    """Arguments shaped like an SS2D call (only their dtypes, groups and options matter)."""
    x = make_inputs(batch=1, dim=8, length=5, n=16, groups=4)
    x = {k: v.to(dtype) if k in ('u', 'delta', 'B', 'C', 'z') else v for k, v in x.items()}
    return dict(u=x['u'], delta=x['delta'], A=x['A'], B=x['B'], C=x['C'], D=x['D'],
                z=x['z'] if z else None, delta_bias=x['delta_bias'], delta_softplus=softplus)


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the gradient scaled (a wrong backward that the forward cannot show)."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g * 1.1


def _broken(what):
    """selective_scan_triton with one thing wrong: the output, the last state or dB."""
    real = triton_scan.selective_scan_triton

    def fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
           return_last_state=False):
        if what == 'dB':
            B = _ScaleGrad.apply(B)
        out, last = real(u, delta, A, B, C, D, z, delta_bias, delta_softplus, True)
        if what == 'output':
            out = out * 1.1
        if what == 'last':
            last = last + 0.1 * last.abs().max()
        return (out, last) if return_last_state else out
    return fn


@pytest.mark.parametrize('dtype,z,softplus', [(torch.float32, False, True),
                                              (torch.bfloat16, True, False)])
def test_kernels_pass_and_the_result_is_kept(small_check, monkeypatch, dtype, z, softplus):
    with torch.inference_mode():  # as a model under test may first call it: still checked
        assert check.self_check(**_call(dtype, z, softplus)) is None
    # once per combination: a second call does not run the kernels again
    monkeypatch.setattr(triton_scan, 'selective_scan_triton', _broken('output'))
    assert check.self_check(**_call(dtype, z, softplus)) is None
    assert check.self_check(**_call(dtype, z, not softplus)) is not None  # a new combination


@pytest.mark.parametrize('what,named', [('output', 'output'), ('last', 'last state'),
                                        ('dB', 'gradient of B')])
def test_a_disagreement_is_named(small_check, monkeypatch, what, named):
    monkeypatch.setattr(triton_scan, 'selective_scan_triton', _broken(what))
    reason = check.self_check(**_call())
    assert reason and named in reason and 'runs kernels (32:128:1)' in reason, reason
    if what != 'output':  # (a scaled output scales every gradient too)
        assert 'output' not in reason, reason


def test_dispatch_falls_back_once_or_raises_when_forced(small_check, monkeypatch):
    """A failed check is handled like a failed compile: one warning and the PyTorch scan
    (here, where the automatic choice would be Triton), or an error when Triton is forced."""
    monkeypatch.setattr(dispatch, '_self_check_applies', lambda u: True)
    monkeypatch.setattr(triton_scan, 'failure', None)
    monkeypatch.setattr(triton_scan, 'selective_scan_triton', _broken('output'))
    x = make_inputs(batch=1, dim=8, length=40, n=16, groups=4)
    monkeypatch.setenv('MMMT_SCAN_BACKEND', 'triton')
    with pytest.raises(dispatch.TritonSelfCheckError, match='disagree.*output'):
        selective_scan_fn(**x, delta_softplus=True)
    monkeypatch.delenv('MMMT_SCAN_BACKEND')
    # the automatic choice on a GPU, for these CPU tensors
    monkeypatch.setattr(dispatch, '_pick_backend', dispatch._automatic_cuda_backend)
    with pytest.warns(RuntimeWarning, match='disagree with the float64 PyTorch scan'):
        out = selective_scan_fn(**x, delta_softplus=True)
    assert 'disagree' in triton_scan.failure
    assert rel_err(out, selective_scan_torch(**x, delta_softplus=True)) <= 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # Triton is not tried again: no second warning
        selective_scan_fn(**x, delta_softplus=True)


def test_switch(monkeypatch):
    for value, on in (('', True), ('1', True), ('0', False), (' Off ', False), ('no', False)):
        monkeypatch.setenv(check.SELF_CHECK_ENV, value)
        assert check.self_check_enabled() is on
    monkeypatch.delenv(check.SELF_CHECK_ENV)
    assert check.self_check_enabled()
    assert not dispatch._self_check_applies(torch.zeros(1))  # CPU: interpreted, not compiled


def test_checked_inside_an_activation_checkpoint(small_check, monkeypatch):
    """The first call of a training run comes inside a checkpointed decoder block (--with-cp,
    non-reentrant): the check's own graph must not be tracked by the checkpoint (which would
    re-run the block mid-forward and stop the check with its early-stop exception), and the
    block's recompute must save what its forward saved."""
    from torch.utils.checkpoint import checkpoint
    monkeypatch.setattr(dispatch, '_self_check_applies', lambda u: True)
    monkeypatch.setenv('MMMT_SCAN_BACKEND', 'triton')  # any error is raised, not hidden
    x = make_inputs(batch=1, dim=8, length=40, n=16, groups=4)

    def block(u, delta, B, C):
        return selective_scan_fn(u.tanh(), delta, x['A'], B, C, x['D'], None,
                                 x['delta_bias'], True).sin()

    grads = []
    for checkpointed in (True, False):
        leaves = [x[k].clone().requires_grad_(True) for k in ('u', 'delta', 'B', 'C')]
        out = checkpoint(block, *leaves, use_reentrant=False) if checkpointed \
            else block(*leaves)
        out.sum().backward()
        grads.append([t.grad for t in leaves])
    assert len(check._results) == 1  # checked once, in the checkpointed forward
    for with_cp, plain in zip(*grads):
        assert torch.equal(with_cp, plain)


def test_after_a_failure_calls_that_ran_with_triton_keep_it(small_check, monkeypatch):
    """A failure at a new kind of call (a later stage's shape) must not change the backend
    of a kind that already ran with Triton: its recompute under activation checkpointing has
    to save what its forward saved."""
    monkeypatch.setattr(dispatch, '_pick_backend', dispatch._automatic_cuda_backend)
    monkeypatch.setattr(dispatch, '_triton_calls', set())
    early = make_inputs(batch=1, dim=8, length=40, n=16, groups=4)
    later = make_inputs(batch=1, dim=8, length=24, n=16, groups=4)
    selective_scan_fn(**early, delta_softplus=True)  # runs with Triton
    assert len(dispatch._triton_calls) == 1
    real = triton_scan.scan_checked_inputs

    def fails_for_the_later_shape(u, *args, **kwargs):
        if u.shape[-1] == 24:
            raise RuntimeError('out of resources: shared memory')
        return real(u, *args, **kwargs)

    monkeypatch.setattr(triton_scan, 'scan_checked_inputs', fails_for_the_later_shape)
    with pytest.warns(RuntimeWarning, match='out of resources'):
        selective_scan_fn(**later, delta_softplus=True)
    assert 'out of resources' in triton_scan.failure
    calls = []
    monkeypatch.setattr(triton_scan, 'scan_checked_inputs',
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    selective_scan_fn(**early, delta_softplus=True)  # the kind that ran with Triton: Triton
    selective_scan_fn(**later, delta_softplus=True)  # the failed kind: PyTorch
    selective_scan_fn(**make_inputs(batch=2, dim=8, length=40, n=16, groups=4),
                      delta_softplus=True)  # a new kind after a failure: PyTorch
    assert calls == [1]


def test_inputs_that_do_not_fit_are_the_callers_error(small_check, monkeypatch):
    """Raised whichever backend is chosen, and never counted as a Triton failure."""
    x = make_inputs(batch=1, dim=8, length=40, n=16, groups=4)
    x['B'] = x['B'][..., :39]
    with pytest.raises(ValueError, match=r'B has shape \(1, 4, 16, 39\), expected'):
        dispatch._triton_or_fallback(False, *x.values(), True, False)
    assert triton_scan.failure is None


def _launch_of(u, B, C, A):
    """(chunk length, channel block, block divides the channels per group) of a call."""
    name, cfg = triton_scan.kernel_choice()
    groups = max(m.shape[1] if m.dim() == 4 else 1 for m in (B, C))
    block_d, _, block_l = triton_scan._launch_sizes(name, u.shape[1] // groups, A.shape[1],
                                                    u.shape[2], cfg=cfg)
    return block_l, block_d, u.shape[1] // groups % block_d == 0


@pytest.mark.parametrize('dim,length,want', [
    (16, 40, (70, 4, (32, 4, True))),  # the usual problem: whole 32-step chunks, 4 | 4
    (16, 5, (13, 4, (16, 4, True))),  # shorter than a chunk: 16-step chunks (one run)
    (24, 40, (70, 5, (32, 4, False))),  # 6 channels per group: a remainder of the block
    (4, 40, (70, 1, (32, 1, True))),  # 1 channel per group: a block of 1
])
def test_the_problem_is_compiled_as_the_call(small_check, dim, length, want):
    """The check problem's kernels get the call's chunk length (and so its runs per thread)
    and channel block, with or without a remainder: the launch sizes that select compiled
    code (shapes, and constant masks for the runs kernels), so each is checked once."""
    x = make_inputs(batch=1, dim=dim, length=length, n=16, groups=4)
    got = check.check_shape(x['u'], x['B'], x['C'], x['A'])
    assert got == want and got[2] == _launch_of(x['u'], x['B'], x['C'], x['A'])
    steps, channels, _ = got
    problem = check._problem(*x.values(), True, steps, channels)
    assert _launch_of(problem['u'], problem['B'], problem['C'], problem['A']) == want[2]


def test_a_wrong_short_sequence_kernel_is_found(small_check, monkeypatch):
    """Kernels that are wrong only in the variant compiled for sequences shorter than a chunk
    (16-step chunks) pass the check of long calls, and are found at the first short call
    instead of being used untested."""
    real = triton_scan.selective_scan_triton

    def wrong_when_short(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                         delta_softplus=False, return_last_state=False):
        out, last = real(u, delta, A, B, C, D, z, delta_bias, delta_softplus, True)
        if _launch_of(u, B, C, A)[0] == 16:
            out = out * 1.1
        return (out, last) if return_last_state else out

    monkeypatch.setattr(triton_scan, 'selective_scan_triton', wrong_when_short)
    x = make_inputs(batch=1, dim=16, length=40, n=16, groups=4)
    assert check.self_check(**x, delta_softplus=True) is None
    short = {k: v[..., :5] if k in ('u', 'delta', 'B', 'C', 'z') else v for k, v in x.items()}
    reason = check.self_check(**short, delta_softplus=True)
    assert reason and '13-step check problem' in reason and 'output' in reason, reason
    assert len(check._results) == 2
