"""Helpers of the tests that run mmmt's tools (the shared fixtures built with them, such as
``synthetic_nyud`` and ``tiny_training``, are in tests/conftest.py, so that one session builds
them once for every test folder)."""
import os
import os.path as osp
import shutil
import subprocess
import sys
from typing import NamedTuple

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'demo', 'mtmamba-tiny_synthetic-nyud.py')


NO_VAL = 'val_cfg = None\nval_dataloader = None\nval_evaluator = None\n'


class TrainedRun(NamedTuple):
    """A finished training of :func:`tiny_training`."""
    config: str  # the config file it was started with
    work_dir: str  # iter_2.pth, iter_4.pth, last_checkpoint, cfg.py and the log folder
    log: str  # what train.py printed (stdout and stderr)

    def copy_to(self, dest) -> str:
        """The work dir copied to `dest`, with ``last_checkpoint`` naming the copy's file."""
        shutil.copytree(self.work_dir, dest)
        pointer = osp.join(dest, 'last_checkpoint')
        with open(pointer) as f:
            name = osp.basename(f.read().strip())
        with open(pointer, 'w') as f:
            f.write(osp.join(str(dest), name))
        return str(dest)


def write_tiny_config(path, data_root, max_iters=4, val_interval=4, extra=''):
    """A config inheriting the demo config, shrunk for tests (tiny model, no workers)."""
    text = f"""
_base_ = [{DEMO_CONFIG!r}]
data_root = {data_root!r}
model = dict(
    backbone=dict(arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]),
                  window_size=4),
    decode_head=dict(in_channels=(16, 32, 64, 128)))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_iters={max_iters}, val_interval={val_interval})
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end={max_iters},
                        by_epoch=False)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval={val_interval}))
{extra}
"""
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def run_tool(args, timeout=600, env=None):
    full_env = dict(os.environ, PYTHONPATH=REPO, **(env or {}))
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                            env=full_env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def python_tool(script, *args, **kwargs):
    return run_tool([sys.executable, osp.join(REPO, 'tools', script), *map(str, args)],
                    **kwargs)


def cli(tool, args, capsys, prog='train.py'):
    """``tool.main(args)`` as the script's ``__main__`` runs it (through ``run_main``), in this
    process: (exit status, stdout, stderr)."""
    from mmmt.utils.errors import run_main
    capsys.readouterr()
    try:
        run_main(lambda: tool.main([str(a) for a in args]), prog=prog)
        status = 0
    except SystemExit as e:
        status = e.code
    out = capsys.readouterr()
    return status, out.out, out.err
