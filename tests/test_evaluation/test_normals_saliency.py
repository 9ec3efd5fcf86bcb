"""Surface normals and saliency metrics: hand-made answers and float64 oracles."""
import numpy as np
import pytest

from mmmt.evaluation.functional import (NORMALS_HIST_BIN, SAL_THRESHOLDS,
                                        legacy_effective_thresholds, normal_angles, normals_metrics,
                                        normals_stats, saliency_counts, saliency_metrics)


def _unit(rng, shape):
    v = rng.normal(size=(3, ) + shape)
    return v / np.linalg.norm(v, axis=0, keepdims=True)


def test_normals_perfect_opposite_orthogonal():
    z = np.zeros((3, 2, 2))
    z[2] = 1
    assert normals_metrics([normals_stats(z, z)])['mean'] == 0
    assert normals_metrics([normals_stats(-z, z)])['mean'] == pytest.approx(180)
    x = np.zeros_like(z)
    x[0] = 5.0  # not unit: the prediction is normalised
    res = normals_metrics([normals_stats(x, z)])
    assert res['mean'] == pytest.approx(90) and res['within_30'] == 0


def test_normals_ignore_and_zero_gt_are_skipped():
    gt = np.zeros((3, 1, 3))
    gt[2] = 1
    gt[:, 0, 1] = 255
    gt[:, 0, 2] = 0  # zero vector
    pred = np.zeros_like(gt)
    pred[0] = 1
    s = normals_stats(pred, gt)
    assert s['count'] == 1 and s['sum'] == pytest.approx(90)
    assert normals_metrics([normals_stats(pred, np.full_like(gt, 255))])['count'] == 0


def test_normals_match_float64_reference():
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(3):
        g = _unit(rng, (20, 30))
        p = g + rng.normal(scale=0.4, size=g.shape)
        g[:, rng.random((20, 30)) < 0.2] = 255
        pairs.append((p, g))
    ref = []
    for p, g in pairs:
        valid = (g != 255).all(0)
        pn = p[:, valid] / np.linalg.norm(p[:, valid], axis=0)
        ref.append(np.degrees(np.arccos(np.clip((pn * g[:, valid]).sum(0), -1, 1))))
    ref = np.concatenate(ref)
    res = normals_metrics([normals_stats(p, g) for p, g in pairs])
    assert res['mean'] == pytest.approx(ref.mean(), rel=1e-9)
    assert res['rmse'] == pytest.approx(np.sqrt(np.mean(ref**2)), rel=1e-9)
    assert abs(res['median'] - np.median(ref)) <= NORMALS_HIST_BIN
    for t in (11.25, 22.5, 30):
        assert res[f'within_{t:g}'] == pytest.approx(np.mean(ref < t))
    np.testing.assert_allclose(np.sort(normal_angles(*pairs[0])), np.sort(ref[:np.count_nonzero(
        (pairs[0][1] != 255).all(0))]), atol=1e-9)


def test_normals_payload_is_small():
    rng = np.random.default_rng(0)
    g = _unit(rng, (200, 200))
    s = normals_stats(g + 0.05 * rng.normal(size=g.shape), g)
    assert s['hist_bins'].size < 600  # sparse: only occupied 0.05-degree bins


def _sal(pred, gt, **kw):
    return saliency_metrics([saliency_counts(pred, gt, **kw)])


def test_saliency_perfect_all_wrong_ignore():
    gt = np.array([[0, 1], [1, 255]], dtype=np.float64)
    res = _sal(np.where(gt == 1, 1.0, 0.0), gt)
    assert res['maxF'] == pytest.approx(1.0) and res['IoU'] == 1.0
    res = _sal(np.where(gt == 1, 0.0, 1.0), gt)
    assert res['maxF'] == 0.0 and res['IoU'] == 0.0
    # a confident wrong prediction on the ignored pixel changes nothing
    pred = np.array([[0.0, 0.9], [0.8, 1.0]])
    assert _sal(pred, gt)['maxF'] == pytest.approx(1.0)


def test_saliency_one_class_image():
    gt = np.zeros((3, 3))
    res = _sal(np.zeros((3, 3)), gt)  # nothing salient anywhere: F = 0/0 -> 0
    assert res['maxF'] == 0.0


def test_saliency_matches_float64_reference():
    rng = np.random.default_rng(3)
    pairs = [(rng.random((15, 17)), (rng.random((15, 17)) < 0.4).astype(float)) for _ in range(3)]
    pairs[0][1][0, :5] = 255
    best = 0.0
    for t in SAL_THRESHOLDS:
        tp = pp = ap = 0.0
        for p, g in pairs:
            v = g != 255
            pos = p[v] >= t
            tp += np.sum(pos & (g[v] == 1))
            pp += np.sum(pos)
            ap += np.sum(g[v] == 1)
        prec, rec = tp / pp, tp / ap
        best = max(best, 1.3 * prec * rec / (0.3 * prec + rec))
    res = saliency_metrics([saliency_counts(p, g) for p, g in pairs])
    assert res['maxF'] == pytest.approx(best, rel=1e-12)


def test_saliency_legacy_double_sigmoid():
    eff = legacy_effective_thresholds()
    # the reference meters: tau <= 0.5 -> every pixel positive, 0.55..0.70 -> these thresholds
    assert np.all(eff[SAL_THRESHOLDS <= 0.5] <= 1e-12)
    np.testing.assert_allclose(eff[10:14], [0.2007, 0.4055, 0.6190, 0.8473], atol=1e-4)
    assert np.all(eff[SAL_THRESHOLDS >= 0.75] > 1)
    rng = np.random.default_rng(0)
    p = rng.random((30, 30))
    g = (rng.random((30, 30)) < 0.5).astype(float)
    legacy = saliency_counts(p, g, legacy_double_sigmoid=True)
    sig = 1 / (1 + np.exp(-p))
    for i, t in enumerate(SAL_THRESHOLDS):
        assert legacy['pp'][i] == np.sum(sig >= t)
        assert legacy['tp'][i] == np.sum((sig >= t) & (g == 1))
    assert np.all(legacy['pp'][SAL_THRESHOLDS >= 0.75] == 0)
    # the legacy number differs from the probability-threshold one
    plain = saliency_metrics([saliency_counts(p, g)])['maxF']
    assert saliency_metrics([legacy])['maxF'] != pytest.approx(plain)


def test_saliency_thresholds_include_ties_like_the_reference_meter():
    # the reference meters count prob >= t; quantised probabilities k / 255 hit thresholds
    # exactly (51 / 255 = 0.2), and in the legacy mode sigmoid(0) = 0.5 hits t = 0.5
    p = np.array([0.0, 0.0, 51 / 255, 1.0])
    g = np.array([0.0, 1.0, 1.0, 1.0])
    plain = saliency_counts(p, g)
    i02, i05 = list(SAL_THRESHOLDS).index(0.2), list(SAL_THRESHOLDS).index(0.5)
    assert plain['pp'][i02] == 2 and plain['tp'][i02] == 2
    legacy = saliency_counts(p, g, legacy_double_sigmoid=True)
    assert legacy['pp'][i05] == 4 and legacy['tp'][i05] == 3  # every pixel at t = 0.5
    assert legacy['pp'][i05 + 1] == 1  # sigmoid(p) >= 0.55 <=> p >= 0.2007: only p = 1


def test_saliency_ground_truth_is_salient_only_above_one_half():
    """A non-binary ground truth (0.3, 0.5) is background: salient means gt > 0.5."""
    gt = np.array([0.3, 0.5, 0.8, 1.0, 0.0])
    pred = np.array([0.9, 0.9, 0.9, 0.1, 0.1])
    c = saliency_counts(pred, gt, thresholds=[0.5])
    assert int(c['ap']) == 2  # 0.8 and 1.0
    np.testing.assert_array_equal(c['tp'], [1])  # only 0.8 is predicted >= 0.5
    np.testing.assert_array_equal(c['pp'], [3])
    # IoU at 0.5: predicted 0.3, 0.5, 0.8 -> TP 1 (0.8), FP 2, FN 1 (1.0)
    np.testing.assert_array_equal(c['iou'], [1, 2, 1])
