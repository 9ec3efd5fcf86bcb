import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData

from mmmt.evaluation import DumpMultiTaskPredictions
from mmmt.registry import METRICS
from mmmt.structures import MultiTaskDataSample


def make_sample(batch_logits, i):
    sample = MultiTaskDataSample(metainfo=dict(img_id=f'{i:04d}', img_path=f'x/{i:04d}.png',
                                               ori_shape=(4, 5), extra='dropped'))
    sample.set_field(PixelData(data=batch_logits[i, :3]), 'semseg_logits')
    sample.set_field(PixelData(data=batch_logits[i, :3].argmax(0, keepdim=True)), 'pred_semseg')
    sample.set_field(PixelData(data=batch_logits[i, 3:4]), 'pred_depth')  # a view, as in test
    sample.set_field(PixelData(data=batch_logits[i, 4:7]), 'pred_normals')
    return sample


def test_building_it_logs_no_prefix_warning(tmp_path):
    """``tools/test.py --out`` builds it in every run: mmengine's "The prefix is not set in
    metric class ..." warning would be noise there (the metric returns no metrics)."""
    import logging

    from mmengine.logging import MMLogger
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        metric = METRICS.build(dict(type='DumpMultiTaskPredictions',
                                    out_file_path=str(tmp_path / 'p.pkl')))
    finally:
        logger.removeHandler(handler)
    assert metric.prefix == 'dump'
    assert [r.getMessage() for r in records if r.levelno >= logging.WARNING] == []


def test_records_hold_compact_arrays_in_the_inferencer_layout(tmp_path):
    out = str(tmp_path / 'preds.pkl')
    metric = METRICS.build(dict(type='DumpMultiTaskPredictions', out_file_path=out))
    assert isinstance(metric, DumpMultiTaskPredictions)
    big = torch.randn(2, 500, 4, 5)  # the rest of the batch storage must not be pickled
    # the Evaluator hands over dicts (to_dict()); elements are accepted as well
    metric.process({}, [make_sample(big, 0).to_dict(), make_sample(big, 1)])
    assert metric.evaluate(size=2) == {}
    with open(out, 'rb') as f:
        records = pickle.load(f)
    assert [r['img_id'] for r in records] == ['0000', '0001']
    assert set(records[0]) == {'img_id', 'img_path', 'ori_shape', 'pred'}
    pred = records[1]['pred']
    assert sorted(pred) == ['depth', 'normals', 'semseg']
    assert pred['semseg'].dtype == np.uint8 and pred['semseg'].shape == (4, 5)
    np.testing.assert_array_equal(pred['semseg'], big[1, :3].argmax(0).numpy())
    np.testing.assert_array_equal(pred['depth'], big[1, 3].numpy())
    np.testing.assert_array_equal(pred['normals'], big[1, 4:7].permute(1, 2, 0).numpy())
    assert os.path.getsize(out) < 2000  # 2 x (20 + 80 + 240) bytes of data, not 2 x 40 kB
    assert os.listdir(tmp_path) == ['preds.pkl']


def test_dump_never_overwrites(tmp_path):
    out = tmp_path / 'preds.pkl'
    out.write_bytes(b'earlier results')
    metric = DumpMultiTaskPredictions(out_file_path=str(out))
    metric.process({}, [make_sample(torch.zeros(1, 7, 4, 5), 0)])
    (tmp_path / 'preds_1.pkl').write_bytes(b'more earlier results')
    # e.g. the file appeared during the run: the predictions are not lost either
    with pytest.raises(FileExistsError, match=f'{out} exists .*choose another --out.*written '
                       f'to {tmp_path}/preds_2.pkl instead'):
        metric.evaluate(size=1)
    assert out.read_bytes() == b'earlier results'
    assert (tmp_path / 'preds_1.pkl').read_bytes() == b'more earlier results'
    with open(tmp_path / 'preds_2.pkl', 'rb') as f:
        assert [r['img_id'] for r in pickle.load(f)] == ['0000']
    assert sorted(os.listdir(tmp_path)) == ['preds.pkl', 'preds_1.pkl', 'preds_2.pkl']


def test_the_file_is_streamed_not_built_in_memory(tmp_path):
    # a PASCAL-Context test set holds ~20 GB of predictions: a second copy in memory as one
    # bytes object (pickle.dumps) would fail at the very end of the run
    import tracemalloc
    out = tmp_path / 'preds.pkl'
    metric = DumpMultiTaskPredictions(out_file_path=str(out))
    metric.process({}, [make_sample(torch.randn(4, 7, 512, 512), i) for i in range(4)])
    size = sum(a.nbytes for r in metric.results for a in r['pred'].values())
    assert size > 16 * 2**20
    tracemalloc.start()
    try:
        metric.compute_metrics(metric.results)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size / 4
    with open(out, 'rb') as f:
        records = pickle.load(f)
    np.testing.assert_array_equal(records[3]['pred']['normals'],
                                  metric.results[3]['pred']['normals'])
