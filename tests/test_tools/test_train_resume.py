"""tools/train.py --resume continues the interrupted run's seed; what checkpoints record."""
import os
import os.path as osp

import torch

from mmmt.engine.hooks import CheckpointMetaHook
from mmmt.utils import load_checkpoint_file
from tests.gloo import free_port
from ..tool_loader import load_tool
from .conftest import NO_VAL, REPO, cli, run_tool, write_tiny_config


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
    assert meta['world_size'] == 1 and meta['batch_size_per_rank'] == 2
    assert meta['balancer'] == 'none'


def test_resume_on_another_number_of_gpus_is_warned(tmp_path, synthetic_nyud, capsys):
    """Trained on 2 ranks (gloo), resumed on 1: the sampler's shuffle is split by the world
    size, so the resumed run trained on other images than the interrupted one, and on half
    the global batch, without a word. The checkpoint now records the layout and the resume
    names both and what changes."""
    import sys
    cfg = write_tiny_config(tmp_path / 'cfg.py', synthetic_nyud, max_iters=2, val_interval=1,
                            extra=NO_VAL)
    work = tmp_path / 'work'
    run_tool(['bash', osp.join(REPO, 'tools', 'dist_train.sh'), cfg, '2', '--work-dir',
              str(work), '--cfg-options', 'train_cfg.max_iters=1'],
             env=dict(PYTHON=sys.executable, PORT=str(free_port())))
    meta = load_checkpoint_file(str(work / 'iter_1.pth'))['meta']
    assert (meta['world_size'], meta['batch_size_per_rank']) == (2, 2)
    status, out, err = cli(load_tool('tools', 'train'),
                           [cfg, '--work-dir', work, '--resume', work / 'iter_1.pth'], capsys)
    assert status == 0, err
    assert ('--resume: the checkpoint was trained with world size 2 x batch size 2 per rank '
            '(4 images per iteration), this run has world size 1 x batch size 2 per rank (2 '
            "images per iteration): the data order differs from the interrupted run's (the "
            'sampler splits its shuffle over the ranks, and each iteration takes world size x '
            'batch size images of it), and the effective batch size changes from 4 to 2 '
            'images, which the learning rate was tuned for') in out + err
    assert osp.isfile(work / 'iter_2.pth')


def test_layout_changes_that_are_warned():
    def change(world, batch, **meta):
        return CheckpointMetaHook.layout_change(meta, world, batch)

    # checkpoints saved before the layout was recorded, and resumes on the same layout: silent
    assert change(2, 2) is None and change(2, 2, mmmt_version='0.1.0') is None
    assert change(2, 2, world_size=2, batch_size_per_rank=2) is None
    assert change(2, None, world_size=2, batch_size_per_rank=2) is None
    # the same global batch on another number of GPUs: the data order alone
    text = change(4, 1, world_size=2, batch_size_per_rank=2)
    assert 'world size 2 x batch size 2 per rank (4 images per iteration)' in text
    assert 'world size 4 x batch size 1 per rank (4 images' in text
    assert text.endswith('images of it)')
    # another batch size per rank on as many GPUs: the images of each iteration change too
    assert 'effective batch size changes from 4 to 8' in change(
        2, 4, world_size=2, batch_size_per_rank=2)
    # no batch size known on one side: the world sizes alone
    assert change(1, 2, world_size=2).startswith(
        '--resume: the checkpoint was trained with world size 2, this run has world size 1: ')


def test_resume_with_another_balancer_is_warned(tmp_path, tiny_training, capsys):
    """`tiny_training` ran without a balancer; resumed under PCGrad its gradients changed from
    the interrupted run's without a word (and PCGrad -> none dropped PCGrad's state)."""
    split = tiny_training.copy_to(tmp_path / 'split')
    os.remove(osp.join(split, 'iter_4.pth'))
    status, out, err = cli(load_tool('tools', 'train'), [
        tiny_training.config, '--work-dir', split, '--resume', osp.join(split, 'iter_2.pth'),
        '--cfg-options', 'train_cfg.max_iters=3', 'optim_wrapper.type=MultiTaskOptimWrapper',
        'optim_wrapper.balancer.type=PCGrad'], capsys)
    assert status == 0, err
    assert ('--resume: the checkpoint was trained with no balancer (the summed task losses), '
            'this run has the PCGrad balancer (optim_wrapper.balancer): its gradients differ '
            "from the interrupted run's from here on") in out + err
    assert load_checkpoint_file(osp.join(split, 'iter_3.pth'))['meta']['balancer'] == 'PCGrad'


def test_balancer_changes_that_are_warned():
    change = CheckpointMetaHook.balancer_change
    assert change({}, 'PCGrad') is None  # saved before the balancer was recorded
    assert change(dict(balancer='PCGrad'), 'PCGrad') is None
    assert change(dict(balancer='none'), 'none') is None
    assert change(dict(balancer='PCGrad'), 'none') == (
        '--resume: the checkpoint was trained with the PCGrad balancer, this run has no '
        'balancer (the summed task losses) (optim_wrapper.balancer): its gradients differ from '
        "the interrupted run's from here on, and the state of PCGrad in the checkpoint is not "
        'restored')
    assert change(dict(balancer='MGDAUB'), 'IMTLG') == (
        '--resume: the checkpoint was trained with the MGDAUB balancer, this run has the IMTLG '
        "balancer (optim_wrapper.balancer): its gradients differ from the interrupted run's "
        'from here on')  # IMTLG has a state of its own: nothing said of MGDAUB's not restored


def test_only_a_resume_is_warned_of_another_layout_or_balancer():
    """``load_from`` (the weights alone, a new training) loads through the same hook call: it
    continues no training, so another layout or balancer is no change to warn of."""
    import types
    warnings = []
    meta = dict(world_size=2, batch_size_per_rank=2, balancer='PCGrad')
    runner = types.SimpleNamespace(world_size=1, _resume=False,
                                   logger=types.SimpleNamespace(warning=warnings.append))
    CheckpointMetaHook().after_load_checkpoint(runner, dict(meta=meta))
    assert warnings == []
    runner._resume = True
    CheckpointMetaHook().after_load_checkpoint(runner, dict(meta=meta))
    assert len(warnings) == 2
    assert warnings[0].startswith('--resume: the checkpoint was trained with world size 2, this '
                                  'run has world size 1: ')
    assert warnings[1].startswith('--resume: the checkpoint was trained with the PCGrad '
                                  'balancer, this run has no balancer')


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
