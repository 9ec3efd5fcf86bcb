import os
import os.path as osp

import torch
from mmengine.config import Config

from mmmt.models import MTMambaPlusDecodeHead
from mmmt.registry import MODELS
from mmmt.utils import replace_sync_bn

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')


def test_sync_bn_of_a_config_becomes_bn():
    cfg = Config.fromfile(osp.join(CONFIGS, 'mtmamba_plus', 'mtmamba-plus_swin-l_nyud.py'))
    assert cfg.model.decode_head.norm_cfg.type == 'SyncBN'
    assert replace_sync_bn(cfg.model) == 1
    assert cfg.model.decode_head.norm_cfg == dict(type='BN', requires_grad=True)
    nested = dict(a=[dict(norm_cfg=dict(type='SyncBN')), (dict(type='mmcv.SyncBN'), )],
                  b=dict(type='GN'))
    assert replace_sync_bn(nested) == 2 and nested['b'] == dict(type='GN')
    assert nested['a'][0]['norm_cfg']['type'] == 'BN' and nested['a'][1][0]['type'] == 'BN'


def test_the_replaced_head_has_plain_batch_norm():
    # SyncBatchNorm raises on CPU tensors as soon as a process group with several ranks
    # exists (gloo runs); the rewritten config builds torch's BatchNorm2d instead
    head_cfg = dict(type='MTMambaPlusDecodeHead', in_channels=(16, 32, 64, 128),
                    tasks=dict(semseg=3), head_channels=8, norm_cfg=dict(type='SyncBN'))
    assert isinstance(MODELS.build(head_cfg).final_conv['semseg'].bn, torch.nn.SyncBatchNorm)
    replace_sync_bn(head_cfg)
    head = MODELS.build(head_cfg).train()
    assert isinstance(head, MTMambaPlusDecodeHead)
    bn = head.final_conv['semseg'].bn
    assert type(bn) is torch.nn.BatchNorm2d
    feats = [torch.randn(2, 16 * 2**i, 16 // 2**i, 16 // 2**i) for i in range(4)]
    assert head(feats)['semseg'].shape == (2, 3, 64, 64)


def test_cpu_dist_cfg_keeps_the_users_settings():
    import pytest

    from mmmt.utils import CPU_DIST_TIMEOUT, cpu_dist_cfg
    assert cpu_dist_cfg(dict(backend='nccl', timeout=20, pg_options=None)) == dict(
        backend='gloo', timeout=20, pg_options=None)
    assert cpu_dist_cfg(None) == dict(backend='gloo', timeout=CPU_DIST_TIMEOUT)
    with pytest.raises(ValueError, match='dist_cfg.timeout must be a positive number'):
        cpu_dist_cfg(dict(timeout='20'))


def test_launcher_without_its_environment_is_named(monkeypatch):
    import pytest

    from mmmt.utils import check_launcher_env
    for key in ('SLURM_PROCID', 'SLURM_NTASKS', 'RANK', 'MASTER_ADDR'):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(SystemExit, match='--launcher slurm: SLURM_PROCID, SLURM_NTASKS not '
                       'set; run it through srun'):
        check_launcher_env('slurm')
    with pytest.raises(SystemExit, match='--launcher pytorch: RANK, .*torchrun'):
        check_launcher_env('pytorch')
    check_launcher_env('none')


# rank 1 joins the group and stops answering; rank 0's collective must give up after the
# config's timeout (2 s) instead of gloo's 30 minutes
RANK = """
import sys, time
import torch
from mmengine.config import Config
from mmmt.utils import setup_cpu_distributed
cfg = Config(dict(model=dict(), env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=2))))
assert setup_cpu_distributed(cfg, 'pytorch')
assert cfg.env_cfg.dist_cfg == dict(backend='gloo', timeout=2)
if sys.argv[1] == '1':
    time.sleep(120)
torch.distributed.all_reduce(torch.ones(1))
"""


def test_a_stopped_rank_fails_the_job_after_the_configured_timeout(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    import pytest
    if torch.cuda.is_available():
        pytest.skip('the CPU setup only applies without CUDA')
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    repo = osp.dirname(CONFIGS)
    procs = [subprocess.Popen(
        [sys.executable, '-c', RANK, str(rank)], cwd=repo, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=repo, RANK=str(rank), LOCAL_RANK=str(rank),
                 WORLD_SIZE='2', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port)))
        for rank in (0, 1)]
    try:
        _, err = procs[0].communicate(timeout=90)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert procs[0].returncode != 0
    assert 'timed out' in err.lower() or 'timeout' in err.lower(), err[-2000:]


def test_slurm_on_the_cpu_finds_its_master_like_mmengine(tmp_path, monkeypatch):
    """srun sets no MASTER_ADDR / MASTER_PORT: `tools/slurm_train.sh` on CPU nodes failed in
    init_process_group ('environment variable MASTER_ADDR expected'); mmengine derives them on
    GPUs, and so does the CPU setup now (first node of SLURM_NODELIST, dist_cfg.port)."""
    import pytest
    import torch.distributed as dist
    from mmengine.config import Config

    from mmmt.utils import setup_cpu_distributed
    from mmmt.utils.errors import UserInputError
    from tests.gloo import free_port
    if torch.cuda.is_available():
        pytest.skip('the CPU setup only applies without CUDA')
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv('PATH', str(tmp_path))
    monkeypatch.setenv('SLURM_PROCID', '0')
    monkeypatch.setenv('SLURM_NTASKS', '1')
    monkeypatch.setenv('SLURM_NODELIST', 'node[1-2]')
    port = free_port()

    def cfg():
        return Config(dict(model=dict(), env_cfg=dict(dist_cfg=dict(backend='nccl', port=port))))

    with pytest.raises(UserInputError, match='MASTER_ADDR is not set and cannot be derived '
                       r'\(scontrol is not on PATH\); export MASTER_ADDR'):
        setup_cpu_distributed(cfg(), 'slurm')
    # the hosts of the node list, one a line, as scontrol prints them
    scontrol = tmp_path / 'scontrol'
    scontrol.write_text('#!/bin/sh\n[ "$1 $2 $3" = "show hostname node[1-2]" ] && '
                        'printf "127.0.0.1\\nnode2\\n"\n')
    scontrol.chmod(0o755)
    try:
        assert setup_cpu_distributed(cfg(), 'slurm')
        assert dist.get_world_size() == 1 and dist.get_backend() == 'gloo'
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    assert (os.environ['MASTER_ADDR'], os.environ['MASTER_PORT']) == ('127.0.0.1', str(port))
    assert (os.environ['RANK'], os.environ['WORLD_SIZE']) == ('0', '1')
