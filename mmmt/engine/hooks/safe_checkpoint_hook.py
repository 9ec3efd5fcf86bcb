"""A CheckpointHook whose rotation never leaves a work dir without a complete checkpoint.

mmengine's ``CheckpointHook`` deletes the oldest checkpoint *before* writing the new one and
writes ``last_checkpoint`` in place, so with ``max_keep_ckpts=1`` a crash during the save leaves
no checkpoint at all and a ``last_checkpoint`` naming a deleted file, and a full disk can leave
``last_checkpoint`` empty. Here the order is: the new checkpoint (atomically, through mmmt's
file backend), then ``last_checkpoint`` (atomically), then the deletion of outdated ones; a
crash at any point leaves the previous complete checkpoint and a pointer to a complete file.
``save_best`` likewise writes the new ``best_*.pth`` before it removes the previous one (mmengine
removes it first, so a crash or a full disk in between leaves no best checkpoint), and
never from a model with NaN/inf weights (training stops instead, as for a periodic save).
Temporary files of a save that was interrupted earlier are removed, and named, when training
starts; before that, the work dir is locked (:func:`lock_work_dir`), so that a second training
in it (a re-queued job while the first still runs) stops at once instead of deleting the first
one's checkpoint being written and saving over its files. The lock is released when the
training ends, by an exception too (mmengine calls no hook then: the hook wraps the train
loop's ``run``), so that a notebook whose ``runner.train()`` raised does not keep the folder
locked against other processes while the kernel lives.
"""
import functools
import inspect
import os
import os.path as osp
from typing import Dict, List, Optional

from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop

from mmmt.registry import HOOKS
from mmmt.utils.checkpoint import (ABANDONED_RECORD, describe_non_finite, later_checkpoints,
                                   non_finite_tensors, record_abandoned_checkpoints)
from mmmt.utils.errors import UserInputError, did_you_mean, is_int, name_some
from mmmt.utils.fileio import ATOMIC_BACKEND, atomic_write, remove_stale_temporaries

__all__ = ['SafeCheckpointHook', 'remove_stale_temporaries', 'lock_work_dir', 'unlock_work_dir',
           'check_work_dir_unlocked']

#: Work dirs (real paths) this process holds the lock of, with the descriptor holding it.
_HELD_LOCKS: Dict[str, int] = {}


def lock_work_dir(directory: str, what: str = 'the work dir') -> bool:
    """Lock ``directory`` for this process's training, or raise if another process holds it.

    An advisory ``flock`` on the folder itself (no lock file to clutter it or to go stale: the
    kernel releases the lock however the process ends, ``kill -9`` included), held until
    :func:`unlock_work_dir` or the end of the process. A process that holds it may lock it
    again. Where there are no such locks (Windows, some network file systems) nothing is
    locked.

    Args:
        directory (str): The folder to lock.
        what (str): How the error message names it. Defaults to 'the work dir'.

    Returns:
        bool: Whether this call took the lock (False: already held, or no locking here).

    Raises:
        UserInputError: Another process holds the lock.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        return False
    key = osp.realpath(directory)
    if key in _HELD_LOCKS:
        return False
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserInputError(_locked_message(directory, what)) from None
    except OSError:  # a file system without flock: train unlocked, as before
        os.close(fd)
        return False
    _HELD_LOCKS[key] = fd
    return True


def _locked_message(directory: str, what: str) -> str:
    return (f'another training is running in {what} {directory}: two trainings in one '
            "folder save over each other's checkpoints (and the second would delete the "
            "first one's checkpoint being written). Wait for it to end, stop it, or choose "
            'another --work-dir')


def check_work_dir_unlocked(directory: str, what: str = 'the work dir') -> None:
    """Raise if another process's training holds :func:`lock_work_dir`'s lock on
    ``directory`` (nothing for a folder that does not exist, or without locking).

    For tools/train.py before its work: the lock itself is taken when training starts, after
    the model is built and a ``--resume`` checkpoint chosen and loaded, meanwhile the running
    training may prune the chosen file (a "not found" instead of this message), and only rank
    0 takes it (the others failed with a traceback of a closed connection). A shared lock is
    tried and dropped: each rank of one job can probe at once, and only another process's
    exclusive lock conflicts.

    Args:
        directory (str): The folder.
        what (str): How the error message names it. Defaults to 'the work dir'.

    Raises:
        UserInputError: Another process's training holds the folder.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        return
    if not osp.isdir(directory) or osp.realpath(directory) in _HELD_LOCKS:
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except BlockingIOError:
        raise UserInputError(_locked_message(directory, what)) from None
    except OSError:  # a file system without flock
        pass
    finally:
        os.close(fd)


def unlock_work_dir(directory: str) -> None:
    """Release the lock :func:`lock_work_dir` took (nothing if this process holds none)."""
    fd = _HELD_LOCKS.pop(osp.realpath(directory), None)
    if fd is not None:
        import fcntl

        # unlocked explicitly: processes forked meanwhile (data loader workers started during
        # training) hold copies of the descriptor, and closing this one alone would leave the
        # lock with them for as long as they live
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


#: Names of :func:`~mmmt.utils.atomic_write`'s temporary files: ``.<name>.<8 random>.tmp``.
def _best_info(message_hub) -> dict:
    """The ``best_score*``/``best_ckpt*`` entries mmengine's save_best keeps in the hub."""
    return {key: value for key, value in message_hub.runtime_info.items()
            if key.startswith(('best_score', 'best_ckpt'))}


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` with crash-safe rotation (same arguments).

    Without ``backend_args``/``file_client_args``, checkpoints are written through
    :class:`~mmmt.utils.AtomicLocalBackend` (temporary file, then rename).
    """

    def __init__(self, *args, **kwargs) -> None:
        if kwargs.get('backend_args') is None and kwargs.get('file_client_args') is None:
            kwargs['backend_args'] = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, **kwargs)
        self._locked: List[str] = []  # the folders before_train locked, for after_run

    def _check_extra_options(self, runner) -> None:
        """Refuse keys that are neither the hook's options nor ``runner.save_checkpoint``'s.

        mmengine's hook keeps any other key (``intervall=5``) for ``runner.save_checkpoint``,
        which raised "unexpected keyword argument" at the first save: after ``interval``
        iterations of training, all of them lost.
        """
        parameters = inspect.signature(runner.save_checkpoint).parameters
        if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return
        unknown = [key for key in self.args if key not in parameters]
        if not unknown:
            return
        options = [name for name in inspect.signature(CheckpointHook).parameters
                   if name != 'kwargs']
        hint = did_you_mean(unknown[0], options)
        hint = f'; {hint}' if hint else '.'
        raise UserInputError(
            f'the checkpoint hook (default_hooks.checkpoint) has no option '
            f'{", ".join(map(repr, unknown))}{hint} Its options: {name_some(options, 12)}, and '
            "those of the Runner's save_checkpoint")

    def before_run(self, runner) -> None:
        self._check_extra_options(runner)
        super().before_run(runner)
        # mmengine has no hook for a training that raises (Runner.train calls after_run only
        # when the loop returns): without this, the lock before_train takes would last until
        # the process ends. Runner.train builds the loop before before_run; test()/val() have
        # none built (a dict or None), and building it here would need the training data.
        loop = getattr(runner, '_train_loop', None)
        if isinstance(loop, BaseLoop) and 'run' not in vars(loop):
            run = loop.run

            @functools.wraps(run)
            def run_then_unlock_on_error(*args, **kwargs):
                try:
                    return run(*args, **kwargs)
                except BaseException:
                    self._unlock()
                    raise

            loop.run = run_then_unlock_on_error

    def before_train(self, runner) -> None:
        self._forget_foreign_keep_ids(runner)  # first: mmengine's before_train removes files
        super().before_train(runner)
        self._forget_foreign_best(runner)
        if not is_main_process():
            return
        # first: the temporaries below may be another running training's checkpoints; an
        # out_dir (<out_dir>/<work dir name>) is shared by work dirs of the same name
        for directory in self._local_dirs(runner):
            os.makedirs(directory, exist_ok=True)
            if lock_work_dir(directory, 'the work dir' if directory == runner.work_dir else
                             'the checkpoint folder (default_hooks.checkpoint.out_dir)'):
                self._locked.append(directory)
        removed: List[str] = []
        for directory in dict.fromkeys([runner.work_dir, self.out_dir]):
            if osp.isdir(directory):
                removed += remove_stale_temporaries(directory)
        if removed:
            runner.logger.warning(
                f'Removed {len(removed)} temporary file(s) left by an interrupted save: '
                + ', '.join(removed))
        self._record_abandoned_branch(runner)

    def _is_own_best(self, path: str) -> bool:
        """Whether ``path`` can be a ``best_*`` checkpoint this hook saved: directly in its
        checkpoint folder (compared as real paths for a local one), named ``best_...``."""
        name = osp.basename(path)
        if not name.startswith('best_'):
            return False
        if isinstance(self.file_backend, LocalBackend):
            return osp.realpath(osp.dirname(path) or '.') == osp.realpath(self.out_dir)
        return path == self.file_backend.join_path(self.out_dir, name)

    def _forget_foreign_keep_ids(self, runner) -> None:
        """Drop the resumed ``keep_ckpt_ids`` that name no checkpoint of this training here.

        mmengine removes ``<checkpoint folder>/iter_<id>.pth`` for the oldest of these ids (at
        once when they are more than ``max_keep_ckpts``, later one per save). They are the
        steps of the resumed file's own folder: resumed in another work dir, they named this
        folder's files of another training (deleted); a crafted checkpoint, which loads
        untrusted, could list any. Here they are kept only for a resume from the checkpoint
        folder itself, and only the integer steps up to the resumed one.
        """
        hub = runner.message_hub
        if not getattr(runner, '_resume', False) or 'keep_ckpt_ids' not in hub.runtime_info:
            return
        ids = hub.get_info('keep_ckpt_ids')
        folder = runner.work_dir
        if self.out_dir is not None and self.out_dir != runner.work_dir:  # as mmengine joins
            folder = osp.join(self.out_dir, osp.basename(runner.work_dir.rstrip(osp.sep)))
        resumed = getattr(runner, '_load_from', None)
        if '://' in folder or not isinstance(resumed, str) or '://' in resumed:
            return  # not local folders: compared only where real paths exist
        step = runner.epoch if self.by_epoch else runner.iter
        if osp.realpath(osp.dirname(osp.abspath(resumed))) != osp.realpath(folder):
            kept = []
        else:
            kept = [i for i in (ids if isinstance(ids, (list, tuple)) else [])
                    if is_int(i) and 0 < i <= step]
        if kept == ids:
            return
        hub.update_info('keep_ckpt_ids', kept)
        if kept:
            runner.logger.warning(f'The resumed checkpoint lists {ids!r} as the steps of its '
                                  f'kept checkpoints; only {kept} can be (integers up to the '
                                  f'resumed step {step}): the others are never removed')
        else:
            runner.logger.info(f'Resumed from {resumed}, outside the checkpoint folder '
                               f'{folder}: the checkpoints it kept there are not rotated '
                               'here, only those this training saves')

    def _forget_foreign_best(self, runner) -> None:
        """Forget a resumed ``best_ckpt`` that is not a best checkpoint of this run's folder.

        mmengine takes the previous best checkpoint's path from the resumed checkpoint's
        message hub and removes that path, a file or a whole folder, once a better model is
        saved. The path is plain data of the checkpoint, which loads without trust: a crafted
        file can name any file or folder of the user (``/home/me/thesis``), and a genuine one
        resumed in another work dir names the best file of the run it came from. Such a path
        is dropped (from the hook and the hub, so later checkpoints do not carry it) and never
        removed; the best score stays, so a new best must still beat it.
        """
        if self.save_best is None:
            return
        hub = runner.message_hub
        foreign = {key: value for key, value in _best_info(hub).items()
                   if key.startswith('best_ckpt') and value is not None
                   and not (isinstance(value, str) and self._is_own_best(value))}
        if not foreign:
            return
        for key in foreign:
            hub.pop_info(key)
        # the hub keys mmengine's before_train read the paths from, in key_indicators' order
        keys = (['best_ckpt'] if len(self.key_indicators) == 1 else
                [f'best_ckpt_{key}' for key in self.key_indicators])
        self._set_best_paths([None if key in foreign else path
                              for key, path in zip(keys, self._best_paths())])
        runner.logger.warning(
            'The resumed checkpoint names ' + ', '.join(f'{value!r} ({key})' for key, value in
                                                        foreign.items())
            + f' as the best checkpoint, which is no best_* file of this run\'s checkpoint '
            f'folder {self.out_dir}: forgotten, and never removed when a better one is saved')

    def _record_abandoned_branch(self, runner) -> None:
        """Mark the checkpoints of an earlier training that this one will save over as another
        branch of training, so that a ``--resume`` after a crash never continues that one.

        After a resume of an earlier checkpoint than the folder's latest (``--resume iter_N
        --force``): the later ones, and ``last_checkpoint`` points at the resumed file. A new
        training (``--force`` into a folder of checkpoints): all of them, and
        ``last_checkpoint`` goes. Until this run saves over them they looked like its own, and
        a ``--resume`` after a crash continued the abandoned training (from the pointer, or
        from the highest step when the pointer was lost; for a new training even after its
        first save, whose lower step lost to theirs).
        """
        step = runner.epoch if self.by_epoch else runner.iter
        if not isinstance(self.file_backend, LocalBackend):
            return
        kind = 'epoch' if self.by_epoch else 'iter'
        # the work dir's too when checkpoints go to an out_dir: --resume falls back to both
        later = [osp.join(folder, name) for folder in self._local_dirs(runner)
                 for name in later_checkpoints(folder, kind, step)]
        if not later:
            return
        pointer = osp.join(runner.work_dir, 'last_checkpoint')
        resumed = getattr(runner, '_load_from', None) if step else None
        namesake = osp.join(self.out_dir, osp.basename(resumed or ''))
        if (resumed and osp.isfile(namesake)
                and osp.realpath(namesake) != osp.realpath(resumed)):
            # the pointer names the resumed file of another folder from here on: this one of
            # the earlier training must not stand in for it (as in a copied work dir)
            later.append(namesake)
        record_abandoned_checkpoints(runner.work_dir, later)
        if not step:
            if osp.isfile(pointer):
                os.remove(pointer)
            runner.logger.warning(
                f'A new training in {self.out_dir}, which holds {name_some(later)} of an '
                f'earlier training: recorded in {ABANDONED_RECORD} so that --resume never '
                'continues from them; this run saves over those of its steps')
            return
        if resumed and osp.isfile(resumed):
            atomic_write(osp.abspath(resumed), pointer)
        runner.logger.warning(
            f'Resumed at {kind} {step}, before {name_some(later)} of an earlier training: '
            f'recorded in {ABANDONED_RECORD} so that --resume never continues from them; '
            'this run saves over those of its steps')

    def after_run(self, runner) -> None:
        # a training that raised never gets here (see before_run); a test-only run calls
        # after_run without before_train: nothing to release then
        self._unlock()

    def _unlock(self) -> None:
        """Release the folders :meth:`before_train` locked."""
        while self._locked:
            unlock_work_dir(self._locked.pop())

    def _local_dirs(self, runner) -> List[str]:
        """The work dir, and the checkpoint folder when it is another local one."""
        local = isinstance(self.file_backend, LocalBackend)
        return list(dict.fromkeys([runner.work_dir] + ([self.out_dir] if local else [])))

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        outdated: Optional[int] = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                            and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        # NonFiniteLossHook catches most; finite losses can still give inf weights
        self._check_finite(runner, runner.iter + 1,
                           'Not saved: the previous checkpoint stays the latest.')
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        atomic_write(str(self.last_ckpt), osp.join(runner.work_dir, 'last_checkpoint'))
        if outdated is not None and outdated != step:
            self._remove_checkpoint(self.filename_tmpl.format(outdated))

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """mmengine's best-checkpoint logic, but the previous best goes only after the new one.

        mmengine removes ``best_ckpt_path`` (``best_ckpt_path_dict[key]``) before saving when
        it is set, so it is hidden (set to None) while mmengine runs; what mmengine set anew
        afterwards names the new best, and the previous file is removed only then, after the
        ``last_checkpoint`` re-save too, so the newest periodic checkpoint never names a best
        file that is gone. A save that raises restores the previous names and scores.
        """
        if not self.save_best:
            return
        missing = [k for k in self.key_indicators if k != 'auto' and k not in metrics]
        if missing:  # mmengine's own error is a bare KeyError after the first validation
            hints = ''.join(f' ({k}: {hint})' for k in missing
                            for hint in [did_you_mean(k, list(metrics))] if hint)
            raise UserInputError(
                f'default_hooks.checkpoint.save_best: {", ".join(map(repr, missing))} is not a '
                f'metric of the validation{hints}; its metrics: {", ".join(metrics)}')
        # before mmengine compares scores: a model with NaN/inf weights still gets finite,
        # even improved, metrics (argmax of NaN is class 0), and mmengine's save_best saves it
        # without the check of the periodic save; where no periodic checkpoint was saved yet
        # in this run, nothing re-saves it either, so the NaN file would become the only best
        self._check_finite(runner, runner.iter,
                           'Not saved as the best: the previous best checkpoint stays.')
        hub = runner.message_hub
        previous = self._best_paths()
        previous_info = _best_info(hub)
        self._set_best_paths([None] * len(previous))
        try:
            super()._save_best_checkpoint(runner, metrics)
        except BaseException:
            self._set_best_paths(previous)
            for key in _best_info(hub):
                hub.pop_info(key)
            for key, value in previous_info.items():
                hub.update_info(key, value)
            raise
        current = self._best_paths()
        kept = [new or old for old, new in zip(previous, current)]
        self._set_best_paths(kept)
        if not is_main_process():
            return
        for old, new in zip(previous, current):
            if old and new and old not in kept and self._remove_path(old):
                runner.logger.info(f'The previous best checkpoint {old} is removed')

    @staticmethod
    def _check_finite(runner, iteration: int, consequence: str) -> None:
        """Raise ``FloatingPointError`` if the model holds NaN/inf weights."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        state = model.state_dict()
        bad = non_finite_tensors(state)
        if bad:
            raise FloatingPointError(
                describe_non_finite(bad, len(state), f'the model at iteration {iteration}')
                + f' {consequence}')

    def _best_paths(self) -> List[Optional[str]]:
        """The best checkpoint of each key indicator, in their order (None: none yet).

        Positions, not names: mmengine renames an ``'auto'`` indicator on the first metrics.
        """
        if len(self.key_indicators) == 1:
            return [self.best_ckpt_path]
        return [self.best_ckpt_path_dict.get(key) for key in self.key_indicators]

    def _set_best_paths(self, paths: List[Optional[str]]) -> None:
        if len(self.key_indicators) == 1:
            self.best_ckpt_path = paths[0]
        else:
            self.best_ckpt_path_dict.update(zip(self.key_indicators, paths))

    def _remove_checkpoint(self, filename: str) -> None:
        self._remove_path(self.file_backend.join_path(self.out_dir, filename))

    def _remove_path(self, path: str) -> bool:
        """Remove a checkpoint file or directory; returns whether there was one."""
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # deepspeed saves directories
            self.file_backend.rmtree(path)
        else:
            return False
        return True
