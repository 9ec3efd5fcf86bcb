"""Metric values through the public ``MultiTaskMetric``, against expectations worked out by hand
on small maps spread over two images (so that dataset-level accumulation, not a mean of
per-image values, is what is pinned). The definitions are the reference's (docs/metrics.md).
"""
import math

import numpy as np
import pytest
from _metric_testlib import evaluate  # builds a MultiTaskMetric

IGNORE = 255


@pytest.mark.parametrize('task', ['semseg', 'human_parts'])
def test_segmentation(task):
    gt1 = np.array([[[0, 0, 1, 1], [2, 2, IGNORE, IGNORE]]])
    pr1 = np.array([[[0, 1, 1, 1], [2, 0, 2, 0]]])  # the last two pixels are ignored
    gt2 = np.array([[[1, 1], [1, 0]]])
    pr2 = np.array([[[1, 1], [0, 0]]])
    res = evaluate({task: dict(num_classes=4)},
                   [{task: (pr1, gt1)}, {task: (pr2, gt2)}])
    # over both images: class 0 TP 2 FP 2 FN 1, class 1 TP 4 FP 1 FN 1, class 2 TP 1 FN 1;
    # class 3 is never present nor predicted: IoU 0, still in the mean (the reference's rule)
    assert res[f'{task}/mIoU'] == pytest.approx(100 * (2 / 5 + 4 / 6 + 1 / 2 + 0) / 4)
    assert res[f'{task}/pixel_acc'] == pytest.approx(100 * 7 / 10)


def test_depth():
    gt1 = np.array([[[1.0, 2.0], [4.0, IGNORE]]], np.float32)
    pr1 = np.array([[[2.0, 2.0], [3.0, 7.0]]], np.float32)
    gt2 = np.array([[[2.0, 0.5, IGNORE]]], np.float32)
    pr2 = np.array([[[1.0, 0.6, 5.0]]], np.float32)
    res = evaluate(['depth'], [dict(depth=(pr1, gt1)), dict(depth=(pr2, gt2))])
    g = np.array([1, 2, 4, 2, 0.5])
    p = np.array([2, 2, 3, 1, 0.6])
    # global over the 5 valid pixels of the dataset (the mean of the per-image RMSEs is 0.76)
    assert res['depth/rmse'] == pytest.approx(math.sqrt((1 + 0 + 1 + 1 + 0.01) / 5), rel=1e-6)
    assert res['depth/abs_rel'] == pytest.approx((1 + 0 + 1 / 4 + 1 / 2 + 0.1 / 0.5) / 5,
                                                 rel=1e-6)
    assert res['depth/sq_rel'] == pytest.approx((1 + 0 + 1 / 4 + 1 / 2 + 0.01 / 0.5) / 5,
                                                rel=1e-6)
    assert res['depth/log_rmse'] == pytest.approx(
        math.sqrt(np.mean((np.log(g) - np.log(p))**2)), rel=1e-6)
    # max(g/p, p/g) = 2, 1, 4/3, 2, 1.2
    assert res['depth/delta1'] == pytest.approx(100 * 2 / 5)
    assert res['depth/delta2'] == pytest.approx(100 * 3 / 5)
    assert res['depth/delta3'] == pytest.approx(100 * 3 / 5)


def rotated(deg, scale=1.0):
    a = math.radians(deg)
    return [scale * math.sin(a), 0.0, scale * math.cos(a)]


def test_normals():
    up = [0.0, 0.0, 1.0]
    # prediction angles 5, 10, 20 and 40 degrees (one of them not unit length)
    pr1 = np.array([rotated(5), rotated(10, 2.0), rotated(20), rotated(40)], np.float32)
    gt1 = np.array([up] * 4, np.float32)
    # image 2: 15 degrees, and a pixel with one ignored channel (left out whatever it predicts)
    pr2 = np.array([rotated(15), rotated(90)], np.float32)
    gt2 = np.array([up, [0.0, IGNORE, 1.0]], np.float32)
    to_map = lambda a: a.T.reshape(3, 1, -1)  # noqa: E731 (pixels -> (3, 1, N))
    res = evaluate(['normals'], [dict(normals=(to_map(pr1), to_map(gt1))),
                                 dict(normals=(to_map(pr2), to_map(gt2)))])
    angles = np.array([5, 10, 20, 40, 15])
    assert res['normals/mean'] == pytest.approx(18.0, abs=1e-3)
    assert res['normals/rmse'] == pytest.approx(math.sqrt(np.mean(angles**2)), abs=1e-3)
    assert res['normals/median'] == pytest.approx(15.0, abs=0.05)  # 0.05-degree histogram
    assert res['normals/within_11.25'] == pytest.approx(100 * 2 / 5)
    assert res['normals/within_22.5'] == pytest.approx(100 * 4 / 5)
    assert res['normals/within_30'] == pytest.approx(100 * 4 / 5)


SAL_P1 = [0.92, 0.83, 0.32, 0.61, 0.12, 0.22]
SAL_G1 = [1, 1, 1, 0, 0, IGNORE]
SAL_P2 = [0.71, 0.43]
SAL_G2 = [1, 0]


def hand_max_f(scores, labels, beta2):
    """Counts summed over the dataset per threshold 0.05 ... 0.95 (score >= t)."""
    best = 0.0
    for t in np.arange(1, 20) * 0.05:
        pp = sum(s >= t for s in scores)
        tp = sum(s >= t and g == 1 for s, g in zip(scores, labels))
        ap = sum(g == 1 for g in labels)
        if tp:
            p, r = tp / pp, tp / ap
            best = max(best, (1 + beta2) * p * r / (beta2 * p + r))
    return best


@pytest.mark.parametrize('legacy', [False, True])
def test_saliency(legacy):
    sal = lambda values: np.array(values, np.float32).reshape(1, 1, -1)  # noqa: E731
    res = evaluate(dict(sal=dict(legacy_double_sigmoid=legacy)),
                   [dict(sal=(sal(SAL_P1), sal(SAL_G1))), dict(sal=(sal(SAL_P2), sal(SAL_G2)))])
    probs = SAL_P1[:5] + SAL_P2  # the ignored pixel is left out
    labels = SAL_G1[:5] + SAL_G2
    scores = [1 / (1 + math.exp(-p)) for p in probs] if legacy else probs
    expected = hand_max_f(scores, labels, beta2=0.3)
    if not legacy:
        # at t in (0.61, 0.71]: P = 3/3, R = 3/4 -> F = 1.3 * 0.75 / (0.3 + 0.75)
        assert expected == pytest.approx(1.3 * 0.75 / 1.05)
        # with beta^2 = 1 the best F would be 2 * 0.75 / 1.75 = 0.857
    assert res['sal/maxF'] == pytest.approx(100 * expected, rel=1e-6)
    # IoU at probability 0.5 (never double-sigmoided): TP 3, FP 1 (0.61), FN 1 (0.32)
    assert res['sal/IoU'] == pytest.approx(100 * 3 / 5)


def test_boundary_ods_and_ois():
    """Straight one-pixel lines away from the border (so that thinning, NMS and the matching
    tolerance leave them alone), with values that make each image prefer another threshold."""
    h, w = 48, 64
    gt_a, pr_a = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    gt_a[8:28, 12] = 1
    pr_a[8:28, 12] = 1.0  # 20 true positives, strong
    gt_a[8:18, 40] = 1
    pr_a[8:18, 40] = 0.25  # 10 true positives, weak: image A prefers a low threshold
    gt_b, pr_b = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    gt_b[10:40, 20] = 1
    pr_b[10:25, 20] = 1.0  # 15 of its 30 boundary pixels found
    pr_b[10:20, 50] = 0.45  # 10 false positives, weak: image B prefers a higher threshold
    # gt_mode='thin' keeps the drawn lines where they are: the default seg2bmap ground truth
    # moves a one-pixel line half a pixel towards the origin, beyond this 48x64 image's
    # sub-pixel tolerance (0.011 of an 80-pixel diagonal); seg2bmap has its own tests.
    res = evaluate(dict(edge=dict(max_dist=0.011, gt_mode='thin')),
                   [dict(edge=(pr_a[None], gt_a[None])), dict(edge=(pr_b[None], gt_b[None]))])

    def f(tp, pp, ap):
        p, r = tp / pp, tp / ap
        return 2 * p * r / (p + r)

    # dataset thresholds: below 0.25 TP 45 / pred 55, between 0.25 and 0.45 35 / 45, above
    # 0.45 35 / 35, all over 60 ground-truth pixels
    ods = max(f(45, 55, 60), f(35, 45, 60), f(35, 35, 60))
    assert ods == f(45, 55, 60)
    assert res['edge/odsF'] == pytest.approx(100 * ods, rel=1e-6)
    # per image: A at a low threshold (30 / 30), B above 0.45 (15 / 15); counts summed
    assert res['edge/oisF'] == pytest.approx(100 * f(45, 45, 60), rel=1e-6)
