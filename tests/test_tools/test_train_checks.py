"""tools/train.py's checks of a config before training: the lr schedule against max_iters, a
resume at or past the end, and num_workers=0 with persistent workers; and that ``make demo``
passes overrides that keep the demo config consistent."""
import json
import os
import subprocess
import sys

import pytest
from mmengine.config import Config

from tests.tool_loader import REPO, load_tool
from .conftest import cli, python_tool, write_tiny_config

DEMO_CONFIG = os.path.join(REPO, 'configs', 'demo', 'mtmamba-tiny_synthetic-nyud.py')
RECIPE = os.path.join(REPO, 'configs', 'mtmamba_swin-l_nyud.py')


@pytest.fixture(scope='module')
def train():
    return load_tool('tools', 'train')


def config_with(path, argv, train):
    """The config ``tools/train.py`` trains with for ``argv`` (its options folded in)."""
    from mmmt.utils import load_runner_config
    args = train.parse_args([path] + argv)
    cfg = load_runner_config(args)
    return train.apply_options(cfg, args), args


@pytest.mark.parametrize('path', [DEMO_CONFIG, RECIPE], ids=['demo', 'swin-l_nyud'])
def test_shipped_schedules_cover_their_training(train, path):
    cfg, _ = config_with(path, [], train)
    assert train.check_schedule(cfg) is None


def test_more_iterations_than_the_schedule_is_warned_with_the_fix(train):
    cfg, _ = config_with(RECIPE, ['--cfg-options', 'train_cfg.max_iters=60000'], train)
    warning = train.check_schedule(cfg)
    assert warning == (
        'param_scheduler[0] (PolyLR) ends at iteration 50001 but train_cfg.max_iters is '
        '60000: the last 9999 iterations train at its final learning rate (0 for this PolyLR: '
        'those iterations change nothing). To stretch the schedule, add --cfg-options '
        'param_scheduler.0.end=60001')
    # the suggested option silences it
    cfg, _ = config_with(RECIPE, ['--cfg-options', 'train_cfg.max_iters=60000',
                                  'param_scheduler.0.end=60001'], train)
    assert train.check_schedule(cfg) is None


def test_schedule_check_takes_the_latest_iteration_scheduler(train):
    cfg = Config(dict(
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=2000),
        param_scheduler=[
            dict(type='LinearLR', begin=0, end=100, by_epoch=False),  # a warm-up ends early
            dict(type='PolyLR', eta_min=1e-6, begin=100, end=1500, by_epoch=False)]))
    assert train.check_schedule(cfg) == (
        'param_scheduler[1] (PolyLR) ends at iteration 1500 but train_cfg.max_iters is 2000: '
        'the last 500 iterations train at its final learning rate. To stretch the schedule, '
        'add --cfg-options param_scheduler.1.end=2001')
    cfg.param_scheduler[1].pop('end')  # no end: mmengine runs it to the end of training
    assert train.check_schedule(cfg) is None
    epochs = Config(dict(train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=3),
                         param_scheduler=[dict(type='PolyLR', end=2)]))  # by_epoch: not ours
    assert train.check_schedule(epochs) is None


def test_num_workers_zero_turns_persistent_workers_off(train):
    cfg, _ = config_with(DEMO_CONFIG, [], train)
    assert cfg.train_dataloader.persistent_workers is True  # what the demo config ships
    cfg, _ = config_with(DEMO_CONFIG, ['--cfg-options', 'train_dataloader.num_workers=0'],
                         train)
    assert cfg.train_dataloader.persistent_workers is False
    assert cfg.val_dataloader.persistent_workers is True  # its workers were left as they are


def test_resume_with_nothing_to_resume_keeps_the_configs_load_from(train, tmp_path):
    """--resume on a fresh work dir (a re-queueable job's first start) dropped the config's
    load_from: a fine-tuning run trained from scratch, with only 'training starts from
    scratch' in the log. Once the work dir has a checkpoint, --resume continues that."""
    import torch
    start = tmp_path / 'pretrained.pth'
    work = tmp_path / 'work'
    argv = ['--work-dir', str(work), '--resume', '--cfg-options', f'load_from={start}']
    cfg, _ = config_with(DEMO_CONFIG, argv, train)
    assert (cfg.load_from, cfg.resume) == (str(start), False)  # loaded as weights
    work.mkdir()
    torch.save(dict(meta=dict(iter=2)), work / 'iter_2.pth')
    (work / 'last_checkpoint').write_text(str(work / 'iter_2.pth'))
    cfg, _ = config_with(DEMO_CONFIG, argv, train)
    assert (cfg.load_from, cfg.resume) == (str(work / 'iter_2.pth'), True)


def test_resume_target_past_or_at_the_end(train, tmp_path):
    ckpt = tmp_path / 'iter_44.pth'
    ckpt.write_bytes(b'')  # past the end, only the name is read
    cfg = Config(dict(resume=True, load_from=str(ckpt), train_cfg=dict(max_iters=30)))
    with pytest.raises(SystemExit, match=r'iter_44.pth is at iter 44, past '
                       r'train_cfg.max_iters=30: nothing would be trained'):
        train.check_resume_target(cfg)
    cfg.train_cfg.max_iters = 44
    # at the end it is the training's result: an empty or truncated one was "finished"
    # (exit status 0) for a re-queued job
    import torch
    torch.save(dict(meta=dict(iter=44), state_dict={'w': torch.zeros(4096)}), ckpt)
    whole = ckpt.read_bytes()
    for damaged in (b'', whole[:len(whole) // 2]):
        ckpt.write_bytes(damaged)
        with pytest.raises(SystemExit, match=(
                r'^--resume: .*iter_44\.pth is at iter 44 = train_cfg\.max_iters, but it is '
                r'not a complete checkpoint \(empty, truncated or damaged: an interrupted '
                r'copy\?\), .*'
                r'Copy it again, or --resume an earlier checkpoint \(with --force\) to train '
                r'the last iters again$')):
            train.check_resume_target(cfg)
    ckpt.write_bytes(whole)
    note = train.check_resume_target(cfg)
    assert 'this training has finished, nothing to do' in note
    # the way that works: raising max_iters alone would resume the saved schedule, which ends
    # here (refused by CheckpointFitHook, see the end-to-end test below)
    assert f'load_from={ckpt} without --resume, in a new --work-dir' in note
    assert 'Raise train_cfg' not in note
    cfg.train_cfg.max_iters = 45
    assert train.check_resume_target(cfg) is None
    cfg.load_from = str(tmp_path / 'best_mIoU.pth')  # another name: mmengine decides
    assert train.check_resume_target(cfg) is None
    cfg = Config(dict(resume=True, load_from=str(tmp_path / 'epoch_3.pth'),
                      train_cfg=dict(max_epochs=2)))
    with pytest.raises(SystemExit, match='past train_cfg.max_epochs=2'):
        train.check_resume_target(cfg)


def test_resuming_a_finished_run_exits_cleanly_and_keeps_the_checkpoints(tmp_path, train,
                                                                         tiny_training, capsys):
    cfg = tiny_training.config  # 4 iterations, a checkpoint every 2
    work = tiny_training.copy_to(tmp_path / 'work')
    before = sorted(os.listdir(work))
    # (a subprocess: in this one mmengine's current logger may be an earlier test's runner's)
    done = python_tool('train.py', cfg, '--work-dir', work, '--resume')
    assert 'this training has finished, nothing to do' in done.stdout + done.stderr
    assert 'iter_4.pth without --resume, in a new --work-dir' in done.stdout + done.stderr
    status, _, err = cli(train, [cfg, '--work-dir', work, '--resume', '--cfg-options',
                                 'train_cfg.max_iters=3'], capsys)
    assert status == 2  # an input error, in one line (mmmt.utils.errors.run_main)
    assert err.splitlines()[-1].startswith('train.py: error: --resume: ')
    assert 'is at iter 4, past train_cfg.max_iters=3' in err
    assert sorted(os.listdir(work)) == before  # nothing pruned, nothing written
    # training it further: mmengine would restore the saved schedule (end 4) and train
    # iterations 4-8 at lr 0 whatever the config says; refused, naming what works instead
    status, _, err = cli(train, [cfg, '--work-dir', work, '--resume', '--cfg-options',
                                 'train_cfg.max_iters=8', 'param_scheduler.0.end=8'], capsys)
    assert status == 2, err[-3000:]
    last = err.splitlines()[-1]
    assert last.startswith('train.py: error: --resume ') and 'iter_4.pth' in last
    assert 'saved in it ends at iteration 4' in last and '(end=8)' in last
    assert 'iterations 4-8' in last and 'load_from=' in last and 'without --resume' in last
    assert sorted(n for n in os.listdir(work) if n.startswith('iter_')) == [
        'iter_2.pth', 'iter_4.pth']


def test_a_resumed_schedule_that_ends_at_max_iters_is_not_refused():
    """The saved schedule (restored whole by mmengine) is refused only where it ends before
    ``train_cfg.max_iters``: one that ends there covers the training, whatever end the
    config's scheduler now names."""
    import types

    import torch

    from mmmt.engine.hooks import CheckpointFitHook
    from mmmt.utils import UserInputError
    model = torch.nn.Linear(2, 1)
    checkpoint = dict(meta=dict(iter=2, epoch=0), message_hub={}, optimizer={},
                      state_dict=model.state_dict(),
                      param_schedulers=[dict(by_epoch=False, begin=0, end=4)])
    runner = types.SimpleNamespace(model=model, _resume=True, _load_from='iter_2.pth', cfg=Config(
        dict(train_cfg=dict(max_iters=4),
             param_scheduler=[dict(type='PolyLR', by_epoch=False, begin=0, end=8)])))
    CheckpointFitHook().after_load_checkpoint(runner, checkpoint)
    runner.cfg.train_cfg.max_iters = 5  # one iteration past the saved schedule's end
    with pytest.raises(UserInputError, match=r'^--resume iter_2\.pth: the lr schedule saved in '
                       r'it ends at iteration 4, .*\(end=8\); so iterations 4-5 '):
        CheckpointFitHook().after_load_checkpoint(runner, checkpoint)


STUB = """#!{python}
import json, sys
with open({log!r}, 'a') as f:
    f.write(json.dumps(sys.argv[1:]) + '\\n')
"""


def test_make_demo_keeps_schedule_checkpoint_and_data_root_with_demo_iters(train, tmp_path):
    # `make demo` with its Python replaced by a stub that records each command's arguments
    venv = tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True)
    log = tmp_path / 'calls.jsonl'
    stub = venv / 'bin' / 'python'
    stub.write_text(STUB.format(python=sys.executable, log=str(log)))
    stub.chmod(0o755)
    (venv / '.installed').touch()  # newer than requirements/ci.txt and setup.py: no install
    data = tmp_path / 'my_data'
    subprocess.run(['make', '-s', 'demo', f'VENV={venv}', 'DEMO_ITERS=1200',
                    f'DEMO_DATA={data}', f'DEMO_WORK={tmp_path / "work"}'],
                   cwd=REPO, check=True, capture_output=True, text=True, timeout=120)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    scripts = [os.path.basename(call[0]) for call in calls]
    assert scripts == ['synthetic_mt.py', 'train.py', 'test.py']
    cfg, args = config_with(DEMO_CONFIG, calls[1][2:], train)
    assert cfg.train_cfg.max_iters == 1200
    assert cfg.param_scheduler[0].end == 1201
    assert cfg.default_hooks.checkpoint.interval == 1200
    assert train.check_schedule(cfg) is None
    assert args.data_root == str(data)
    assert cfg.train_dataloader.dataset.data_root == str(data)
    assert calls[2][calls[2].index('--data-root') + 1] == str(data)
    assert calls[2][2].endswith('iter_1200.pth')


def test_class_count_is_checked_for_every_class_task(train):
    from types import SimpleNamespace

    from mmmt.datasets import PascalContextMultiTaskDataset

    def runner(task_channels):
        meta = dict(PascalContextMultiTaskDataset.METAINFO,
                    tasks=['semseg', 'human_parts', 'sal'])
        dataset = SimpleNamespace(metainfo=meta)
        head = SimpleNamespace(task_channels=task_channels)
        return SimpleNamespace(model=SimpleNamespace(decode_head=head),
                               train_loop=SimpleNamespace(dataloader=SimpleNamespace(
                                   dataset=dataset)))

    classes = len(PascalContextMultiTaskDataset.METAINFO['classes'])
    parts = len(PascalContextMultiTaskDataset.METAINFO['part_classes'])
    train.check_head_matches_dataset(runner(dict(semseg=classes, human_parts=parts, sal=1)))
    with pytest.raises(SystemExit, match=f'model.decode_head.tasks.human_parts is 3 but the '
                       f'training set .* has {parts} human_parts classes; set it to {parts}'):
        train.check_head_matches_dataset(runner(dict(semseg=classes, human_parts=3, sal=1)))
    # head tasks the training set does not load (a child's tasks merged into the base's, without
    # _delete_=True): named before training, not a KeyError at the first loss
    with pytest.raises(SystemExit, match=r"^model\.decode_head\.tasks has normals, edge, which "
                       r"the training set \(SimpleNamespace, tasks "
                       r"\['semseg', 'human_parts', 'sal'\]\) "
                       r'does not load: the loss needs their ground truth\. Remove them .*'
                       r'_delete_=True'):
        train.check_head_matches_dataset(runner(dict(semseg=classes, human_parts=parts, sal=1,
                                                     normals=3, edge=1)))


def test_an_unreachable_checkpoint_url_is_named_with_the_offline_way(train, tmp_path,
                                                                     synthetic_nyud):
    """Offline, the Swin-L configs' Pretrained URL failed with a urllib traceback; now one line
    names the config key and the URL, and what to pass instead."""
    url = 'http://127.0.0.1:9/swin.pth'  # port 9 (discard): refused at once, no network needed
    cfg = write_tiny_config(
        tmp_path / 'cfg.py', synthetic_nyud, max_iters=1, val_interval=1,
        extra=(f'model.update(backbone=dict(init_cfg=dict(type="Pretrained", checkpoint={url!r}),'
               ' **model["backbone"]))\nval_cfg = None\nval_dataloader = None\n'
               'val_evaluator = None\n'))
    with pytest.raises(SystemExit) as info:
        train.main([cfg, '--work-dir', str(tmp_path / 'work')])
    message = str(info.value)
    assert message.startswith(f'could not download model.backbone.init_cfg.checkpoint={url} (')
    assert 'Connection refused' in message
    assert '--cfg-options model.backbone.init_cfg.checkpoint=FILE' in message


def test_amp_with_a_balancing_optim_wrapper_is_refused_before_the_device_check(train):
    """--amp replaces the wrapper type, which would drop a balancer (and end in mmengine's bare
    TypeError on its options); it is refused in one line, also on a CPU-only machine."""
    with pytest.raises(SystemExit, match=r'^--amp replaces optim_wrapper\.type with '
                       r'AmpOptimWrapper, and this config trains with MultiTaskOptimWrapper'):
        config_with(DEMO_CONFIG, ['--amp', 'bf16', '--cfg-options',
                                  'optim_wrapper.type=MultiTaskOptimWrapper',
                                  'optim_wrapper.balancer.type=PCGrad'], train)
