"""Shared fixtures: tiny synthetic NYUDv2 / PASCAL-Context datasets and the mmmt scope."""
import os.path as osp
import shutil

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmmt.datasets  # noqa: F401  (registers the datasets and transforms)
from mmmt.testing import generate

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = dict(
    nyud=osp.join(REPO, 'configs', '_base_', 'datasets', 'nyud_mt.py'),
    pascal=osp.join(REPO, 'configs', '_base_', 'datasets', 'pascal_mt.py'))
SIZE = (48, 64)


@pytest.fixture(autouse=True)
def mmmt_scope():
    """Resolve un-prefixed ``type=`` names in mmmt's registries, as configs do."""
    with DefaultScope.overwrite_default_scope('mmmt'):
        yield


@pytest.fixture(scope='session')
def synthetic_roots(tmp_path_factory):
    """Read-only synthetic datasets: ``{'nyud': root, 'pascal': root}`` (4 train, 3 val)."""
    base = tmp_path_factory.mktemp('synthetic')
    roots = {}
    for name in ('nyud', 'pascal'):
        roots[name] = str(base / name)
        generate(name, roots[name], 4, 3, seed=7, size=SIZE)
    return roots


@pytest.fixture
def copy_root(synthetic_roots, tmp_path):
    """A writable copy of a synthetic dataset (for tests that break files)."""

    def _copy(name: str) -> str:
        dst = str(tmp_path / name)
        shutil.copytree(synthetic_roots[name], dst)
        return dst

    return _copy


def _dataset_cfg(name: str, split: str, data_root: str, **overrides) -> dict:
    """The dataset config of ``configs/_base_/datasets/<name>_mt.py`` for ``split``."""
    cfg = Config.fromfile(CONFIGS[name])
    loader = cfg.train_dataloader if split == 'train' else cfg.val_dataloader
    dcfg = loader.dataset.to_dict()
    dcfg.update(data_root=data_root, **overrides)
    return dcfg


@pytest.fixture
def dataset_cfg():
    """``dataset_cfg(name, split, data_root, **overrides)``: the real config's dataset dict."""
    return _dataset_cfg
