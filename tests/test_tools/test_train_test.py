"""End-to-end tests of tools/train.py, tools/test.py and tools/dist_train.sh on the CPU."""
import glob
import os
import os.path as osp
import pickle

import numpy as np
import pytest
import torch

from mmmt.utils import UntrustedCheckpointError, load_checkpoint_file
from tests.gloo import free_port
from ..tool_loader import load_tool
from .conftest import NO_VAL, REPO, cli, python_tool, run_tool, write_tiny_config


def state_of(ckpt_path):
    ckpt = load_checkpoint_file(ckpt_path, map_location='cpu')
    return ckpt['state_dict'], ckpt['optimizer']


def test_resume_is_exact(tmp_path, tiny_training):
    """A 4-iteration run stopped after its checkpoint at iteration 2 (as a killed job leaves
    it) and resumed ends with the straight run's weights and optimizer state."""
    split = tiny_training.copy_to(tmp_path / 'split')
    os.remove(osp.join(split, 'iter_4.pth'))
    with open(osp.join(split, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(split, 'iter_2.pth'))
    out = python_tool('train.py', tiny_training.config, '--work-dir', split, '--deterministic',
                      '--seed', '0', '--resume')
    assert 'resumed epoch: 0, iter: 2' in out.stdout + out.stderr
    params_a, optim_a = state_of(osp.join(tiny_training.work_dir, 'iter_4.pth'))
    params_b, optim_b = state_of(osp.join(split, 'iter_4.pth'))
    assert params_a.keys() == params_b.keys()
    for key in params_a:
        assert torch.equal(params_a[key], params_b[key]), key
    for sa, sb in zip(optim_a['state'].values(), optim_b['state'].values()):
        assert torch.equal(sa['exp_avg'], sb['exp_avg'])


class Payload:
    """An arbitrary class: unpickling it needs full trust."""


def test_untrusted_checkpoint_is_refused_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv('MMMT_TRUST_CHECKPOINTS', raising=False)
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': Payload()}, path)
    with pytest.raises(UntrustedCheckpointError, match='--trust-checkpoint'):
        load_checkpoint_file(str(path))
    assert isinstance(load_checkpoint_file(str(path), trust=True)['meta'], Payload)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_checkpoint_file(str(tmp_path / 'missing.pth'))


# replaces the tiny config's model override: the demo's backbone (embed 32) with an MTMamba++
# head whose BN is SyncBN, as in the 8-GPU recipes
SYNC_BN_HEAD = """
model = dict(decode_head=dict(_delete_=True, type='MTMambaPlusDecodeHead',
                              in_channels=(32, 64, 128, 256),
                              tasks=dict(semseg=40, depth=1, normals=3, edge=1),
                              head_channels=8, norm_cfg=dict(type='SyncBN'),
                              loss_combiner=dict(type='MultiTaskLoss', scheme='log')))
"""


# validation on 3 images (the first of the train split) over 2 ranks, every one drawn: the
# sampler gives rank 1 a repeat of the first image to match rank 0's two
ODD_VAL_DRAWN = """
val_dataloader['dataset'].update(split='train', indices=3)
default_hooks.update(visualization=dict(draw=True, interval=1))
"""


@pytest.mark.parametrize('head', ['mtmamba', 'mtmamba_plus_sync_bn'])
def test_dist_train_two_processes_on_cpu_with_validation(tmp_path, synthetic_nyud, head):
    cfg = write_tiny_config(tmp_path / 'cfg.py', synthetic_nyud, max_iters=2, val_interval=2,
                            extra=SYNC_BN_HEAD if head == 'mtmamba_plus_sync_bn' else
                            ODD_VAL_DRAWN)
    import sys
    result = run_tool(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), cfg, '2', '--work-dir',
         str(tmp_path / 'work')],
        env=dict(PYTHON=sys.executable, PORT=str(free_port())))
    log = result.stdout + result.stderr
    assert 'gloo' in log
    assert 'Iter(val)' in log and 'semseg/mIoU' in log
    assert osp.isfile(tmp_path / 'work' / 'iter_2.pth')
    if head == 'mtmamba_plus_sync_bn':  # SyncBN has no CPU implementation
        assert 'SyncBN layers of the model become BN' in log
        return
    # each image evaluated and drawn once: rank 1's too (only rank 0's used to be saved),
    # the repeat neither counted nor drawn again (it was refused as an existing file)
    assert 'over 3 images' in log
    with open(osp.join(synthetic_nyud, 'gt_sets', 'train.txt')) as f:
        first = f.read().split()[:3]
    pictures = glob.glob(osp.join(tmp_path, 'work', '*', 'vis_data', 'vis_image', '*'))
    assert sorted(map(osp.basename, pictures)) == [f'val_{i}_iter2.png' for i in sorted(first)]


# notices a user can do nothing about, fixed (mmseg's on draw=False, mmmt's default) or dropped
# by the tools (mmengine's on the FileClient it builds at each checkpoint save)
HARMLESS_NOTICES = ('The draw is False', '"FileClient" will be deprecated',
                    '"HardDiskBackend" is the alias', 'The prefix is not set in metric')


def test_test_py_writes_a_visualization_per_image(tmp_path, synthetic_nyud, tiny_training):
    cfg = tiny_training.config
    work = tiny_training.copy_to(tmp_path / 'work')
    ckpt = osp.join(work, 'iter_4.pth')
    training_config = (tmp_path / 'work' / 'cfg.py').read_text()
    show_dir = tmp_path / 'vis'
    out_pkl = tmp_path / 'preds.pkl'
    result = python_tool('test.py', cfg, ckpt, '--work-dir', work, '--show-dir', show_dir,
                         '--out', out_pkl)
    assert 'semseg/mIoU' in result.stdout + result.stderr
    for log in (tiny_training.log, result.stdout + result.stderr):
        assert 'Saving checkpoint' in log or 'Load checkpoint' in log
        assert not [n for n in HARMLESS_NOTICES if n in log], log[-3000:]
    images = glob.glob(osp.join(show_dir, '**', '*.png'), recursive=True) + \
        glob.glob(osp.join(work, '**', 'vis', '**', '*.png'), recursive=True)
    with open(osp.join(synthetic_nyud, 'gt_sets', 'val.txt')) as f:
        num_val = len(f.read().split())
    assert len(set(images)) >= num_val
    # the log says where the pictures went (two folders below --show-dir)
    vis_image = osp.join(show_dir, 'vis_data', 'vis_image')
    assert f'{num_val} pictures written to {vis_image}' in result.stdout + result.stderr
    assert len(glob.glob(osp.join(vis_image, '*.png'))) == num_val
    with open(out_pkl, 'rb') as f:
        dumped = pickle.load(f)
    assert len(dumped) == num_val
    for record in dumped:
        h, w = record['ori_shape']
        assert record['img_path'].endswith(record['img_id'] + '.png')
        pred = record['pred']
        assert pred['semseg'].shape == (h, w) and pred['semseg'].dtype == np.uint8
        assert pred['depth'].shape == (h, w) and pred['depth'].dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(pred['normals'], axis=-1), 1, atol=1e-5)
        assert 0 <= pred['edge'].min() and pred['edge'].max() <= 1
    # only the predictions: no logits, no ground truth, no shared batch storage
    assert osp.getsize(out_pkl) < num_val * h * w * (1 + 4 + 12 + 4) + 100_000
    # the training's config copy is kept; the test run's (other settings) is in its log dir
    assert (tmp_path / 'work' / 'cfg.py').read_text() == training_config
    (test_copy, ) = glob.glob(osp.join(work, '*', 'cfg.py'))
    with open(test_copy) as f:
        assert f.read() != training_config
    # with --force into a folder of earlier pictures, only this run's are counted (it said 5
    # of a 4-image split)
    with open(osp.join(vis_image, 'earlier.png'), 'wb') as f:
        f.write(b'a picture of another run')
    result = python_tool('test.py', cfg, ckpt, '--work-dir', work, '--show-dir', show_dir,
                         '--force')
    assert f'{num_val} pictures written to {vis_image}' in result.stdout + result.stderr
    # --out never overwrites unless asked (checked before anything is built: in this process)
    test = load_tool('tools', 'test')
    with pytest.raises(SystemExit, match='exists; remove it, choose another name or pass '
                       '--force'):
        test.main([cfg, ckpt, '--out', str(out_pkl), '--work-dir', str(tmp_path / 'w2')])
    out_pkl.write_bytes(b'old')
    test.main([cfg, ckpt, '--out', str(out_pkl), '--force', '--work-dir', str(tmp_path / 'w2')])
    with open(out_pkl, 'rb') as f:
        assert len(pickle.load(f)) == num_val


@pytest.mark.parametrize('script,tool', [('slurm_train.sh', 'dist_train.sh'),
                                         ('slurm_test.sh', 'dist_test.sh')])
def test_slurm_scripts_explain_a_missing_srun(script, tool):
    import shutil
    import subprocess
    path = '/usr/bin:/bin'
    if shutil.which('srun', path=path):
        pytest.skip('srun is installed')
    args = ['bash', osp.join(REPO, 'tools', script), 'PARTITION', 'JOB', 'CONFIG', 'CKPT']
    result = subprocess.run(args, capture_output=True, text=True, env=dict(PATH=path))
    assert result.returncode == 2
    assert 'srun not found' in result.stderr and tool in result.stderr


def test_auto_scale_lr(tmp_path, synthetic_nyud, capsys):
    train = load_tool('tools', 'train')
    plain = write_tiny_config(tmp_path / 'plain.py', synthetic_nyud, max_iters=1,
                              val_interval=1, extra=NO_VAL)
    status, _, err = cli(train, [plain, '--work-dir', tmp_path / 'a', '--auto-scale-lr'], capsys)
    assert status == 2 and 'auto_scale_lr = dict(base_batch_size=...)' in err
    cfg = write_tiny_config(tmp_path / 'cfg.py', synthetic_nyud, max_iters=1, val_interval=1,
                            extra=NO_VAL + 'auto_scale_lr = dict(enable=False, '
                            'base_batch_size=8)\n')
    status, out, err = cli(train, [cfg, '--work-dir', tmp_path / 'b', '--auto-scale-lr'], capsys)
    assert status == 0, err[-3000:]
    # 1 process x 2 images of the tiny config against the recipe's 8: lr 1e-3 -> 2.5e-4
    assert 'Scaling the original LR by 0.25' in out + err
    assert 'lr: 2.5000e-04' in out + err


def test_test_py_refuses_a_checkpoint_that_does_not_fit(tmp_path, synthetic_nyud):
    from mmengine.config import Config

    from mmmt.registry import MODELS
    cfg = write_tiny_config(tmp_path / 'cfg.py', synthetic_nyud)
    model = MODELS.build(Config.fromfile(cfg).model)
    # the reference implementation saves {'model': DDP state_dict}; mmengine would load
    # nothing from it, log the missing keys and test a random model
    reference = tmp_path / 'checkpoint.pth.tar'
    torch.save({'model': {f'module.{k}': v for k, v in model.state_dict().items()}}, reference)
    with pytest.raises(SystemExit, match='mtmamba2mmmt.py'):
        load_tool('tools', 'test').main([cfg, str(reference), '--work-dir',
                                         str(tmp_path / 'work')])


def test_resume_from_a_missing_file_fails_before_building(tmp_path, synthetic_nyud):
    cfg = write_tiny_config(tmp_path / 'cfg.py', synthetic_nyud, extra=NO_VAL)
    with pytest.raises(SystemExit, match='--resume: checkpoint not found: .*nope.pth'):
        load_tool('tools', 'train').main([cfg, '--work-dir', str(tmp_path / 'w'), '--resume',
                                          str(tmp_path / 'nope.pth')])
    assert not (tmp_path / 'w').exists()
    # a checkpoint pruned by max_keep_ckpts beside a later one: not found, not 'later
    # checkpoints ... pass --force' (which then said not found)
    (tmp_path / 'w').mkdir()
    (tmp_path / 'w' / 'iter_4.pth').write_bytes(b'a later checkpoint')
    with pytest.raises(SystemExit, match=r'^--resume: checkpoint not found: .*iter_2\.pth'):
        load_tool('tools', 'train').main([cfg, '--work-dir', str(tmp_path / 'w'), '--resume',
                                          str(tmp_path / 'w' / 'iter_2.pth')])


def test_the_work_dirs_config_copy_is_of_the_training_whose_checkpoints_it_holds(
        tmp_path, synthetic_nyud, capsys):
    """A run that failed to start (a wrong --data-root) left its config copy, and the
    training after it (or one --force retrained over the checkpoints) kept it: `test.py
    <work_dir>/cfg.py iter_N.pth` then took the failed run's settings."""
    train = load_tool('tools', 'train')
    cfg = write_tiny_config(tmp_path / 'cfg.py', synthetic_nyud, max_iters=2, val_interval=1,
                            extra=NO_VAL)
    one = ['--cfg-options', 'train_cfg.max_iters=1']
    work = tmp_path / 'work'
    copy = work / 'cfg.py'
    status, _, _ = cli(train, [cfg, '--work-dir', work, '--data-root', tmp_path / 'nope'],
                       capsys)
    assert status == 2 and "data_root = '" + str(tmp_path / 'nope') in copy.read_text()
    status, out, err = cli(train, [cfg, '--work-dir', work, *one], capsys)
    assert status == 0, err
    assert f"data_root = '{synthetic_nyud}" in copy.read_text()
    assert f'{copy}: now the config of this training' in out + err
    # a retraining with --force over those checkpoints: its settings
    status, _, err = cli(train, [cfg, '--work-dir', work, '--force', *one,
                                 'train_dataloader.batch_size=1'], capsys)
    assert status == 0, err
    trained = copy.read_text()
    assert 'batch_size=1' in trained.replace(' ', '')
    # a resume with other settings keeps it (the copy is its training's)
    status, _, err = cli(train, [cfg, '--work-dir', work, '--resume'], capsys)
    assert status == 0, err
    assert osp.isfile(work / 'iter_2.pth') and copy.read_text() == trained
    # and a training started from the copy itself never rewrites it
    status, _, err = cli(train, [copy, '--work-dir', work, '--force', *one,
                                 'train_dataloader.batch_size=2'], capsys)
    assert status == 0, err
    assert copy.read_text() == trained
