"""What the shipped NYUD and PASCAL-Context configs run: the training augmentation, stochastic
depth, input divisor and test-time views pinned to the reference recipe, and the runtime
cadence (docs/differences.md). These values change published numbers, but no functional test
would notice them (the pipeline tests use small images that never reach the crop size)."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmmt.registry import TRANSFORMS
from mmmt.utils import register_all_modules

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')
#: config -> the reference's TRAIN.SCALE (the crop) of that dataset
SHIPPED = {'mtmamba_swin-l_nyud.py': (448, 576), 'mtmamba_swin-l_pascal.py': (512, 512)}


@pytest.fixture(scope='module', params=sorted(SHIPPED))
def shipped(request):
    register_all_modules()
    return Config.fromfile(osp.join(CONFIGS, request.param)), SHIPPED[request.param]


def test_training_augmentation_is_the_references(shipped):
    cfg, crop = shipped
    steps = {step['type']: step for step in cfg.train_pipeline}
    assert [s['type'] for s in cfg.train_pipeline][:6] == [
        'LoadMultiTaskImage', 'LoadMultiTaskAnnotations', 'RandomScaling',
        'MultiTaskRandomCrop', 'MultiTaskRandomFlip', 'MultiTaskPhotoMetricDistortion']
    assert steps['RandomScaling']['scale_range'] == (0.5, 2.0)
    assert steps['MultiTaskRandomCrop']['crop_size'] == crop
    assert steps['MultiTaskRandomCrop']['cat_max_ratio'] == 0.75
    assert steps['MultiTaskRandomFlip']['prob'] == 0.5
    assert steps['CenterPad']['size'] == crop
    # the photometric distortion as built from the config (its defaults are the recipe's):
    # brightness +-32, contrast and saturation x U(0.5, 1.5), hue +-18 of 180
    distortion = TRANSFORMS.build(steps['MultiTaskPhotoMetricDistortion'])
    assert distortion.brightness_delta == 32
    assert (distortion.contrast_lower, distortion.contrast_upper) == (0.5, 1.5)
    assert (distortion.saturation_lower, distortion.saturation_upper) == (0.5, 1.5)
    assert distortion.hue_delta == 18


def test_stochastic_depth_and_input_divisor(shipped):
    cfg, _ = shipped
    model = cfg.model
    assert model.backbone.drop_path_rate == 0.1  # mmseg's Swin default, linspace over blocks
    assert model.decode_head.drop_path_rate == 0.2  # linspace(0.2, 0, 9) over the 9 slots
    assert model.data_preprocessor.size_divisor == 32  # the encoder downsamples 32x


def test_test_time_views(shipped):
    cfg, crop = shipped
    assert cfg.tta_scales == (0.75, 1.0, 1.25)
    views = cfg.tta_pipeline[-1]['transforms']
    assert [v['transforms'][0]['scale_range'] for v in views[0]] == [
        (0.75, 0.75), (1.0, 1.0), (1.25, 1.25)]
    assert [v['transforms'][0]['prob'] for v in views[1]] == [0.0, 1.0]
    assert views[3][0]['size'] == crop and views[3][0]['pad_gt'] is False


def test_testing_pads_to_the_crop_size_without_resizing(shipped):
    """Testing centre-pads the image (not the labels) to TEST.SCALE = TRAIN.SCALE: the padded
    border is part of what the network sees, so another size changes every prediction."""
    cfg, crop = shipped
    assert [s['type'] for s in cfg.test_pipeline] == [
        'LoadMultiTaskImage', 'LoadMultiTaskAnnotations', 'mmcv.Normalize', 'CenterPad',
        'AddIgnoreRegions', 'PackMultiTaskInputs']
    pad = cfg.test_pipeline[3]
    assert pad['size'] == crop and pad['pad_gt'] is False
    assert cfg.val_dataloader.dataset.pipeline == cfg.test_pipeline
    assert cfg.test_dataloader.dataset.pipeline == cfg.test_pipeline


def test_runtime_cadence_and_seeding(shipped):
    """Validation and checkpoints every 5000 iterations keeping the last 3 plus the final one
    (docs/differences.md: no selection on the test set), and every rank seeded with 0 as the
    reference does."""
    cfg, _ = shipped
    assert cfg.train_cfg.val_interval == 5000
    checkpoint = cfg.default_hooks.checkpoint
    assert (checkpoint.type, checkpoint.interval, checkpoint.max_keep_ckpts) == (
        'SafeCheckpointHook', 5000, 3)
    assert checkpoint.by_epoch is False and checkpoint.get('save_last', True) is True
    assert cfg.randomness == dict(seed=0, deterministic=False, diff_rank_seed=False)
