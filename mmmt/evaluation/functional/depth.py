"""Depth: dataset-level sums and global error measures (docs/metrics.md)."""
from typing import Dict, Optional, Sequence

import numpy as np

from mmmt.structures import IGNORE_INDEX
from .utils import matching_arrays

__all__ = ['DEPTH_SUM_KEYS', 'depth_sums', 'depth_metrics']

#: Keys of the per-image sums.
DEPTH_SUM_KEYS = ('count', 'sq_err', 'abs_rel', 'sq_rel', 'log_sq_err', 'delta1', 'delta2',
                  'delta3')


def depth_sums(pred: np.ndarray,
               gt: np.ndarray,
               ignore_index: Optional[float] = IGNORE_INDEX,
               min_pred: float = 0.0,
               min_depth: Optional[float] = None,
               max_depth: Optional[float] = None) -> Dict[str, float]:
    """Per-image sums for the global depth errors.

    Valid pixels: ``gt != ignore_index``, finite and ``gt > 0`` (the reference turns invalid
    depth 0 into 255 beforehand; both are skipped here). The prediction is clamped at
    ``min_pred`` (the reference clamps at 0), and values <= 0 are replaced by 1e-9 inside the
    logarithm and the ratio of the delta accuracies.

    Args:
        pred (np.ndarray): Predicted depth in metres.
        gt (np.ndarray): Ground-truth depth in metres, same shape.
        ignore_index (float, optional): Ignored ground-truth value; None for none.
        min_pred (float): Lower clamp of the prediction.
        min_depth (float, optional): Only pixels with ``gt > min_depth`` count (exclusive).
        max_depth (float, optional): Only pixels with ``gt < max_depth`` count (exclusive;
            Cityscapes: 80, as the reference).

    Returns:
        dict: ``count`` (int), and float64 sums ``sq_err`` = sum (gt - pred)^2, ``abs_rel`` =
        sum |gt - pred| / gt, ``sq_rel`` = sum (gt - pred)^2 / gt, ``log_sq_err`` =
        sum (log gt - log pred)^2, ``delta1..3`` = pixels with max(gt/pred, pred/gt) < 1.25^k.
    """
    pred, gt = matching_arrays(pred, gt, np.float64)
    valid = np.isfinite(gt) & (gt > 0)
    if ignore_index is not None:
        valid &= gt != ignore_index
    if min_depth is not None:
        valid &= gt > min_depth
    if max_depth is not None:
        valid &= gt < max_depth
    g = gt[valid]
    p = np.maximum(np.nan_to_num(pred[valid], nan=min_pred), min_pred)
    diff = g - p
    p_pos = np.where(p > 0, p, 1e-9)
    ratio = np.maximum(g / p_pos, p_pos / g)
    out = dict(count=int(g.size))
    out['sq_err'] = float(np.sum(diff * diff))
    out['abs_rel'] = float(np.sum(np.abs(diff) / g))
    out['sq_rel'] = float(np.sum(diff * diff / g))
    log_diff = np.log(g) - np.log(p_pos)
    out['log_sq_err'] = float(np.sum(log_diff * log_diff))
    for k in (1, 2, 3):
        out[f'delta{k}'] = int(np.count_nonzero(ratio < 1.25**k))
    return out


def depth_metrics(sums: Sequence[Dict[str, float]]) -> Dict[str, float]:
    """Global (dataset-level) depth metrics from per-image sums.

    Not mmseg's ``DepthMetric``: that one gathers every valid pixel of the dataset across
    processes and clips to a depth range, where the papers' RMSE needs only these few sums.

    Args:
        sums: Outputs of :func:`depth_sums`.

    Returns:
        dict: ``rmse``, ``abs_rel``, ``sq_rel``, ``log_rmse`` and ``delta1..3`` (fractions);
        NaN when no pixel was valid.
    """
    total = {k: 0.0 for k in DEPTH_SUM_KEYS}
    for s in sums:
        for k in DEPTH_SUM_KEYS:
            total[k] += s[k]
    n = total['count']
    if n == 0:
        nan = float('nan')
        return dict(rmse=nan, abs_rel=nan, sq_rel=nan, log_rmse=nan, delta1=nan, delta2=nan,
                    delta3=nan, count=0)
    return dict(
        rmse=float(np.sqrt(total['sq_err'] / n)),
        abs_rel=total['abs_rel'] / n,
        sq_rel=total['sq_rel'] / n,
        log_rmse=float(np.sqrt(total['log_sq_err'] / n)),
        delta1=total['delta1'] / n,
        delta2=total['delta2'] / n,
        delta3=total['delta3'] / n,
        count=int(n))
