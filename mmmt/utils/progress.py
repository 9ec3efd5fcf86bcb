"""Progress output that reads well in a terminal and in a log file."""
import sys
from typing import Callable, Iterable, List, Optional, TextIO

from mmengine.utils import ProgressBar as _MMEngineProgressBar
from mmengine.utils import Timer

__all__ = ['ProgressBar', 'track_progress']


class ProgressBar(_MMEngineProgressBar):
    """mmengine's progress bar on a terminal; on a pipe or a file, a plain line per step.

    mmengine's bar redraws one line with carriage returns, which a log file (``tee``, slurm's
    output, CI) keeps as one line of thousands of redraws. Where ``file`` is not a terminal,
    this bar writes ``description: done/total (pct%), elapsed ..s, ETA ..s`` lines instead: at
    each ``1/steps`` of the work and at the end, so a long job logs ``steps`` lines at most.

    Args:
        task_num (int): Number of steps in all (> 0).
        file (TextIO): Where to write. Defaults to ``sys.stdout``.
        description (str): What is counted, at the start of each line. Defaults to
            ``'progress'``.
        steps (int): Lines at most on a pipe or file. Defaults to 10.
    """

    def __init__(self, task_num: int, file: Optional[TextIO] = None,
                 description: str = 'progress', steps: int = 10):
        file = sys.stdout if file is None else file
        self.description = description
        self.steps = max(1, steps)
        self.is_terminal = bool(getattr(file, 'isatty', lambda: False)())
        self._last_line = 0
        super().__init__(task_num, file=file)

    def start(self) -> None:
        if self.is_terminal:
            return super().start()
        self.timer = Timer()

    def update(self, num_tasks: int = 1) -> None:
        if self.is_terminal:
            return super().update(num_tasks)
        self.completed += num_tasks
        total = max(self.task_num, 1)
        # the 1/steps mark just reached (the end is always written)
        mark = self.completed * self.steps // total
        if mark <= self._last_line and self.completed < self.task_num:
            return
        self._last_line = mark
        elapsed = self.timer.since_start()
        eta = elapsed * max(self.task_num - self.completed, 0) / self.completed
        self.file.write(f'{self.description}: {self.completed}/{self.task_num} '
                        f'({100 * self.completed / total:.0f}%), elapsed {elapsed:.0f}s, '
                        f'ETA {eta:.0f}s\n')
        self.file.flush()

    def finish(self) -> None:
        """End the bar's line on a terminal (a pipe or file has whole lines already)."""
        if self.is_terminal:
            self.file.write('\n')
            self.file.flush()


def track_progress(func: Callable, tasks: Iterable, total: Optional[int] = None,
                   nproc: int = 1, file: Optional[TextIO] = None,
                   description: str = 'progress') -> List:
    """``[func(t) for t in tasks]`` with a :class:`ProgressBar`, in ``nproc`` processes.

    The results keep the order of ``tasks``. Unlike :func:`mmengine.utils.track_progress`,
    the output suits log files too (see :class:`ProgressBar`).

    Args:
        func (callable): Called with each task; picklable when ``nproc > 1``.
        tasks (iterable): The tasks.
        total (int, optional): Number of tasks, for an iterable without ``len``.
        nproc (int): Worker processes; 1 runs in this process. Defaults to 1.
        file (TextIO, optional): Where the progress goes. Defaults to ``sys.stdout``.
        description (str): What is counted. Defaults to ``'progress'``.
    """
    tasks = list(tasks) if total is None else tasks
    total = len(tasks) if total is None else total
    bar = ProgressBar(total, file=file, description=description)
    results = []
    if nproc <= 1:
        for task in tasks:
            results.append(func(task))
            bar.update()
    else:
        from multiprocessing import Pool
        with Pool(nproc) as pool:
            for result in pool.imap(func, tasks, chunksize=1):
                results.append(result)
                bar.update()
    bar.finish()
    return results
