"""The optimisation recipe of every shipped config, value by value (reference recipes: D.3 and
A.10 of the reference, see docs/differences.md).

The optimizer is also built through mmengine on a small module, so that what a run gets (one
parameter group, the lr and weight decay on every parameter) is pinned, not only the config
text.
"""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')

#: optimizer settings, (max_iters, per-GPU batch, number of GPUs the recipe is for)
MTMAMBA = dict(optim=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), eps=1e-8,
                          weight_decay=1e-5, amsgrad=False),
               iters=50000, batch=1)
RECIPES = {
    'mtmamba_swin-l_nyud.py': MTMAMBA,
    'mtmamba_swin-l_pascal.py': MTMAMBA,
    'mtmamba_swin-t_nyud.py': MTMAMBA,
    'mtmamba_plus/mtmamba-plus_swin-l_nyud.py': dict(
        optim=dict(MTMAMBA['optim'], lr=2e-5, weight_decay=1e-6), iters=40000, batch=1),
    'mtmamba_plus/mtmamba-plus_swin-l_pascal.py': dict(
        optim=dict(MTMAMBA['optim'], lr=8e-5, weight_decay=1e-6), iters=40000, batch=1),
    # Cityscapes, both models: AdamW 1e-4, weight decay 1e-6, poly, 40k iterations of 1 x 8
    'mtmamba/mtmamba_swin-l_8xb1-40k_cityscapes-512x1024.py': dict(
        optim=dict(MTMAMBA['optim'], weight_decay=1e-6), iters=40000, batch=1),
    'mtmamba_plus/mtmamba-plus_swin-l_8xb1-40k_cityscapes-512x1024.py': dict(
        optim=dict(MTMAMBA['optim'], weight_decay=1e-6), iters=40000, batch=1),
    'mtmamba/mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py': MTMAMBA,
    'mtmamba/mtmamba_swin-l_8xb1-50k_pascal-context-512x512.py': MTMAMBA,
    'mtmamba/mtmamba_swin-t_8xb1-50k_nyudv2-448x576.py': MTMAMBA,
    'mtmamba_plus/mtmamba-plus_swin-l_8xb1-40k_nyudv2-448x576.py': dict(
        optim=dict(MTMAMBA['optim'], lr=2e-5, weight_decay=1e-6), iters=40000, batch=1),
    'mtmamba_plus/mtmamba-plus_swin-l_8xb1-40k_pascal-context-512x512.py': dict(
        optim=dict(MTMAMBA['optim'], lr=8e-5, weight_decay=1e-6), iters=40000, batch=1),
    'demo/mtmamba-tiny_synthetic-nyud.py': dict(
        optim=dict(type='AdamW', lr=1e-3, weight_decay=1e-4), iters=600, batch=4),
}
RECIPES.update({osp.relpath(p, CONFIGS): MTMAMBA
                for p in glob.glob(osp.join(CONFIGS, 'ablations', '*.py'))})


def test_every_shipped_config_has_a_recipe_here():
    shipped = {osp.relpath(p, CONFIGS) for p in glob.glob(osp.join(CONFIGS, '**', '*.py'),
                                                          recursive=True)
               if '_base_' not in p and 'mmseg_examples' not in p}
    assert shipped == set(RECIPES)


@pytest.mark.parametrize('config', sorted(RECIPES))
def test_recipe_values(config):
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    recipe = RECIPES[config]
    wrapper = cfg.optim_wrapper
    assert wrapper.type == 'OptimWrapper'
    assert wrapper.get('clip_grad') is None and 'paramwise_cfg' not in wrapper
    assert 'accumulative_counts' not in wrapper  # fp32, no AMP, one update per batch
    optimizer = dict(wrapper.optimizer)
    for key, value in recipe['optim'].items():
        got = tuple(optimizer[key]) if key == 'betas' else optimizer[key]
        assert got == value, (key, got)
    # one poly decay to 0 stepped per iteration, lr_i = base (1 - i / T) ** 0.9, no warm-up
    (scheduler, ) = cfg.param_scheduler
    iters = recipe['iters']
    assert dict(scheduler) == dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0,
                                   end=iters + 1, by_epoch=False)
    assert cfg.train_cfg.type == 'IterBasedTrainLoop' and cfg.train_cfg.max_iters == iters
    assert cfg.train_dataloader.batch_size == recipe['batch']
    if recipe['batch'] == 1:  # the reference's 8 GPUs x 1 image, never rescaled
        assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=8)
        assert cfg.randomness.seed == 0


@pytest.mark.parametrize('config', ['mtmamba_swin-l_nyud.py',
                                    'mtmamba_plus/mtmamba-plus_swin-l_pascal.py'])
def test_built_optimizer_has_one_group_with_decay_everywhere(config):
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    assert type(optimizer) is torch.optim.AdamW
    (group, ) = optimizer.param_groups
    assert len(group['params']) == 4  # weights, biases and norm parameters alike
    expected = RECIPES[config]['optim']
    assert group['lr'] == expected['lr'] and group['weight_decay'] == expected['weight_decay']
    assert group['betas'] == expected['betas'] and group['eps'] == expected['eps']


def test_mmseg_example_keeps_mmsegs_ade20k_recipe():
    cfg = Config.fromfile(osp.join(CONFIGS, 'mmseg_examples', 'mtmamba_swin-t_ade20k-512x512.py'))
    assert dict(cfg.optim_wrapper.optimizer) == dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999),
                                                     weight_decay=0.01)
    assert [dict(s) for s in cfg.param_scheduler] == [
        dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
        dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False)
    ]
    assert cfg.train_cfg.max_iters == 160000 and cfg.train_dataloader.batch_size == 2
