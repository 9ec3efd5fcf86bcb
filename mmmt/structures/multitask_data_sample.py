"""The data sample that carries per-task ground truth and predictions."""
from typing import Optional

import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

__all__ = ['MultiTaskDataSample', 'pred_to_array', 'array_to_pred', 'class_map_dtype']


class MultiTaskDataSample(SegDataSample):
    """A :class:`~mmseg.structures.SegDataSample` with one field per task.

    Ground truth of task ``t`` lives in ``gt_<t>`` and the prediction in ``pred_<t>``, each a
    :class:`~mmengine.structures.PixelData` whose ``data`` is a (C, H, W) tensor:

    ============  ============================  ===========================================
    task          ``gt_<task>.data``            ``pred_<task>.data``
    ============  ============================  ===========================================
    semseg        (1, H, W) int64, 255 ignore   (1, H, W) int64 class index
    human_parts   (1, H, W) int64, 255 ignore   (1, H, W) int64 class index
    depth         (1, H, W) float32 metres,     (1, H, W) float32 metres (clamped >= 0)
                  255 ignore
    normals       (3, H, W) float32 in [-1, 1], (3, H, W) float32 unit vectors
                  all channels 255 = ignore
    edge          (1, H, W) float32 in [0, 1],  (1, H, W) float32 boundary probability
                  255 ignore
    sal           (1, H, W) float32 {0, 1},     (1, H, W) float32 saliency probability
                  255 ignore
    ============  ============================  ===========================================

    Raw logits of a task may be kept in ``<task>_logits``.
    Any task name works; the table lists the six mmmt defines (``mmmt.structures.TASKS``,
    where a new task declares its own conventions).
    """

    def set_gt(self, task: str, data: torch.Tensor) -> None:
        """Store ``data`` (C, H, W) as the ground truth of ``task``."""
        self.set_field(PixelData(data=data), f'gt_{task}', dtype=PixelData)

    def set_pred(self, task: str, data: torch.Tensor) -> None:
        """Store ``data`` (C, H, W) as the prediction of ``task``."""
        self.set_field(PixelData(data=data), f'pred_{task}', dtype=PixelData)

    def get_gt(self, task: str) -> Optional[PixelData]:
        """The ground truth of ``task``, or None if the sample has none."""
        return self.get(f'gt_{task}', None)

    def get_pred(self, task: str) -> Optional[PixelData]:
        """The prediction of ``task``, or None if the sample has none."""
        return self.get(f'pred_{task}', None)

    def has_gt(self, task: str) -> bool:
        """Whether the sample carries ground truth for ``task``."""
        return f'gt_{task}' in self


def class_map_dtype(num_classes: int) -> np.dtype:
    """The dtype of class maps: uint8 up to 256 classes (every mmmt dataset), else uint16."""
    return np.dtype(np.uint8 if num_classes <= 256 else np.uint16)


def pred_to_array(x: torch.Tensor, num_classes: Optional[int] = None) -> np.ndarray:
    """A (C, H, W) prediction tensor as the numpy array users get from mmmt.

    The inferencer and ``tools/test.py --out`` both return this layout.

    Args:
        x (Tensor): The prediction, (1, H, W) int64 class indices or (C, H, W) floats.
        num_classes (int, optional): The number of classes of a class map, for its dtype
            (:func:`class_map_dtype`). Default: from the largest index in ``x``.

    Returns:
        np.ndarray: (H, W) for one channel, else (H, W, C), C-contiguous; class maps as
        0-based indices in :func:`class_map_dtype`, everything else float32. A float result
        may share memory with ``x``.
    """
    x = x.detach().cpu()
    arr = x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()
    if arr.dtype == np.int64:
        if num_classes is None:
            num_classes = int(arr.max(initial=0)) + 1
        return arr.astype(class_map_dtype(num_classes))
    return np.ascontiguousarray(arr.astype(np.float32, copy=False))


def array_to_pred(arr: np.ndarray) -> torch.Tensor:
    """The (C, H, W) prediction tensor of an array in :func:`pred_to_array`'s layout.

    The exact inverse of :func:`pred_to_array`, for predictions read back from a file
    (``tools/test.py --out``): class maps become (1, H, W) int64, float maps (1, H, W) or
    (C, H, W) float32, as ``MultiTaskEncoderDecoder.predict`` writes ``pred_<task>``.

    Args:
        arr (np.ndarray): (H, W) or (H, W, C); integer class indices or floats.

    Returns:
        Tensor: The prediction, with its own memory.

    Raises:
        ValueError: ``arr`` is not 2-D or 3-D, or neither integer nor floating point.
    """
    arr = np.asarray(arr)
    if arr.ndim not in (2, 3):
        raise ValueError(f'a prediction array is (H, W) or (H, W, C), got shape {arr.shape}')
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.int64)
    elif np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    else:
        raise ValueError(f'a prediction array holds class indices or floats, got {arr.dtype}')
    chw = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(chw))
