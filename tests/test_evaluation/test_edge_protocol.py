"""The boundary protocols: SEISM's current one by default (configs included), the earlier one
by name, and what each setting does to the counts."""
import glob
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config

from mmmt.evaluation import MultiTaskMetric
from mmmt.evaluation.functional import (DEFAULT_EDGE_THRESHOLDS, SEISM_HED_THRESHOLDS,
                                        BoundaryMatcher, boundary_pr_counts, edge_protocol,
                                        quantize_to_uint8, seg2bmap, seism_nms, thin_binary)
from mmmt.evaluation.metrics.task_evaluators import BoundaryEvaluator

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _assert_seism(evaluator, max_dist, gt_mode):
    assert evaluator.protocol == 'seism'
    np.testing.assert_array_equal(evaluator.thresholds, SEISM_HED_THRESHOLDS)
    kw = evaluator.eval_kwargs
    assert kw['nms'] == 'seism' and kw['gt_mode'] == gt_mode
    assert kw['quantize'] and kw['thin_pred'] and kw['max_dist'] == max_dist


def test_hed_thresholds():
    assert SEISM_HED_THRESHOLDS.size == 101
    assert SEISM_HED_THRESHOLDS[0] == 0.001 and SEISM_HED_THRESHOLDS[-1] == 0.999
    np.testing.assert_allclose(SEISM_HED_THRESHOLDS[1:-1], np.arange(1, 100) / 100)


def test_evaluator_default_and_old_protocol_by_name():
    _assert_seism(BoundaryEvaluator('edge'), 0.011, 'seg2bmap_thin')
    old = BoundaryEvaluator('edge', protocol='seism-2016-01')
    np.testing.assert_array_equal(old.thresholds, DEFAULT_EDGE_THRESHOLDS)
    assert old.eval_kwargs['nms'] is False and old.eval_kwargs['gt_mode'] == 'thin'
    # explicit options override the protocol's
    mixed = BoundaryEvaluator('edge', nms=False, thresholds=19, gt_mode='thin')
    assert mixed.thresholds.size == 19 and mixed.eval_kwargs['nms'] is False
    with pytest.raises(ValueError, match='seism-2016-01'):
        BoundaryEvaluator('edge', protocol='seism-2017')
    with pytest.raises(ValueError, match='nms'):
        BoundaryEvaluator('edge', nms='sobel')
    with pytest.raises(ValueError, match='gt_mode'):
        BoundaryEvaluator('edge', gt_mode='thick')


def _config_edge_evaluators():
    found = []
    for path in sorted(glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)):
        cfg = Config.fromfile(path)
        evaluator = cfg.get('test_evaluator')
        if not evaluator or 'edge' not in list(evaluator.get('tasks', ())):
            continue
        kwargs = {k: v for k, v in evaluator.items() if k != 'type'}
        found.append((osp.relpath(path, ROOT), MultiTaskMetric(**kwargs).evaluators['edge']))
    return found


def test_every_config_builds_the_seism_protocol():
    found = _config_edge_evaluators()
    names = [name for name, _ in found]
    assert 'configs/_base_/datasets/nyud_mt.py' in names
    assert 'configs/_base_/datasets/pascal_mt.py' in names
    assert 'configs/demo/mtmamba-tiny_synthetic-nyud.py' in names
    assert len(found) > 15
    for name, evaluator in found:
        if 'pascal' in name:
            # gt_edge of PASCAL is already the thinned label transitions (docs/metrics.md)
            _assert_seism(evaluator, 0.0075, 'thin')
        else:
            _assert_seism(evaluator, 0.011, 'seg2bmap_thin')


def test_seism_protocol_is_nms_then_strict_thresholds_then_thinning():
    rng = np.random.default_rng(3)
    h, w = 40, 52
    gt = np.zeros((h, w), np.float32)
    gt[8:32, 20] = 1
    gt[25, 6:46] = 1
    yy, xx = np.mgrid[0:h, 0:w]
    pred = np.clip(0.9 * np.exp(-(xx - 21)**2 / 4.0) * (yy > 6) * (yy < 34) +
                   0.3 * rng.random((h, w)), 0, 1).astype(np.float32)
    thresholds = [0.05, 0.3, 0.6]
    counts = boundary_pr_counts(pred, gt, **dict(edge_protocol('seism'), thresholds=thresholds))
    # by hand: PNG values -> NMS -> > t -> thin -> match against thin(seg2bmap(gt))
    suppressed = seism_nms(quantize_to_uint8(pred).astype(np.float32) / np.float32(255))
    gt_b = thin_binary(seg2bmap((gt > 0).astype(np.uint8)))
    matcher = BoundaryMatcher(gt_b, 0.011 * np.hypot(h, w))
    for i, t in enumerate(thresholds):
        binary = thin_binary(suppressed.astype(np.float64) > t)
        assert counts[3, i] == binary.sum()
        assert counts[0, i] == matcher.match(binary)
        assert counts[1, i] == gt_b.sum()
    assert counts[3, 0] < thin_binary(quantize_to_uint8(pred) / 255.0 > 0.05).sum()


def test_strict_threshold_on_the_float32_png_value():
    # SEISM reads the PNG as single(v) / 255: 51 becomes 0.2 rounded to float32, which is above
    # the double 0.2, so v = 51 is positive at t = 0.2 under 'seism' but not under the earlier
    # protocol's float64 v / 255 (docs/metrics.md).
    gt = np.zeros((16, 16), np.float32)
    gt[3:13, 8] = 1
    pred = gt * (51 / 255 + 1e-6)  # PNG value 51
    new = boundary_pr_counts(pred, gt, thresholds=[0.2], nms='seism', gt_mode='thin')
    old = boundary_pr_counts(pred, gt, thresholds=[0.2], nms=False, gt_mode='thin')
    assert new[3, 0] > 0 and old[3, 0] == 0


def test_seg2bmap_thin_ground_truth():
    gt = np.zeros((12, 12), np.float32)
    gt[2:10, 5] = 1
    expected = thin_binary(seg2bmap((gt > 0).astype(np.uint8)))
    assert expected.sum() < seg2bmap((gt > 0).astype(np.uint8)).sum()  # both sides -> one
    counts = boundary_pr_counts(gt, gt, thresholds=[0.5], gt_mode='seg2bmap_thin')
    assert counts[1, 0] == expected.sum()
