import math

import pytest
import torch
import torch.nn.functional as F

from mmmt.models.layers import (SS2D, CTMBlock, FinalPatchExpandX4, PatchExpand, STMBlock,
                                channels_to_space, cross_merge, cross_scan)


def test_channels_to_space_order():
    # channel k of input pixel (0, 0) holds the value k
    x = torch.arange(2 * 2 * 3, dtype=torch.float32).view(1, 1, 1, 12)
    y = channels_to_space(x, 2)
    assert y.shape == (1, 2, 2, 3)
    for p1 in range(2):
        for p2 in range(2):
            start = (2 * p1 + p2) * 3
            assert y[0, p1, p2].tolist() == list(range(start, start + 3))


def test_patch_expand_shapes_and_norm_after_rearrange():
    m = PatchExpand(8)
    x = torch.randn(2, 8, 3, 5)
    y = m(x)
    assert y.shape == (2, 6, 10, 4)
    expected = F.layer_norm(channels_to_space(m.expand(x.permute(0, 2, 3, 1)), 2), (4, ),
                            m.norm.weight, m.norm.bias)
    assert torch.allclose(y, expected)
    assert sum(p.numel() for p in m.parameters()) == 2 * 8 * 8 + 8
    with pytest.raises(ValueError, match='even'):
        PatchExpand(7)


def test_final_patch_expand_x4():
    m = FinalPatchExpandX4(6)
    y = m(torch.randn(1, 6, 2, 3))
    assert y.shape == (1, 8, 12, 6)
    assert m.expand.weight.shape == (96, 6)


def test_cross_scan_orders_and_merge_inverse():
    x = torch.arange(6.).view(1, 1, 2, 3)
    seqs = cross_scan(x)
    assert seqs[0, 0, 0].tolist() == [0, 1, 2, 3, 4, 5]  # row-major
    assert seqs[0, 1, 0].tolist() == [0, 3, 1, 4, 2, 5]  # column-major
    assert seqs[0, 2, 0].tolist() == [5, 4, 3, 2, 1, 0]
    assert seqs[0, 3, 0].tolist() == [5, 2, 4, 1, 3, 0]
    # each direction's output re-aligned to its pixel before the sum
    assert torch.equal(cross_merge(seqs, 2, 3), 4 * x.flatten(2))


def test_ss2d_init_matches_reference():
    torch.manual_seed(0)
    m = SS2D(64)
    assert m.d_inner == 128 and m.dt_rank == 4
    assert m.x_proj_weight.shape == (4, 4 + 32, 128)
    assert m.dt_projs_weight.shape == (4, 128, 4)
    assert m.A_logs.shape == (512, 16) and m.Ds.shape == (512, )
    dt = F.softplus(m.dt_projs_bias)
    assert dt.min() >= 0.001 - 1e-6 and dt.max() <= 0.1 + 1e-6
    # log-uniform: about half of the draws below the geometric mean 0.01
    assert 0.35 < (dt < 0.01).float().mean() < 0.65
    assert torch.allclose(m.A_logs, torch.log(torch.arange(1, 17.)).expand(512, 16))
    assert torch.equal(m.Ds, torch.ones(512))
    bound = 4**-0.5
    assert m.dt_projs_weight.abs().max() <= bound
    assert m.x_proj_weight.abs().max() <= 1 / math.sqrt(128)
    assert m.in_proj.bias is None and m.out_proj.bias is None
    assert m.in_proj.weight.shape == (256, 64)


def test_ss2d_param_count_formula():
    # the reference STM: 6C^2 + 16*C*r + 426*C per STM (incl. its LayerNorm)
    for c, expected in [(768, 4455936), (384, 1195776), (192, 339840)]:
        block = STMBlock(c)
        assert sum(p.numel() for p in block.parameters()) == expected


def test_ss2d_with_zero_b_c_returns_norm_of_four_u():
    m = SS2D(8, gated=False)
    with torch.no_grad():
        m.x_proj_weight[:, m.dt_rank:] = 0  # B = C = 0: the scan output is D * u
    u = torch.randn(2, m.d_inner, 3, 4)
    y = m.scan(u)
    assert torch.allclose(y, m.out_norm(4 * u.permute(0, 2, 3, 1)), atol=1e-5)


def directional_oracle(m: SS2D, u: torch.Tensor) -> torch.Tensor:
    """Per-direction, per-pixel float64 recurrence in explicit pixel orders."""
    _, d, h, w = u.shape
    u = u.double()[0]
    rows = [(i, j) for i in range(h) for j in range(w)]
    cols = [(i, j) for j in range(w) for i in range(h)]
    orders = [rows, cols, rows[::-1], cols[::-1]]
    A = -torch.exp(m.A_logs.double()).view(4, d, -1)
    out = torch.zeros(d, h, w, dtype=torch.float64)
    for k, order in enumerate(orders):
        wx = m.x_proj_weight[k].double()
        state = torch.zeros(d, A.shape[-1], dtype=torch.float64)
        for (i, j) in order:
            proj = wx @ u[:, i, j]
            dt_low, b, c = proj[:m.dt_rank], proj[m.dt_rank:m.dt_rank + 16], proj[m.dt_rank + 16:]
            dt = F.softplus(m.dt_projs_weight[k].double() @ dt_low +
                            m.dt_projs_bias[k].double())
            state = torch.exp(dt[:, None] * A[k]) * state + (dt * u[:, i, j])[:, None] * b
            out[:, i, j] += state @ c + m.Ds.double().view(4, d)[k] * u[:, i, j]
    return out


def test_ss2d_scan_directions_match_pixel_order_oracle():
    torch.manual_seed(1)
    m = SS2D(4, gated=False)
    u = torch.randn(1, m.d_inner, 3, 5)
    with torch.no_grad():
        y = m.scan(u)
        expected = m.out_norm(directional_oracle(m, u).permute(1, 2, 0).float()[None])
    assert torch.allclose(y, expected, atol=1e-4)


def gated_ss2d_oracle(m: SS2D, x: torch.Tensor) -> torch.Tensor:
    """The gated SS2D forward written out in float64 from its documented steps.

    in_proj, first half the main branch and second half the gate; depthwise 3x3 conv and SiLU;
    the four-direction scan (:func:`directional_oracle`, per pixel); LayerNorm over d_inner;
    times SiLU(gate); out_proj. Only the module's parameters are used, none of its methods.
    """
    d = m.d_inner
    x = x.double()
    xz = x @ m.in_proj.weight.double().T
    main, gate = xz[..., :d], xz[..., d:]
    u = F.conv2d(main.permute(0, 3, 1, 2), m.conv2d.weight.double(), m.conv2d.bias.double(),
                 padding=1, groups=d)
    u = u * torch.sigmoid(u)
    y = torch.stack([directional_oracle(m, u[b:b + 1]) for b in range(len(u))])
    y = y.permute(0, 2, 3, 1)  # (B, H, W, d_inner)
    mean = y.mean(-1, keepdim=True)
    var = (y - mean).pow(2).mean(-1, keepdim=True)
    y = (y - mean) / torch.sqrt(var + m.out_norm.eps) * m.out_norm.weight.double() \
        + m.out_norm.bias.double()
    return (y * gate * torch.sigmoid(gate)) @ m.out_proj.weight.double().T


def test_gated_ss2d_forward():
    torch.manual_seed(0)
    m = SS2D(8).eval()
    with torch.no_grad():  # away from the initial values, so that each one's role shows
        for p in (m.A_logs, m.Ds, m.conv2d.bias, m.out_norm.weight, m.out_norm.bias):
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(2, 3, 4, 8)  # H != W: row- and column-major orders differ
    with torch.no_grad():
        expected = gated_ss2d_oracle(m, x)
        y = m(x)
        y64 = m.double()(x.double())
    assert y.shape == x.shape and y64.dtype == torch.float64
    assert torch.allclose(y64, expected, rtol=0, atol=1e-9)
    assert torch.allclose(y.double(), expected, rtol=0, atol=1e-5)  # the float32 path
    # a float64 module scans with its float64 parameters (not rounded to float32 on the way)
    with torch.no_grad():
        for p in (m.A_logs, m.Ds, m.dt_projs_bias):
            p.add_(1e-9 * torch.randn_like(p))
        assert torch.allclose(m(x.double()), gated_ss2d_oracle(m, x), rtol=0, atol=1e-11)


def test_ungated_variant_has_no_gate_or_out_proj():
    m = SS2D(8, in_channels=24, gated=False)
    assert m.out_proj is None and m.in_proj.weight.shape == (16, 24)
    assert m(torch.randn(1, 2, 2, 24)).shape == (1, 2, 2, 16)
    with pytest.raises(ValueError, match='integer'):
        SS2D(8, ssm_ratio=1.5)


def test_stm_block_is_prenorm_residual():
    block = STMBlock(8)
    x = torch.randn(1, 3, 3, 8)
    assert torch.allclose(block(x), x + block.op(block.norm(x)))


def _ctm_inputs():
    torch.manual_seed(0)
    return {t: torch.randn(1, 3, 4, 8) for t in ('semseg', 'depth')}


def test_ctm_gate_multiplies_the_shared_term():
    block = CTMBlock(8, ['semseg', 'depth'])
    feats = _ctm_inputs()
    shared = block.op_share(block.norm_share(torch.cat([feats['semseg'], feats['depth']], -1)))
    out = block(feats)
    for t in ('semseg', 'depth'):
        n = block.norm[t](feats[t])
        g = torch.sigmoid(block.in_proj[t](n))
        expected = feats[t] + block.out_proj[t](g * shared + (1 - g) * block.op[t](n))
        assert torch.allclose(out[t], expected, atol=1e-6)
    # fixed gate 1 (Table 5 "shared"): only the shared term remains
    shared_only = CTMBlock(8, ['semseg', 'depth'], fixed_gate=1.0)
    shared_only.load_state_dict(block.state_dict(), strict=False)
    ref = shared_only(feats)
    for t in block.tasks:
        assert torch.allclose(ref[t], feats[t] + block.out_proj[t](shared), atol=1e-6)


def test_ctm_fixed_gate_zero_ignores_other_tasks():
    block = CTMBlock(8, ['semseg', 'depth'], fixed_gate=0.0)
    assert not hasattr(block, 'in_proj')
    feats = _ctm_inputs()
    out1 = block(feats)
    feats2 = dict(feats, depth=torch.randn(1, 3, 4, 8))
    out2 = block(feats2)
    assert torch.allclose(out1['semseg'], out2['semseg'])
    assert not torch.allclose(out1['depth'], out2['depth'])
