import os
import pickle

import numpy as np
import pytest

from mmmt.evaluation import SafeDumpResults
from mmmt.registry import METRICS


def test_dump_writes_a_loadable_pickle(tmp_path):
    out = str(tmp_path / 'preds.pkl')
    metric = METRICS.build(dict(type='SafeDumpResults', out_file_path=out))
    assert isinstance(metric, SafeDumpResults)
    preds = [dict(img_path='a.png', pred_depth=np.full((2, 3), 1.5, np.float32))]
    metric.process({}, preds)
    assert metric.evaluate(size=1) == {}
    with open(out, 'rb') as f:
        loaded = pickle.load(f)
    np.testing.assert_array_equal(loaded[0]['pred_depth'], preds[0]['pred_depth'])
    assert os.listdir(tmp_path) == ['preds.pkl']


def test_dump_never_overwrites(tmp_path):
    out = tmp_path / 'preds.pkl'
    out.write_bytes(b'earlier results')
    metric = SafeDumpResults(out_file_path=str(out))
    metric.process({}, [dict(x=1)])
    with pytest.raises(FileExistsError, match='preds.pkl'):
        metric.evaluate(size=1)
    assert out.read_bytes() == b'earlier results'
