"""SafeCheckpointHook: a crash at any point of a save leaves a resumable work dir."""
import os
import os.path as osp
import subprocess
import sys
import types

import pytest
import torch
from mmengine.logging import MessageHub, MMLogger

from mmmt.engine.hooks import SafeCheckpointHook
from mmmt.utils import UserInputError, atomic_write, find_resume_checkpoint, load_checkpoint_file

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class FakeRunner:
    """What CheckpointHook uses of a Runner; saves ``{'meta': meta}`` atomically."""

    def __init__(self, work_dir: str, writer=None) -> None:
        self.work_dir = work_dir
        self.epoch = self.iter = 0
        self.model = torch.nn.Linear(2, 2)
        self.logger = MMLogger.get_instance(f'fake_runner_{id(self)}')
        self.message_hub = MessageHub.get_instance(f'fake_runner_{id(self)}')
        self.writer = writer or (lambda obj, f: torch.save(obj, f))

    def save_checkpoint(self, out_dir, filename, file_client_args=None, meta=None, **kwargs):
        atomic_write(lambda f: self.writer(dict(meta=meta, state_dict={}), f),
                     osp.join(out_dir, filename))


def make_hook(runner, max_keep_ckpts=1):
    hook = SafeCheckpointHook(interval=1, by_epoch=False, max_keep_ckpts=max_keep_ckpts)
    hook.before_train(runner)
    return hook


def save(hook, runner, step):
    runner.iter = step - 1
    hook._save_checkpoint(runner)


def resumable_step(work_dir):
    path, _ = find_resume_checkpoint(work_dir)
    return load_checkpoint_file(path)['meta']['iter']


class Crash(Exception):
    pass


def raise_crash(*args, **kwargs):
    raise Crash


def test_an_option_neither_the_hook_nor_the_runner_takes_stops_before_training(tmp_path):
    """default_hooks.checkpoint.intervall=5 was kept for runner.save_checkpoint, which raised
    "unexpected keyword argument 'intervall'" at the first save, after `interval` iterations
    of training; now before_run refuses it."""
    import functools

    from mmengine.runner import Runner

    class RealSignatureRunner(FakeRunner):
        @functools.wraps(Runner.save_checkpoint)  # what the hook checks against
        def save_checkpoint(self, *args, **kwargs):
            return FakeRunner.save_checkpoint(self, *args, **kwargs)

    runner = RealSignatureRunner(str(tmp_path))
    hook = SafeCheckpointHook(interval=1, by_epoch=False, intervall=5)
    with pytest.raises(UserInputError, match=(
            r"^the checkpoint hook \(default_hooks\.checkpoint\) has no option 'intervall'; did "
            r"you mean 'interval'\? Its options: interval, by_epoch, save_optimizer, .*, and "
            r"those of the Runner's save_checkpoint$")):
        hook.before_run(runner)
    assert os.listdir(tmp_path) == []
    SafeCheckpointHook(interval=1, by_epoch=False).before_run(runner)
    # a Runner whose save_checkpoint takes more (**kwargs here) gets them, as in mmengine
    SafeCheckpointHook(interval=1, by_epoch=False, intervall=5).before_run(FakeRunner(
        str(tmp_path)))


@pytest.mark.parametrize('step', ['writing', 'pointer', 'deleting'])
def test_a_crash_at_each_step_keeps_a_complete_checkpoint(tmp_path, monkeypatch, step):
    from mmmt.engine.hooks import safe_checkpoint_hook
    work = str(tmp_path)
    runner = FakeRunner(work)
    hook = make_hook(runner)
    save(hook, runner, 1)
    assert sorted(os.listdir(work)) == ['iter_1.pth', 'last_checkpoint']
    # written a second before the next save (file times are only as fine as the kernel tick)
    past = os.stat(osp.join(work, 'last_checkpoint')).st_mtime_ns - 10**9
    os.utime(osp.join(work, 'last_checkpoint'), ns=(past, past))
    if step == 'writing':  # the new file is half written
        def half(obj, f):
            f.write(b'PK\x03\x04 partial')
            raise Crash
        runner.writer = half
    elif step == 'pointer':  # the new file is complete, last_checkpoint not yet replaced
        monkeypatch.setattr(safe_checkpoint_hook, 'atomic_write', raise_crash)
    else:  # the new pointer is written, the outdated file not yet deleted
        monkeypatch.setattr(hook, '_remove_checkpoint', raise_crash)
    with pytest.raises(Crash):
        save(hook, runner, 2)
    # a complete iter_2.pth saved after the pointer is taken (resuming iter_1 repeated the
    # work and later replaced iter_2); a half-written one never is
    assert resumable_step(work) == (1 if step == 'writing' else 2)
    assert osp.isfile(osp.join(work, 'iter_1.pth'))


def test_non_finite_weights_are_never_saved(tmp_path):
    runner = FakeRunner(str(tmp_path))
    hook = make_hook(runner)
    save(hook, runner, 1)
    with torch.no_grad():
        runner.model.weight[0, 0] = float('inf')
    with pytest.raises(FloatingPointError, match=r'iteration 2: 1 of its 2 tensors .*weight'):
        save(hook, runner, 2)
    assert sorted(os.listdir(tmp_path)) == ['iter_1.pth', 'last_checkpoint']


def test_rotation_keeps_the_newest_and_the_pointer(tmp_path):
    runner = FakeRunner(str(tmp_path))
    hook = make_hook(runner, max_keep_ckpts=2)
    for step in (1, 2, 3):
        save(hook, runner, step)
    assert sorted(os.listdir(tmp_path)) == ['iter_2.pth', 'iter_3.pth', 'last_checkpoint']
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_3.pth')


# the child saves iter_1, then stalls half-way through writing iter_2 until it is killed
CHILD = """
import sys, time
from tests.tool_loader import load_tool
t = load_tool('tests', 'test_utils', 'test_safe_checkpoint_hook')
runner = t.FakeRunner(sys.argv[1])
hook = t.make_hook(runner)
t.save(hook, runner, 1)
def stall(obj, f):
    f.write(b'PK\\x03\\x04' + bytes(1 << 20))
    f.flush()
    print('writing', flush=True)
    time.sleep(60)
runner.writer = stall
t.save(hook, runner, 2)
"""


def test_kill_9_during_a_save(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    child = subprocess.Popen([sys.executable, '-c', CHILD, str(work)], cwd=REPO,
                             stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=REPO))
    try:
        lines = iter(child.stdout.readline, '')  # mmengine logs a line or two before
        assert any(line.strip() == 'writing' for line in lines), 'the child ended early'
    finally:
        child.kill()  # SIGKILL: no cleanup runs
        child.wait()
    stale = [n for n in os.listdir(work) if n.endswith('.tmp')]
    assert len(stale) == 1 and stale[0].startswith('.iter_2.pth.')
    assert resumable_step(str(work)) == 1
    # the next run (a --resume: at iteration 1) removes the leftover and names it
    runner = FakeRunner(str(work))
    runner.iter, runner._load_from = 1, str(work / 'iter_1.pth')
    messages = []
    runner.logger = types.SimpleNamespace(info=lambda m: None, warning=messages.append)
    make_hook(runner)
    assert sorted(os.listdir(work)) == ['iter_1.pth', 'last_checkpoint']
    assert len(messages) == 1 and stale[0] in messages[0]


# the child saves iter_1, then writes iter_2 until its stdin gives a line
WRITER = """
import sys
from tests.tool_loader import load_tool
t = load_tool('tests', 'test_utils', 'test_safe_checkpoint_hook')
runner = t.FakeRunner(sys.argv[1])
hook = t.make_hook(runner)
t.save(hook, runner, 1)
def slow(obj, f):
    f.write(b'PK\\x03\\x04')
    f.flush()
    print('writing', flush=True)
    sys.stdin.readline()
    f.seek(0)
    t.torch.save(obj, f)
runner.writer = slow
t.save(hook, runner, 2)
print('saved', flush=True)
"""


@pytest.mark.skipif(sys.platform == 'win32', reason='no flock')
def test_a_second_training_in_the_work_dir_stops_before_touching_it(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    child = subprocess.Popen([sys.executable, '-c', WRITER, str(work)], cwd=REPO,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=REPO))
    try:
        assert any(line.strip() == 'writing' for line in iter(child.stdout.readline, ''))
        before = sorted(os.listdir(work))
        assert len(before) == 3 and before[0].startswith('.iter_2.pth.')
        # e.g. a re-queued job with --resume while the first still runs: before the lock, it
        # deleted the first one's half-written iter_2 as a leftover, and that save failed
        with pytest.raises(UserInputError, match=f'another training is running in the work '
                           f'dir {work}: .*another --work-dir'):
            make_hook(FakeRunner(str(work)))
        assert sorted(os.listdir(work)) == before
        out, _ = child.communicate('go\n', timeout=60)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0 and out.strip().endswith('saved')
    assert resumable_step(str(work)) == 2
    runner = FakeRunner(str(work))  # the first has ended: the work dir is free again
    hook = make_hook(runner)
    save(hook, runner, 3)
    assert resumable_step(str(work)) == 3
    locker = [sys.executable, '-c', 'import sys; from mmmt.engine.hooks.safe_checkpoint_hook '
              'import lock_work_dir; print(lock_work_dir(sys.argv[1]))', str(work)]
    run = dict(cwd=REPO, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO))
    assert 'another training is running' in subprocess.run(locker, **run).stderr
    hook.after_run(runner)  # a training that ends releases the work dir
    assert subprocess.run(locker, **run).stdout.strip() == 'True'


def test_only_the_temporaries_of_atomic_writes_are_removed(tmp_path):
    from mmmt.engine.hooks.safe_checkpoint_hook import remove_stale_temporaries
    from mmmt.utils.fileio import _create_temporary
    for name in ('.notes.tmp', '.cache.tmp', '.iter_2.pth.tmp'):  # a user's hidden files
        (tmp_path / name).write_text('mine')
    (tmp_path / '.last_checkpoint.ab12cd34.tmp').mkdir()  # a folder: no atomic_write's
    fd, left = _create_temporary(str(tmp_path), 'iter_3.pth')  # as a kill -9 leaves it
    os.close(fd)
    (tmp_path / '.iter_1.pth.k2_x9abc.tmp').write_bytes(b'half')  # mkstemp's name (before)
    assert remove_stale_temporaries(str(tmp_path)) == sorted(
        [left, str(tmp_path / '.iter_1.pth.k2_x9abc.tmp')])
    assert sorted(os.listdir(tmp_path)) == ['.cache.tmp', '.iter_2.pth.tmp',
                                            '.last_checkpoint.ab12cd34.tmp', '.notes.tmp']


@pytest.mark.skipif(sys.platform == 'win32', reason='no flock')
def test_a_shared_checkpoint_out_dir_is_locked_too(tmp_path):
    # <out_dir>/<work dir name>: work dirs of the same name elsewhere save into one folder
    shared = tmp_path / 'ckpts' / 'exp'
    shared.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, '-c', 'import sys; from mmmt.engine.hooks.safe_checkpoint_hook import '
         'lock_work_dir; lock_work_dir(sys.argv[1]); print("locked", flush=True); '
         'sys.stdin.readline()', str(shared)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=REPO))
    try:
        assert holder.stdout.readline().strip() == 'locked'
        (tmp_path / 'b' / 'exp').mkdir(parents=True)
        runner = FakeRunner(str(tmp_path / 'b' / 'exp'))
        hook = SafeCheckpointHook(interval=1, by_epoch=False, out_dir=str(tmp_path / 'ckpts'))
        with pytest.raises(UserInputError, match=r'another training is running in the '
                           r'checkpoint folder \(default_hooks\.checkpoint\.out_dir\) '
                           f'{shared}:'):
            hook.before_train(runner)
    finally:
        holder.kill()
        holder.wait()
    hook = SafeCheckpointHook(interval=1, by_epoch=False, out_dir=str(tmp_path / 'ckpts'))
    hook.before_train(runner)  # free again
    save(hook, runner, 1)
    assert os.listdir(shared) == ['iter_1.pth']


def test_a_test_only_run_ends_without_a_lock_to_release(tmp_path):
    # Runner.test() calls after_run, never before_train
    SafeCheckpointHook(interval=1, by_epoch=False).after_run(FakeRunner(str(tmp_path)))
    assert os.listdir(tmp_path) == []


def flock_is_free(directory) -> bool:
    """Whether another open file description can lock ``directory`` now (as another process
    would: flock locks belong to the open file, so this works within one process)."""
    import fcntl
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.skipif(sys.platform == 'win32', reason='no flock')
@pytest.mark.parametrize('error', [RuntimeError, KeyboardInterrupt])
def test_a_training_that_raises_releases_the_work_dir(tmp_path, error):
    # mmengine calls no hook when training raises: the lock lasted until the process ended,
    # so after a failed runner.train() in a notebook, tools/train.py in a terminal was refused
    from mmengine.runner import BaseLoop

    class Loop(BaseLoop):
        def run(self):
            self.runner.call_hook('before_train')
            assert not flock_is_free(self.runner.work_dir)  # held during the training
            raise error('diverged')

    runner = FakeRunner(str(tmp_path))
    hook = SafeCheckpointHook(interval=1, by_epoch=False)
    runner.call_hook = lambda name: getattr(hook, name)(runner)
    runner._train_loop = Loop(runner, [])
    hook.before_run(runner)  # as Runner.train: the loop is built before before_run
    with pytest.raises(error, match='diverged'):
        runner._train_loop.run()
    assert flock_is_free(str(tmp_path))
    # a test-only run has no loop built (a dict): nothing is built or wrapped
    runner._train_loop = dict(type='IterBasedTrainLoop')
    hook.before_run(runner)
    hook.after_run(runner)
    assert runner._train_loop == dict(type='IterBasedTrainLoop')


def test_a_resume_of_an_earlier_checkpoint_never_falls_back_to_the_abandoned_ones(tmp_path):
    # a training saved iter_1..3; --resume iter_1.pth --force trained on from iter 1: the old
    # iter_3 stays until saved over, and was taken for this run's by --resume after a crash
    # (the pointer still named it) or when the pointer was lost (the highest step)
    work = str(tmp_path)
    first = FakeRunner(work)
    hook = make_hook(first, max_keep_ckpts=3)
    for step in (1, 2, 3):
        save(hook, first, step)
    hook.after_run(first)
    runner = FakeRunner(work)
    runner.iter = 1  # as mmengine's resume leaves it before before_train
    runner._load_from = osp.join(work, 'iter_1.pth')
    make_hook(runner, max_keep_ckpts=3)
    assert find_resume_checkpoint(work) == (osp.join(work, 'iter_1.pth'), None)  # a crash now
    hook = make_hook(runner, max_keep_ckpts=3)
    save(hook, runner, 2)  # this run's iter_2 replaces the old one: its own again
    assert find_resume_checkpoint(work) == (osp.join(work, 'iter_2.pth'), None)
    with open(osp.join(work, 'last_checkpoint'), 'w'):
        pass  # the pointer is lost (a full disk)
    path, note = find_resume_checkpoint(work)
    assert path == osp.join(work, 'iter_2.pth')
    assert note.endswith(f'iter_2.pth (not {work}/iter_3.pth: of a training abandoned by a '
                         'resume of an earlier checkpoint or a new training there, '
                         'abandoned_checkpoints.json)')
    save(hook, runner, 3)  # saved over: this run's
    assert find_resume_checkpoint(work) == (osp.join(work, 'iter_3.pth'), None)
    os.remove(osp.join(work, 'last_checkpoint'))
    assert find_resume_checkpoint(work)[0] == osp.join(work, 'iter_3.pth')


@pytest.mark.skipif(sys.platform == 'win32', reason='no flock')
def test_the_lock_is_released_while_forked_children_live(tmp_path):
    # data loader workers forked during training (persistent validation workers) inherit the
    # lock's descriptor: closing the parent's alone left the folder locked while they lived
    import multiprocessing
    import time

    from mmmt.engine.hooks.safe_checkpoint_hook import lock_work_dir, unlock_work_dir
    assert lock_work_dir(str(tmp_path))
    worker = multiprocessing.get_context('fork').Process(target=time.sleep, args=(60, ))
    worker.start()
    try:
        unlock_work_dir(str(tmp_path))
        assert flock_is_free(str(tmp_path))
    finally:
        worker.kill()
        worker.join()


def test_a_new_training_over_old_checkpoints_never_falls_back_to_them(tmp_path):
    """train.py --force into a folder of iter_1..3: killed after its first save (iter_1)
    and before the pointer moved, or with the pointer lost, --resume took the old iter_3
    (the pointer's, or the highest step) and said the training had finished."""
    work = str(tmp_path)
    first = FakeRunner(work)
    hook = make_hook(first, max_keep_ckpts=3)
    for step in (1, 2, 3):
        save(hook, first, step)
    hook.after_run(first)
    runner = FakeRunner(work)  # a new training: iter 0
    hook = make_hook(runner, max_keep_ckpts=3)
    assert not osp.exists(osp.join(work, 'last_checkpoint'))
    path, note = find_resume_checkpoint(work)  # killed before its first save: from scratch
    assert path is None and note.startswith(f'--resume: {work}/last_checkpoint does not '
                                            f'exist, and the checkpoints in {work} are all of '
                                            'an abandoned training (not ')
    assert note.endswith(': of a training abandoned by a resume of an earlier checkpoint or a '
                         'new training there, abandoned_checkpoints.json); training starts '
                         'from scratch')
    save(hook, runner, 1)
    assert find_resume_checkpoint(work) == (osp.join(work, 'iter_1.pth'), None)
    os.remove(osp.join(work, 'last_checkpoint'))  # lost, or the kill came before it was moved
    path, note = find_resume_checkpoint(work)
    assert path == osp.join(work, 'iter_1.pth')
    assert f'{work}/iter_3.pth' in note and 'of a training abandoned' in note


def test_a_new_training_into_an_out_dir_abandons_the_work_dirs_own_checkpoints(tmp_path):
    # checkpoints go to <out_dir>/exp now; the work dir's old ones (and its pointer to one)
    # were left as they were: killed before its first save, --resume took the old training
    work = tmp_path / 'work_dirs' / 'exp'
    old = FakeRunner(str(work))
    work.mkdir(parents=True)
    hook = make_hook(old)
    save(hook, old, 1000)
    hook.after_run(old)
    runner = FakeRunner(str(work))
    hook = SafeCheckpointHook(interval=1, by_epoch=False, out_dir=str(tmp_path / 'ckpts'))
    hook.before_train(runner)
    assert not (work / 'last_checkpoint').exists()
    path, note = find_resume_checkpoint(str(work), str(tmp_path / 'ckpts' / 'exp'))
    assert path is None and note.endswith('training starts from scratch')
    save(hook, runner, 1)
    assert find_resume_checkpoint(str(work), str(tmp_path / 'ckpts' / 'exp')) == (
        str(tmp_path / 'ckpts' / 'exp' / 'iter_1.pth'), None)
    hook.after_run(runner)


def test_a_stale_temporary_in_the_out_dir_is_removed(tmp_path):
    # checkpoints go to <out_dir>/<work dir name>: a save killed there leaves its temporary
    # there, not in the work dir
    from mmmt.utils.fileio import _create_temporary
    work = tmp_path / 'work_dirs' / 'exp'
    work.mkdir(parents=True)
    shared = tmp_path / 'ckpts' / 'exp'
    shared.mkdir(parents=True)
    fd, left = _create_temporary(str(shared), 'iter_2.pth')  # as a kill -9 leaves it
    os.close(fd)
    runner = FakeRunner(str(work))
    messages = []
    runner.logger = types.SimpleNamespace(info=lambda m: None, warning=messages.append)
    hook = SafeCheckpointHook(interval=1, by_epoch=False, out_dir=str(tmp_path / 'ckpts'))
    hook.before_train(runner)
    hook.after_run(runner)
    assert os.listdir(shared) == []
    assert messages == [f'Removed 1 temporary file(s) left by an interrupted save: {left}']


class FolderRunner(FakeRunner):
    """Saves each checkpoint as a folder, as DeepSpeed's strategy does."""

    def save_checkpoint(self, out_dir, filename, file_client_args=None, meta=None, **kwargs):
        folder = osp.join(out_dir, filename)
        os.makedirs(folder)
        torch.save(dict(meta=meta), osp.join(folder, 'mp_rank_00_model_states.pt'))


def test_rotation_removes_checkpoint_folders(tmp_path):
    runner = FolderRunner(str(tmp_path))
    hook = make_hook(runner, max_keep_ckpts=2)
    for step in (1, 2, 3):
        save(hook, runner, step)
    hook.after_run(runner)
    assert sorted(os.listdir(tmp_path)) == ['iter_2.pth', 'iter_3.pth', 'last_checkpoint']
    assert os.listdir(tmp_path / 'iter_3.pth') == ['mp_rank_00_model_states.pt']
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'iter_3.pth')
