"""The base class of the per-task adapters of :class:`MultiTaskMetric` (its own module so that
the boundary evaluator, which is large, can live beside the others)."""
from typing import Any, Dict, List, Optional

import numpy as np

from mmmt.structures import IGNORE_INDEX

__all__ = ['TaskEvaluator']


class TaskEvaluator:
    """Base class of the per-task adapters.

    Args:
        task (str): Task name (the ``<task>`` in ``gt_<task>``/``pred_<task>``).
        ignore_index (float, optional): Ignore value of the ground truth. Defaults to 255.
    """

    #: Name used in configs (``tasks=dict(my_task=dict(type='segmentation'))``).
    kind: str = ''

    @property
    def wants_pred_without_gt(self) -> bool:
        """Whether :meth:`process` should also see samples without ground truth."""
        return False

    def __init__(self, task: str, ignore_index: Optional[float] = IGNORE_INDEX) -> None:
        self.task = task
        self.ignore_index = ignore_index
        self.dataset_meta: Optional[dict] = None

    def process(self, pred: np.ndarray, gt: np.ndarray, meta: Dict[str, Any]) -> Any:
        """Payload of one sample (pred and gt are (C, H, W) NumPy arrays of equal size)."""
        raise NotImplementedError

    def compute(self, payloads: List[Any]) -> Dict[str, float]:
        """Metric values (keys without the task prefix) from the payloads of all samples."""
        raise NotImplementedError

    def summary(self, payloads: List[Any], metrics: Dict[str, float]) -> Optional[str]:
        """Optional extra text to log after evaluation."""
        return None
