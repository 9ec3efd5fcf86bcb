"""Boundary (edge) detection evaluation in the BSDS / SEISM style, in NumPy and SciPy.

The protocol the MTMamba, InvPT and ATRC papers report (``odsF``) is the SEISM toolbox run on the
8-bit PNGs the model wrote (docs/metrics.md). Per image and per threshold ``t`` of SEISM's
current protocol (``'seism'``, the default of the edge evaluator; docs/metrics.md):

1. the PNG value ``v = trunc(255 * p)`` is read back as ``v / 255``;
2. the map goes through the Structured Edge non-maximum suppression
   (:func:`~mmmt.evaluation.functional.seism_nms.seism_nms`; SEISM since February 2016);
3. it is binarised with ``> t`` at each of the 101 thresholds of SEISM's ``HED.txt`` and thinned
   to one-pixel-wide curves (MATLAB ``bwmorph(..., 'thin', Inf)``, :func:`thin_binary`);
4. predicted and ground-truth boundary pixels (the thinned ``seg2bmap`` of the ground truth) are
   put in one-to-one correspondence when they lie within ``max_dist * sqrt(H^2 + W^2)`` pixels
   of each other (Martin, Fowlkes & Malik, PAMI 2004; :class:`BoundaryMatcher`);
5. the counts ``cntR, sumR, cntP, sumP`` are kept per image and threshold; ``odsF`` sums them
   over the dataset before taking the best threshold, ``oisF`` picks the best threshold per
   image, ``AP`` integrates the dataset precision-recall curve as SEISM's ``general_ap`` does.

:data:`EDGE_PROTOCOLS` names the settings of that protocol and of mmmt's earlier one
(``'seism-2016-01'``: no suppression, 99 thresholds, thinned ground truth), which
:func:`boundary_pr_counts` takes as its keyword defaults.

Everything here is pure NumPy/SciPy: no MATLAB, no compiled extension.
"""
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import ndimage

from mmmt.structures import IGNORE_INDEX
from .boundary_matching import BoundaryMatcher, correspond_pixels, disk_offsets
from .seism_nms import seism_nms
from .thinning import seg2bmap, thin_binary
from .utils import single_channel_map

__all__ = [
    'DEFAULT_EDGE_THRESHOLDS', 'SEISM_HED_THRESHOLDS', 'SEISM_HED_VOC_THRESHOLDS',
    'EDGE_PROTOCOLS', 'DEFAULT_EDGE_PROTOCOL', 'edge_protocol', 'check_boundary_options',
    'thin_binary', 'seg2bmap',
    'edge_nms', 'disk_offsets', 'BoundaryMatcher', 'correspond_pixels', 'quantize_to_uint8',
    'boundary_pr_counts', 'boundary_metrics', 'resolve_edge_thresholds'
]

#: 99 uniform thresholds 0.01, 0.02, ..., 0.99 (the default of Piotr Dollar's ``edgesEvalImg``,
#: used by the ``'seism-2016-01'`` protocol).
DEFAULT_EDGE_THRESHOLDS = np.round(np.arange(1, 100) * 0.01, 2)

#: SEISM's ``parameters/HED.txt``: 0.001, 0.01, 0.02, ..., 0.99, 0.999 (101 values).
SEISM_HED_THRESHOLDS = np.concatenate(
    [[0.001], np.round(np.arange(1, 100) * 0.01, 2), [0.999]])

#: SEISM's ``parameters/HED_VOC_Khoreva.txt``, the same 101 values.
SEISM_HED_VOC_THRESHOLDS = SEISM_HED_THRESHOLDS

#: Settings of the boundary protocols by name (keyword arguments of :func:`boundary_pr_counts`).
#: ``'seism'``: SEISM's current ``read_one_cont_png`` (structured-edge NMS, 101 thresholds,
#: thinned ``seg2bmap`` ground truth). ``'seism-2016-01'``: mmmt's earlier protocol, modelled on
#: SEISM's January 2016 reader (no suppression, 99 thresholds, thinned ground truth).
EDGE_PROTOCOLS: Dict[str, Dict[str, Any]] = {
    'seism': dict(thresholds='seism_hed', quantize=True, nms='seism', thin_pred=True,
                  gt_mode='seg2bmap_thin'),
    'seism-2016-01': dict(thresholds=None, quantize=True, nms=False, thin_pred=True,
                          gt_mode='thin'),
}

#: The protocol of the edge evaluator unless a config says otherwise.
DEFAULT_EDGE_PROTOCOL = 'seism'

_NMS_MODES = {False: 'none', None: 'none', 'none': 'none', True: 'canny', 'canny': 'canny',
              'seism': 'seism'}
_GT_MODES = ('thin', 'raw', 'seg2bmap', 'seg2bmap_thin')


def edge_protocol(name: str) -> Dict[str, Any]:
    """A copy of the settings of the boundary protocol ``name`` (see :data:`EDGE_PROTOCOLS`)."""
    if name not in EDGE_PROTOCOLS:
        raise ValueError(f'unknown boundary protocol {name!r}; choose from '
                         f'{sorted(EDGE_PROTOCOLS)}')
    return dict(EDGE_PROTOCOLS[name])


def check_boundary_options(nms: Union[bool, str, None], gt_mode: str) -> str:
    """Validate the ``nms`` and ``gt_mode`` options; returns the suppression's name."""
    key = nms.lower() if isinstance(nms, str) else nms
    if key not in _NMS_MODES:
        raise ValueError(f"nms must be False, 'seism' or 'canny' (True), got {nms!r}")
    if gt_mode not in _GT_MODES:
        raise ValueError(f'gt_mode must be one of {_GT_MODES}, got {gt_mode!r}')
    return _NMS_MODES[key]


def edge_nms(prob: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Non-maximum suppression of an edge probability map across the edge (Canny style).

    Optional pre-processing (``nms='canny'``; not SEISM's suppression, which is
    :func:`~mmmt.evaluation.functional.seism_nms.seism_nms`). The direction across the edge at
    each pixel is the gradient direction of the Gaussian-smoothed map (on either flank of a
    ridge it points towards the crest); a pixel is kept when its value is not smaller than the
    bilinearly interpolated values one pixel away on both sides along that direction. Pixels
    where the smoothed gradient vanishes (crests, flat areas) are kept.

    Args:
        prob (np.ndarray): (H, W) edge probabilities.
        sigma (float): Gaussian scale (pixels) used to estimate the direction.

    Returns:
        np.ndarray: (H, W) float64 map, suppressed pixels set to 0.
    """
    prob = np.asarray(prob, dtype=np.float64)
    smooth = ndimage.gaussian_filter(prob, sigma) if sigma > 0 else prob
    g_y, g_x = np.gradient(smooth)
    norm = np.hypot(g_x, g_y)
    flat = norm <= 1e-12
    norm = np.where(flat, 1.0, norm)
    n_x, n_y = g_x / norm, g_y / norm
    rows, cols = np.indices(prob.shape, dtype=np.float64)
    keep = np.ones(prob.shape, dtype=bool)
    for sign in (1.0, -1.0):
        neighbour = ndimage.map_coordinates(
            prob, [rows + sign * n_y, cols + sign * n_x], order=1, mode='nearest')
        keep &= prob >= neighbour - 1e-12
    return np.where(keep | flat, prob, 0.0)


def quantize_to_uint8(prob: np.ndarray) -> np.ndarray:
    """What writing ``prob`` as an 8-bit PNG does: ``trunc(255 * prob)``, clipped to [0, 255]."""
    prob = np.nan_to_num(np.asarray(prob, dtype=np.float64), nan=0.0)
    return np.clip(np.floor(prob * 255.0), 0, 255).astype(np.uint8)


def resolve_edge_thresholds(
        thresholds: Union[None, int, str, Sequence[float]]) -> np.ndarray:
    """Turn a threshold option into an ascending float64 array.

    Args:
        thresholds: None (``DEFAULT_EDGE_THRESHOLDS``, 99 values), an int ``K`` (``K`` uniform
            thresholds ``1/(K+1) ... K/(K+1)``, the ``edgesEvalImg`` convention),
            ``'seism_hed'`` or ``'seism_hed_voc'`` (SEISM's 101 values), or an explicit
            sequence.

    Returns:
        np.ndarray: Sorted thresholds.
    """
    if thresholds is None:
        out = DEFAULT_EDGE_THRESHOLDS
    elif isinstance(thresholds, str):
        if thresholds.lower() not in ('seism_hed', 'seism_hed_voc'):
            raise ValueError(f"unknown threshold set {thresholds!r}; use 'seism_hed', "
                             "'seism_hed_voc', None, an int or a list")
        out = SEISM_HED_THRESHOLDS
    elif isinstance(thresholds, (int, np.integer)):
        k = int(thresholds)
        if k < 1:
            raise ValueError('the number of thresholds must be >= 1')
        out = np.linspace(1.0 / (k + 1), 1.0 - 1.0 / (k + 1), k)
    else:
        out = np.asarray(list(thresholds), dtype=np.float64)
    out = np.asarray(out, dtype=np.float64)
    if out.ndim != 1 or out.size == 0:
        raise ValueError('thresholds must be a non-empty 1-D sequence')
    if np.any(np.diff(out) <= 0):
        raise ValueError('thresholds must be strictly increasing')
    return out.copy()


def _gt_boundaries(gt: np.ndarray, valid: np.ndarray, gt_mode: str,
                   gt_threshold: float) -> np.ndarray:
    positive = (gt > gt_threshold) & valid
    if gt_mode == 'thin':
        return thin_binary(positive)
    if gt_mode == 'raw':
        return positive
    if gt_mode == 'seg2bmap':
        return seg2bmap(positive.astype(np.uint8)) & valid
    if gt_mode == 'seg2bmap_thin':
        return thin_binary(seg2bmap(positive.astype(np.uint8)) & valid)
    raise AssertionError(gt_mode)  # checked by check_boundary_options


def _score_map(pred: np.ndarray, quantize: bool, nms_mode: str) -> np.ndarray:
    """The map that is thresholded: the PNG values SEISM reads, optionally suppressed."""
    score = np.nan_to_num(pred, nan=0.0)
    if nms_mode == 'canny':
        score = edge_nms(score)
    if quantize:
        levels = quantize_to_uint8(score)
        if nms_mode == 'seism':
            # SEISM reads the PNG with im2single: float32 v / 255, suppressed in float32.
            return seism_nms(levels.astype(np.float32) / np.float32(255)).astype(np.float64)
        # im2double(png): the comparison with t is made on float64 v / 255.
        return levels.astype(np.float64) / 255.0
    if nms_mode == 'seism':
        return seism_nms(score).astype(np.float64)
    return score


def boundary_pr_counts(pred: np.ndarray,
                       gt: np.ndarray,
                       thresholds: Union[None, int, str, Sequence[float]] = None,
                       max_dist: float = 0.011,
                       quantize: bool = True,
                       nms: Union[bool, str] = False,
                       thin_pred: bool = True,
                       gt_mode: str = 'thin',
                       gt_threshold: float = 0.0,
                       ignore_index: Optional[float] = IGNORE_INDEX) -> Optional[np.ndarray]:
    """Boundary precision/recall counts of one image at every threshold.

    The keyword defaults are the ``'seism-2016-01'`` protocol; ``**edge_protocol('seism')``
    gives SEISM's current one (the default of the edge evaluator).

    Args:
        pred (np.ndarray): (H, W) boundary probabilities in [0, 1].
        gt (np.ndarray): (H, W) ground truth: > ``gt_threshold`` = boundary,
            ``ignore_index`` = ignored (no prediction or ground truth counted there).
        thresholds: Threshold set, see :func:`resolve_edge_thresholds`; a pixel is positive
            when its (quantised, suppressed) value is strictly greater. Defaults to the 99
            thresholds 0.01 ... 0.99.
        max_dist (float): Tolerance as a fraction of the image diagonal (SEISM: 0.011 NYUD,
            0.0075 PASCAL-Context).
        quantize (bool): Evaluate ``trunc(255 * pred) / 255`` as SEISM does when it reads the
            8-bit PNG (default True).
        nms (bool | str): ``'seism'``: SEISM's structured-edge suppression of the PNG values
            (:func:`~mmmt.evaluation.functional.seism_nms.seism_nms`); ``'canny'`` or True:
            :func:`edge_nms` of the probabilities (not part of SEISM); False (default): none.
        thin_pred (bool): Thin each binarised prediction (SEISM: True).
        gt_mode (str): ``'thin'`` (binarise, then thin; default), ``'raw'`` (binarise only),
            ``'seg2bmap'`` (boundaries of the binarised map read as a label image) or
            ``'seg2bmap_thin'`` (those boundaries thinned, what SEISM does with the NYUD edge
            PNGs).
        gt_threshold (float): Ground-truth binarisation threshold (strict ``>``).
        ignore_index (float, optional): Ignore value in ``gt``; None for none.

    Returns:
        np.ndarray | None: (4, K) int64 rows ``cntR, sumR, cntP, sumP`` (matched ground-truth
        pixels, ground-truth pixels, matched predicted pixels, predicted pixels), or None when
        every ground-truth pixel is ignored.
    """
    thresholds = resolve_edge_thresholds(thresholds)
    nms_mode = check_boundary_options(nms, gt_mode)
    pred = single_channel_map(pred, 'edge prediction', np.float64)
    gt = single_channel_map(gt, 'edge ground truth', np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f'edge prediction {pred.shape} and ground truth {gt.shape} differ in '
                         'size')
    valid = np.isfinite(gt)
    if ignore_index is not None:
        valid &= gt != ignore_index
    if not valid.any():
        return None
    h, w = gt.shape
    gt_b = _gt_boundaries(gt, valid, gt_mode, gt_threshold)
    matcher = BoundaryMatcher(gt_b, max_dist * float(np.hypot(h, w)))

    # Suppression sees the whole map (SEISM reads the whole PNG); ignored pixels are removed after.
    score = _score_map(pred, quantize, nms_mode)
    counts = np.zeros((4, thresholds.size), dtype=np.int64)
    counts[1] = int(gt_b.sum())
    # Thresholds between the same two distinct values give the same binary map: evaluate once.
    values = np.unique(score[valid])
    above = values.size - np.searchsorted(values, thresholds, side='right')
    cache: Dict[int, Tuple[int, int]] = {}
    for i, (t, n_above) in enumerate(zip(thresholds, above)):
        if n_above == 0:
            continue  # nothing above the threshold
        if n_above not in cache:
            cache[n_above] = _match_counts((score > t) & valid, matcher, thin_pred)
        counts[0, i], counts[3, i] = cache[n_above]
    counts[2] = counts[0]  # one ground truth: matched pairs count for both sides
    return counts


def _match_counts(binary: np.ndarray, matcher: BoundaryMatcher,
                  thin_pred: bool) -> Tuple[int, int]:
    if thin_pred:
        binary = thin_binary(binary)
    num_pred = int(np.count_nonzero(binary))
    if num_pred == 0:
        return 0, 0
    return matcher.match(binary), num_pred


def _seism_pr(cnt_r: np.ndarray, sum_r: np.ndarray, cnt_p: np.ndarray,
              sum_p: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F with SEISM's conventions for empty maps.

    No ground truth: recall 1, precision 0. No prediction (but ground truth): recall 0,
    precision 1. F = 2PR / (P + R), 0 when P + R = 0.
    """
    cnt_r, sum_r, cnt_p, sum_p = (np.asarray(a, dtype=np.float64)
                                  for a in (cnt_r, sum_r, cnt_p, sum_p))
    no_gt = sum_r == 0
    no_pred = (sum_p == 0) & ~no_gt
    regular = ~no_gt & ~no_pred
    recall = np.where(no_gt, 1.0, 0.0)
    precision = np.where(no_pred, 1.0, 0.0)
    recall = np.where(regular, cnt_r / np.where(regular, sum_r, 1.0), recall)
    precision = np.where(regular, cnt_p / np.where(regular, sum_p, 1.0), precision)
    denom = precision + recall
    f = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1.0), 0.0)
    return precision, recall, f


def _seism_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """SEISM's ``general_ap``: mean of the linearly interpolated precision at recall 0:0.01:1.

    Recall values are de-duplicated (first occurrence kept), the curve is interpolated linearly
    in recall, sample points outside the observed recall range are dropped, and the sum of the
    remaining samples is divided by 100.
    """
    _, first = np.unique(recall, return_index=True)
    if first.size < 2:
        return 0.0
    r = recall[first]
    p = precision[first]
    order = np.argsort(r)
    r, p = r[order], p[order]
    grid = np.linspace(0.0, 1.0, 101)
    inside = (grid >= r[0] - 1e-12) & (grid <= r[-1] + 1e-12)
    return float(np.interp(grid[inside], r, p).sum() / 100.0)


def boundary_metrics(counts: Union[np.ndarray, Sequence[np.ndarray]],
                     thresholds: Optional[Sequence[float]] = None) -> Dict[str, float]:
    """ODS F, OIS F and AP (fractions in [0, 1]) from per-image counts.

    Args:
        counts: (N, 4, K) array or a sequence of (4, K) arrays from :func:`boundary_pr_counts`.
        thresholds (Sequence[float], optional): The thresholds used, for reporting the ODS one.

    Returns:
        dict: ``odsF``, ``oisF``, ``AP``, ``ods_precision``, ``ods_recall``,
        ``ods_threshold`` (NaN when ``thresholds`` is not given), ``num_images``.
    """
    counts = np.asarray(list(counts) if not isinstance(counts, np.ndarray) else counts,
                        dtype=np.int64)
    if counts.ndim != 3 or counts.shape[1] != 4:
        raise ValueError(f'counts must be (N, 4, K), got {counts.shape}')
    n, _, k = counts.shape
    total = counts.sum(axis=0)
    precision, recall, f = _seism_pr(*total)
    best = int(np.argmax(f))
    # OIS: best threshold per image, then the counts at those thresholds summed.
    _, _, f_img = _seism_pr(counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3])
    pick = np.argmax(f_img, axis=1)
    chosen = counts[np.arange(n), :, pick]  # (N, 4)
    _, _, f_ois = _seism_pr(*chosen.sum(axis=0))
    ods_threshold = float('nan')
    if thresholds is not None:
        thresholds = np.asarray(thresholds, dtype=np.float64)
        if thresholds.size != k:
            raise ValueError('thresholds do not match the counts')
        ods_threshold = float(thresholds[best])
    return dict(
        odsF=float(f[best]),
        oisF=float(f_ois),
        AP=_seism_ap(precision, recall),
        ods_precision=float(precision[best]),
        ods_recall=float(recall[best]),
        ods_threshold=ods_threshold,
        num_images=int(n))
