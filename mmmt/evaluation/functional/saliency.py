"""Saliency: maxF over thresholds (docs/metrics.md), with the legacy double-sigmoid mode."""
from typing import Dict, Optional, Sequence

import numpy as np

from mmmt.structures import IGNORE_INDEX
from .utils import matching_arrays

__all__ = [
    'SAL_THRESHOLDS', 'legacy_effective_thresholds', 'saliency_counts', 'saliency_metrics'
]

#: 0.05, 0.10, ..., 0.95 (19 thresholds, as ``torch.arange(0.05, 1, 0.05)``).
SAL_THRESHOLDS = np.round(np.arange(1, 20) * 0.05, 2)


def legacy_effective_thresholds(thresholds: Sequence[float] = SAL_THRESHOLDS) -> np.ndarray:
    """Probability thresholds the legacy double sigmoid effectively applies: ``logit(t)``.

    ``sigmoid(p) >= t`` is ``p >= logit(t)``; for ``t <= 0.5`` the logit is <= 0 (every pixel
    passes), for ``t >= 0.75`` it exceeds 1 (no pixel passes).
    """
    t = np.asarray(thresholds, dtype=np.float64)
    with np.errstate(divide='ignore'):
        return np.log(t) - np.log1p(-t)


def saliency_counts(pred: np.ndarray,
                    gt: np.ndarray,
                    thresholds: Sequence[float] = SAL_THRESHOLDS,
                    legacy_double_sigmoid: bool = False,
                    ignore_index: Optional[float] = IGNORE_INDEX,
                    iou_threshold: float = 0.5) -> Dict[str, np.ndarray]:
    """Per-image counts for maxF and IoU.

    A pixel is predicted salient at threshold ``t`` when ``prob >= t`` (the reference meters
    compare with ``>=``). In the legacy mode the test is ``sigmoid(prob) >= t``, the double
    sigmoid of the reference meters (docs/metrics.md), i.e. ``prob >= logit(t)``: every pixel is
    positive for ``t <= 0.5`` and none for ``t >= 0.75``. Ground truth is salient when
    ``gt > 0.5``.

    Args:
        pred (np.ndarray): Saliency probabilities in [0, 1].
        gt (np.ndarray): Ground truth {0, 1}, ``ignore_index`` skipped.
        thresholds (Sequence[float]): maxF thresholds.
        legacy_double_sigmoid (bool): Reproduce the published (double-sigmoid) numbers.
        ignore_index (float, optional): Ignore value; None for none.
        iou_threshold (float): Probability threshold of the IoU (never double-sigmoided).

    Returns:
        dict: int64 ``tp`` and ``pp`` (true / predicted positives per threshold), ``ap``
        (actual positives), and ``iou`` = [tp, fp, fn] at ``iou_threshold``.
    """
    pred, gt = matching_arrays(pred, gt, np.float64)
    valid = np.isfinite(gt)
    if ignore_index is not None:
        valid &= gt != ignore_index
    p = np.nan_to_num(pred[valid])
    g = gt[valid] > 0.5
    t = np.asarray(thresholds, dtype=np.float64)
    score = 1.0 / (1.0 + np.exp(-p)) if legacy_double_sigmoid else p
    # Sort once, then count "score >= t" for all thresholds with searchsorted.
    order = np.argsort(score, kind='stable')
    s_sorted = score[order]
    g_sorted = g[order]
    pos_above = np.concatenate([[0], np.cumsum(g_sorted[::-1])])[::-1]  # positives at idx >= i
    first = np.searchsorted(s_sorted, t, side='left')
    pp = (s_sorted.size - first).astype(np.int64)
    tp = pos_above[first].astype(np.int64)
    pos = p > iou_threshold
    iou = np.array([np.count_nonzero(pos & g), np.count_nonzero(pos & ~g),
                    np.count_nonzero(~pos & g)], dtype=np.int64)
    return dict(tp=tp, pp=pp, ap=np.int64(np.count_nonzero(g)), iou=iou)


def saliency_metrics(counts: Sequence[Dict[str, np.ndarray]],
                     beta2: float = 0.3) -> Dict[str, object]:
    """Dataset-level maxF and IoU.

    For each threshold, ``P = TP / PP``, ``R = TP / AP`` from counts summed over the dataset,
    ``F = (1 + beta2) P R / (beta2 P + R)`` with NaN (0/0) replaced by 0; maxF = max over
    thresholds. ``IoU = TP / (TP + FP + FN)`` of the salient class at the IoU threshold.

    Returns:
        dict: ``maxF``, ``IoU`` (fractions), ``F`` (per-threshold array), ``best_index``.
    """
    counts = list(counts)
    if not counts:
        return dict(maxF=float('nan'), IoU=float('nan'), F=np.zeros(0), best_index=-1)
    tp = np.sum([c['tp'] for c in counts], axis=0).astype(np.float64)
    pp = np.sum([c['pp'] for c in counts], axis=0).astype(np.float64)
    ap = float(np.sum([c['ap'] for c in counts]))
    with np.errstate(divide='ignore', invalid='ignore'):
        precision = tp / pp
        recall = tp / ap
        f = (1 + beta2) * precision * recall / (beta2 * precision + recall)
    f = np.nan_to_num(f, nan=0.0, posinf=0.0, neginf=0.0)
    iou = np.sum([c['iou'] for c in counts], axis=0).astype(np.float64)
    union = iou.sum()
    best = int(np.argmax(f))
    return dict(
        maxF=float(f[best]),
        IoU=float(iou[0] / union) if union else float('nan'),
        F=f,
        best_index=best)
