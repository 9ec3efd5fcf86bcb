"""The training schedules follow the reference's per-iteration polynomial decay."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import PolyLR

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')


def lrs_of(scheduler_cfg, num_updates):
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    cfg = {k: v for k, v in scheduler_cfg.items() if k != 'type'}
    scheduler = PolyLR(optimizer, **cfg)
    lrs = []
    for _ in range(num_updates):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize('config', ['mtmamba_swin-l_nyud.py', 'mtmamba_swin-l_pascal.py',
                                    'mtmamba_plus/mtmamba-plus_swin-l_nyud.py'])
def test_poly_decay_reaches_the_last_update_like_the_reference(config):
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    (scheduler, ) = cfg.param_scheduler
    max_iters = cfg.train_cfg.max_iters
    assert scheduler.type == 'PolyLR' and scheduler.power == 0.9 and scheduler.eta_min == 0
    # the same schedule shrunk to 20 iterations: lr_i = (1 - i / T) ** 0.9 for i = 0 .. T - 1
    small = dict(scheduler, end=scheduler.end - max_iters + 20)
    expected = [(1 - i / 20)**0.9 for i in range(20)]
    assert lrs_of(small, 20) == pytest.approx(expected, rel=1e-9)
