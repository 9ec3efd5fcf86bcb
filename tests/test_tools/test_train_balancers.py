"""Every gradient balancer trains the demo config (tiny) on the CPU; one 2-process gloo run."""
import math
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmmt.utils import load_checkpoint_file
from tests.gloo import free_port
from .conftest import REPO, run_tool, write_tiny_config

NO_VAL = """
val_cfg = None
val_dataloader = None
val_evaluator = None
"""

BALANCERS = ['PCGrad', 'CAGrad', 'GradNorm', 'IMTLG', 'MGDAUB', 'NashMTL', 'AlignedMTL']
TASKS = ('semseg', 'depth', 'normals', 'edge')


def balancer_config(tmp_path, data_root, balancer, max_iters=2):
    # GradNorm uses loss ratios, so it needs the positive losses of the 'sum' scheme
    scheme = 'sum' if balancer == 'GradNorm' else 'log'
    extra = NO_VAL + f"""
optim_wrapper = dict(_delete_=True, type='MultiTaskOptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4),
                     balancer=dict(type={balancer!r}))
model = dict(decode_head=dict(loss_combiner=dict(scheme={scheme!r})))
"""
    return write_tiny_config(tmp_path / 'cfg.py', data_root, max_iters=max_iters,
                             val_interval=max_iters, extra=extra)


@pytest.mark.parametrize('balancer', BALANCERS)
def test_each_balancer_trains_the_demo_config(tmp_path, synthetic_nyud, balancer):
    cfg = Config.fromfile(balancer_config(tmp_path, synthetic_nyud, balancer))
    cfg.work_dir = str(tmp_path / 'work')
    if balancer != 'GradNorm':  # one checkpoint is enough to check the saved balancer state
        cfg.default_hooks.checkpoint = None
    runner = Runner.from_cfg(cfg)
    before = [p.detach().clone() for p in runner.model.backbone.parameters()]
    runner.train()
    weights = [runner.message_hub.get_scalar(f'train/weight_{t}').current() for t in TASKS]
    assert all(math.isfinite(w) for w in weights), weights
    changed = [not torch.equal(a, b) for a, b in zip(before, runner.model.backbone.parameters())]
    assert any(changed)
    for p in runner.model.parameters():
        assert torch.isfinite(p).all()
    if balancer == 'GradNorm':
        # the learned weights are in the checkpoint, load with the safe (weights-only) loader
        # and resume into a new wrapper
        ckpt = load_checkpoint_file(osp.join(cfg.work_dir, 'iter_2.pth'))
        saved = ckpt['optimizer']['balancer']['task_weights']
        assert torch.equal(saved, runner.optim_wrapper.balancer.state_dict()['task_weights'])
        assert not torch.equal(saved, torch.ones(4, dtype=torch.float64))
        runner.optim_wrapper.balancer.load_state_dict(dict(task_weights=None,
                                                           initial_losses=None))
        runner.optim_wrapper.load_state_dict(ckpt['optimizer'])
        assert torch.equal(runner.optim_wrapper.balancer.state_dict()['task_weights'], saved)


def test_balancer_dist_train_two_gloo_processes(tmp_path, synthetic_nyud):
    cfg = balancer_config(tmp_path, synthetic_nyud, 'PCGrad')
    work = tmp_path / 'work'
    result = run_tool(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), cfg, '2', '--work-dir', str(work)],
        env=dict(PYTHON=sys.executable, PORT=str(free_port())))
    log = result.stdout + result.stderr
    assert 'weight_semseg' in log
    assert osp.isfile(work / 'iter_2.pth')
