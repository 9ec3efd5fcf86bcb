"""The Cityscapes configs of MTMamba and MTMamba++: the reference recipe, the heads' output
shapes (19 + 1 channels), and a few iterations of training and testing on a synthetic
Cityscapes layout with a tiny model."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmmt.registry import MODELS
from mmmt.testing.synthetic_cityscapes import generate_cityscapes
from .conftest import REPO

CONFIGS = dict(
    mtmamba=osp.join(REPO, 'configs', 'mtmamba',
                     'mtmamba_swin-l_8xb1-40k_cityscapes-512x1024.py'),
    mtmamba_plus=osp.join(REPO, 'configs', 'mtmamba_plus',
                          'mtmamba-plus_swin-l_8xb1-40k_cityscapes-512x1024.py'))
HEAD_CHANNELS = dict(mtmamba=192, mtmamba_plus=96)  # the channels final_project reads


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_recipe_follows_reference(name):
    cfg = Config.fromfile(CONFIGS[name])
    head = cfg.model.decode_head
    assert head.tasks == dict(semseg=19, depth=1)
    assert head.loss_combiner.scheme == 'log'
    assert head.loss_combiner.weights == dict(semseg=1.0, depth=1.0)
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.optimizer.lr == 1e-4
    assert cfg.optim_wrapper.optimizer.weight_decay == 1e-6
    assert cfg.param_scheduler[0].type == 'PolyLR' and cfg.param_scheduler[0].power == 0.9
    assert cfg.train_cfg.max_iters == 40000
    assert cfg.train_dataloader.batch_size == 1  # x 8 GPUs
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        types = [t.type for t in loader.dataset.pipeline]
        assert types == ['LoadMultiTaskImage', 'LoadMultiTaskAnnotations', 'mmcv.Resize',
                         'mmcv.Normalize', 'AddIgnoreRegions', 'PackMultiTaskInputs']
        assert loader.dataset.pipeline[2].scale == (1024, 512)
        assert loader.dataset.sky_label_id == 23
    assert cfg.test_evaluator.tasks.depth == dict(min_depth=0.0, max_depth=80.0)
    assert cfg.test_evaluator.delta_m_baselines == dict(semseg=80.0, depth=1.0)


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_heads_have_the_reference_output_shapes(name):
    cfg = Config.fromfile(CONFIGS[name])
    if 'norm_cfg' in cfg.model.decode_head:
        cfg.model.decode_head.norm_cfg = dict(type='BN')  # SyncBN needs a process group
    torch.manual_seed(0)
    head = MODELS.build(cfg.model.decode_head).eval()
    c = HEAD_CHANNELS[name]
    assert head.final_project['semseg'].weight.shape == (19, c, 1, 1)
    assert head.final_project['depth'].weight.shape == (1, c, 1, 1)
    # Swin-L features of a 64x128 image (strides 4..32): logits at the input size
    feats = [torch.randn(1, ch, 64 // s, 128 // s)
             for ch, s in zip((192, 384, 768, 1536), (4, 8, 16, 32))]
    with torch.no_grad():
        out = head(feats)
    assert out['semseg'].shape == (1, 19, 64, 128)
    assert out['depth'].shape == (1, 1, 64, 128)


def tiny_config(name, data_root, work_dir):
    """The real config with a tiny Swin and head, 32x64 inputs, 2 iterations."""
    cfg = Config.fromfile(CONFIGS[name])
    cfg.work_dir = str(work_dir)
    cfg.model.backbone = dict(
        type='mmpretrain.SwinTransformer', arch=dict(embed_dims=16, depths=[1, 1, 1, 1],
                                                     num_heads=[1, 1, 1, 1]),
        window_size=4, out_indices=(0, 1, 2, 3), pad_small_map=True)
    head = cfg.model.decode_head
    head.update(in_channels=(16, 32, 64, 128), num_stm_blocks=1, drop_path_rate=0.0)
    if name == 'mtmamba_plus':
        head.update(head_channels=8, norm_cfg=dict(type='BN'))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        loader.dataset.data_root = data_root
        loader.dataset.pipeline[2].scale = (64, 32)  # 64x128 images -> 32x64 inputs
    cfg.train_cfg.update(max_iters=2, val_interval=2)
    cfg.param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=3,
                                by_epoch=False)]
    cfg.optim_wrapper.optimizer.lr = 1e-3
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1
    cfg.env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
    return cfg


@pytest.fixture(scope='module')
def synthetic_cityscapes(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic_cityscapes'))
    generate_cityscapes(root, 4, 2, seed=1, size=(64, 128))
    return root


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_train_and_test_on_synthetic_cityscapes(name, synthetic_cityscapes, tmp_path):
    runner = Runner.from_cfg(tiny_config(name, synthetic_cityscapes, tmp_path))
    runner.train()
    assert osp.isfile(tmp_path / 'iter_2.pth')
    metrics = runner.test()
    for key in ('semseg/mIoU', 'depth/rmse', 'multi_task/delta_m'):
        assert key in metrics and metrics[key] == metrics[key], key  # present, not NaN
    assert 0.0 <= metrics['semseg/mIoU'] <= 100.0 and metrics['depth/rmse'] > 0
    # predictions come back at the labels' full 64x128 while the model saw 32x64
    batch = next(iter(runner.test_dataloader))
    assert batch['inputs'][0].shape[-2:] == (32, 64)
    runner.model.eval()
    with torch.no_grad():
        out = runner.model.test_step(batch)
    assert out[0].pred_semseg.data.shape == (1, 64, 128)
    assert out[0].pred_depth.data.shape == (1, 64, 128)
