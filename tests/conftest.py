import glob
import json
import os.path as osp
from typing import NamedTuple

import pytest

from mmmt.testing import generate_nyud
from mmmt.utils import register_all_modules
from .test_tools.conftest import NO_VAL, TrainedRun, python_tool, write_tiny_config

DATA_DIR = osp.join(osp.dirname(__file__), 'data')
CONFIG_DIR = osp.join(osp.dirname(osp.dirname(__file__)), 'configs')


@pytest.fixture(scope='session', autouse=True)
def _register_mmmt():
    register_all_modules(init_default_scope=True)


@pytest.fixture(scope='session')
def synthetic_nyud(tmp_path_factory):
    """A tiny synthetic NYUD layout: 6 train and 2 val images of the demo's 128x160."""
    root = tmp_path_factory.mktemp('synthetic_nyud')
    generate_nyud(str(root), n_train=6, n_val=2, seed=3, size=(128, 160))
    return str(root)


@pytest.fixture(scope='session')
def tiny_training(synthetic_nyud, tmp_path_factory):
    """One ``tools/train.py`` run of the tiny config, shared by the tests that need a trained
    work dir (each training costs seconds of imports and start-up): 4 iterations,
    ``--deterministic --seed 0``, no validation, every checkpoint kept (iterations 2 and 4).
    Tests read it, or write into a copy (:meth:`TrainedRun.copy_to`)."""
    root = tmp_path_factory.mktemp('tiny_training')
    cfg = write_tiny_config(root / 'cfg.py', synthetic_nyud, max_iters=4, val_interval=2,
                            extra=NO_VAL + 'default_hooks.update(checkpoint=dict('
                            'interval=2, max_keep_ckpts=-1))\n')
    work = root / 'work'
    result = python_tool('train.py', cfg, '--work-dir', work, '--deterministic', '--seed', '0')
    return TrainedRun(cfg, str(work), result.stdout + result.stderr)


class SavedPredictions(NamedTuple):
    """A ``tools/test.py --out`` run: its config, predictions file and the metrics it wrote."""
    config: str
    predictions: str
    metrics: dict


@pytest.fixture(scope='session')
def tiny_predictions(tiny_training, tmp_path_factory):
    """``tools/test.py --out`` (in this process) on the last checkpoint of
    :func:`tiny_training`, shared by the tests of what reads predictions files: the 2 val
    images' predictions and the metrics the run wrote (``<timestamp>/<timestamp>.json``)."""
    from .tool_loader import load_tool
    root = tmp_path_factory.mktemp('tiny_predictions')
    work, preds = root / 'work', root / 'preds.pkl'
    ckpt = osp.join(tiny_training.work_dir, 'iter_4.pth')
    load_tool('tools', 'test').main([tiny_training.config, ckpt, '--work-dir', str(work),
                                     '--out', str(preds)])
    (metrics_file, ) = [f for f in glob.glob(osp.join(work, '*', '*.json'))
                        if osp.basename(f)[:-5] == osp.basename(osp.dirname(f))]
    with open(metrics_file) as f:
        metrics = [json.loads(line) for line in f if line.strip()][-1]
    return SavedPredictions(tiny_training.config, str(preds),
                            {k: v for k, v in metrics.items() if '/' in k})
