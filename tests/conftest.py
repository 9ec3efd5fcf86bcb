import os.path as osp

import pytest

from mmmt.utils import register_all_modules

DATA_DIR = osp.join(osp.dirname(__file__), 'data')
CONFIG_DIR = osp.join(osp.dirname(osp.dirname(__file__)), 'configs')


@pytest.fixture(scope='session', autouse=True)
def _register_mmmt():
    register_all_modules(init_default_scope=True)
