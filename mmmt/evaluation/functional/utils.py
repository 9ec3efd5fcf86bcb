"""Small helpers shared by the metric functions."""
from typing import Optional, Tuple

import numpy as np

__all__ = ['matching_arrays']


def matching_arrays(pred, gt, dtype: Optional[type] = None) -> Tuple[np.ndarray, np.ndarray]:
    """``pred`` and ``gt`` as arrays of one shape (singleton axes squeezed when that is what
    differs), optionally cast to ``dtype``.

    Raises:
        ValueError: If the shapes still differ.
    """
    pred, gt = np.asarray(pred, dtype=dtype), np.asarray(gt, dtype=dtype)
    if pred.shape != gt.shape:
        pred, gt = np.squeeze(pred), np.squeeze(gt)
    if pred.shape != gt.shape:
        raise ValueError(f'pred shape {pred.shape} != gt shape {gt.shape}')
    return pred, gt
