"""Semantic segmentation / human parts: per-class counts and dataset-level IoU (docs/metrics.md)."""
from typing import Dict, Optional, Sequence

import numpy as np

from mmmt.structures import IGNORE_INDEX
from .utils import matching_arrays

__all__ = ['segmentation_counts', 'segmentation_metrics']


def segmentation_counts(pred: np.ndarray,
                        gt: np.ndarray,
                        num_classes: Optional[int] = None,
                        ignore_index: Optional[int] = IGNORE_INDEX) -> Dict[str, np.ndarray]:
    """Per-class pixel counts of one image.

    Args:
        pred (np.ndarray): Predicted class indices, any shape.
        gt (np.ndarray): Ground-truth class indices, same shape; ``ignore_index`` is skipped.
        num_classes (int, optional): Number of classes. When None the arrays are as long as the
            largest label seen + 1 (pad them before summing over images); a prediction equal to
            ``ignore_index`` is no class (it counts as wrong, as out-of-range predictions do).
        ignore_index (int, optional): Ignored ground-truth value; None for none.

    Returns:
        dict: int64 arrays ``intersect`` (true positives), ``pred`` (pixels predicted as the
        class) and ``label`` (pixels of the class), over valid pixels only. Predictions outside
        ``[0, num_classes)`` count as wrong for the ground-truth class and for no class.

    Raises:
        ValueError: If shapes differ or a valid ground-truth label is outside the class range.
    """
    pred, gt = matching_arrays(pred, gt)
    pred = pred.reshape(-1).astype(np.int64)
    gt = gt.reshape(-1).astype(np.int64)
    valid = np.ones(gt.shape, dtype=bool) if ignore_index is None else gt != ignore_index
    gt = gt[valid]
    pred = pred[valid]
    if gt.size and gt.min() < 0:
        raise ValueError('ground-truth labels must be >= 0 (or the ignore index)')
    if num_classes is not None and gt.size and gt.max() >= num_classes:
        raise ValueError(f'ground-truth label {gt.max()} >= num_classes={num_classes} '
                         f'(ignore index {ignore_index})')
    n = num_classes
    if n is None:
        # A prediction of the ignore value (some models mark pixels they leave out with it) would
        # otherwise make ignore_index + 1 classes, nearly all absent, and mIoU count them as 0.
        labelled = pred if ignore_index is None else pred[pred != ignore_index]
        n = int(max(gt.max(initial=-1), labelled.max(initial=-1))) + 1
    in_range = (pred >= 0) & (pred < n)
    label = np.bincount(gt, minlength=n)[:n]
    pred_area = np.bincount(pred[in_range], minlength=n)[:n]
    intersect = np.bincount(gt[pred == gt], minlength=n)[:n]
    return dict(
        intersect=intersect.astype(np.int64),
        pred=pred_area.astype(np.int64),
        label=label.astype(np.int64))


def _pad(a: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.int64)
    out[:a.size] = a
    return out


def segmentation_metrics(counts: Sequence[Dict[str, np.ndarray]],
                         num_classes: Optional[int] = None) -> Dict[str, object]:
    """Dataset-level IoU from per-image counts, as the reference meters compute it.

    ``IoU_c = TP_c / max(TP_c + FP_c + FN_c, 1e-8)``: a class that is neither present nor
    predicted anywhere gets IoU 0 and still counts in the mean (docs/metrics.md; mmseg instead
    skips such classes with ``nanmean``). Pixel accuracy is ``sum TP / valid pixels``.

    Args:
        counts: Outputs of :func:`segmentation_counts` for every image.
        num_classes (int, optional): Number of classes; defaults to the longest count array.

    Returns:
        dict: ``mIoU``, ``mIoU_present`` (the mean over the classes present in the ground
        truth; NaN if none), ``pixel_acc`` (fractions), ``IoU`` (per-class float64 array),
        ``intersect``/``union``/``label`` (summed int64 arrays), ``num_classes``.
    """
    lengths = [c['label'].size for c in counts]
    n = num_classes if num_classes is not None else max(lengths, default=0)
    if lengths and max(lengths) > n:
        raise ValueError(f'counts have {max(lengths)} classes, more than num_classes={n}')
    inter = np.zeros(n, dtype=np.int64)
    pred = np.zeros(n, dtype=np.int64)
    label = np.zeros(n, dtype=np.int64)
    for c in counts:
        inter += _pad(c['intersect'], n)
        pred += _pad(c['pred'], n)
        label += _pad(c['label'], n)
    union = pred + label - inter
    iou = inter / np.maximum(union, 1e-8)
    total = label.sum()
    return dict(
        mIoU=float(iou.mean()) if n else float('nan'),
        mIoU_present=float(iou[label > 0].mean()) if (label > 0).any() else float('nan'),
        pixel_acc=float(inter.sum() / total) if total else float('nan'),
        IoU=iou,
        intersect=inter,
        union=union,
        label=label,
        num_classes=n)
