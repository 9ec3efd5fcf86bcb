"""Surface normals: angular errors with bounded-memory statistics (docs/metrics.md)."""
from typing import Dict, Optional, Sequence

import numpy as np

from mmmt.structures import IGNORE_INDEX

__all__ = [
    'NORMALS_HIST_BIN', 'NORMALS_THRESHOLDS', 'normal_angles', 'normals_stats',
    'normals_metrics'
]

#: Width in degrees of the angular-error histogram the median is read from (3600 bins over
#: [0, 180], bin k = [k, k + 1) x width, 180 in the last one); the median is within this width
#: of ``np.median`` of the raw angles (see :func:`_hist_median`).
NORMALS_HIST_BIN = 0.05
#: Angles (degrees) of the "% of pixels within" accuracies; a pixel counts when its angle is
#: strictly below (docs/metrics.md).
NORMALS_THRESHOLDS = (11.25, 22.5, 30.0)
_NUM_BINS = int(round(180.0 / NORMALS_HIST_BIN))


def normal_angles(pred: np.ndarray,
                  gt: np.ndarray,
                  ignore_index: Optional[float] = IGNORE_INDEX,
                  eps: float = 1e-12) -> np.ndarray:
    """Angular errors (degrees, float64) over the valid pixels of one image.

    Both maps are L2-normalised along the channel axis and the angle is
    ``2 * atan2(|p - g|, |p + g|)`` (accurate for small and large angles). Valid pixels: every
    ground-truth channel differs from ``ignore_index``, is finite, and the ground-truth vector is
    not zero (the reference pipeline turns zero vectors into 255 beforehand). Non-finite
    prediction values become 0; a zero prediction vector is 90 degrees from any ground truth
    (as in the reference, whose normalisation keeps it zero).

    Args:
        pred (np.ndarray): (3, H, W) predicted normals.
        gt (np.ndarray): (3, H, W) ground-truth normals.
        ignore_index (float, optional): Ignore value; None for none.
        eps (float): Norm floor.

    Returns:
        np.ndarray: 1-D array of angles in degrees.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[0] != 3:
        raise ValueError(f'expected equal (3, H, W) shapes, got {pred.shape} and {gt.shape}')
    p = pred.reshape(3, -1)
    g = gt.reshape(3, -1)
    valid = np.isfinite(g).all(0)
    if ignore_index is not None:
        valid &= (g != ignore_index).all(0)
    g = g[:, valid]
    p = np.nan_to_num(p[:, valid], nan=0.0, posinf=0.0, neginf=0.0)
    g_norm = np.sqrt((g * g).sum(0))
    keep = g_norm > eps
    g = g[:, keep] / g_norm[keep]
    p = p[:, keep]
    # float64 vectors longer than ~1e154 overflow the squared norm: those few are scaled by
    # their largest component first (direction kept; every other pixel is computed as before)
    with np.errstate(over='ignore'):
        huge = ~np.isfinite((p * p).sum(0))
    if huge.any():
        p[:, huge] /= np.abs(p[:, huge]).max(0)
    p = p / np.maximum(np.sqrt((p * p).sum(0)), eps)
    d = p - g
    s = p + g
    return np.degrees(2.0 * np.arctan2(np.sqrt((d * d).sum(0)), np.sqrt((s * s).sum(0))))


def normals_stats(pred: np.ndarray,
                  gt: np.ndarray,
                  ignore_index: Optional[float] = IGNORE_INDEX) -> Dict[str, object]:
    """Per-image sufficient statistics of the angular error.

    Returns:
        dict: ``count``, ``sum`` and ``sum_sq`` of the angles, ``within`` (int64 counts of
        angles < each of :data:`NORMALS_THRESHOLDS`), and the sparse histogram ``hist_bins``
        (uint16 bin indices) / ``hist_counts`` (uint32) with :data:`NORMALS_HIST_BIN`-degree bins.
    """
    ang = normal_angles(pred, gt, ignore_index=ignore_index)
    # Division by the float 0.05 (slightly above 1/20) rather than multiplication by 20: an
    # angle just below a nominal edge (the float 0.15 is below 3/20) stays in the lower bin.
    bins = np.minimum((ang / NORMALS_HIST_BIN).astype(np.int64), _NUM_BINS - 1)
    hist = np.bincount(bins, minlength=_NUM_BINS)
    nz = np.flatnonzero(hist)
    return dict(
        count=int(ang.size),
        sum=float(ang.sum()),
        sum_sq=float((ang * ang).sum()),
        within=np.array([np.count_nonzero(ang < t) for t in NORMALS_THRESHOLDS],
                        dtype=np.int64),
        hist_bins=nz.astype(np.uint16),
        hist_counts=hist[nz].astype(np.uint32))


def _hist_median(hist: np.ndarray, count: int) -> float:
    """Median of histogrammed angles, within one bin width of ``np.median`` of the angles.

    The k-th smallest angle (1-based) is placed inside its bin as if the bin's h angles were
    spread evenly, the i-th of them (i = k - angles in lower bins) at (i - 0.5) / h of the bin's
    width. The median is that estimate for rank (n + 1) / 2 when n is odd, and the mean of the
    estimates for ranks n / 2 and n / 2 + 1 when n is even (the two middle angles, as
    ``np.median``; they can lie in distant bins when the data are few). Every estimate lies in
    the bin of the angle it stands for, hence the bound.

    Args:
        hist (np.ndarray): Counts per bin of :data:`NORMALS_HIST_BIN` degrees.
        count (int): Number of angles, ``hist.sum()``.

    Returns:
        float: The median in degrees; NaN when ``count`` is 0.
    """
    if count <= 0:
        return float('nan')
    cum = np.cumsum(hist)

    def at_rank(rank: int) -> float:
        b = int(np.searchsorted(cum, rank, side='left'))
        before = cum[b - 1] if b > 0 else 0
        return (b + (rank - before - 0.5) / hist[b]) * NORMALS_HIST_BIN

    if count % 2:
        return float(at_rank((count + 1) // 2))
    return float(0.5 * (at_rank(count // 2) + at_rank(count // 2 + 1)))


def normals_metrics(stats: Sequence[Dict[str, object]]) -> Dict[str, float]:
    """Dataset-level angular-error metrics.

    Returns:
        dict: ``mean`` (the papers' mErr), ``median`` (from the histogram), ``rmse`` (degrees)
        and ``within_11.25``, ``within_22.5``, ``within_30`` (fractions); NaN without pixels.
    """
    n = 0
    total = 0.0
    total_sq = 0.0
    within = np.zeros(len(NORMALS_THRESHOLDS), dtype=np.int64)
    hist = np.zeros(_NUM_BINS, dtype=np.int64)
    for s in stats:
        n += int(s['count'])
        total += float(s['sum'])
        total_sq += float(s['sum_sq'])
        within += np.asarray(s['within'], dtype=np.int64)
        np.add.at(hist, np.asarray(s['hist_bins'], dtype=np.int64),
                  np.asarray(s['hist_counts'], dtype=np.int64))
    keys = [f'within_{t:g}' for t in NORMALS_THRESHOLDS]
    if n == 0:
        out = dict(mean=float('nan'), median=float('nan'), rmse=float('nan'))
        out.update({k: float('nan') for k in keys})
        out['count'] = 0
        return out
    out = dict(mean=total / n, median=_hist_median(hist, n), rmse=float(np.sqrt(total_sq / n)))
    out.update({k: float(w / n) for k, w in zip(keys, within)})
    out['count'] = n
    return out
