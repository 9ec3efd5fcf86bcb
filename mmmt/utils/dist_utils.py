"""Distributed training on machines without CUDA."""
import datetime
import logging
import os
import shutil
import subprocess
from typing import Any, Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log

from .errors import UserInputError

__all__ = [
    'setup_cpu_distributed', 'replace_sync_bn', 'cpu_dist_cfg', 'check_launcher_env',
    'CPU_DIST_TIMEOUT'
]

#: Seconds a gloo collective waits for a stopped rank by default (gloo's own default is 30
#: minutes); ``env_cfg.dist_cfg.timeout`` overrides it, e.g. higher for very slow saves.
CPU_DIST_TIMEOUT = 600


def replace_sync_bn(node: Any) -> int:
    """Turn every ``norm_cfg``-style ``dict(type='SyncBN', ...)`` in a config into ``'BN'``.

    SyncBN has no CPU implementation (its forward raises outside CUDA), and mmengine's
    ``sync_bn`` setting only ever converts BN *to* SyncBN, so a config that asks for SyncBN (the
    MTMamba++ recipes) must be rewritten before the model is built. (mmengine's
    ``revert_sync_batchnorm`` converts a built model; the Runner builds it from this config.)

    Args:
        node: A config (dict) or any part of it; modified in place.

    Returns:
        int: How many entries were replaced.
    """
    count = 0
    if isinstance(node, dict):
        if node.get('type') in ('SyncBN', 'mmcv.SyncBN', 'MMSyncBN'):
            node['type'] = 'BN'
            count += 1
        for value in node.values():
            count += replace_sync_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            count += replace_sync_bn(value)
    return count


def cpu_dist_cfg(dist_cfg: Optional[dict]) -> dict:
    """The user's ``env_cfg.dist_cfg`` with the backend forced to gloo (nccl needs CUDA) and
    ``timeout`` (seconds) defaulting to :data:`CPU_DIST_TIMEOUT`."""
    out = dict(dist_cfg or {})
    out['backend'] = 'gloo'
    out.setdefault('timeout', CPU_DIST_TIMEOUT)
    timeout = out['timeout']
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise UserInputError(f'env_cfg.dist_cfg.timeout must be a positive number of seconds, got '
                             f'{timeout!r}')
    return out


def check_launcher_env(launcher: str) -> None:
    """Fail with a clear message when the launcher's environment variables are missing."""
    needed = dict(slurm=('SLURM_PROCID', 'SLURM_NTASKS'),
                  pytorch=('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')).get(launcher, ())
    missing = [k for k in needed if k not in os.environ]
    if missing:
        how = dict(slurm='run it through srun (tools/slurm_train.sh, tools/slurm_test.sh)',
                   pytorch='start it with torchrun (tools/dist_train.sh, tools/dist_test.sh)')
        raise SystemExit(f'--launcher {launcher}: {", ".join(missing)} not set; '
                         f'{how[launcher]}, or use --launcher none')


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Make a distributed run work on a CPU-only machine.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` and the default DDP wrapper passes
    CUDA device ids, both of which fail without CUDA. When CUDA is unavailable and a launcher is
    used, this initialises a gloo process group from the launcher's environment with the
    config's ``env_cfg.dist_cfg`` (backend forced to gloo, see :func:`cpu_dist_cfg`; the Runner
    then skips its own initialisation; under srun, ``MASTER_ADDR`` / ``MASTER_PORT`` are
    derived as mmengine does on GPUs), lets DDP run on the CPU (``device_ids=None``, otherwise
    the options mmengine gives DDP on GPUs) and replaces
    SyncBN, which has no CPU implementation, by plain BN.

    Args:
        cfg (Config): The run's config; modified in place.
        launcher (str): 'none', 'pytorch' or 'slurm'.

    Returns:
        bool: Whether the CPU setup was applied.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg['dist_cfg'] = dist_cfg = cpu_dist_cfg(env_cfg.get('dist_cfg'))
    # mmengine's Runner.wrap_model builds this wrapper when model_wrapper_cfg is None (GPUs):
    # the same options here, or a config's find_unused_parameters would be lost on the CPU and
    # buffers broadcast from rank 0 at each forward where GPU runs keep them per rank
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    if replace_sync_bn(cfg.model):
        print_log('No CUDA device: SyncBN layers of the model become BN (statistics per '
                  'process).', logger='current', level=logging.WARNING)
    options = dict(dist_cfg, timeout=datetime.timedelta(seconds=dist_cfg['timeout']))
    # mmengine's slurm setup takes dist_cfg.port as the master port; init_process_group
    # knows no such argument
    port = options.pop('port', None)
    if launcher == 'slurm' and 'RANK' not in os.environ:
        _slurm_rendezvous_env(port)
    if not dist.is_initialized():
        dist.init_process_group(**options)
    return True


def _slurm_rendezvous_env(port: Optional[int]) -> None:
    """Set the env:// variables from srun's, as mmengine's ``_init_dist_slurm`` does on GPUs.

    srun sets neither ``MASTER_ADDR`` nor ``MASTER_PORT``: the master is the first node of
    ``SLURM_NODELIST`` (``scontrol show hostname``) unless ``MASTER_ADDR`` is set, the port
    ``port`` (``env_cfg.dist_cfg.port``), else ``MASTER_PORT``, else 29500.
    """
    addr = os.environ.get('MASTER_ADDR') or _first_slurm_node()
    # set together, after the checks: a partial set (RANK alone) would skip this next time
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    os.environ['MASTER_ADDR'] = addr
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')


def _first_slurm_node() -> str:
    """The first host of ``SLURM_NODELIST`` (``node[1-4]`` syntax), by ``scontrol``."""
    nodes = os.environ.get('SLURM_NODELIST')
    scontrol = shutil.which('scontrol')
    if not nodes or scontrol is None:
        raise UserInputError(
            '--launcher slurm: MASTER_ADDR is not set and cannot be derived ('
            + ('SLURM_NODELIST is not set' if not nodes else 'scontrol is not on PATH')
            + '); export MASTER_ADDR=<first node of the job> before srun')
    hosts = subprocess.run([scontrol, 'show', 'hostname', nodes], capture_output=True,
                           text=True).stdout.split()
    if not hosts:
        raise UserInputError(f'--launcher slurm: `scontrol show hostname {nodes}` named no '
                             'host; export MASTER_ADDR=<first node of the job> before srun')
    return hosts[0]
