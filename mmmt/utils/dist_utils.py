"""Distributed training on machines without CUDA."""
import os

import torch
import torch.distributed as dist
from mmengine.config import Config

__all__ = ['setup_cpu_distributed']


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Make a distributed run work on a CPU-only machine.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` and the default DDP wrapper passes
    CUDA device ids, both of which fail without CUDA. When CUDA is unavailable and a launcher is
    used, this initialises a gloo process group from the launcher's environment (the Runner then
    skips its own initialisation), lets DDP run on the CPU (``device_ids=None``) and replaces
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
    env_cfg['dist_cfg'] = dict(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    cfg.setdefault('env_cfg', {})['sync_bn'] = None
    if launcher == 'slurm' and 'RANK' not in os.environ:
        os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
        os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
        os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    return True
