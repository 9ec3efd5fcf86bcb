"""The MTMamba head inside a plain mmseg config (configs/mmseg_examples/), trained and validated
with mmseg's own EncoderDecoder, pipeline, ADE20KDataset and IoUMetric on a tiny ADE20K layout."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine import DefaultScope
from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image

CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs', 'mmseg_examples',
    'mtmamba_swin-t_ade20k-512x512.py')


def make_ade20k(root, n_train=4, n_val=2, size=(72, 88), seed=0):
    """ADEChallengeData2016 layout: images/<split>/*.jpg, annotations/<split>/*.png.

    Labels are 0..150 with 0 = "other" (ignored with reduce_zero_label). Each image is a few
    flat-coloured rectangles whose colour is a function of the class, plus noise.
    """
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, size=(151, 3))
    for split, n in (('training', n_train), ('validation', n_val)):
        for i in range(n):
            h, w = size
            label = np.zeros((h, w), np.uint8)
            for cls in rng.choice(np.arange(1, 151), size=4, replace=False):
                y0, x0 = rng.integers(0, h - 16), rng.integers(0, w - 16)
                dy, dx = rng.integers(16, h - y0 + 1), rng.integers(16, w - x0 + 1)
                label[y0:y0 + dy, x0:x0 + dx] = cls
            img = palette[label] + rng.normal(0, 8, size=(h, w, 3))
            img = np.clip(img, 0, 255).astype(np.uint8)
            name = f'ADE_{split[:5]}_{i:08d}'
            for sub, arr, ext in (('images', img, 'jpg'), ('annotations', label, 'png')):
                d = root / sub / split
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(d / f'{name}.{ext}')
    return str(root)


def tiny_config(data_root, work_dir, max_iters=3):
    """The example config with a tiny Swin/decoder, 64x64 crops and no dataloader workers."""
    cfg = Config.fromfile(CONFIG)
    crop = (64, 64)
    cfg.work_dir = str(work_dir)
    cfg.model.data_preprocessor.size = crop
    cfg.model.backbone.update(
        arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]), window_size=4,
        drop_path_rate=0.0, init_cfg=None)
    cfg.model.decode_head.update(in_channels=(16, 32, 64, 128), num_stm_blocks=1,
                                 drop_path_rate=0.0)
    cfg.model.test_cfg = dict(mode='slide', crop_size=crop, stride=(48, 48))
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='RandomResize', scale=(88, 72), ratio_range=(0.75, 1.25), keep_ratio=True),
        dict(type='RandomCrop', crop_size=crop, cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackSegInputs'),
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(88, 72), keep_ratio=True),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='PackSegInputs'),
    ]
    for loader, pipeline in (('train_dataloader', train_pipeline),
                             ('val_dataloader', test_pipeline)):
        cfg[loader].update(batch_size=2, num_workers=0, persistent_workers=False)
        cfg[loader].dataset.update(data_root=data_root, pipeline=pipeline)
    cfg.val_dataloader.batch_size = 1
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.update(max_iters=max_iters, val_interval=max_iters)
    cfg.param_scheduler = [dict(type='PolyLR', power=1.0, begin=0, end=max_iters,
                                by_epoch=False)]
    cfg.optim_wrapper.optimizer.lr = 1e-3
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = max_iters
    cfg.env_cfg.cudnn_benchmark = False
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    return cfg


@pytest.fixture
def mmseg_scope():
    """Run under mmseg's default scope (as the config says), restoring the previous after."""
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


def test_example_config_is_a_plain_mmseg_config():
    cfg = Config.fromfile(CONFIG)
    assert cfg.default_scope == 'mmseg'
    assert cfg.custom_imports.imports == ['mmmt.models']
    assert cfg.model.type == 'EncoderDecoder'
    assert cfg.model.data_preprocessor.type == 'SegDataPreProcessor'
    assert cfg.model.decode_head.type == 'mmmt.MTMambaSegHead'
    assert cfg.model.decode_head.num_classes == 150
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    assert cfg.train_dataloader.dataset.data_root == 'data/ade/ADEChallengeData2016'
    assert cfg.val_evaluator.type == 'IoUMetric'
    assert cfg.train_pipeline[-1].type == 'PackSegInputs'


def test_full_size_model_builds_and_follows_the_encoder_decoder_contract(mmseg_scope):
    from mmseg.models import EncoderDecoder
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.init_cfg = None  # no download in tests
    model = MODELS.build(cfg.model)
    assert isinstance(model, EncoderDecoder)
    assert model.num_classes == 150 and model.out_channels == 150
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 64, 96), mode='tensor')
        assert logits.shape == (1, 150, 64, 96)
        meta = dict(ori_shape=(64, 96), img_shape=(64, 96), pad_shape=(64, 96),
                    padding_size=[0, 0, 0, 0])
        preds = model(torch.randn(1, 3, 64, 96), [SegDataSample(metainfo=meta)],
                      mode='predict')
    assert isinstance(preds[0], SegDataSample)
    assert preds[0].pred_sem_seg.data.shape == (1, 64, 96)
    assert preds[0].seg_logits.data.shape == (150, 64, 96)


@pytest.mark.parametrize('head', ['mmmt.MTMambaHead', 'mmmt.MTMambaPlusHead'])
def test_multi_task_head_in_mmseg_encoder_decoder_names_the_fix(head, mmseg_scope):
    """mmseg's EncoderDecoder reads decode_head.num_classes while it builds: a multi-task head
    there said only "'MTMambaHead' object has no attribute 'num_classes'"."""
    from mmseg.registry import MODELS

    from mmmt.utils.errors import UserInputError
    cfg = tiny_config('unused', 'unused')
    decode_head = dict(type=head, in_channels=(16, 32, 64, 128), num_stm_blocks=1,
                       tasks=dict(semseg=40, depth=1))
    cfg.model.decode_head = decode_head
    with pytest.raises(UserInputError) as info:
        MODELS.build(cfg.model)
    message = str(info.value)
    assert "has no single num_classes, which mmseg's EncoderDecoder needs" in message
    assert "type='mmmt.MultiTaskEncoderDecoder'" in message
    assert "type='mmmt.MTMambaSegHead', num_classes=" in message
    assert '(semseg, depth)' in message


def test_trains_and_validates_with_mmseg_components(tmp_path, mmseg_scope):
    from mmseg.datasets import ADE20KDataset
    from mmseg.evaluation import IoUMetric
    from mmseg.models import EncoderDecoder, SegDataPreProcessor

    data_root = make_ade20k(tmp_path / 'ADEChallengeData2016')
    cfg = tiny_config(data_root, tmp_path / 'work', max_iters=3)
    runner = Runner.from_cfg(cfg)
    assert isinstance(runner.model, EncoderDecoder)
    assert isinstance(runner.model.data_preprocessor, SegDataPreProcessor)
    before = {k: v.clone() for k, v in runner.model.decode_head.state_dict().items()}
    runner.train()

    assert isinstance(runner.train_dataloader.dataset, ADE20KDataset)
    assert len(runner.train_dataloader.dataset) == 4
    assert isinstance(runner.val_evaluator.metrics[0], IoUMetric)
    after = runner.model.decode_head.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), 'head did not train'
    assert osp.isfile(osp.join(cfg.work_dir, 'iter_3.pth'))

    metrics = runner.val_loop.run()
    assert set(metrics) >= {'aAcc', 'mIoU', 'mAcc'}
    for value in metrics.values():
        assert np.isfinite(value) and 0 <= value <= 100
