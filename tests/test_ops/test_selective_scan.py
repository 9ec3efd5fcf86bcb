import pytest
import torch
import torch.nn.functional as F

from mmmt.ops import selective_scan_fn, selective_scan_torch


def scan_oracle(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Float64 per-step recurrence, written independently of the implementation under test."""
    u, delta, A = u.double(), delta.double(), A.double()
    batch, dim, length = u.shape
    if delta_bias is not None:
        delta = delta + delta_bias.double()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    if B.dim() == 3:
        B = B[:, None]
    if C.dim() == 3:
        C = C[:, None]
    per_group = dim // B.shape[1]
    out = torch.zeros(batch, dim, length, dtype=torch.float64)
    last = torch.zeros(batch, dim, A.shape[1], dtype=torch.float64)
    for b in range(batch):
        for d in range(dim):
            g = d // per_group
            h = torch.zeros(A.shape[1], dtype=torch.float64)
            for t in range(length):
                dt = delta[b, d, t]
                h = torch.exp(dt * A[d]) * h + dt * B[b, g, :, t].double() * u[b, d, t]
                y = (h * C[b, g, :, t].double()).sum()
                if D is not None:
                    y = y + D[d].double() * u[b, d, t]
                if z is not None:
                    y = y * F.silu(z[b, d, t].double())
                out[b, d, t] = y
            last[b, d] = h
    return out, last


def make_inputs(batch=2, dim=8, length=37, n=4, groups=None, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    bc_shape = (batch, n, length) if groups is None else (batch, groups, n, length)
    return dict(
        u=r(batch, dim, length),
        delta=r(batch, dim, length) * 0.5,
        A=-torch.rand(dim, n, generator=g, dtype=dtype) * 2 - 0.1,
        B=r(*bc_shape),
        C=r(*bc_shape),
        D=r(dim),
        z=r(batch, dim, length),
        delta_bias=r(dim) * 0.1,
    )


@pytest.mark.parametrize('groups', [None, 1, 4])
@pytest.mark.parametrize('length', [1, 5, 37, 64])
def test_forward_matches_oracle(groups, length):
    x = make_inputs(length=length, groups=groups)
    ref, ref_last = scan_oracle(**x, delta_softplus=True)
    out, last = selective_scan_fn(**x, delta_softplus=True, return_last_state=True)
    assert out.dtype == torch.float32 and out.shape == (2, 8, length)
    assert (out.double() - ref).abs().max() <= 1e-5
    assert last.shape == (2, 8, 4)
    assert (last.double() - ref_last).abs().max() <= 1e-5


def test_optional_arguments_default_to_plain_scan():
    x = make_inputs(length=20)
    ref, _ = scan_oracle(x['u'], x['delta'].abs(), x['A'], x['B'], x['C'])
    out = selective_scan_fn(x['u'], x['delta'].abs(), x['A'], x['B'], x['C'])
    assert (out.double() - ref).abs().max() <= 1e-5


@pytest.mark.parametrize('chunk_size', [1, 3, 7, 50])
def test_chunking_does_not_change_result(chunk_size):
    x = make_inputs(length=41, groups=2)
    ref, ref_last = scan_oracle(**x, delta_softplus=True)
    out, last = selective_scan_torch(
        **x, delta_softplus=True, return_last_state=True, chunk_size=chunk_size)
    assert (out.double() - ref).abs().max() <= 1e-5
    assert (last.double() - ref_last).abs().max() <= 1e-5


def test_gradcheck_float64():
    x = make_inputs(batch=1, dim=4, length=9, n=3, groups=2, dtype=torch.float64)
    names = ['u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias']
    args = [x[k].clone().requires_grad_(True) for k in names]

    def fn(*a):
        return selective_scan_torch(*a, delta_softplus=True, chunk_size=3)

    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6)


def test_grad_matches_oracle_grad():
    x = make_inputs(batch=1, dim=4, length=12, n=3, groups=2, dtype=torch.float64)
    names = ['u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias']
    a1 = {k: x[k].clone().requires_grad_(True) for k in names}
    a2 = {k: x[k].clone().requires_grad_(True) for k in names}
    selective_scan_torch(**a1, delta_softplus=True).sum().backward()
    scan_oracle(**a2, delta_softplus=True)[0].sum().backward()
    for k in names:
        assert torch.allclose(a1[k].grad, a2[k].grad, atol=1e-9), k


def test_half_input_returns_input_dtype():
    x = make_inputs(length=10)
    out = selective_scan_fn(x['u'].bfloat16(), x['delta'], x['A'], x['B'], x['C'])
    assert out.dtype == torch.bfloat16


def test_forced_unknown_backend_is_rejected(monkeypatch):
    monkeypatch.setenv('MMMT_SCAN_BACKEND', 'fortran')
    x = make_inputs(length=4)
    with pytest.raises(ValueError, match='MMMT_SCAN_BACKEND'):
        selective_scan_fn(x['u'], x['delta'], x['A'], x['B'], x['C'])
