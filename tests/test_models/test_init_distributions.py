"""Initial parameter distributions (Mamba/VMamba's SSM init, see docs/differences.md), tested
as distributions: a Kolmogorov-Smirnov test against the intended law plus both ends of its
support, so that a wrong scale is caught from either side.

The draws are taken from the decoder as a config builds it and after ``init_weights()`` (what
the runner calls), so an init that a later step overrides is caught too.
"""
import math
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine import DefaultScope
from mmengine.config import Config
from scipy import stats

from mmmt.models.layers import SS2D
from mmmt.registry import MODELS

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')
P_MIN = 1e-3  # fixed seeds: a correct init passes with a wide margin, a wrong scale gives ~0


def check_uniform(values, low, high):
    values = np.asarray(values, dtype=np.float64).ravel()
    width = high - low
    assert values.min() >= low - 1e-6 and values.max() <= high + 1e-6
    # both bounds are reached (a narrower law would leave a gap at either end)
    assert values.min() < low + 0.02 * width and values.max() > high - 0.02 * width
    assert stats.kstest(values, 'uniform', args=(low, width)).pvalue > P_MIN


@pytest.fixture(scope='module')
def decoder_ss2d():
    """The SS2D operators of the demo config's decoder, after init_weights()."""
    torch.manual_seed(0)
    cfg = Config.fromfile(osp.join(CONFIGS, 'demo', 'mtmamba-tiny_synthetic-nyud.py'))
    with DefaultScope.overwrite_default_scope('mmmt'):
        head = MODELS.build(cfg.model.decode_head)
    head.init_weights()
    modules = [m for m in head.modules() if isinstance(m, SS2D)]
    assert modules
    return modules


def test_dt_projection_weight_is_uniform_within_the_rank_bound(decoder_ss2d):
    by_rank = {}
    for m in decoder_ss2d:
        by_rank.setdefault(m.dt_rank, []).append(m.dt_projs_weight.detach().numpy().ravel())
    for rank, draws in by_rank.items():
        bound = rank**-0.5
        check_uniform(np.concatenate(draws), -bound, bound)


def test_dt_bias_gives_log_uniform_step_sizes(decoder_ss2d):
    dt = torch.cat([F.softplus(m.dt_projs_bias.detach().double()).ravel() for m in decoder_ss2d])
    check_uniform(torch.log(dt).numpy(), math.log(1e-3), math.log(0.1))


def test_x_projection_is_linear_default_init(decoder_ss2d):
    for d_inner in {m.d_inner for m in decoder_ss2d}:
        draws = np.concatenate([m.x_proj_weight.detach().numpy().ravel() for m in decoder_ss2d
                                if m.d_inner == d_inner])
        bound = d_inner**-0.5  # kaiming_uniform(a=sqrt(5)) of nn.Linear(d_inner, ...)
        check_uniform(draws, -bound, bound)


def test_a_and_d_are_s4d_real(decoder_ss2d):
    for m in decoder_ss2d:
        expected = torch.log(torch.arange(1, m.d_state + 1.)).expand_as(m.A_logs)
        assert torch.allclose(m.A_logs.detach(), expected)
        assert torch.equal(m.Ds.detach(), torch.ones_like(m.Ds))


def test_dt_bias_floor():
    torch.manual_seed(0)
    m = SS2D(32, dt_min=1e-6, dt_max=1e-5, dt_init_floor=1e-4)
    np.testing.assert_allclose(F.softplus(m.dt_projs_bias.detach().double()).numpy(), 1e-4,
                               rtol=1e-6)


def test_mtmamba_plus_head_convs_are_truncated_normal():
    torch.manual_seed(0)
    cfg = Config.fromfile(osp.join(CONFIGS, 'mtmamba_plus', 'mtmamba-plus_swin-l_nyud.py'))
    head_cfg = dict(cfg.model.decode_head, in_channels=(32, 64, 128, 256),
                    norm_cfg=dict(type='BN', requires_grad=True))
    with DefaultScope.overwrite_default_scope('mmmt'):
        head = MODELS.build(head_cfg)
    head.init_weights()
    w = torch.cat([head.final_conv[t].conv.weight.detach().ravel() for t in head.tasks])
    w = w.double().numpy()
    # mmengine's trunc_normal_ cuts at +-2 (absolute), far outside 0.02's +-100 sigma
    assert stats.kstest(w, 'norm', args=(0, 0.02)).pvalue > P_MIN
