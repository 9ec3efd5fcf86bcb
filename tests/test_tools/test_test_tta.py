"""tools/test.py --tta on the tiny demo model."""
import pickle

import numpy as np
import torch
from mmengine.config import Config

from mmmt.registry import MODELS
from .conftest import python_tool, write_tiny_config

NO_VAL = """
val_cfg = None
val_dataloader = None
val_evaluator = None
"""


def test_test_py_tta_runs_and_merges_every_view(tmp_path, synthetic_nyud):
    cfg_path = write_tiny_config(tmp_path / 'cfg.py', synthetic_nyud, extra=NO_VAL)
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(cfg_path).model)
    ckpt = tmp_path / 'demo.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    out_pkl = tmp_path / 'tta.pkl'
    result = python_tool('test.py', cfg_path, ckpt, '--tta', '--out', out_pkl,
                         '--work-dir', tmp_path / 'work')
    assert 'semseg/mIoU' in result.stdout + result.stderr
    with open(out_pkl, 'rb') as f:
        dumped = pickle.load(f)
    assert len(dumped) == 2  # the synthetic layout's 2 val images
    for record in dumped:
        h, w = record['ori_shape']
        pred = record['pred']
        assert pred['semseg'].shape == (h, w)
        np.testing.assert_allclose(np.linalg.norm(pred['normals'], axis=-1), 1, atol=1e-5)
        assert 0 <= pred['edge'].min() and pred['edge'].max() <= 1
