"""Small helpers shared by the metric functions."""
from typing import Optional, Tuple

import numpy as np

__all__ = ['matching_arrays', 'single_channel_map']


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


def single_channel_map(array, name: str, dtype: Optional[type] = None) -> np.ndarray:
    """``array`` of shape (H, W) or (1, ..., 1, H, W) as (H, W), optionally cast to ``dtype``.

    Only leading singleton axes are dropped (``np.squeeze`` would also flatten an image of
    one row or column).

    Raises:
        ValueError: If ``array`` is not such a one-channel map; the message uses ``name``.
    """
    array = np.asarray(array, dtype=dtype)
    if array.ndim < 2 or int(np.prod(array.shape[:-2])) != 1:
        raise ValueError(f'{name}: expected one channel, (H, W) or (1, H, W), got shape '
                         f'{array.shape}')
    return array.reshape(array.shape[-2:])
