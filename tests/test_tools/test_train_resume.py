"""tools/train.py --resume continues the interrupted run's seed; what checkpoints record."""
import os
import os.path as osp

import torch

from mmmt.utils import load_checkpoint_file
from ..tool_loader import load_tool


def test_resume_with_another_seed_continues_the_checkpoints_seed(tmp_path, tiny_training):
    """`tiny_training` ran with --seed 0. Resumed from iteration 2 with --seed 5 (a re-queued
    job with another command line), mmengine used to restore seed 0 only after the sampler had
    shuffled with 5's seed: iterations 3 and 4 trained on other images and every weight
    differed. The checkpoint's seed now applies before anything is built."""
    split = tiny_training.copy_to(tmp_path / 'split')
    os.remove(osp.join(split, 'iter_4.pth'))
    load_tool('tools', 'train').main([
        tiny_training.config, '--work-dir', split, '--deterministic', '--seed', '5',
        '--resume', osp.join(split, 'iter_2.pth'), '--cfg-options', 'log_level=WARNING'])
    straight = load_checkpoint_file(osp.join(tiny_training.work_dir, 'iter_4.pth'))
    resumed = load_checkpoint_file(osp.join(split, 'iter_4.pth'))
    assert resumed['meta']['seed'] == 0
    for key, value in straight['state_dict'].items():
        assert torch.equal(value, resumed['state_dict'][key]), key


def test_checkpoints_record_the_mmmt_version(tiny_training):
    import mmmt
    meta = load_checkpoint_file(osp.join(tiny_training.work_dir, 'iter_2.pth'))['meta']
    assert meta['mmmt_version'] == mmmt.__version__
    assert meta['seed'] == 0 and 'cfg' in meta


def test_checkpoints_inside_accumulation_windows_are_warned():
    """Measured: accumulative_counts=2 with checkpoints every 3 iterations, resumed from
    iter_3.pth, ended with Adam moments up to 2e-3 away from the uninterrupted run's (the
    checkpoint did not hold the window's first gradient)."""
    from mmengine.config import Config
    train = load_tool('tools', 'train')

    def cfg(interval, counts, by_epoch=False):
        return Config(dict(optim_wrapper=dict(type='OptimWrapper', accumulative_counts=counts),
                           default_hooks=dict(checkpoint=dict(interval=interval,
                                                              by_epoch=by_epoch))))

    assert train.check_accumulation(cfg(3, 2)) == (
        'default_hooks.checkpoint.interval=3 is not a multiple of '
        'optim_wrapper.accumulative_counts=2: checkpoints are saved inside accumulation '
        'windows, whose gradients they do not hold, so a --resume from one trains on '
        'differently from the uninterrupted run. Set the interval to a multiple of 2')
    assert train.check_accumulation(cfg(4, 2)) is None
    assert train.check_accumulation(cfg(3, 1)) is None
    assert train.check_accumulation(cfg(3, 2, by_epoch=True)) is None  # epochs: not iterations
