"""The Triton selective scan against the float64 per-step oracle, in Triton's interpreter on CPU
tensors (``MMMT_SCAN_BACKEND=triton TRITON_INTERPRET=1``, set per test), plus its dispatch.

The interpreter runs with a faster ``tl.associative_scan`` (the ``triton_interpreter`` fixture
of tests/test_ops/conftest.py).
"""
import dataclasses
import importlib
import warnings

import pytest
import torch
from _scan_testlib import make_inputs, rel_err, scan_oracle

from mmmt.ops import available_backends, selective_scan_fn

triton = pytest.importorskip('triton')
dispatch = importlib.import_module('mmmt.ops.selective_scan')
triton_scan = importlib.import_module('mmmt.ops.selective_scan_triton')
NAMES = ['u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias']


@pytest.fixture(params=sorted(triton_scan.CONFIGS))
def interpreted(triton_interpreter, monkeypatch, request):
    """Triton's interpreter (tests/test_ops/conftest.py) and ``MMMT_SCAN_BACKEND=triton``,
    once per kernel pair (``runs``, ``statewise``, ``tile``: ``MMMT_TRITON_SCAN_KERNEL``)."""
    monkeypatch.setenv('MMMT_SCAN_BACKEND', 'triton')
    monkeypatch.setenv(triton_scan.KERNEL_ENV, request.param)


def set_chunk(monkeypatch, steps):
    """Chunks (and checkpoints) of `steps` time steps for the kernel pair under test."""
    name = triton_scan.kernel_name()
    monkeypatch.setitem(triton_scan.CONFIGS, name,
                        dataclasses.replace(triton_scan.CONFIGS[name], block_l=steps))


def run_and_compare(x, opts, seed=1, out_tol=1e-5, grad_tol=1e-4, low_precision=()):
    """Forward and backward of ``selective_scan_fn`` (a random weighting of the output and of
    the last state) against the float64 oracle on the same (possibly rounded) inputs."""
    g = torch.Generator().manual_seed(seed)
    leaves = {k: v.clone().requires_grad_(True) for k, v in x.items() if v is not None}
    out, last = selective_scan_fn(**leaves, **opts, return_last_state=True)
    # representable in the output dtype, so the gradient reaching the scan is exact
    w_out = torch.randn(out.shape, generator=g).to(out.dtype).double()
    w_last = torch.randn(last.shape, generator=g, dtype=torch.float64)
    ((out.double() * w_out).sum() + (last.double() * w_last).sum()).backward()
    ref_leaves = {k: v.detach().double().requires_grad_(True) for k, v in leaves.items()}
    ref, ref_last = scan_oracle(**ref_leaves, **opts)
    ((ref * w_out).sum() + (ref_last * w_last).sum()).backward()
    assert out.dtype == x['u'].dtype and out.shape == x['u'].shape
    assert last.dtype == torch.float32 and last.shape == ref_last.shape
    assert rel_err(out, ref) <= out_tol
    assert rel_err(last, ref_last) <= 1e-5
    for k, leaf in leaves.items():
        assert leaf.grad is not None and leaf.grad.dtype == leaf.dtype, k
        tol = 1e-2 if k in low_precision else grad_tol  # stored in bfloat16
        assert rel_err(leaf.grad, ref_leaves[k].grad) <= tol, k


# (batch, dim, length, n, groups): L = 1, a few steps, just over one 64-step chunk, several
# chunks; N = 16 and small N (3 is not a power of 2); grouped and ungrouped B/C
SHAPES = [(2, 8, 1, 16, 4), (2, 8, 5, 4, None), (1, 8, 65, 16, 4), (1, 4, 200, 3, 2)]


@pytest.mark.parametrize('shape', SHAPES, ids=lambda s: f'L{s[2]}-N{s[3]}-G{s[4]}')
def test_all_options_match_oracle(interpreted, shape):
    batch, dim, length, n, groups = shape
    x = make_inputs(batch=batch, dim=dim, length=length, n=n, groups=groups)
    run_and_compare(x, dict(delta_softplus=True))


def test_without_optional_inputs(interpreted):
    x = make_inputs(batch=1, dim=8, length=70, n=16)
    x = dict(u=x['u'], delta=x['delta'].abs(), A=x['A'], B=x['B'], C=x['C'])
    run_and_compare(x, dict(delta_softplus=False))


@pytest.mark.parametrize('drop', ['z', 'D', 'delta_bias'])
def test_each_optional_input_alone_missing(interpreted, drop):
    x = make_inputs(batch=1, dim=4, length=9, n=4, groups=2)
    x[drop] = None
    run_and_compare(x, dict(delta_softplus=True))


def test_many_chunks_odd_channels_mixed_groups(interpreted, monkeypatch):
    """16-step chunks (L = 50: 4 chunks, the last partial), 3 channels per group (a channel
    block with masked lanes), B grouped and C shared by all groups."""
    set_chunk(monkeypatch, 16)
    x = make_inputs(batch=2, dim=12, length=50, n=4, groups=4)
    x['C'] = x['C'][:, 0]
    run_and_compare(x, dict(delta_softplus=True))


def test_inference_without_checkpoints(interpreted, monkeypatch):
    """Without gradients no checkpoint is kept (the statewise kernels carry the state in two
    slots used in turn): output and last state over 4 chunks, the last partial."""
    set_chunk(monkeypatch, 16)
    x = make_inputs(batch=2, dim=6, length=50, n=4, groups=2)
    with torch.no_grad():
        out, last = selective_scan_fn(**x, delta_softplus=True, return_last_state=True)
    ref, ref_last = scan_oracle(**{k: v.double() for k, v in x.items()}, delta_softplus=True)
    assert rel_err(out, ref) <= 1e-5 and rel_err(last, ref_last) <= 1e-5


@pytest.fixture
def deterministic():
    """``torch.use_deterministic_algorithms(True)`` for this test only."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(before)


def test_deterministic_mode(interpreted, monkeypatch, deterministic):
    """Under ``torch.use_deterministic_algorithms(True)`` dB and dC are each program's own sums,
    added up in a fixed order: 3 channel blocks per group (4 channels each), B grouped and C
    shared by both groups (the sums over groups too), several chunks."""
    name = triton_scan.kernel_name()
    monkeypatch.setenv(triton_scan.KERNEL_ENV,
                       f'{name}:16:{64 if name in triton_scan._STATE_LOOP else 256}:1')
    x = make_inputs(batch=2, dim=24, length=40, n=4, groups=2)
    x['C'] = x['C'][:, 0]
    assert triton_scan._launch_sizes(name, 12, 4, 40, cfg=triton_scan.kernel_choice()[1])[0] == 4
    run_and_compare(x, dict(delta_softplus=True))


def test_largest_state(interpreted):
    x = make_inputs(batch=1, dim=2, length=6, n=triton_scan.MAX_STATE)
    run_and_compare(x, dict(delta_softplus=True))


def test_bfloat16_inputs_read_natively(interpreted):
    """AMP-like inputs: activations in bfloat16, parameters in float32. The state and the sums
    stay float32, so the last state and the parameter gradients keep float32 accuracy (against
    the oracle on the same bfloat16 values); the output and the activation gradients are
    rounded to bfloat16 once, on store."""
    x = make_inputs(batch=1, dim=8, length=70, n=16, groups=4)
    for k in ('u', 'delta', 'B', 'C', 'z'):
        x[k] = x[k].bfloat16()
    run_and_compare(x, dict(delta_softplus=True), out_tol=1e-2,
                    low_precision=('u', 'delta', 'B', 'C', 'z'))


def test_float64_gradcheck(interpreted, monkeypatch):
    set_chunk(monkeypatch, 4)  # 3 chunks
    x = make_inputs(batch=1, dim=4, length=9, n=3, groups=2, dtype=torch.float64)
    args = [x[k].clone().requires_grad_(True) for k in NAMES]

    def fn(*a):
        return selective_scan_fn(*a, delta_softplus=True, return_last_state=True)

    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6, fast_mode=True)


def test_dispatch_under_interpreter(interpreted, monkeypatch):
    assert 'triton' in available_backends()
    x = make_inputs(length=3)
    big = make_inputs(length=3, n=triton_scan.MAX_STATE + 1)
    with pytest.raises(RuntimeError, match='MMMT_SCAN_BACKEND=triton: N = 65'):
        selective_scan_fn(**big)
    with pytest.raises(RuntimeError, match='vary over time'):
        selective_scan_fn(x['u'], x['delta'], x['A'], x['A'], x['C'])
    # CPU tensors never choose Triton on their own, interpreter or not
    monkeypatch.delenv('MMMT_SCAN_BACKEND')
    assert dispatch._pick_backend(x['u'], x['B'], x['C']) in ('cpp', 'torch')
    monkeypatch.delenv('TRITON_INTERPRET')
    monkeypatch.setenv('MMMT_SCAN_BACKEND', 'triton')
    with pytest.raises(RuntimeError, match='needs CUDA tensors'):
        selective_scan_fn(x['u'], x['delta'], x['A'], x['B'], x['C'])


def test_compile_failure_falls_back_with_one_warning(interpreted, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError('Failed to find C compiler')

    monkeypatch.setattr(triton_scan, 'scan_checked_inputs', broken)
    x = make_inputs(length=4)
    with pytest.warns(RuntimeWarning, match='Triton selective scan failed'):
        assert dispatch._triton_or_fallback(False, *x.values(), True, False) is None
    assert 'C compiler' in triton_scan.failure
    assert 'triton' not in available_backends()  # not tried again
    triton_scan.failure = None
    with pytest.raises(RuntimeError, match='C compiler'):  # a forced backend raises
        dispatch._triton_or_fallback(True, *x.values(), True, False)


def test_backward_failure_recomputes_with_pytorch(interpreted, monkeypatch):
    def broken(*args):
        raise RuntimeError('ptxas failed')

    monkeypatch.setattr(triton_scan, '_backward_kernel', broken)
    monkeypatch.setattr(triton_scan, '_failed_backwards', set())
    monkeypatch.setattr(dispatch, '_triton_calls', set())
    x = make_inputs(batch=1, dim=4, length=9, n=3, groups=2)
    # forced (as the fixture sets it), or the Triton function called directly: the backward's
    # failure is raised
    for scan in (selective_scan_fn, triton_scan.selective_scan_triton):
        leaves = {k: v.clone().requires_grad_(True) for k, v in x.items()}
        with pytest.raises(RuntimeError, match='ptxas failed'):
            scan(**leaves, delta_softplus=True).sum().backward()
    assert triton_scan.failure is None and not triton_scan._failed_backwards

    def grads_of_a_run():
        leaves = {k: v.clone().requires_grad_(True) for k, v in x.items()}
        # the automatic backend's Triton call, as a CUDA call's would be
        out, last = dispatch._triton_or_fallback(False, *leaves.values(), True, True)
        (out.sin().sum() + last.cos().sum()).backward()
        return {k: v.grad for k, v in leaves.items()}

    with pytest.warns(RuntimeWarning, match='backward failed .*ptxas failed'):
        got = grads_of_a_run()
    assert 'ptxas failed' in triton_scan.failure
    ref_leaves = {k: v.detach().double().requires_grad_(True) for k, v in x.items()
                  if v is not None}
    ref, ref_last = scan_oracle(**ref_leaves, delta_softplus=True)
    (ref.sin().sum() + ref_last.cos().sum()).backward()
    for k, g in got.items():
        assert g.dtype == x[k].dtype and rel_err(g, ref_leaves[k].grad) <= 1e-5, k
    # the same kind of call again: straight to the PyTorch recompute, without a new warning
    # (and without compiling the failing kernel again)
    monkeypatch.setattr(triton_scan, '_backward_kernel', None)
    # (a kind of call that ran with Triton keeps its Triton forward after a failure)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        again = grads_of_a_run()
    for k in got:
        assert torch.equal(again[k], got[k]), k


def test_log1p_coefficients_are_the_chebyshev_interpolant():
    """The kernels' log1p polynomial is what its comment says: the degree-8 Chebyshev
    interpolant of log(1 + w) / w on [0, 1], in powers of w, rounded to float32."""
    import numpy as np
    from numpy.polynomial import chebyshev, polynomial
    coeffs = triton_scan._kernels(False).LOG1P_COEFFS.value
    nodes = np.cos(np.pi * (np.arange(9) + 0.5) / 9)  # on [-1, 1]; w = (x + 1) / 2
    fit = chebyshev.cheb2poly(chebyshev.chebfit(nodes, np.log1p((nodes + 1) / 2) /
                                                ((nodes + 1) / 2), 8))
    in_w = np.zeros(1)
    for i, c in enumerate(fit):  # in powers of w, x = 2w - 1
        in_w = polynomial.polyadd(in_w, c * polynomial.polypow([-1.0, 2.0], i))
    np.testing.assert_array_equal(np.float32(coeffs), np.float32(in_w))


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_softplus_accuracy(triton_interpreter, dtype):
    """The kernels' softplus on 400k float32 points of [-80, 80] and at the ends of its range,
    against float64: within 3e-7 relative in float32 (the polynomial log1p); float64 inputs
    take log(1 + w) w / (v - 1) and are exact to 1e-15."""
    softplus = triton_scan._kernels(True)._softplus
    tl = triton.language

    def apply(x_ptr, out_ptr, FN: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        tl.store(out_ptr + offs, FN(tl.load(x_ptr + offs)))

    apply = triton.jit(apply)
    x = torch.cat([torch.linspace(-80, 80, 400000), torch.tensor(
        [0.0, 1e-30, -1e-30, 20.0, -20.0, 88.0, -87.0, 1e4, 3e38])]).to(dtype)
    x = torch.cat([x, torch.zeros(-len(x) % 1024, dtype=dtype)])
    out = torch.empty_like(x)
    apply[(len(x) // 1024, )](x, out, FN=softplus, BLOCK=1024)
    ref = torch.logaddexp(x.double(), torch.zeros((), dtype=torch.float64))
    assert (out.double() - ref).abs().div(ref).max() <= (3e-7 if dtype == torch.float32
                                                         else 1e-15)
    assert out[x == -1e4].tolist() == [0.0] * int((x == -1e4).sum())


@pytest.mark.parametrize('kernel', sorted(triton_scan.CONFIGS))
def test_kernels_compile_for_a_gpu(kernel):
    """Both kernels of a pair through Triton's real compiler (to a sm_90 binary; no GPU
    needed), which the interpreter does not exercise: types, loop-carried values, constexpr
    branches. (tests/test_tools/test_triton_scan_sass.py compiles them as SS2D calls them.)"""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import JITFunction
    if not isinstance(triton.language.sum, JITFunction):
        pytest.skip('Triton was imported with TRITON_INTERPRET=1: no compiling in this process')
    scalars = {'L', 'DIM', 'DG', 'N', 'NCHUNK', 'SLOTS', 'GB', 'GC'}
    # the block sizes of a Swin-L stage (384 channels per group, N = 16)
    block_d, block_n, block_l = triton_scan._launch_sizes(kernel, 384, 16, 16128)
    flags = dict(HAS_D=True, HAS_BIAS=True, SOFTPLUS=True, ACC=triton.language.float32,
                 BLOCK_N=block_n, BLOCK_L=block_l, BLOCK_D=block_d, FAST_EXP=True,
                 DETERMINISTIC=False, EVEN_D=True, PREFETCH=False,
                 RUN=triton_scan.run_length(triton_scan.CONFIGS[kernel], block_l))
    fwd, bwd = triton_scan._kernel_fns(triton_scan._kernels(False), kernel)
    # with and without z, checkpoints, PTX's exp2 and atomics; bfloat16 activations, float32
    # parameters and sums
    for fn, extra in ((fwd, dict(SAVE_CKPT=True, HAS_Z=True)),
                      (fwd, dict(SAVE_CKPT=False, HAS_Z=False, FAST_EXP=False, EVEN_D=False,
                                 PREFETCH=True)),
                      (bwd, dict(HAS_DLAST=True, HAS_Z=True)),
                      (bwd, dict(HAS_DLAST=False, HAS_Z=False, DETERMINISTIC=True,
                                 EVEN_D=False))):
        # the flags this kernel has (the statewise ones need no BLOCK_N, SAVE_CKPT, HAS_DLAST)
        consts = {k: v for k, v in dict(flags, **extra).items() if k in fn.arg_names}
        assert not {a for a in fn.arg_names if a.isupper()} - scalars - set(consts), fn.arg_names
        sig = {a: 'constexpr' if a in consts else 'i32' if a in scalars else
               '*bf16' if a in ('u_ptr', 'delta_ptr', 'out_ptr', 'du_ptr', 'dout_ptr') else
               '*fp32' for a in fn.arg_names}
        src = ASTSource(fn=fn, signature=sig,
                        constexprs={(fn.arg_names.index(k), ): v for k, v in consts.items()})
        compiled = triton.compile(src, target=GPUTarget('cuda', 90, 32),
                                  options=dict(num_warps=triton_scan.CONFIGS[kernel].num_warps))
        assert '.entry ' + fn.__name__ in compiled.asm['ptx']


def test_kernel_choice(interpreted, monkeypatch):
    """MMMT_TRITON_SCAN_KERNEL picks the pair (read at call time); a misspelt one is the
    user's error even where Triton is not forced, not a compile failure to fall back from."""
    monkeypatch.delenv(triton_scan.KERNEL_ENV)
    assert triton_scan.kernel_name() == triton_scan.DEFAULT == 'runs'
    calls, real = [], triton_scan._kernel_fns
    monkeypatch.setattr(triton_scan, '_kernel_fns',
                        lambda kern, name: calls.append(name) or real(kern, name))
    for name in triton_scan.CONFIGS:
        monkeypatch.setenv(triton_scan.KERNEL_ENV, f' {name.upper()} ')
        selective_scan_fn(**make_inputs(length=3))
    assert calls == list(triton_scan.CONFIGS)
    monkeypatch.setenv(triton_scan.KERNEL_ENV, 'statwise')
    x = make_inputs(length=3)
    for bad in ('statwise', 'tile:64:2048', 'statewise:100:1024:4'):
        monkeypatch.setenv(triton_scan.KERNEL_ENV, bad)
        with pytest.raises(ValueError, match=f"MMMT_TRITON_SCAN_KERNEL: '{bad}'"):
            dispatch._triton_or_fallback(False, *x.values(), True, False)
    assert triton_scan.failure is None


def test_other_launch_sizes_from_the_environment(interpreted, monkeypatch):
    """``NAME:STEPS:TILE:WARPS`` (how gpu_check.sh times other sizes): 16-step chunks, one
    channel per program; the backward pass uses the forward's sizes even if the variable
    changes in between."""
    name = triton_scan.kernel_name()
    tile = 16 if name in triton_scan._STATE_LOOP else 64
    monkeypatch.setenv(triton_scan.KERNEL_ENV, f'{name}:16:{tile}:1')
    x = make_inputs(batch=1, dim=4, length=40, n=4, groups=2)
    leaves = {k: v.clone().requires_grad_(True) for k, v in x.items()}
    out = selective_scan_fn(**leaves, delta_softplus=True)
    monkeypatch.setenv(triton_scan.KERNEL_ENV, 'tile:1024:4096:8')
    out.sum().backward()
    ref_leaves = {k: v.detach().double().requires_grad_(True) for k, v in x.items()}
    ref, _ = scan_oracle(**ref_leaves, delta_softplus=True)
    ref.sum().backward()
    assert rel_err(out, ref) <= 1e-5
    for k, leaf in leaves.items():
        assert rel_err(leaf.grad, ref_leaves[k].grad) <= 1e-4, k


@pytest.mark.parametrize('shape', [(1, 4, 200, 3, 2), (1, 8, 65, 16, 4)], ids=['N3', 'N16'])
def test_runs_forward_with_prefetch(triton_interpreter, monkeypatch, shape):
    """``runs:STEPS:TILE:WARPS:prefetch``: the forward loads each state's rows one state
    ahead; an odd N (the unrolled loop's remainder), several 64-step chunks and a partial
    last one against the oracle, forward and backward."""
    monkeypatch.setenv('MMMT_SCAN_BACKEND', 'triton')
    monkeypatch.setenv(triton_scan.KERNEL_ENV, 'runs:64:256:1:prefetch')
    assert triton_scan.kernel_choice() == ('runs', triton_scan.KernelConfig(64, 256, 1, True))
    batch, dim, length, n, groups = shape
    run_and_compare(make_inputs(batch=batch, dim=dim, length=length, n=n, groups=groups),
                    dict(delta_softplus=True))


def test_parse_kernel():
    """The text form of a kernel choice, and what it rejects."""
    parse = triton_scan.parse_kernel
    assert parse('runs') == ('runs', triton_scan.CONFIGS['runs'])
    assert parse(' Statewise:64:512:2 ') == ('statewise', triton_scan.KernelConfig(64, 512, 2))
    name, cfg = parse('runs:128:512:1:prefetch')
    assert (name, cfg.prefetch, str(cfg)) == ('runs', True, '128:512:1:prefetch')
    assert str(triton_scan.CONFIGS['runs']) == '128:512:1'
    for bad, why in (('statewise:128:1024:4:prefetch', 'only the runs kernels'),
                     ('runs:128:512:prefetch', 'three powers of 2'),
                     ('runs:128:512:1:fast', 'three powers of 2'),
                     ('serial', 'expected a kernel pair'),
                     # runs of 4 steps or more; no GPU launches more than 1024 threads
                     ('runs:2:512:1', 'at least 4 steps .* not 2'),
                     ('runs:128:512:64', 'at most 32 warps .* not 64')):
        with pytest.raises(ValueError, match=why):
            parse(bad)
    # the smallest chunks and the most warps that launch
    assert parse('runs:4:512:32')[1] == triton_scan.KernelConfig(4, 512, 32)
    assert parse('statewise:1:1024:4')[1].block_l == 1


def test_short_sequences_use_short_chunks():
    """A chunk is never much longer than the sequence (idle lanes), and more channels share a
    program instead; the backward pass keeps the forward's chunk (its checkpoint interval)."""
    cfg = triton_scan.CONFIGS['statewise']
    assert triton_scan._launch_sizes('statewise', 384, 16, 16128) == (
        cfg.tile // cfg.block_l, 16, cfg.block_l)
    assert triton_scan._launch_sizes('statewise', 384, 16, 5) == (16, 16, 16)
    assert triton_scan._launch_sizes('statewise', 3, 16, 5) == (4, 16, 16)
    assert triton_scan._launch_sizes('runs', 384, 16, 16128) == (4, 16, 128)
    assert triton_scan._launch_sizes('runs', 384, 16, 5) == (16, 16, 16)
    # each thread's run: the config's elements per thread, within one chunk
    assert triton_scan.run_length(triton_scan.CONFIGS['runs'], 128) == 16
    assert triton_scan.run_length(triton_scan.CONFIGS['runs'], 16) == 16
    assert triton_scan.run_length(triton_scan.KernelConfig(128, 64, 1), 128) == 4
    assert triton_scan.run_length(triton_scan.KernelConfig(128, 8192, 1), 128) == 32
    assert triton_scan._launch_sizes('tile', 384, 16, 40) == (2, 16, 64)
    assert triton_scan._launch_sizes('tile', 384, 3, 40, block_l=16) == (16, 4, 16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_cuda_picks_a_fused_backend_by_itself(monkeypatch):
    monkeypatch.delenv('MMMT_SCAN_BACKEND', raising=False)
    monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    x = {k: v.cuda() for k, v in make_inputs(length=300, n=16, groups=4).items()}
    assert dispatch._pick_backend(x['u'], x['B'], x['C']) in ('triton', 'cuda')
    out, last = selective_scan_fn(**x, delta_softplus=True, return_last_state=True)
    ref, ref_last = scan_oracle(**{k: v.cpu() for k, v in x.items()}, delta_softplus=True)
    assert rel_err(out.cpu(), ref) <= 1e-5 and rel_err(last.cpu(), ref_last) <= 1e-5


def test_sequence_longer_than_64k(interpreted, monkeypatch):
    """L past 2^16 (65 chunks of 1024 steps, fewer interpreter steps than 64-step chunks; the
    last chunk partial) against the C++ kernel, itself checked against the oracle
    (tests/test_ops/test_selective_scan_cpu.py); the oracle's Python loop would take longer
    than the scan here. The interpreter calls the runs pair's combine functions once per
    element, so that pair scans one channel with one state here."""
    set_chunk(monkeypatch, 1024)
    runs = triton_scan.kernel_name() == 'runs'
    x = make_inputs(batch=1, dim=1 if runs else 2, length=(1 << 16) + 3, n=1 if runs else 2)
    leaves = [{k: v.clone().requires_grad_(True) for k, v in x.items()} for _ in range(2)]
    results = []
    for backend, a in zip(('triton', 'cpp'), leaves):
        monkeypatch.setenv('MMMT_SCAN_BACKEND', backend)
        out, last = selective_scan_fn(**a, delta_softplus=True, return_last_state=True)
        (out.sum() + last.sum()).backward()
        results.append((out, last))
    assert rel_err(results[0][0], results[1][0]) <= 1e-5
    assert rel_err(results[0][1], results[1][1]) <= 1e-5
    for k in NAMES:
        assert rel_err(leaves[0][k].grad, leaves[1][k].grad) <= 1e-4, k


def test_empty_sequence_keeps_the_graph(triton_interpreter, monkeypatch):
    """L = 0: an empty output that is still part of u's graph (as the other backends give
    it), and a zero last state."""
    monkeypatch.setenv('MMMT_SCAN_BACKEND', 'triton')
    x = make_inputs(batch=2, dim=4, length=3, n=3)
    x = {k: v[..., :0] if k in ('u', 'delta', 'B', 'C', 'z') else v for k, v in x.items()}
    u = x.pop('u').requires_grad_(True)
    out, last = selective_scan_fn(u, **x, return_last_state=True)
    assert out.shape == (2, 4, 0) and out.grad_fn is not None
    assert torch.equal(last, torch.zeros(2, 4, 3))
    out.sum().backward()
    assert torch.equal(u.grad, torch.zeros_like(u))


def test_failure_descriptions_keep_the_cause():
    """A Triton CompilationError's text starts with the source position ('at 12:8:'); the cause
    is in error_message, or the last line."""
    class CompilationError(Exception):
        error_message = 'unsupported tensor index: constexpr[0]'

    assert triton_scan.describe_failure(CompilationError('at 12:8:\n  x = y[0]\n ^')) == \
        'CompilationError: unsupported tensor index: constexpr[0]'
    assert triton_scan.describe_failure(RuntimeError('at 3:4:\n  tl.dot(a, b)\nbad shape')) == \
        'RuntimeError: bad shape'
    assert triton_scan.describe_failure(RuntimeError('Failed to find C compiler.\nhint')) == \
        'RuntimeError: Failed to find C compiler.'
    # as Triton's NVIDIA backend raises it when ptxas fails: the kind, ptxas' log, the command
    from triton.runtime.errors import PTXASError
    error = PTXASError('Internal Triton PTX codegen error\n`ptxas` stderr:\nptxas /tmp/k.ptx, '
                       "line 99; error   : Arguments mismatch for instruction 'ex2'\nptxas "
                       'fatal   : Ptx assembly aborted due to errors\n\nRepro command: '
                       '/x/ptxas -lineinfo -v --gpu-name sm_90a /tmp/k.ptx -o /tmp/k.cubin\n')
    assert triton_scan.describe_failure(error) == (
        'PTXASError: Internal Triton PTX codegen error: ptxas /tmp/k.ptx, line 99; error   : '
        "Arguments mismatch for instruction 'ex2'")


def test_batches_past_the_grid_limit_are_not_taken(triton_interpreter):
    """CUDA grids have at most 65535 programs along y and z (the B/C groups and the batch):
    such a call is not Triton's (the automatic choice takes another backend)."""
    big = make_inputs(batch=triton_scan.MAX_GRID_YZ + 1, dim=1, length=1, n=1)
    assert 'at most 65535' in triton_scan.check_supported(big['u'], big['B'], big['C'])
    assert triton_scan.check_supported(big['u'][:-1], big['B'][:-1], big['C'][:-1]) is None


def test_state_rows_past_int32_offsets_are_not_taken(triton_interpreter):
    """The kernels index state n's row of B and C at n * L in int32: a call whose (N, L) block
    has more than 2^31 elements is not Triton's (shapes only: stride-0 views, no memory)."""
    def call(n, length):
        u = torch.empty(1, 1, 1).expand(1, 8, length)
        return u, torch.empty(1, 1, 1, 1).expand(1, 4, n, length)

    u, B = call(64, 2**25 + 1)  # 64 x (2^25 + 1) > 2^31
    assert 'N x L = 64 x 33554433' in triton_scan.check_supported(u, B, B)
    assert triton_scan.check_supported(*call(64, 2**25), call(64, 2**25)[1]) is None
    u, B = call(1, 2**31)  # one state: its row starts at 0
    assert triton_scan.check_supported(u, B, B) is None


def test_automatic_order_for_cuda_calls(triton_interpreter, monkeypatch):
    """For CUDA tensors (here the same decision on interpreter tensors): Triton first, then
    mamba-ssm's kernel where it imports, then the PyTorch scan; after a Triton failure a call
    of a kind that already ran with Triton keeps it."""
    monkeypatch.setattr(dispatch, '_mamba_cuda_fn', lambda: (lambda *args: None))
    monkeypatch.setattr(dispatch, '_triton_calls', set())
    x = make_inputs(length=3)
    pick = dispatch._automatic_cuda_backend
    assert pick(x['u'], x['B'], x['C'], None) == 'triton'
    assert pick(x['u'], x['A'], x['C'], None) == 'cuda'  # B constant over time: not Triton's
    monkeypatch.setattr(triton_scan, 'failure', 'RuntimeError: Failed to find C compiler')
    assert pick(x['u'], x['B'], x['C'], None) == 'cuda'
    dispatch._triton_calls.add('a kind that ran')
    assert pick(x['u'], x['B'], x['C'], 'a kind that ran') == 'triton'
    monkeypatch.setattr(dispatch, '_mamba_cuda_fn', lambda: None)
    assert pick(x['u'], x['B'], x['C'], None) == 'torch'


def test_inputs_are_checked_once_per_call(interpreted, monkeypatch):
    """The dispatcher checks a Triton call's inputs once (they are launch-bound calls, dozens per
    step); a direct call of the Triton function checks them itself."""
    calls = []
    real = triton_scan.check_inputs
    monkeypatch.setattr(triton_scan, 'check_inputs', lambda *a: calls.append(1) or real(*a))
    x = make_inputs(batch=1, dim=4, length=3, n=2)
    for scan in (selective_scan_fn, triton_scan.selective_scan_triton):
        calls.clear()
        scan(**x)
        assert calls == [1], scan


def test_no_inline_assembly_for_the_interpreter(triton_interpreter, monkeypatch):
    """``TRITON_INTERPRET=1`` also runs the kernels on CUDA tensors (copied to the host), and
    the interpreter has no inline assembly: PTX's ``ex2.approx.ftz`` is for compiled kernels
    on an NVIDIA GPU only (float32 state), whatever device the tensors are on."""
    import types
    cuda_u = types.SimpleNamespace(is_cuda=True)  # what _fast_exp reads of u
    monkeypatch.setattr(torch.version, 'hip', None)
    assert not triton_scan._fast_exp(cuda_u, torch.float32)
    monkeypatch.delenv('TRITON_INTERPRET')  # compiled kernels: float32 only, NVIDIA only
    assert triton_scan._fast_exp(cuda_u, torch.float32)
    assert not triton_scan._fast_exp(cuda_u, torch.float64)
    assert not triton_scan._fast_exp(types.SimpleNamespace(is_cuda=False), torch.float32)
    monkeypatch.setattr(torch.version, 'hip', '6.2')
    assert not triton_scan._fast_exp(cuda_u, torch.float32)
    # and why the flag must be off there: the interpreted kernels cannot take it
    monkeypatch.setenv('TRITON_INTERPRET', '1')
    exp2 = triton_scan._kernels(True)._exp2
    tl = triton.language

    def apply(x_ptr, out_ptr, FN: tl.constexpr, FAST: tl.constexpr):
        offs = tl.arange(0, 16)
        tl.store(out_ptr + offs, FN(tl.load(x_ptr + offs), FAST))

    apply = triton.jit(apply)
    v = torch.linspace(-4, 4, 16)
    out = torch.empty_like(v)
    apply[(1, )](v, out, FN=exp2, FAST=False)
    torch.testing.assert_close(out, torch.exp2(v))
    with pytest.raises(Exception, match='inline_asm not supported'):
        apply[(1, )](v, out, FN=exp2, FAST=True)
