"""Boundary odsF / oisF / AP: BSDS properties, oracles and the SEISM PNG export."""
import os

import cv2
import numpy as np
import pytest
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from skimage.morphology import thin as skimage_thin

from mmmt.evaluation.functional import (BoundaryMatcher, boundary_metrics, boundary_pr_counts,
                                        center_crop, correspond_pixels, edge_nms, quantize_to_uint8,
                                        resolve_edge_thresholds, save_edge_png, seg2bmap,
                                        thin_binary)


def _line_image(h=40, w=50, row=20, col=None):
    gt = np.zeros((h, w))
    if col is None:
        gt[row, 5:w - 5] = 1
    else:
        gt[5:h - 5, col] = 1
    return gt


def _metrics(preds, gts, **kw):
    thresholds = resolve_edge_thresholds(kw.pop('thresholds', None))
    counts = [boundary_pr_counts(p, g, thresholds=thresholds, **kw) for p, g in zip(preds, gts)]
    return boundary_metrics(counts, thresholds), counts


# ------------------------------------------------------------------------------- thinning ---
def test_thinning_equals_skimage_on_random_shapes():
    rng = np.random.default_rng(0)
    for i in range(60):
        h, w = rng.integers(3, 40, 2)
        mask = rng.random((h, w)) < rng.random()
        if i % 2:
            mask = ndimage.binary_dilation(mask, iterations=int(rng.integers(1, 4)))
        np.testing.assert_array_equal(thin_binary(mask), skimage_thin(mask))


def test_thinning_thick_blob_and_empty():
    mask = np.zeros((30, 40), bool)
    mask[5:25, 5:35] = True
    np.testing.assert_array_equal(thin_binary(mask), skimage_thin(mask))
    assert not thin_binary(np.zeros((5, 5))).any()


def test_seg2bmap_marks_label_transitions():
    labels = np.zeros((4, 5), int)
    labels[:, 3:] = 1
    b = seg2bmap(labels)
    assert b[:, 2].all() and not b[:, [0, 1, 3]].any()
    assert not b[-1, -1]


# -------------------------------------------------------------------------------- matching ---
def _oracle_matching(pred, gt, radius):
    """Maximum matching by a dense assignment (cost 0 within radius, 1 otherwise)."""
    p = np.argwhere(pred)
    g = np.argwhere(gt)
    if len(p) == 0 or len(g) == 0:
        return 0
    d = np.sqrt(((p[:, None, :] - g[None, :, :])**2).sum(-1))
    cost = (d > radius).astype(float)
    r, c = linear_sum_assignment(cost)
    return int((cost[r, c] == 0).sum())


def test_matching_is_maximum_on_random_maps():
    rng = np.random.default_rng(1)
    for _ in range(25):
        pred = rng.random((18, 21)) < 0.15
        gt = rng.random((18, 21)) < 0.15
        radius = float(rng.uniform(0.5, 3.0))
        assert BoundaryMatcher(gt, radius).match(pred) == _oracle_matching(pred, gt, radius)


def test_matching_is_one_to_one():
    gt = _line_image()
    pred = np.zeros_like(gt, dtype=bool)
    pred[19, 5:45] = True  # two predicted lines, one pixel on either side of the gt line
    pred[21, 5:45] = True
    match_pred, match_gt = correspond_pixels(pred, gt > 0, radius=2.0)
    partners = match_pred[match_pred > 0]
    assert len(np.unique(partners)) == len(partners)  # no gt pixel matched twice
    assert (match_gt > 0).sum() == (match_pred > 0).sum() == 40
    for p_idx in np.flatnonzero(match_pred):  # pairs really within tolerance
        g_idx = match_pred.flat[p_idx] - 1
        pr, pc = divmod(p_idx, gt.shape[1])
        gr, gc = divmod(g_idx, gt.shape[1])
        assert np.hypot(pr - gr, pc - gc) <= 2.0
    # precision 50 %, recall 100 % (no thinning: the two lines are separate curves anyway)
    res, _ = _metrics([pred.astype(float)], [gt], max_dist=2.0 / np.hypot(*gt.shape),
                      thresholds=[0.5])
    assert res['ods_precision'] == pytest.approx(0.5)
    assert res['ods_recall'] == pytest.approx(1.0)


# ---------------------------------------------------------------------------- odsF props ---
def test_perfect_prediction_scores_100():
    gts = [_line_image(), _line_image(col=25)]
    res, _ = _metrics([g.copy() for g in gts], gts)
    assert res['odsF'] == 1.0 and res['oisF'] == 1.0
    # SEISM's AP needs at least two distinct recall values: a binary map has one, AP = 0
    assert res['AP'] == 0.0
    graded = [g * np.linspace(0.2, 1.0, g.shape[1])[None, :] for g in gts]
    res, _ = _metrics(graded, gts)
    assert res['odsF'] == 1.0 and res['AP'] > 0.95


def test_one_pixel_shift_inside_and_outside_tolerance():
    gt = _line_image(h=30, w=40, row=15)
    shifted = np.roll(gt, 1, axis=0)
    diag = np.hypot(*gt.shape)
    inside, _ = _metrics([shifted], [gt], max_dist=1.5 / diag)
    assert inside['odsF'] == 1.0
    outside, _ = _metrics([shifted], [gt], max_dist=0.9 / diag)  # tolerance < 1 px
    assert outside['odsF'] < 0.05


def test_blank_prediction_has_recall_zero():
    gt = _line_image()
    res, counts = _metrics([np.zeros_like(gt)], [gt])
    assert res['ods_recall'] == 0 and res['odsF'] == 0
    assert np.all(counts[0][3] == 0) and np.all(counts[0][1] == 30 + 10)


def test_empty_ground_truth_conventions():
    # SEISM: no ground truth -> recall 1, precision 0 (F = 0) for that image.
    gt = np.zeros((20, 20))
    res, counts = _metrics([_line_image(20, 20, 10)], [gt])
    assert res['odsF'] == 0 and res['ods_recall'] == 1.0
    assert counts[0][1].sum() == 0
    # an all-ignored image contributes nothing
    assert boundary_pr_counts(np.ones((5, 5)), np.full((5, 5), 255.0)) is None


def test_no_prediction_counts_as_precision_1_in_the_ap_curve():
    """SEISM: a threshold with ground truth but no predicted pixel has P = 1, R = 0. Counts
    (matched gt, gt, matched pred, pred) at two thresholds: (5, 10, 5, 5) -> P 1, R 0.5; and
    (0, 10, 0, 0). AP samples P on recall 0, 0.01 .. 0.5 (the observed range): 51 points of
    1, divided by 100 (with P = 0 at R = 0 it would be sum(i / 50) / 100 = 0.255)."""
    counts = np.array([[[5, 0], [10, 10], [5, 0], [5, 0]]])
    res = boundary_metrics(counts)
    assert res['AP'] == pytest.approx(0.51)
    assert res['odsF'] == pytest.approx(2 * 0.5 / 1.5)


def test_ignored_pixels_do_not_count():
    gt = _line_image()
    pred = gt.copy()
    pred[5, :] = 1  # a false line ...
    gt[:8, :] = 255  # ... inside an ignored band
    res, _ = _metrics([pred], [gt])
    assert res['odsF'] == 1.0


def test_results_are_deterministic():
    rng = np.random.default_rng(5)
    gt = (rng.random((40, 50)) < 0.05).astype(float)
    pred = ndimage.gaussian_filter(gt, 1.5) * 4 + 0.1 * rng.random(gt.shape)
    pred = np.clip(pred, 0, 1)
    a = boundary_pr_counts(pred, gt)
    b = boundary_pr_counts(pred.copy(), gt.copy())
    np.testing.assert_array_equal(a, b)


def test_threshold_semantics_follow_the_png():
    gt = _line_image()
    # trunc(255 * 0.5) = 127 -> 127/255 = 0.498 is not > 0.5; 0.505 -> 128/255 > 0.5
    c1 = boundary_pr_counts(gt * 0.5, gt, thresholds=[0.49, 0.5])
    c2 = boundary_pr_counts(gt * 0.505, gt, thresholds=[0.49, 0.5])
    assert c1[3].tolist() == [40, 0] and c2[3].tolist() == [40, 40]
    c3 = boundary_pr_counts(gt * 0.5, gt, thresholds=[0.49, 0.5], quantize=False)
    assert c3[3].tolist() == [40, 0]
    assert quantize_to_uint8(np.array([0.999, 1.2, -1]))[0] == 254


def test_a_pixel_at_the_threshold_is_not_an_edge():
    # 51/255 is exactly 0.2: a line of 0.2 is no edge at t = 0.2 (SEISM's `> t`), one of 0.4
    # is; the test above never had a pixel at a threshold with another above it
    gt = _line_image()
    pred = gt * 0.4
    pred[10, 5:45] = 0.2
    counts = boundary_pr_counts(pred, gt, thresholds=[0.1, 0.2, 0.3])
    assert counts[3].tolist() == [80, 40, 40] and counts[0].tolist() == [40, 40, 40]


def test_the_default_matching_distance_is_the_protocols():
    # max_dist = 0.011 of the diagonal (3.1 px at 200x200): a line 3 px off still matches
    gt = np.zeros((200, 200))
    gt[100, 5:195] = 1
    pred = np.zeros((200, 200))
    pred[103, 5:195] = 1
    assert boundary_pr_counts(pred, gt, thresholds=[0.5])[:, 0].tolist() == [190] * 4
    assert boundary_pr_counts(pred, gt, thresholds=[0.5], max_dist=0.0075)[0, 0] == 0


def _reference_metrics(preds, gts, thresholds, max_dist):
    """Plain float64 ODS/OIS/AP: skimage thinning, dense-assignment matching, loops."""
    per_image = []
    for pred, gt in zip(preds, gts):
        radius = max_dist * np.hypot(*gt.shape)
        g = skimage_thin(gt > 0)
        rows = []
        for t in thresholds:
            e = skimage_thin(np.floor(pred * 255) / 255 > t)
            m = _oracle_matching(e, g, radius)
            rows.append((m, g.sum(), m, e.sum()))
        per_image.append(np.array(rows, dtype=np.float64))
    per_image = np.array(per_image)  # (N, K, 4)

    def prf(cr, sr, cp, sp):
        if sr == 0:
            r, p = 1.0, 0.0
        elif sp == 0:
            r, p = 0.0, 1.0
        else:
            r, p = cr / sr, cp / sp
        return p, r, (2 * p * r / (p + r) if p + r > 0 else 0.0)

    tot = per_image.sum(0)
    curve = [prf(*row) for row in tot]
    ods = max(c[2] for c in curve)
    picks = [max(range(len(thresholds)), key=lambda k: (prf(*img[k])[2], -k)) for img in per_image]
    ois = prf(*sum(img[k] for img, k in zip(per_image, picks)))[2]
    # SEISM general_ap: unique recalls (first occurrence), linear interpolation on 0:0.01:1
    seen = {}
    for p, r, _ in curve:
        seen.setdefault(r, p)
    rs = np.array(sorted(seen))
    ps = np.array([seen[r] for r in rs])
    grid = [x / 100 for x in range(101) if rs[0] <= x / 100 <= rs[-1]]
    ap = sum(np.interp(grid, rs, ps)) / 100 if len(rs) > 1 else 0.0
    return ods, ois, ap


def test_matches_float64_reference_on_random_images():
    rng = np.random.default_rng(7)
    preds, gts = [], []
    for _ in range(3):
        gt = np.zeros((32, 40), np.uint8)
        for _ in range(4):
            p0 = tuple(int(v) for v in rng.integers(0, [40, 32]))
            p1 = tuple(int(v) for v in rng.integers(0, [40, 32]))
            cv2.line(gt, p0, p1, 1, 1)
        noisy = ndimage.gaussian_filter(np.roll(gt.astype(float), int(rng.integers(-1, 2)), 1), 1.2)
        pred = np.clip(noisy * 3 + 0.3 * rng.random(gt.shape) * (rng.random(gt.shape) < 0.1), 0, 1)
        preds.append(pred)
        gts.append(gt.astype(float))
    thresholds = np.round(np.arange(0.05, 1.0, 0.1), 2)
    res, _ = _metrics(preds, gts, thresholds=thresholds, max_dist=0.05)
    ods, ois, ap = _reference_metrics(preds, gts, thresholds, 0.05)
    assert res['odsF'] == pytest.approx(ods, abs=1e-12)
    assert res['oisF'] == pytest.approx(ois, abs=1e-12)
    assert res['AP'] == pytest.approx(ap, abs=1e-12)


def test_nms_thins_a_blurred_line():
    gt = np.zeros((40, 60))
    gt[20, :] = 1  # across the whole image: no blurred line ends
    blurred = ndimage.gaussian_filter(gt, 2.0)
    blurred /= blurred.max()
    kept = edge_nms(blurred) > 0.1
    inner = kept[:, 15:45]
    assert inner.sum(0).max() <= 2 and inner[20].all()
    res, _ = _metrics([blurred], [gt], nms=True)
    assert res['odsF'] == 1.0


def test_nms_keeps_both_pixels_of_an_equal_valued_ridge():
    """A pixel survives when it is not smaller than its neighbours across the edge: on a
    two-pixel plateau each pixel ties with the other, so both stay (a strict comparison
    would delete the whole line)."""
    prob = np.zeros((9, 10))
    prob[:, 4:6] = 0.8
    expected = np.zeros(10)
    expected[4:6] = 0.8
    np.testing.assert_array_equal(edge_nms(prob)[4], expected)


def test_gt_modes():
    gt = _line_image()
    thin_c = boundary_pr_counts(gt, gt, thresholds=[0.5], gt_mode='thin')
    bmap_c = boundary_pr_counts(gt, gt, thresholds=[0.5], gt_mode='seg2bmap')
    assert thin_c[1, 0] == 40 and bmap_c[1, 0] == 2 * 40 + 2  # both sides of the stroke
    with pytest.raises(ValueError):
        boundary_pr_counts(gt, gt, gt_mode='bad')


def test_threshold_options():
    assert resolve_edge_thresholds(None).size == 99
    assert resolve_edge_thresholds('seism_hed_voc').size == 101
    np.testing.assert_allclose(resolve_edge_thresholds(3), [0.25, 0.5, 0.75])
    with pytest.raises(ValueError):
        resolve_edge_thresholds([0.5, 0.2])


# ---------------------------------------------------------------------------- PNG export ---
def test_save_edge_png_crops_truncates_and_never_overwrites(tmp_path):
    prob = np.zeros((1, 6, 8), np.float32)
    prob[0, 1:5, 1:7] = 0.999  # the original 4x6 image inside centred padding
    path = str(tmp_path / 'sub' / '0001.png')
    assert save_edge_png(prob, path, ori_shape=(4, 6))
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    assert img.shape == (4, 6) and img.dtype == np.uint8 and (img == 254).all()
    assert not save_edge_png(np.zeros((4, 6)), path)  # kept
    assert (cv2.imread(path, cv2.IMREAD_UNCHANGED) == 254).all()
    assert save_edge_png(np.zeros((4, 6)), path, overwrite=True)
    assert (cv2.imread(path, cv2.IMREAD_UNCHANGED) == 0).all()
    assert sorted(os.listdir(tmp_path / 'sub')) == ['0001.png']  # no temporary left
    assert center_crop(np.arange(20).reshape(4, 5), (2, 3)).tolist() == [[6, 7, 8], [11, 12, 13]]
