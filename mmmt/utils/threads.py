"""CPU thread settings that stay fast when other processes share the machine.

Two OpenMP defaults hurt on a shared CPU: worker threads *spin* between parallel regions (the
GNU runtime's default wait policy), burning the cores another process needs, and one process
per core is assumed even when a launcher runs several processes on the same cores. Each
spinning team then waits for its slowest thread, which another process keeps descheduled:
on a 2-core machine running two demos at once, an iteration took 12 s instead of 2.4 s with
passive waiting (docs/installation.md, "Threads").

:func:`configure_cpu_threads` sets, only where the user has not:

* ``OMP_WAIT_POLICY=PASSIVE``: idle worker threads sleep instead of spinning;
* ``OMP_NUM_THREADS``: the cores this process may run on (``os.sched_getaffinity``, which
  honours ``taskset`` and container CPU sets, unlike ``os.cpu_count``), divided by the number
  of processes the launcher starts on this machine (``LOCAL_WORLD_SIZE``).

OpenMP reads both when it starts, i.e. when torch is first imported, so the tools call this
before importing torch. It imports nothing but the standard library.
"""
import os
import sys
from typing import Dict, Optional

__all__ = ['configure_cpu_threads', 'default_num_threads']


def default_num_threads(environ: Optional[Dict[str, str]] = None) -> int:
    """The usable cores of this process, shared among the launcher's local processes.

    Args:
        environ (dict, optional): The environment to read ``LOCAL_WORLD_SIZE`` from.
            Defaults to ``os.environ``.

    Returns:
        int: At least 1.
    """
    environ = os.environ if environ is None else environ
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    try:
        local_procs = max(1, int(environ.get('LOCAL_WORLD_SIZE', '1')))
    except ValueError:
        local_procs = 1
    return max(1, cores // local_procs)


def configure_cpu_threads(environ: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Set the OpenMP thread settings that are not set yet (see the module docstring).

    Call it before torch is imported. If torch is already imported, the wait policy can no
    longer change and only the thread count is applied (``torch.set_num_threads``).

    Args:
        environ (dict, optional): The environment to update. Defaults to ``os.environ``.

    Returns:
        dict: The settings this call made (empty when the user set both).
    """
    environ = os.environ if environ is None else environ
    made = {}
    if 'OMP_WAIT_POLICY' not in environ:
        made['OMP_WAIT_POLICY'] = 'PASSIVE'
    if 'OMP_NUM_THREADS' not in environ:
        made['OMP_NUM_THREADS'] = str(default_num_threads(environ))
    environ.update(made)
    if 'OMP_NUM_THREADS' in made and 'torch' in sys.modules and environ is os.environ:
        sys.modules['torch'].set_num_threads(int(made['OMP_NUM_THREADS']))
    return made
