"""Writing boundary predictions as the 8-bit PNGs SEISM reads (docs/metrics.md)."""
import os.path as osp
from typing import Optional, Sequence

import cv2
import numpy as np

from mmmt.utils.fileio import atomic_write
from .boundary import quantize_to_uint8

__all__ = ['center_crop', 'save_edge_png']


def center_crop(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Remove centred padding: crop the last two axes to ``shape`` = (h, w).

    The offset is ``(padded - original) // 2`` per axis, the test-time centre padding
    (docs/differences.md).
    """
    h, w = int(shape[0]), int(shape[1])
    big_h, big_w = array.shape[-2:]
    if h > big_h or w > big_w:
        raise ValueError(f'cannot crop {array.shape[-2:]} to {(h, w)}')
    top = (big_h - h) // 2
    left = (big_w - w) // 2
    return array[..., top:top + h, left:left + w]


def save_edge_png(prob: np.ndarray,
                  path: str,
                  ori_shape: Optional[Sequence[int]] = None,
                  overwrite: bool = False) -> bool:
    """Write ``trunc(255 * prob)`` as an 8-bit grayscale PNG, atomically.

    The file is written under a temporary name in the target folder and then linked (or, with
    ``overwrite``, renamed) into place (:func:`mmmt.utils.atomic_write`), so a reader never
    sees a partial PNG.

    Args:
        prob (np.ndarray): (H, W) or (1, H, W) boundary probabilities in [0, 1].
        path (str): Output file.
        ori_shape (Sequence[int], optional): (h, w) of the original image; the map is
            centre-cropped to it when larger.
        overwrite (bool): Replace an existing file. Defaults to False.

    Returns:
        bool: True if the file was written, False if it existed and ``overwrite`` is False.
    """
    prob = np.asarray(prob)
    prob = prob.reshape(prob.shape[-2:])
    if ori_shape is not None and tuple(prob.shape) != tuple(ori_shape[:2]):
        prob = center_crop(prob, ori_shape[:2])
    if not overwrite and osp.exists(path):
        return False
    ok, buf = cv2.imencode('.png', quantize_to_uint8(prob))
    if not ok:
        raise IOError(f'PNG encoding failed for {path}')
    try:
        # no fsync: thousands of small files, each cheap to regenerate
        atomic_write(buf.tobytes(), path, overwrite=overwrite, fsync=False)
    except FileExistsError:
        return False
    return True
