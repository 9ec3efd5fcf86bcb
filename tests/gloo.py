"""Multi-process gloo runs on the CPU for the distributed tests: a free port, the spawn, and
each rank's process group."""
import os
import socket
from typing import Callable

import torch.multiprocessing as mp

__all__ = ['free_port', 'spawn_ranks', 'init_gloo']


def free_port() -> int:
    """A TCP port of localhost that was free a moment ago (bound to port 0, then released)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def spawn_ranks(worker: Callable, *args, nprocs: int = 2) -> None:
    """Run ``worker(rank, port, *args)`` in ``nprocs`` new processes; ``port`` is free for
    their process group (:func:`init_gloo`). ``worker`` must be a module-level function."""
    mp.spawn(worker, args=(free_port(), *args), nprocs=nprocs)


def init_gloo(rank: int, port: int, world_size: int = 2) -> None:
    """Join the gloo process group of :func:`spawn_ranks`' ranks on ``port``."""
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
