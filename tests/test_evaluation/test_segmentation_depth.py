"""Semantic segmentation and depth metrics: hand-made answers and float64 oracles."""
import numpy as np
import pytest

from mmmt.evaluation.functional import (depth_metrics, depth_sums, segmentation_counts,
                                        segmentation_metrics)


def _miou(preds, gts, n):
    res = segmentation_metrics([segmentation_counts(p, g, n) for p, g in zip(preds, gts)], n)
    return res


def test_segmentation_perfect_and_all_wrong():
    gt = np.array([[0, 1], [2, 2]])
    res = _miou([gt], [gt], 3)
    assert res['mIoU'] == 1.0 and res['pixel_acc'] == 1.0
    wrong = (gt + 1) % 3
    res = _miou([wrong], [gt], 3)
    assert res['mIoU'] == 0.0 and res['pixel_acc'] == 0.0


def test_segmentation_ignore_pixels_do_not_count():
    gt = np.array([[0, 255], [1, 255]])
    pred = np.array([[0, 1], [1, 0]])  # wrong only where ignored
    res = _miou([pred], [gt], 2)
    assert res['mIoU'] == 1.0
    assert res['label'].sum() == 2


def test_segmentation_one_class_image_absent_classes_count_as_zero():
    # Reference convention: IoU = TP / max(union, 1e-8), absent classes give 0 in the mean.
    gt = np.zeros((4, 4), dtype=np.int64)
    res = _miou([gt], [gt], 4)
    np.testing.assert_allclose(res['IoU'], [1, 0, 0, 0])
    assert res['mIoU'] == pytest.approx(0.25)
    assert res['mIoU_present'] == 1.0  # the mean over the classes in the ground truth only
    # a class that is predicted but absent from the ground truth is not 'present'
    pred = gt.copy()
    pred[0, 0] = 3
    assert _miou([pred], [gt], 4)['mIoU_present'] == pytest.approx(15 / 16)


def test_segmentation_out_of_range_prediction_is_wrong():
    gt = np.array([0, 1, 1])
    pred = np.array([0, 7, 1])
    c = segmentation_counts(pred, gt, 2)
    np.testing.assert_array_equal(c['intersect'], [1, 1])
    np.testing.assert_array_equal(c['pred'], [1, 1])
    np.testing.assert_array_equal(c['label'], [1, 2])


def test_segmentation_pixel_accuracy_is_over_valid_ground_truth_pixels():
    # Predictions outside the classes (7, or the ignore value 255) are wrong pixels: pixel
    # accuracy divides by the valid ground-truth pixels (4), not by the in-range predictions (2).
    gt = np.array([[0, 1], [1, 0]])
    pred = np.array([[0, 7], [1, 255]])
    res = _miou([pred], [gt], 2)
    assert res['pixel_acc'] == pytest.approx(2 / 4)
    # class 0: TP 1, union 2; class 1: TP 1, union 2
    np.testing.assert_allclose(res['IoU'], [1 / 2, 1 / 2])


def test_segmentation_rejects_labels_above_num_classes():
    with pytest.raises(ValueError):
        segmentation_counts(np.zeros(3), np.array([0, 1, 5]), 3)


def test_segmentation_matches_float64_confusion_matrix():
    rng = np.random.default_rng(0)
    n = 6
    preds, gts = [], []
    for _ in range(5):
        g = rng.integers(0, n, (17, 23))
        g[rng.random(g.shape) < 0.2] = 255
        p = np.where(rng.random(g.shape) < 0.6, g, rng.integers(0, n, g.shape))
        p[p == 255] = 0
        preds.append(p)
        gts.append(g)
    conf = np.zeros((n, n), dtype=np.float64)
    for p, g in zip(preds, gts):
        for pi, gi in zip(p.ravel(), g.ravel()):
            if gi != 255:
                conf[gi, pi] += 1.0
    iou = np.array([conf[c, c] / (conf[c].sum() + conf[:, c].sum() - conf[c, c]) for c in range(n)])
    res = _miou(preds, gts, n)
    np.testing.assert_allclose(res['IoU'], iou, rtol=1e-12)
    assert res['mIoU'] == pytest.approx(iou.mean(), rel=1e-12)
    assert res['pixel_acc'] == pytest.approx(np.trace(conf) / conf.sum(), rel=1e-12)


def test_depth_perfect_and_known_values():
    gt = np.array([[1.0, 2.0], [4.0, 255.0]])
    res = depth_metrics([depth_sums(gt.copy(), gt)])
    assert res['rmse'] == 0 and res['abs_rel'] == 0 and res['delta1'] == 1.0
    assert res['count'] == 3
    pred = np.array([[2.0, 2.0], [2.0, 0.0]])  # errors 1, 0, 2 on the valid pixels
    res = depth_metrics([depth_sums(pred, gt)])
    assert res['rmse'] == pytest.approx(np.sqrt(5 / 3))
    assert res['abs_rel'] == pytest.approx((1 / 1 + 0 + 2 / 4) / 3)
    assert res['sq_rel'] == pytest.approx((1 / 1 + 0 + 4 / 4) / 3)
    assert res['delta1'] == pytest.approx(1 / 3)


def test_depth_invalid_gt_and_negative_prediction():
    gt = np.array([0.0, 255.0, 2.0])
    pred = np.array([5.0, 5.0, -1.0])  # clamped to 0
    res = depth_metrics([depth_sums(pred, gt)])
    assert res['count'] == 1
    assert res['rmse'] == pytest.approx(2.0)
    assert np.isfinite(res['log_rmse'])
    assert depth_metrics([depth_sums(pred, np.full(3, 255.0))])['count'] == 0


def test_depth_rmse_is_global_not_per_image_mean():
    g1, p1 = np.ones(4), np.ones(4) * 2  # rmse 1 over 4 pixels
    g2, p2 = np.ones(1), np.ones(1) * 4  # rmse 3 over 1 pixel
    res = depth_metrics([depth_sums(p1, g1), depth_sums(p2, g2)])
    assert res['rmse'] == pytest.approx(np.sqrt((4 * 1 + 9) / 5))
    assert res['rmse'] != pytest.approx(2.0)


def test_depth_matches_float64_reference():
    rng = np.random.default_rng(1)
    pairs = []
    for _ in range(4):
        g = rng.uniform(0.5, 10, (13, 11))
        g[rng.random(g.shape) < 0.3] = 255
        p = g * rng.uniform(0.7, 1.4, g.shape)
        p[g == 255] = rng.uniform(0, 5)
        pairs.append((p, g))
    gs = np.concatenate([g[g != 255] for _, g in pairs])
    ps = np.concatenate([p[g != 255] for p, g in pairs])
    res = depth_metrics([depth_sums(p, g) for p, g in pairs])
    assert res['rmse'] == pytest.approx(np.sqrt(np.mean((gs - ps)**2)), rel=1e-12)
    assert res['abs_rel'] == pytest.approx(np.mean(np.abs(gs - ps) / gs), rel=1e-12)
    assert res['sq_rel'] == pytest.approx(np.mean((gs - ps)**2 / gs), rel=1e-12)
    assert res['log_rmse'] == pytest.approx(np.sqrt(np.mean((np.log(gs) - np.log(ps))**2)),
                                            rel=1e-12)
    ratio = np.maximum(gs / ps, ps / gs)
    for k in (1, 2, 3):
        assert res[f'delta{k}'] == pytest.approx(np.mean(ratio < 1.25**k), rel=1e-12)


def test_depth_range_keeps_only_pixels_strictly_inside():
    """Cityscapes scores disparity on 0 < gt < 80 (the shipped evaluator): both ends are
    exclusive, and pixels outside count nowhere."""
    gt = np.array([[0.0, 0.5, 40.0], [79.9, 80.0, 120.0]], np.float32)
    pred = np.array([[3.0, 1.5, 38.0], [80.9, 1.0, 1.0]], np.float32)
    sums = depth_sums(pred, gt, min_depth=0.0, max_depth=80.0)
    assert sums['count'] == 3  # 0.5, 40 and 79.9
    np.testing.assert_allclose(sums['sq_err'], 1.0 + 4.0 + 1.0, rtol=1e-6)
    np.testing.assert_allclose(sums['abs_rel'], 1 / 0.5 + 2 / 40 + 1 / 79.9, rtol=1e-6)
    unbounded = depth_sums(pred, gt)  # only gt > 0 (and not ignored)
    assert unbounded['count'] == 5
    assert depth_sums(pred, gt, min_depth=0.5)['count'] == 4  # 0.5 itself is out


def test_depth_delta_thresholds_are_strict():
    """delta_k counts max(gt/pred, pred/gt) < 1.25^k: a ratio of exactly 1.25 is not within
    delta1 (1.25 and 1.5625 are exact in binary floating point)."""
    gt = np.array([1.0, 1.25, 1.0, 1.0], np.float32)
    pred = np.array([1.25, 1.0, 1.5625, 1.0], np.float32)  # ratios 1.25 both ways, 1.5625, 1
    res = depth_metrics([depth_sums(pred, gt)])
    assert res['delta1'] == pytest.approx(1 / 4)  # only the exact prediction
    assert res['delta2'] == pytest.approx(3 / 4)  # 1.5625 = 1.25^2 is not within delta2
