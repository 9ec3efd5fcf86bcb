"""SafeCheckpointHook's ``save_best`` on a real ``Runner``: the previous best checkpoint is
removed only after the new one is complete, so a failed save leaves it intact."""
import errno
import logging
import os

import pytest
import torch
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmmt.utils import AtomicLocalBackend, atomic_write, load_checkpoint_file
from tests.tool_loader import load_tool

toy = load_tool('tests', 'test_utils', 'test_checkpoint_runner')


class ScriptedMetric(BaseMetric):
    """Returns the next row of ``scores`` at each validation, whatever the predictions."""

    def __init__(self, scores):
        super().__init__()
        self.scores = iter(scores)

    def process(self, data_batch, data_samples):
        self.results.append(0)

    def compute_metrics(self, results):
        return next(self.scores)


def make_runner(work_dir, scores, max_iters, save_best='acc', rule='greater', **kwargs):
    return Runner(
        model=toy.ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=toy.ToyDataset(), sampler=dict(type='InfiniteSampler'),
                              batch_size=2, num_workers=0),
        val_dataloader=dict(dataset=toy.ToyDataset(), sampler=dict(type='DefaultSampler'),
                            batch_size=4, num_workers=0),
        val_evaluator=Evaluator(ScriptedMetric(scores)),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=1),
        default_hooks=dict(checkpoint=dict(type='SafeCheckpointHook', by_epoch=False,
                                           interval=1, max_keep_ckpts=1, save_best=save_best,
                                           rule=rule, save_param_scheduler=False)),
        default_scope='mmmt',
        log_level=logging.WARNING,
        experiment_name=f'best_{os.path.basename(str(work_dir))}_{max_iters}',
        **kwargs)


def best_files(work_dir):
    return sorted(n for n in os.listdir(work_dir) if n.startswith('best_'))


def saved_iter(work_dir, name):
    return load_checkpoint_file(str(work_dir / name))['meta']['iter']


def hook_of(runner):
    return next(h for h in runner.hooks if type(h).__name__ == 'SafeCheckpointHook')


@pytest.mark.parametrize('save_best', ['acc', 'auto'])  # 'auto': the first metric
def test_an_improvement_replaces_the_best(tmp_path, save_best):
    make_runner(tmp_path, [dict(acc=0.1), dict(acc=0.5), dict(acc=0.3)], max_iters=3,
                save_best=save_best).train()
    assert best_files(tmp_path) == ['best_acc_iter_2.pth']
    assert saved_iter(tmp_path, 'best_acc_iter_2.pth') == 2


def test_a_failed_best_save_keeps_the_previous_best(tmp_path, monkeypatch):
    runner = make_runner(tmp_path, [dict(acc=0.1), dict(acc=0.5)], max_iters=2)
    put = AtomicLocalBackend.put

    def full_disk(self, obj, filepath):
        if os.path.basename(filepath) != 'best_acc_iter_2.pth':
            return put(self, obj, filepath)

        def half(f):
            f.write(obj[:len(obj) // 2])
            raise OSError(errno.ENOSPC, 'No space left on device')
        atomic_write(half, filepath)

    monkeypatch.setattr(AtomicLocalBackend, 'put', full_disk)
    with pytest.raises(OSError, match='No space left'):
        runner.train()
    assert not [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]
    assert best_files(tmp_path) == ['best_acc_iter_1.pth']
    assert saved_iter(tmp_path, 'best_acc_iter_1.pth') == 1
    # what the hook and the hub remember is the file that exists, with its score
    assert hook_of(runner).best_ckpt_path == str(tmp_path / 'best_acc_iter_1.pth')
    assert runner.message_hub.get_info('best_ckpt') == str(tmp_path / 'best_acc_iter_1.pth')
    assert runner.message_hub.get_info('best_score') == 0.1


def test_a_new_best_under_the_same_name_is_kept(tmp_path):
    runner = make_runner(tmp_path, [dict(acc=0.1), dict(acc=0.5), dict(acc=0.9)], max_iters=2)
    runner.train()
    runner.val()  # validates again at iteration 2: the new best has the old one's name
    assert best_files(tmp_path) == ['best_acc_iter_2.pth']
    assert runner.message_hub.get_info('best_score') == 0.9
    assert load_checkpoint_file(str(tmp_path / 'best_acc_iter_2.pth'))[
        'message_hub']['runtime_info']['best_score'] == 0.9


def test_two_indicators_each_keep_their_best(tmp_path):
    scores = [dict(acc=0.1, err=0.9), dict(acc=0.5, err=0.95), dict(acc=0.4, err=0.2)]
    make_runner(tmp_path, scores, max_iters=3, save_best=['acc', 'err'],
                rule=['greater', 'less']).train()
    assert best_files(tmp_path) == ['best_acc_iter_2.pth', 'best_err_iter_3.pth']
    assert saved_iter(tmp_path, 'best_err_iter_3.pth') == 3


def test_resume_keeps_the_best_bookkeeping(tmp_path):
    make_runner(tmp_path, [dict(acc=0.1), dict(acc=0.5)], max_iters=2).train()
    # 0.3 at iteration 3 is worse than the 0.5 saved before; 0.7 replaces the iteration-2 best
    resumed = make_runner(tmp_path, [dict(acc=0.3), dict(acc=0.7)], max_iters=4, resume=True)
    resumed.train()
    assert best_files(tmp_path) == ['best_acc_iter_4.pth']
    assert resumed.message_hub.get_info('best_ckpt') == str(tmp_path / 'best_acc_iter_4.pth')
    assert load_checkpoint_file(str(tmp_path / 'iter_4.pth'))['message_hub']['runtime_info'][
        'best_ckpt'] == str(tmp_path / 'best_acc_iter_4.pth')


class PoisonAfterSecondIteration(Hook):
    """Sets a weight to inf after iteration 2's periodic save, before its validation: a finite
    loss can still leave the weights non-finite (an overflowing step)."""

    priority = 'LOWEST'  # after the checkpoint hook

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter == 1:  # the second iteration (runner.iter counts from 0 here)
            with torch.no_grad():
                runner.model.linear.weight.fill_(float('inf'))


@pytest.mark.parametrize('interval', [1, 100])  # 100: no periodic save before the validation
def test_non_finite_weights_never_become_the_best(tmp_path, interval):
    # the scores improve whatever the weights are (NaN weights give finite metrics)
    runner = make_runner(tmp_path, [dict(acc=0.1), dict(acc=0.5), dict(acc=0.9)], max_iters=3,
                         custom_hooks=[PoisonAfterSecondIteration()])
    hook_of(runner).interval = interval
    with pytest.raises(FloatingPointError, match=r'iteration 2: .*linear\.weight.*as the best'):
        runner.train()
    assert best_files(tmp_path) == ['best_acc_iter_1.pth']
    state = load_checkpoint_file(str(tmp_path / 'best_acc_iter_1.pth'))['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values())
    assert runner.message_hub.get_info('best_score') == 0.1


@pytest.mark.parametrize('inside', [False, True])  # True: a folder of the work dir itself
def test_a_resumed_best_path_outside_the_work_dir_is_never_removed(tmp_path, capsys, inside):
    # the hub's best_ckpt is data of the checkpoint, which loads untrusted: a crafted one can
    # name any folder, and a genuine one copied from another work dir names that run's best;
    # in the checkpoint folder itself, only a best_* file can be a best checkpoint
    first, work = tmp_path / f'a_{inside}', tmp_path / f'b_{inside}'  # experiment names
    make_runner(first, [dict(acc=0.1)], max_iters=1).train()
    victim = (work if inside else tmp_path) / 'thesis'
    victim.mkdir(parents=True)
    (victim / 'chapter1.tex').write_text('years of work')
    checkpoint = load_checkpoint_file(str(first / 'iter_1.pth'))
    checkpoint['message_hub']['runtime_info']['best_ckpt'] = str(victim)
    torch.save(checkpoint, tmp_path / 'downloaded.pth')
    resumed = make_runner(work, [dict(acc=0.9)], max_iters=2, resume=True,
                          load_from=str(tmp_path / 'downloaded.pth'))
    resumed.train()
    assert (victim / 'chapter1.tex').read_text() == 'years of work'
    assert best_files(work) == ['best_acc_iter_2.pth']  # 0.9 beats the kept 0.1
    assert resumed.message_hub.get_info('best_ckpt') == str(work / 'best_acc_iter_2.pth')
    log = ''.join(capsys.readouterr())
    assert f"names {str(victim)!r} (best_ckpt) as the best checkpoint" in log


def test_a_save_best_metric_that_the_validation_lacks_is_one_line(tmp_path):
    # mmengine's own error was a bare KeyError traceback after the first validation
    from mmmt.utils.errors import UserInputError
    runner = make_runner(tmp_path, [dict(acc=0.1, err=0.9)], max_iters=1, save_best='accc')
    with pytest.raises(UserInputError, match=r"^default_hooks\.checkpoint\.save_best: 'accc' "
                       r"is not a metric of the validation \(accc: did you mean 'acc'\?\); "
                       r'its metrics: acc, err$'):
        runner.train()
    assert best_files(tmp_path) == []


def test_a_new_best_keeps_max_keep_ckpts_periodic_checkpoints(tmp_path):
    # a new best re-saves the periodic checkpoint of its step (mmengine's save_best does, so
    # that it names the new best): that second save of one step must not count as another
    # kept checkpoint, which removed the one before it early
    runner = make_runner(tmp_path, [dict(acc=0.1), dict(acc=0.5), dict(acc=0.9)], max_iters=3)
    hook_of(runner).max_keep_ckpts = 2
    runner.train()
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith('iter_')) == [
        'iter_2.pth', 'iter_3.pth']
    assert runner.message_hub.get_info('keep_ckpt_ids') == [2, 3]
