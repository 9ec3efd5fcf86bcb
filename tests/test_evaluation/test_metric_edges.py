"""Boundary cases of the metrics: angles exactly at the normals thresholds, the histogram
median's rank rules, and images or datasets without valid pixels (docs/metrics.md)."""
import math

import numpy as np
import pytest
from _metric_testlib import evaluate

from mmmt.evaluation.functional import (NORMALS_HIST_BIN, boundary_metrics, depth_metrics,
                                        depth_sums, normal_angles, normals_metrics, normals_stats,
                                        saliency_counts, saliency_metrics, segmentation_counts,
                                        segmentation_metrics)
from mmmt.evaluation.functional.normals import _NUM_BINS, _hist_median

NAN_KEYS = ('mean', 'median', 'rmse', 'within_11.25', 'within_22.5', 'within_30')


def _up(n):
    gt = np.zeros((3, 1, n))
    gt[2] = 1
    return gt


def _pixels(angles_deg):
    """(pred, gt) maps (3, 1, N): ground truth +z, prediction rotated by each angle about y."""
    a = np.radians(np.asarray(angles_deg, dtype=np.float64))
    pred = np.stack([np.sin(a), np.zeros_like(a), np.cos(a)]).reshape(3, 1, -1)
    return pred, _up(a.size)


def _around(t, width=16):
    """Predictions a few ulps around a rotation by ``t`` degrees and their float64 angles."""
    a = math.radians(t)
    kx, kz = np.meshgrid(np.arange(-width, width + 1), np.arange(-width, width + 1))
    x = math.sin(a) + kx.ravel() * np.spacing(math.sin(a))
    z = math.cos(a) + kz.ravel() * np.spacing(math.cos(a))
    pred = np.stack([x, np.zeros_like(x), z]).reshape(3, 1, -1)
    gt = _up(x.size)
    return pred, gt, normal_angles(pred, gt)


def _median(angles_deg):
    return normals_metrics([normals_stats(*_pixels(angles_deg))])['median']


# ------------------------------------------------------------------ normals: thresholds ---
@pytest.mark.parametrize('t, expected', [(11.25, [1, 3, 3]), (22.5, [0, 1, 3])])
def test_within_excludes_an_angle_exactly_at_the_threshold(t, expected):
    """11.25 and 22.5 degrees come out of the pipeline exactly for some float64 vectors: such
    a pixel is not "within" (strict <, the definition of the ASTMT / MTI-Net evaluation code;
    the MTMamba reference computes no accuracies), the float just below is."""
    pred, gt, ang = _around(t)
    exact = int(np.flatnonzero(ang == t)[0])
    below = int(np.flatnonzero(ang < t)[np.argmax(ang[ang < t])])
    above = int(np.flatnonzero(ang > t)[np.argmin(ang[ang > t])])
    assert ang[below] == np.nextafter(t, 0) and ang[above] == np.nextafter(t, 90)
    idx = [exact, below, above]
    s = normals_stats(pred[:, :, idx], gt[:, :, idx])
    assert s['within'].tolist() == expected
    # an exact edge of the 0.05-degree histogram belongs to the bin above it
    assert int(round(t / NORMALS_HIST_BIN)) in s['hist_bins'].tolist()


def test_within_30_sees_only_the_floats_next_to_30():
    """np.degrees never returns exactly 30.0 (the radian floats next to pi/6 map to
    29.999999999999996 and 30.000000000000004), so the 30-degree accuracy cannot depend on < or
    <=: the float below 30 counts, the one above does not."""
    y = np.radians(30.0)
    neighbours = [y + k * np.spacing(y) for k in range(-3, 4)]
    assert 30.0 not in [np.degrees(v) for v in neighbours]
    pred, gt, ang = _around(30.0)
    assert not np.any(ang == 30.0)
    below = int(np.flatnonzero(ang < 30)[np.argmax(ang[ang < 30])])
    above = int(np.flatnonzero(ang > 30)[np.argmin(ang[ang > 30])])
    assert ang[below] == np.nextafter(30.0, 0) and ang[above] == np.nextafter(30.0, 90)
    s = normals_stats(pred[:, :, [below, above]], gt[:, :, [below, above]])
    assert s['within'].tolist() == [0, 0, 1]


def test_angle_formula_normalisation_and_validity():
    """2 atan2(|p - g|, |p + g|) of the normalised vectors, as the reference: exact at 0, 90
    and 180 degrees and accurate for tiny angles, where arccos of the clipped dot product
    returns 0."""
    gt = _up(4)
    pred = np.zeros((3, 1, 4))
    pred[2, 0, 0] = 3.0  # parallel, not unit length
    pred[0, 0, 1] = 1.0  # orthogonal
    pred[2, 0, 2] = -0.5  # opposite
    pred[:, 0, 3] = [np.nan, 0.0, np.nan]  # non-finite values -> 0: a zero vector, 90 degrees
    assert normal_angles(pred, gt).tolist() == [0.0, 90.0, 180.0, 90.0]
    assert normal_angles(np.zeros((3, 1, 1)), _up(1)).tolist() == [90.0]
    a = 1e-9  # radians
    tiny = np.array([math.sin(a), 0.0, math.cos(a)]).reshape(3, 1, 1)
    assert normal_angles(tiny, _up(1))[0] == pytest.approx(math.degrees(a), rel=1e-9)
    assert math.degrees(math.acos(max(-1.0, min(1.0, math.cos(a))))) == 0.0
    # the ground truth is normalised too (PNG-decoded normals are not unit length)
    p, g = _pixels([40.0])
    assert normal_angles(p, 0.8 * g)[0] == pytest.approx(40.0, abs=1e-12)
    # valid: every channel != 255, finite, non-zero vector
    g = _up(4)
    g[1, 0, 1] = 255
    g[0, 0, 2] = np.nan
    g[:, 0, 3] = 0
    p = np.ones((3, 1, 4))
    assert normals_stats(p, g)['count'] == 1


# ---------------------------------------------------------------- normals: the median ---
def test_median_of_an_even_count_is_the_mean_of_the_two_middle_angles():
    # Bins 200 and 400: each middle angle is estimated at its bin centre. (Interpolating the
    # rank n / 2 alone gave the upper edge of the lower bin, 10.05.)
    assert _median([10.01, 20.01]) == pytest.approx((10.025 + 20.025) / 2, abs=1e-12)
    assert _median([1.01, 2.01, 3.01, 50.01]) == pytest.approx((2.025 + 3.025) / 2, abs=1e-12)
    assert abs(_median([10.01, 20.01]) - 15.01) <= NORMALS_HIST_BIN  # np.median


def test_median_single_pixel_bin_edge_and_the_ends_of_the_range():
    def one(pred_vec):
        s = normals_stats(np.array(pred_vec, float).reshape(3, 1, 1), _up(1))
        return s['hist_bins'].tolist(), normals_metrics([s])['median']

    bins, med = one([0, 0, 1])  # 0 degrees: first bin
    assert bins == [0] and med == pytest.approx(0.025, abs=1e-12)
    bins, med = one([1, 0, 0])  # 90 degrees exactly, an edge: the bin above
    assert bins == [1800] and med == pytest.approx(90.025, abs=1e-12)
    bins, med = one([0, 0, -1])  # 180 degrees: kept in the last bin
    assert bins == [_NUM_BINS - 1] and med == pytest.approx(179.975, abs=1e-12)
    pred = np.zeros((3, 1, 2))
    pred[2] = [1, -1]  # 0 and 180 degrees: np.median 90
    assert normals_metrics([normals_stats(pred, _up(2))])['median'] == pytest.approx(90.0,
                                                                                     abs=1e-12)


@pytest.mark.parametrize('t, expected_bin', [(0.15, 2), (179.95, 3598)])
def test_angle_just_below_a_nominal_edge_stays_in_the_lower_bin(t, expected_bin):
    """The floats 0.15 and 179.95 are slightly below 3 / 20 and 3599 / 20: the bin is that of
    the float (``t * 20`` would round up to the next bin)."""
    pred, gt, ang = _around(t)
    exact = np.flatnonzero(ang == t)[:1]
    assert exact.size == 1
    assert normals_stats(pred[:, :, exact], gt[:, :, exact])['hist_bins'].tolist() == \
        [expected_bin]


def test_median_rank_is_placed_within_its_bin_by_the_ranks_of_that_bin():
    # 1.01 and 1.04 share bin 20 [1.0, 1.05): the 2nd of 3 angles is the 2nd of that bin's
    # two, at 3/4 of its width (1.0375), not its centre (np.median: 1.04)
    assert _median([1.01, 1.04, 1.51]) == pytest.approx(1.0375, abs=1e-12)
    assert _median([1.01, 1.04, 0.51]) == pytest.approx(1.0125, abs=1e-12)  # the 1st of two


@pytest.mark.parametrize('n', [1, 2, 4, 5])
def test_median_of_angles_in_one_bin_is_its_centre(n):
    angles = np.linspace(33.301, 33.349, n)
    assert _median(angles) == pytest.approx(33.325, abs=1e-12)
    assert abs(_median(angles) - np.median(angles)) <= NORMALS_HIST_BIN / 2


def test_median_within_one_bin_of_np_median_on_sparse_sets():
    rng = np.random.default_rng(7)
    for n in range(1, 13):
        for _ in range(5):
            angles = rng.choice([rng.uniform(0, 5), rng.uniform(40, 180)], size=n) + \
                rng.uniform(0, 1, n)
            pred, gt = _pixels(angles)
            raw = normal_angles(pred, gt)
            res = normals_metrics([normals_stats(pred, gt)])
            assert abs(res['median'] - np.median(raw)) <= NORMALS_HIST_BIN, (n, angles)


def test_normals_without_valid_pixels():
    assert math.isnan(_hist_median(np.zeros(_NUM_BINS, np.int64), 0))
    res = normals_metrics([])
    assert res['count'] == 0 and all(math.isnan(res[k]) for k in NAN_KEYS)
    pred, gt = _pixels([10.01, 20.01, 30.01])
    ignored = np.full_like(gt, 255.0)
    ignored[:, 0, 2] = np.nan  # NaN ground truth is invalid too
    empty = normals_stats(pred, ignored)
    assert empty['count'] == 0 and empty['hist_bins'].size == 0 and empty['sum'] == 0.0
    res = normals_metrics([empty])
    assert res['count'] == 0 and all(math.isnan(res[k]) for k in NAN_KEYS)
    # an image without valid pixels changes nothing next to one with them
    alone = normals_metrics([normals_stats(pred, gt)])
    assert normals_metrics([normals_stats(pred, gt), empty]) == alone
    assert alone['median'] == pytest.approx(20.025, abs=1e-12)
    out = evaluate(['normals'], [dict(normals=(pred.astype(np.float32),
                                               ignored.astype(np.float32)))])
    assert all(math.isnan(out[f'normals/{k}']) for k in NAN_KEYS)


# ---------------------------------------------------------------------------- depth ---
def test_depth_image_without_valid_pixels():
    gt = np.array([255.0, 0.0, np.nan, -1.0])
    empty = depth_sums(np.array([1.0, 2.0, 3.0, 4.0]), gt)
    assert empty == dict(count=0, sq_err=0.0, abs_rel=0.0, sq_rel=0.0, log_sq_err=0.0,
                         delta1=0, delta2=0, delta3=0)
    valid = depth_sums(np.array([2.0, 1.0]), np.array([1.0, 1.0]))
    assert depth_metrics([valid, empty]) == depth_metrics([valid])
    res = depth_metrics([empty, empty])
    assert res['count'] == 0
    assert all(math.isnan(v) for k, v in res.items() if k != 'count')
    out = evaluate(['depth'], [dict(depth=(np.ones((1, 1, 4), np.float32),
                                           gt.astype(np.float32).reshape(1, 1, 4)))])
    assert math.isnan(out['depth/rmse']) and math.isnan(out['depth/delta1'])


# --------------------------------------------------------------------- segmentation ---
def test_prediction_of_the_ignore_index_is_no_class():
    gt = np.array([0, 1, 2, 2])
    pred = np.array([0, 255, 2, 255])
    c = segmentation_counts(pred, gt)  # class count inferred: 3, not 256
    assert c['label'].tolist() == [1, 1, 2]
    assert c['pred'].tolist() == [1, 0, 1] and c['intersect'].tolist() == [1, 0, 1]
    inferred = segmentation_metrics([c])
    given = segmentation_metrics([segmentation_counts(pred, gt, 3)], 3)
    assert inferred['num_classes'] == 3
    assert inferred['mIoU'] == given['mIoU'] == pytest.approx((1 + 0 + 1 / 2) / 3)


def test_segmentation_without_any_valid_pixel():
    """Every class is absent: each IoU is TP / max(union, 1e-8) = 0 (the reference's rule),
    so mIoU is 0; the mean over present classes and the pixel accuracy are undefined."""
    res = segmentation_metrics([segmentation_counts(np.zeros((2, 2)), np.full((2, 2), 255), 3)],
                               3)
    assert res['mIoU'] == 0.0
    assert math.isnan(res['mIoU_present']) and math.isnan(res['pixel_acc'])


def test_human_parts_ignored_image_counts_nowhere_but_an_all_background_one_does():
    """AddIgnoreRegions turns a part-less map into 255 before the metric (the reference's
    rule); the metric itself counts the background of a map that is all 0."""
    gt = np.array([[[0, 1, 2, 2]]])
    pred = np.array([[[0, 1, 1, 2]]])
    tasks = dict(human_parts=dict(num_classes=3))
    base = evaluate(tasks, [dict(human_parts=(pred, gt))])
    assert base['human_parts/mIoU'] == pytest.approx(100 * (1 + 1 / 2 + 1 / 2) / 3)
    ignored = (np.array([[[1, 2, 0, 0]]]), np.full((1, 1, 4), 255))
    assert evaluate(tasks, [dict(human_parts=(pred, gt)), dict(human_parts=ignored)]) == base
    background = (np.array([[[0, 0, 0, 1]]]), np.zeros((1, 1, 4), np.int64))
    res = evaluate(tasks, [dict(human_parts=(pred, gt)), dict(human_parts=background)])
    # background: TP 1 + 3, union 5; class 1: TP 1, union 3; class 2: TP 1, union 2
    assert res['human_parts/mIoU'] == pytest.approx(100 * (4 / 5 + 1 / 3 + 1 / 2) / 3)


# ------------------------------------------------------------------------- saliency ---
def test_saliency_one_half_counts_for_maxf_but_not_for_iou():
    p = np.array([0.5, 0.5, 0.2])
    g = np.array([1.0, 0.0, 1.0])
    c = saliency_counts(p, g, thresholds=[0.5])
    assert c['pp'].tolist() == [2] and c['tp'].tolist() == [1]  # prob >= t
    assert c['iou'].tolist() == [0, 0, 2]  # prob > 0.5: nothing predicted salient


def test_saliency_without_valid_or_salient_pixels():
    none_valid = saliency_metrics([saliency_counts(np.ones(3), np.full(3, 255.0))])
    assert none_valid['maxF'] == 0.0 and math.isnan(none_valid['IoU'])
    # nothing salient and nothing predicted: F is 0/0 -> 0 (the reference), IoU 0/0
    quiet = saliency_metrics([saliency_counts(np.full(3, 0.01), np.zeros(3))])
    assert quiet['maxF'] == 0.0 and math.isnan(quiet['IoU'])


# ------------------------------------------------------------------------- boundary ---
def test_boundary_image_without_ground_truth_boundaries():
    """SEISM's conventions (no ground truth: R = 1, P = 0) make F = 0 at every threshold of
    such an image, so its OIS threshold is the first (lowest) one and its predictions there
    are all false positives in oisF."""
    a = np.array([[10, 8, 5], [10, 10, 10], [10, 8, 5], [12, 9, 5]])  # cntR, sumR, cntP, sumP
    b = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0], [4, 0, 0]])  # no ground truth
    res = boundary_metrics([a, b], [0.1, 0.5, 0.9])

    def f(p, r):
        return 2 * p * r / (p + r)

    assert res['odsF'] == pytest.approx(f(8 / 9, 8 / 10)) and res['ods_threshold'] == 0.5
    assert res['oisF'] == pytest.approx(f(10 / 16, 1.0))  # not f(10 / 12, 1.0)
    # a dataset without any ground-truth boundary: recall 1, precision 0, F and AP 0
    res = boundary_metrics([b, b], [0.1, 0.5, 0.9])
    assert res['odsF'] == 0.0 and res['oisF'] == 0.0 and res['AP'] == 0.0
    assert res['ods_recall'] == 1.0


# -------------------------------------------------------------------- NaN predictions ---
def test_nan_predictions_count_as_zero():
    """A NaN depth is the clamp value 0 (error = gt), a NaN saliency probability is 0 (normals:
    a zero vector, 90 degrees, see above); the dataset values stay finite."""
    res = depth_metrics([depth_sums(np.array([np.nan, 2.0]), np.array([3.0, 2.0]))])
    assert res['rmse'] == pytest.approx(math.sqrt(9 / 2)) and res['delta1'] == 0.5
    c = saliency_counts(np.array([np.nan, 0.9]), np.array([1.0, 1.0]), thresholds=[0.0, 0.5])
    assert c['pp'].tolist() == [2, 1] and c['tp'].tolist() == [2, 1]


def test_infinite_and_huge_normals_predictions():
    """Non-finite components are 0 (as NaN is); a float64 vector too long to square keeps its
    direction (both were 90 degrees: the squared norm overflowed)."""
    gt = np.zeros((3, 1, 4))
    gt[2] = 1.0
    pred = np.array([[np.inf, 0.0, -np.inf, 3e200], [0, 0, 0, 0], [1.0, 1e200, 1.0, 3e200]])
    np.testing.assert_allclose(normal_angles(pred[:, None], gt), [0.0, 0.0, 0.0, 45.0],
                               atol=1e-12)
    # the long vector's angle is that of the same direction at unit length
    assert normal_angles(pred[:, None, 3:], gt[..., 3:])[0] == \
        normal_angles(np.array([[[1.0]], [[0.0]], [[1.0]]]), gt[..., 3:])[0]


def test_edge_prediction_of_several_channels_or_one_row():
    gt = np.zeros((1, 1, 16), np.float32)
    gt[0, 0, 5] = 1.0
    pred = np.zeros((1, 1, 16), np.float32)
    pred[0, 0, 5] = 0.9
    # an image of one row is an image (np.squeeze made it 1-D and refused it); SEISM's NMS
    # needs 2x2 and says so, the earlier protocol has no suppression
    res = evaluate(dict(edge=dict(protocol='seism-2016-01')), [dict(edge=(pred, gt))])
    assert res['edge/odsF'] == pytest.approx(100.0)
    with pytest.raises(ValueError, match=r'^edge: edge prediction: expected one channel, '
                                         r'\(H, W\) or \(1, H, W\), got shape \(2, 1, 16\)'):
        evaluate(['edge'], [dict(edge=(np.concatenate([pred, pred]), gt))])
