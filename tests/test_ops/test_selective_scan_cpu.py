"""The compiled CPU scan: precision at realistic sizes, gradients of every input on both kernel
paths (SIMD float32 for N a multiple of the vector width, generic otherwise), the backend
selection, the fallback when the build is unavailable, and the build lock."""
import importlib
import os
import os.path as osp
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from _scan_testlib import (make_inputs, rel_err, require_backend, scan_oracle,
                           scan_oracle_vectorised, ss2d_like_inputs)

from mmmt.ops import (available_backends, cpp_loader, selective_scan_cpu, selective_scan_fn,
                      selective_scan_torch)

# the modules (the package re-exports functions of the same names)
dispatch = importlib.import_module('mmmt.ops.selective_scan')
scan_cpu = importlib.import_module('mmmt.ops.selective_scan_cpu')
NAMES = ['u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias']
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(autouse=True)
def _needs_cpp():
    require_backend('cpp')


def _grads(fn, x, names, **kw):
    args = {k: v.clone().requires_grad_(k in names) for k, v in x.items()}
    out, last = fn(**args, return_last_state=True, **kw)
    g = torch.Generator().manual_seed(1)
    # a generic cotangent on both outputs (drawn in float64: the same numbers for every dtype)
    loss = (out * torch.randn(out.shape, generator=g, dtype=torch.float64).to(out.dtype)).sum() + \
        (last * torch.randn(last.shape, generator=g, dtype=torch.float64).to(last.dtype)).sum()
    loss.backward()
    return out, last, {k: args[k].grad for k in names}


def test_cpp_is_the_default_for_cpu_tensors(monkeypatch):
    monkeypatch.delenv('MMMT_SCAN_BACKEND', raising=False)
    x = make_inputs(length=8)
    assert 'cpp' in available_backends()
    assert dispatch._pick_backend(x['u'], x['B'], x['C']) == 'cpp'
    # B/C constant over time ((D, N)) is only handled by the PyTorch scan
    A2 = torch.randn(8, 4)
    assert dispatch._pick_backend(x['u'], A2, x['C']) == 'torch'
    monkeypatch.setenv('MMMT_SCAN_BACKEND', 'cpp')
    with pytest.raises(RuntimeError, match='time-varying'):
        selective_scan_fn(x['u'], x['delta'], x['A'], A2, x['C'])


@pytest.mark.parametrize('with_z', [False, True])
def test_forward_realistic_size_within_1e5(with_z):
    # the last NYUD stage of Swin-T shapes scaled down: 4x96 channels, L = 28x36, N = 16
    x = ss2d_like_inputs(batch=1, dim=4 * 96, length=28 * 36, n=16, groups=4)
    if with_z:
        x['z'] = torch.randn_like(x['u'])
    ref, ref_last = scan_oracle_vectorised(**x, delta_softplus=True)
    out, last = selective_scan_cpu(**x, delta_softplus=True, return_last_state=True)
    assert rel_err(out, ref) <= 1e-5
    assert rel_err(last, ref_last) <= 1e-5
    # also element-wise, relative to the typical magnitude
    assert ((out.double() - ref).abs() <= 1e-5 * (ref.abs() + ref.abs().mean())).all()


@pytest.mark.parametrize('n', [16, 32, 64, 8, 3])
@pytest.mark.parametrize('groups', [None, 4])
def test_float32_grads_match_float64(n, groups, monkeypatch):
    # several checkpoint chunks (and a partial last one): 150 steps at CHUNK 16
    monkeypatch.setattr(scan_cpu, 'CHUNK', 16)
    x = make_inputs(batch=2, dim=8, length=150, n=n, groups=groups)
    x64 = {k: v.double() for k, v in x.items()}
    out, last, g = _grads(selective_scan_cpu, x, NAMES, delta_softplus=True)
    ref, ref_last, g_ref = _grads(selective_scan_torch, x64, NAMES, delta_softplus=True)
    assert rel_err(out, ref) <= 1e-5 and rel_err(last, ref_last) <= 1e-5
    for k in NAMES:
        assert g[k].dtype == torch.float32 and g[k].shape == x[k].shape, k
        assert rel_err(g[k], g_ref[k]) <= 1e-4, k


@pytest.mark.parametrize('opts', [
    dict(),
    dict(D=True),
    dict(delta_bias=True, softplus=True),
    dict(z=True),
    dict(D=True, z=True, delta_bias=True, softplus=True),
])
@pytest.mark.parametrize('groups', [None, 2])
def test_gradcheck_float64_options(opts, groups, monkeypatch):
    monkeypatch.setattr(scan_cpu, 'CHUNK', 4)
    x = make_inputs(batch=2, dim=4, length=11, n=3, groups=groups, dtype=torch.float64)
    if not opts.get('softplus'):
        x['delta'] = x['delta'].abs()
    names = ['u', 'delta', 'A', 'B', 'C'] + [k for k in ('D', 'z', 'delta_bias') if opts.get(k)]
    args = [x[k].clone().requires_grad_(True) for k in names]

    def fn(*a):
        kw = dict(zip(names, a))
        return selective_scan_cpu(**kw, delta_softplus=bool(opts.get('softplus')),
                                  return_last_state=True)

    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-7)


def test_gradcheck_float64_state16(monkeypatch):
    monkeypatch.setattr(scan_cpu, 'CHUNK', 5)
    x = make_inputs(batch=1, dim=4, length=12, n=16, groups=2, dtype=torch.float64)
    args = [x[k].clone().requires_grad_(True) for k in NAMES]
    assert torch.autograd.gradcheck(
        lambda *a: selective_scan_cpu(*a, delta_softplus=True), args, eps=1e-6, atol=1e-7)


def test_mixed_grouping_and_slices(monkeypatch):
    # B grouped, C shared by all channels; several dB/dC accumulator slices per group
    monkeypatch.setattr(scan_cpu, 'SLICES', 3)
    x = make_inputs(batch=2, dim=12, length=70, n=16, groups=4)
    x['C'] = x['C'][:, 0]
    x64 = {k: v.double() for k, v in x.items()}
    out, last, g = _grads(selective_scan_cpu, x, NAMES, delta_softplus=True)
    ref, ref_last, g_ref = _grads(selective_scan_torch, x64, NAMES, delta_softplus=True)
    assert rel_err(out, ref) <= 1e-5
    for k in NAMES:
        assert g[k].shape == x[k].shape and rel_err(g[k], g_ref[k]) <= 1e-4, k


def test_gradient_through_last_state_only():
    x = make_inputs(batch=1, dim=8, length=40, n=16, groups=4)
    x64 = {k: v.double() for k, v in x.items()}
    for fn, inp in ((selective_scan_cpu, x), (selective_scan_torch, x64)):
        args = {k: v.clone().requires_grad_(True) for k, v in inp.items()}
        fn(**args, delta_softplus=True, return_last_state=True)[1].sum().backward()
        inp['grads'] = {k: args[k].grad for k in ('u', 'delta', 'A', 'B')}
    for k in ('u', 'delta', 'A', 'B'):
        assert rel_err(x['grads'][k], x64['grads'][k]) <= 1e-4, k


def test_non_contiguous_and_no_grad_inputs():
    x = make_inputs(batch=2, dim=8, length=33, n=16, groups=4)
    ref, _ = scan_oracle(**x, delta_softplus=True)
    u_t = x['u'].transpose(1, 2).contiguous().transpose(1, 2)  # same values, other strides
    B_t = x['B'].transpose(-1, -2).contiguous().transpose(-1, -2)
    assert not u_t.is_contiguous()
    with torch.no_grad():
        out = selective_scan_cpu(**dict(x, u=u_t, B=B_t), delta_softplus=True)
    assert (out.double() - ref).abs().max() <= 1e-5


def test_autocast_runs_scan_in_float32():
    x = make_inputs(batch=1, dim=8, length=50, n=16, groups=4)
    ref = selective_scan_fn(**x, delta_softplus=True)
    u = x['u'].bfloat16().requires_grad_(True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = selective_scan_fn(**dict(x, u=u, delta=x['delta'].bfloat16()),
                                delta_softplus=True)
    assert out.dtype == torch.bfloat16
    assert rel_err(out.float(), ref) <= 2e-2  # only the bf16 rounding of inputs and output
    out.float().sum().backward()
    assert u.grad.dtype == torch.bfloat16 and torch.isfinite(u.grad.float()).all()


def test_disable_env_selects_torch_without_warning(monkeypatch):
    monkeypatch.delenv('MMMT_SCAN_BACKEND', raising=False)
    monkeypatch.setenv(cpp_loader.DISABLE_ENV, '1')
    x = make_inputs(length=8)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert dispatch._pick_backend(x['u'], x['B'], x['C']) == 'torch'
        assert 'cpp' not in available_backends()
        selective_scan_fn(**x)
    monkeypatch.setenv('MMMT_SCAN_BACKEND', 'cpp')
    with pytest.raises(RuntimeError, match='unavailable'):
        selective_scan_fn(**x)


@pytest.mark.skipif(not hasattr(os, 'getuid'), reason='POSIX owners and modes')
def test_a_library_other_users_could_plant_is_never_built_or_loaded(tmp_path, monkeypatch):
    """An extension directory every user can write to (a shared ``/tmp/ext``): another user
    could put a library under the predictable name before the first build."""
    monkeypatch.setattr(cpp_loader, '_ops', None)  # as in a fresh process
    monkeypatch.setattr(cpp_loader, '_registered', lambda: False)
    shared = tmp_path / 'ext'
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv(cpp_loader.EXT_DIR_ENV, str(shared))
    name = cpp_loader.extension_name()
    planted = shared / name / f'{name}.so'
    planted.parent.mkdir()
    planted.write_bytes(b'not loaded')  # not a library: dlopen would fail differently
    with pytest.raises(PermissionError, match=rf'from {planted}: {shared} is writable by'):
        cpp_loader.load_scan_ops()
    planted.unlink()
    planted.parent.rmdir()
    with pytest.raises(PermissionError, match=f'{shared} is writable by every user'):
        cpp_loader.load_scan_ops()
    assert os.listdir(shared) == []  # nothing built there either
    planted.parent.mkdir()
    planted.write_bytes(b'not loaded')
    shared.chmod(0o1777)  # sticky, as /tmp: only the owner of an entry may replace it
    with pytest.raises(OSError, match='Could not load this library'):  # it is this user's
        cpp_loader.load_scan_ops()


@pytest.mark.parametrize('constant', ['B', 'C'])
def test_constant_b_or_c_is_a_clear_error(constant):
    """The kernel takes only time-varying B/C; constant ones are named, not mis-read."""
    x = make_inputs(length=8)
    x[constant] = torch.randn(8, 4)  # (D, N): constant over time
    with pytest.raises(ValueError, match=r'selective_scan_cpu: B and C must vary over time '
                       r'\(\(batch, \[G,\] N, L\)\)'):
        selective_scan_cpu(**x)


def test_channels_not_divisible_by_groups_is_a_clear_error():
    x = make_inputs(dim=8, length=5, groups=3)
    with pytest.raises(ValueError, match=r'channels \(8\) must be divisible by the B/C groups '
                       r'\(3\)'):
        selective_scan_torch(**x)


def _run_python(code, env_extra, timeout=300):
    env = dict(os.environ, **env_extra)
    env.pop('MMMT_SCAN_BACKEND', None)
    env.pop(cpp_loader.DISABLE_ENV, None)
    return subprocess.Popen([sys.executable, '-c', textwrap.dedent(code)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_build_failure_falls_back_with_one_warning(tmp_path):
    code = """
        import warnings, torch
        from mmmt.ops import selective_scan_fn, available_backends
        from mmmt.ops.selective_scan_torch import selective_scan_torch
        x = [torch.randn(1, 4, 9), torch.rand(1, 4, 9), -torch.rand(4, 16), torch.randn(1, 16, 9),
             torch.randn(1, 16, 9)]
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            a = selective_scan_fn(*x)
            b = selective_scan_fn(*x)
        msgs = [str(m.message) for m in w]
        assert len(msgs) == 1 and 'C++ selective scan unavailable' in msgs[0], msgs
        assert '\\n' not in msgs[0]
        assert w[0].filename == '<string>', w[0].filename  # names the caller's line
        assert torch.equal(a, b) and torch.allclose(a, selective_scan_torch(*x))
        assert available_backends() == ('torch',)
        print('OK')
    """
    # a compiler that does not exist (it is also part of the cache key, so nothing cached is
    # found); the extension directory is private to the test
    p = _run_python(code, {'CXX': str(tmp_path / 'no-such-c++'),
                           'MMMT_EXT_DIR': str(tmp_path / 'ext')})
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0 and out.strip().endswith('OK'), err[-3000:]


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='POSIX only')
def test_parallel_processes_build_once(tmp_path):
    """Two processes start on an empty extension directory at the same time: one compiles,
    the other waits on the lock and loads the result."""
    code = """
        import torch
        from mmmt.ops import selective_scan_fn
        from mmmt.ops.selective_scan import _pick_backend
        x = [torch.randn(1, 4, 9), torch.rand(1, 4, 9), -torch.rand(4, 16), torch.randn(1, 16, 9),
             torch.randn(1, 16, 9)]
        assert _pick_backend(x[0], x[3], x[4]) == 'cpp'
        selective_scan_fn(*x)
        print('OK')
    """
    env = {'MMMT_EXT_DIR': str(tmp_path / 'ext')}
    procs = [_run_python(code, env) for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0 and out.strip().endswith('OK'), err[-3000:]
    compiles = sum(err.count('mmmt: compiling') for _, err in results)
    assert compiles == 1, [err for _, err in results]
    builds = [d for d in os.listdir(tmp_path / 'ext') if not d.endswith('.lock')]
    assert len(builds) == 1


@pytest.mark.parametrize('batch,dim,length', [(0, 8, 5), (1, 8, 0), (2, 8, 1), (1, 0, 4)])
def test_empty_and_single_step_shapes(batch, dim, length):
    groups = 4 if dim else 1
    x = dict(u=torch.randn(batch, dim, length), delta=torch.rand(batch, dim, length),
             A=-torch.rand(dim, 16), B=torch.randn(batch, groups, 16, length),
             C=torch.randn(batch, groups, 16, length))
    args = {k: v.clone().requires_grad_(True) for k, v in x.items()}
    out, last = selective_scan_cpu(**args, return_last_state=True)
    (out.sum() + last.sum()).backward()
    ref, ref_last = selective_scan_torch(**x, return_last_state=True)
    assert out.shape == ref.shape and last.shape == ref_last.shape
    assert torch.allclose(out, ref, atol=1e-5) and torch.allclose(last, ref_last, atol=1e-5)
    for k, v in args.items():
        assert v.grad.shape == v.shape, k


def test_nan_propagates_like_the_recurrence():
    x = make_inputs(batch=1, dim=8, length=40, n=16, groups=4)
    x['delta'][0, 3, 10] = float('nan')
    x['u'][0, 5, 20] = float('nan')
    out = selective_scan_cpu(**x, delta_softplus=True)
    ref, _ = scan_oracle(**x, delta_softplus=True)
    assert torch.equal(out.isnan(), ref.isnan())
    assert (out[~out.isnan()].double() - ref[~ref.isnan()]).abs().max() <= 1e-5
