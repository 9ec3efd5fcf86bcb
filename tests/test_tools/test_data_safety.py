"""No silent overwrite, resumable work dirs, and no NaN trained or tested silently."""
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from mmmt.utils import RunStopped, load_runner_config
from tests.tool_loader import load_tool
from .conftest import write_tiny_config

NO_VAL = 'val_cfg = None\nval_dataloader = None\nval_evaluator = None\n'


def train(*args):
    load_tool('tools', 'train').main([str(a) for a in args])


def test_train_into_a_used_work_dir_stops_and_resume_survives_a_blank_pointer(
        tmp_path, synthetic_nyud, capsys):
    cfg = write_tiny_config(tmp_path / 'cfg.py', synthetic_nyud, max_iters=1, val_interval=1,
                            extra=NO_VAL)
    work = tmp_path / 'work'
    train(cfg, '--work-dir', work)
    stamp = os.stat(work / 'iter_1.pth').st_mtime_ns
    with pytest.raises(SystemExit, match=r'already holds iter_1\.pth, last_checkpoint .*'
                       r'--resume .*--force'):
        train(cfg, '--work-dir', work)
    assert os.stat(work / 'iter_1.pth').st_mtime_ns == stamp
    # a full disk left an empty pointer: --resume continues from the newest complete file
    (work / 'last_checkpoint').write_text('')
    capsys.readouterr()
    train(cfg, '--work-dir', work, '--resume', '--cfg-options', 'train_cfg.max_iters=2')
    log = capsys.readouterr().out
    assert f'{work}/last_checkpoint is empty; resuming from the newest complete ' \
        f'checkpoint, {work}/iter_1.pth' in log
    assert 'resumed epoch: 0, iter: 1' in log
    assert sorted(p for p in os.listdir(work) if p.endswith('.pth')) == ['iter_2.pth']
    train(cfg, '--work-dir', work, '--force')  # asked for: trains into it
    assert os.stat(work / 'iter_1.pth').st_mtime_ns != stamp


def test_a_diverging_training_stops_before_saving(tmp_path, synthetic_nyud):
    # lr = inf: the first update makes the weights inf, the second loss is NaN
    cfg = write_tiny_config(tmp_path / 'cfg.py', synthetic_nyud, max_iters=2, val_interval=2,
                            extra=NO_VAL + 'optim_wrapper = dict(optimizer=dict(lr=1e400))\n')
    # one line like an input error, but exit status 1 under run_main: the inputs were fine
    with pytest.raises(RunStopped, match=r'FloatingPointError: Non-finite loss at iteration 2 '
                       r'.*images of the batch: .*\.png'):
        train(cfg, '--work-dir', tmp_path / 'work')
    assert not [p for p in os.listdir(tmp_path / 'work') if p.endswith('.pth')]
    if os.name == 'posix':  # and the work dir is not left locked against other processes
        from tests.test_utils.test_safe_checkpoint_hook import flock_is_free
        assert flock_is_free(str(tmp_path / 'work'))


def test_one_nan_depth_pixel_stops_training_naming_the_file(tmp_path, synthetic_nyud):
    root = tmp_path / 'data'
    shutil.copytree(synthetic_nyud, root)
    first_id = (root / 'gt_sets' / 'train.txt').read_text().split()[0]
    depth_file = root / 'depth' / f'{first_id}.npy'
    depth = np.load(depth_file)
    depth[3, 4] = np.nan
    np.save(depth_file, depth)
    # 3 iterations of 2 images: every one of the 6 training images is read
    cfg = write_tiny_config(tmp_path / 'cfg.py', str(root), max_iters=3, val_interval=3,
                            extra=NO_VAL)
    with pytest.raises(ValueError, match=f'Depth map has 1 NaN pixel.*{depth_file}'):
        train(cfg, '--work-dir', tmp_path / 'work')


def test_test_py_refuses_a_used_show_dir_and_nan_weights(tmp_path, synthetic_nyud):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmmt.registry import MODELS
    cfg = write_tiny_config(tmp_path / 'cfg.py', synthetic_nyud)
    with DefaultScope.overwrite_default_scope('mmmt'):
        model = MODELS.build(Config.fromfile(cfg).model)
    state = model.state_dict()
    state['decode_head.final_project.depth.bias'] = torch.full_like(
        state['decode_head.final_project.depth.bias'], float('nan'))
    ckpt = tmp_path / 'nan.pth'
    torch.save(dict(state_dict=state), ckpt)
    test = load_tool('tools', 'test')
    with pytest.raises(SystemExit, match=r'nan\.pth: 1 of its \d+ tensors hold NaN/inf values '
                       r'\(e\.g\. decode_head\.final_project\.depth\.bias \(1 of 1\)\)'):
        test.main([cfg, str(ckpt), '--work-dir', str(tmp_path / 'w')])
    show = tmp_path / 'vis' / 'vis_data' / 'vis_image'
    show.mkdir(parents=True)
    (show / 'earlier_0.png').write_bytes(b'')
    with pytest.raises(SystemExit, match=r'already holds 1 picture.*earlier_0\.png.*--force'):
        test.main([cfg, str(ckpt), '--show-dir', str(tmp_path / 'vis')])
    (tmp_path / 'vis.png').write_bytes(b'a file of the user')
    with pytest.raises(SystemExit, match=f'--show-dir: {tmp_path}/vis.png is a file, where a '
                       'folder is needed'):
        test.main([cfg, str(ckpt), '--show-dir', str(tmp_path / 'vis.png')])
    # a file above either output: refused before testing (it failed at the first picture, or
    # after the whole run for --out, as '[Errno 17] File exists')
    for option, name in (('--show-dir', 'sub'), ('--out', 'p.pkl')):
        with pytest.raises(SystemExit, match=f'^{option}: {tmp_path}/vis.png is a file, where a '
                           f'folder is needed for {tmp_path}/vis.png/{name}'):
            test.main([cfg, str(ckpt), option, str(tmp_path / 'vis.png' / name)])
    (tmp_path / 'p.pkl').mkdir()
    with pytest.raises(SystemExit, match=f'^--out: {tmp_path}/p.pkl is a folder, where a file '
                       'is needed'):
        test.main([cfg, str(ckpt), '--out', str(tmp_path / 'p.pkl'), '--force'])


def test_checkpoints_that_do_not_fit_are_refused_unless_partial(tmp_path, synthetic_nyud,
                                                                capsys):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmmt.registry import MODELS
    cfg = write_tiny_config(tmp_path / 'cfg.py', synthetic_nyud, max_iters=1, val_interval=1,
                            extra=NO_VAL)
    with DefaultScope.overwrite_default_scope('mmmt'):
        model = MODELS.build(Config.fromfile(cfg).model)
    backbone_only = tmp_path / 'backbone_only.pth'
    torch.save(dict(state_dict={k: v for k, v in model.state_dict().items()
                                if k.startswith('backbone.')}), backbone_only)
    with pytest.raises(SystemExit, match=r'backbone_only\.pth does not fit the model .*'
                       r'weights of the model are not in it \(decode_head.*--partial-load'):
        train(cfg, '--work-dir', tmp_path / 'a', '--cfg-options', f'load_from={backbone_only}')
    capsys.readouterr()
    train(cfg, '--work-dir', tmp_path / 'b', '--partial-load', '--cfg-options',
          f'load_from={backbone_only}')
    assert 'Loading what fits (--partial-load)' in capsys.readouterr().out
    other = tmp_path / 'other.pth'  # a checkpoint of another architecture as Pretrained
    torch.save(dict(state_dict={'backbone.stem.weight': torch.zeros(3)}), other)
    with pytest.raises(SystemExit, match=r'backbone: init_cfg Pretrained .*other\.pth .*has '
                       r'0 of its \d+ parameters'):
        train(cfg, '--work-dir', tmp_path / 'c', '--cfg-options',
              'model.backbone.init_cfg.type=Pretrained',
              f'model.backbone.init_cfg.checkpoint={other}',
              'model.backbone.init_cfg.prefix=backbone.')


def test_a_pretrained_file_with_half_the_parameters_is_warned_not_refused(tmp_path, capsys):
    """Below half of a module's parameters found in its Pretrained file is refused (another
    architecture); half or more loads with a warning naming the missing ones."""
    import types

    from mmengine.logging import MMLogger

    from mmmt.engine.hooks import CheckpointFitHook
    from mmmt.utils import CheckpointMismatchError
    MMLogger.get_instance(f'fit_{tmp_path.name}')  # the current logger, printing to capsys's
    module = torch.nn.Linear(2, 1)  # two parameters: weight and bias
    half = tmp_path / 'half.pth'
    torch.save(dict(state_dict={'head.weight': torch.zeros(1, 2)}), half)
    module.init_cfg = dict(type='Pretrained', checkpoint=str(half), prefix='head.')
    runner = types.SimpleNamespace(model=module)
    CheckpointFitHook().before_train(runner)
    assert (f'model: init_cfg Pretrained {half} (prefix \'head.\') has 1 of its 2 parameters; '
            'missing or reshaped e.g. bias (these stay randomly initialised)'
            ) in capsys.readouterr().out
    torch.save(dict(state_dict={'head.weight': torch.zeros(2, 2)}), half)  # reshaped: 0 of 2
    with pytest.raises(CheckpointMismatchError, match=r'has 0 of its 2 parameters; missing or '
                       r'reshaped e\.g\. weight, bias\. Is it a checkpoint of another'):
        CheckpointFitHook().before_train(runner)


def test_a_semseg_head_of_another_class_count_is_named(tmp_path, synthetic_nyud):
    cfg = write_tiny_config(tmp_path / 'cfg.py', synthetic_nyud, max_iters=1, val_interval=1,
                            extra=NO_VAL)
    with pytest.raises(SystemExit, match='model.decode_head.tasks.semseg is 12 but the training '
                       r'set \(NYUDv2MultiTaskDataset\) has 40 semseg classes'):
        train(cfg, '--work-dir', tmp_path / 'w', '--cfg-options',
              'model.decode_head.tasks.semseg=12')


def test_a_new_training_never_replaces_the_checkpoints_of_the_out_dir(tmp_path):
    # with default_hooks.checkpoint.out_dir, mmengine saves into <out_dir>/<work dir name>:
    # a new work dir of the same name (or a cleaned one) shares that folder
    from mmengine.config import Config
    tool = load_tool('tools', 'train')
    shared = tmp_path / 'ckpts' / 'exp1'
    shared.mkdir(parents=True)
    (shared / 'iter_50.pth').write_bytes(b'an earlier run')
    cfg = Config(dict(work_dir=str(tmp_path / 'new' / 'exp1'),
                      default_hooks=dict(checkpoint=dict(out_dir=str(tmp_path / 'ckpts')))))
    with pytest.raises(SystemExit, match=r'checkpoint folder \(default_hooks\.checkpoint\.'
                       rf'out_dir\) {shared} already holds iter_50\.pth .*--force'):
        tool.check_work_dir(cfg, tool.parse_args(['cfg.py']))
    tool.check_work_dir(cfg, tool.parse_args(['cfg.py', '--force']))  # asked for
    cfg.work_dir = str(tmp_path / 'new' / 'exp2')  # another folder under out_dir
    tool.check_work_dir(cfg, tool.parse_args(['cfg.py']))
    assert (shared / 'iter_50.pth').read_bytes() == b'an earlier run'


def test_an_out_file_that_appears_during_the_test_run_is_kept(tmp_path, synthetic_nyud,
                                                              monkeypatch, capsys):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmmt.evaluation import DumpMultiTaskPredictions
    from mmmt.registry import MODELS
    from .conftest import cli
    cfg = write_tiny_config(tmp_path / 'cfg.py', synthetic_nyud)
    with DefaultScope.overwrite_default_scope('mmmt'):
        model = MODELS.build(Config.fromfile(cfg).model)
    ckpt = tmp_path / 'model.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    out = tmp_path / 'preds.pkl'
    process = DumpMultiTaskPredictions.process

    def another_run_writes_it(self, data_batch, data_samples):  # after the start-up check
        if not out.exists():
            out.write_bytes(b'the other run')
        process(self, data_batch, data_samples)

    monkeypatch.setattr(DumpMultiTaskPredictions, 'process', another_run_writes_it)
    status, _, err = cli(load_tool('tools', 'test'), [cfg, ckpt, '--out', out], capsys,
                         prog='test.py')
    assert status == 2 and err.count('\n') == 1
    assert err.startswith(f'test.py: error: {out} exists (remove it or choose another --out); '
                          f'the predictions of this run were written to {tmp_path}/preds_1.pkl')
    assert out.read_bytes() == b'the other run'
    with open(tmp_path / 'preds_1.pkl', 'rb') as f:
        assert len(pickle.load(f)) == 2  # the 2 val images


def test_a_picture_that_appears_during_the_test_run_is_kept(tmp_path, synthetic_nyud,
                                                            monkeypatch, capsys):
    """The --show-dir check is at the start; a picture another run saves there later is
    kept (each picture is written exclusively) and the run stops naming it, unless --force."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmmt.registry import MODELS
    from mmmt.visualization import MultiTaskLocalVisBackend
    from .conftest import cli
    cfg = write_tiny_config(tmp_path / 'cfg.py', synthetic_nyud)
    with DefaultScope.overwrite_default_scope('mmmt'):
        model = MODELS.build(Config.fromfile(cfg).model)
    ckpt = tmp_path / 'model.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    add_image = MultiTaskLocalVisBackend.add_image
    taken = []

    def another_run_saves_it_first(self, name, image, step=0, **kwargs):
        path = os.path.join(self._save_dir, 'vis_image', f'{name}.png')
        if not taken:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'wb') as f:
                f.write(b'the other run')
            taken.append(path)
        add_image(self, name, image, step, **kwargs)

    monkeypatch.setattr(MultiTaskLocalVisBackend, 'add_image', another_run_saves_it_first)
    show = tmp_path / 'vis'
    status, _, err = cli(load_tool('tools', 'test'), [cfg, ckpt, '--show-dir', show], capsys,
                         prog='test.py')
    assert status == 2 and err.count('\n') == 1, err
    assert err.startswith(f'test.py: error: {taken[0]} exists') and '--force' in err
    with open(taken[0], 'rb') as f:
        assert f.read() == b'the other run'
    taken.clear()
    # the second run of this process: its own visualizer (mmengine would hand it the first
    # run's of the config's name, with the first run's folder and backends)
    status, _, err = cli(load_tool('tools', 'test'),
                         [cfg, ckpt, '--show-dir', show, '--force'], capsys, prog='test.py')
    assert status == 0, err
    pictures = sorted(os.listdir(show / 'vis_data' / 'vis_image'))
    assert len(pictures) == 2 and all(p.endswith('.png') for p in pictures)  # 2 val images
    assert cv2_shape(taken[0]) is not None  # replaced by a real picture, as asked
    monkeypatch.undo()
    other = tmp_path / 'other'  # a third run, into another folder: its pictures go there
    assert cli(load_tool('tools', 'test'), [cfg, ckpt, '--show-dir', other], capsys,
               prog='test.py')[0] == 0
    assert sorted(os.listdir(other / 'vis_data' / 'vis_image')) == pictures


def cv2_shape(path):
    import cv2
    image = cv2.imread(path)
    return None if image is None else image.shape


def test_resuming_an_earlier_checkpoint_never_replaces_the_later_ones(tmp_path, tiny_training):
    """--resume iter_2.pth where iter_4.pth exists: training on would save over iter_4.pth
    (and --resume without a file would later take the old iter_4 for this run's); refused
    before anything is built, unless --force. Without a file, --resume takes the latest."""
    work = tiny_training.copy_to(tmp_path / 'work')
    stamps = {n: os.stat(os.path.join(work, n)).st_mtime_ns for n in ('iter_2.pth', 'iter_4.pth')}
    tool = load_tool('tools', 'train')
    with pytest.raises(SystemExit, match=r'iter 2, but .* holds later checkpoints \(iter_4\.pth\)'
                       r' that training on from it would replace\. Pass --resume without a '
                       r'file .* --force'):
        tool.main([tiny_training.config, '--work-dir', work, '--resume',
                   os.path.join(work, 'iter_2.pth')])
    assert {n: os.stat(os.path.join(work, n)).st_mtime_ns for n in stamps} == stamps
    # the latest itself, --force, and a file of another folder's numbering are not checked here
    args = tool.parse_args([tiny_training.config, '--work-dir', work, '--resume',
                            os.path.join(work, 'iter_4.pth')])
    cfg = tool.apply_options(load_runner_config(args), args)
    tool.check_work_dir(cfg, args)
    tool.check_resume_branch(cfg, 'auto', work)
    args.force, args.resume = True, os.path.join(work, 'iter_2.pth')
    tool.check_work_dir(cfg, args)


def test_a_forced_resume_of_an_earlier_checkpoint_is_not_lost_to_the_later_ones(
        tmp_path, tiny_training, monkeypatch):
    """--resume iter_2.pth --force, and the run stops before its first save: a --resume then
    continued the abandoned training from iter_4.pth (last_checkpoint still named it)."""
    from mmmt.engine.hooks import SafeCheckpointHook
    from mmmt.utils import find_resume_checkpoint
    work = tiny_training.copy_to(tmp_path / 'work')

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # e.g. pre-empted before the first save of this run

    monkeypatch.setattr(SafeCheckpointHook, '_save_checkpoint_with_step', crash)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_training.config, '--work-dir', work, '--resume',
              os.path.join(work, 'iter_2.pth'), '--force')
    assert find_resume_checkpoint(work) == (os.path.join(work, 'iter_2.pth'), None)
    os.remove(os.path.join(work, 'last_checkpoint'))
    path, note = find_resume_checkpoint(work)  # and not the highest step either
    assert path == os.path.join(work, 'iter_2.pth') and 'iter_4.pth: of a training ' in note


def test_a_resume_of_another_folders_checkpoint_is_not_replaced_by_a_namesake(
        tmp_path, tiny_training, monkeypatch):
    """--resume other/iter_2.pth into a work dir with an iter_2.pth and iter_4.pth of an
    earlier training, stopped before the first save: the pointer names other/iter_2.pth, and
    the work dir's own iter_2.pth (of the abandoned training) must not stand in for it as it
    does for a copied work dir's pointer."""
    from mmmt.engine.hooks import SafeCheckpointHook
    from mmmt.utils import find_resume_checkpoint
    work = tiny_training.copy_to(tmp_path / 'work')
    other = tiny_training.copy_to(tmp_path / 'other')

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(SafeCheckpointHook, '_save_checkpoint_with_step', crash)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_training.config, '--work-dir', work, '--resume',
              os.path.join(other, 'iter_2.pth'), '--force')
    assert find_resume_checkpoint(work) == (os.path.join(other, 'iter_2.pth'), None)


def _with_keep_ckpt_ids(path, ids):
    ckpt = torch.load(path, weights_only=False)  # the test's own file
    ckpt['message_hub']['runtime_info']['keep_ckpt_ids'] = ids
    torch.save(ckpt, path)


def test_resumed_kept_checkpoint_ids_remove_only_this_trainings_files(tmp_path, tiny_training):
    """mmengine removes <folder>/iter_<id>.pth for the oldest of the resumed checkpoint's
    keep_ckpt_ids: resumed from another folder, its ids named this work dir's own files
    (iter_2.pth of the earlier training here was deleted at the first save); a crafted list
    removed the resumed file itself before training started."""
    work = tiny_training.copy_to(tmp_path / 'work')
    other = tiny_training.copy_to(tmp_path / 'other')
    _with_keep_ckpt_ids(os.path.join(other, 'iter_2.pth'), [2])
    options = ['--cfg-options', 'train_cfg.max_iters=3', 'default_hooks.checkpoint.interval=1',
               'default_hooks.checkpoint.max_keep_ckpts=1', 'log_level=WARNING']
    own = os.stat(os.path.join(work, 'iter_2.pth')).st_mtime_ns
    train(tiny_training.config, '--work-dir', work, '--resume',
          os.path.join(other, 'iter_2.pth'), '--force', *options)
    assert os.stat(os.path.join(work, 'iter_2.pth')).st_mtime_ns == own
    assert os.path.isfile(os.path.join(work, 'iter_3.pth'))
    # a crafted list in the work dir's own file: only integer steps up to the resumed one
    work = tiny_training.copy_to(tmp_path / 'crafted')
    _with_keep_ckpt_ids(os.path.join(work, 'iter_2.pth'), [1, 2, 3, 4, 'x'])
    options[-2] = 'default_hooks.checkpoint.max_keep_ckpts=2'
    train(tiny_training.config, '--work-dir', work, '--resume', os.path.join(work, 'iter_2.pth'),
          '--force', *options)
    assert sorted(n for n in os.listdir(work) if n.endswith('.pth')) == [
        'iter_2.pth', 'iter_3.pth', 'iter_4.pth']  # iter_4.pth: of the abandoned branch


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='no flock')
def test_resume_while_the_training_runs_stops_before_choosing_a_checkpoint(
        tmp_path, tiny_training, capsys):
    """The lock was taken only when training started (and on rank 0 alone): a --resume
    while the training ran chose and loaded its checkpoint first, and said "not found" when
    the running training had pruned it meanwhile; the other ranks of a dist_train.sh ran on
    and died with a traceback of a closed connection. Every rank now stops at once."""
    import subprocess
    import sys

    from mmmt.engine.hooks.safe_checkpoint_hook import check_work_dir_unlocked
    from .conftest import REPO, cli
    work = tiny_training.copy_to(tmp_path / 'work')
    holder = subprocess.Popen(
        [sys.executable, '-c', 'import sys; from mmmt.engine.hooks.safe_checkpoint_hook import '
         'lock_work_dir; lock_work_dir(sys.argv[1]); print("locked", flush=True); '
         'sys.stdin.readline()', work],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=REPO))
    try:
        assert holder.stdout.readline().strip() == 'locked'
        os.remove(os.path.join(work, 'last_checkpoint'))  # read it, and the next line fails
        status, out, err = cli(load_tool('tools', 'train'), [
            tiny_training.config, '--work-dir', work, '--resume'], capsys)
        assert status == 2
        assert err.strip().endswith(f'another training is running in the work dir {work}: two '
                                    "trainings in one folder save over each other's checkpoints "
                                    "(and the second would delete the first one's checkpoint "
                                    'being written). Wait for it to end, stop it, or choose '
                                    'another --work-dir')
        # one line, and no note of the resume target (chosen after the check)
        assert len(err.strip().splitlines()) == 1 and 'last_checkpoint' not in out + err
    finally:
        holder.kill()
        holder.wait()
    check_work_dir_unlocked(work)  # free again; and probes of one job's ranks do not conflict
    check_work_dir_unlocked(work)
