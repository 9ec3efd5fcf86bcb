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
