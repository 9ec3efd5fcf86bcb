"""Per-task adapters between :class:`MultiTaskMetric` and the functions in ``functional/``.

Each adapter turns one sample's prediction and ground truth into a *small* payload (counts,
sums, a sparse histogram) and reduces a list of payloads into metric values. Payloads are what
mmengine gathers across processes, so their size bounds the memory of a distributed evaluation.
The boundary adapter, the largest, is in ``boundary_evaluator.py``; the base class in
``base_task_evaluator.py``.
"""
import inspect
from typing import Any, Dict, List, Optional, Sequence, Type, Union

import numpy as np
from prettytable import PrettyTable

from mmmt.structures import IGNORE_INDEX, get_task, meta_for_task
from mmmt.utils.errors import (InvalidOptionError, UnknownNameError, UserInputError, did_you_mean,
                               is_int)
from ..functional import (depth_metrics, depth_sums, normals_metrics, normals_stats,
                          saliency_counts, saliency_metrics, segmentation_counts,
                          segmentation_metrics)
from ..functional.saliency import SAL_THRESHOLDS
from .base_task_evaluator import TaskEvaluator
from .boundary_evaluator import BoundaryEvaluator

__all__ = [
    'meta_for_task', 'TaskEvaluator', 'SegmentationEvaluator', 'DepthEvaluator', 'NormalsEvaluator',
    'SaliencyEvaluator', 'BoundaryEvaluator', 'TASK_EVALUATORS', 'build_task_evaluator'
]


class SegmentationEvaluator(TaskEvaluator):
    """Semantic segmentation and human parts: dataset-level mIoU (docs/metrics.md).

    Reports ``mIoU`` and ``pixel_acc`` in percent; the per-class IoU table is logged, and
    returned as ``IoU.<class name>`` keys when ``report_per_class`` is True.

    Args:
        task (str): Task name.
        num_classes (int, optional): Number of classes. Defaults to the length of the class
            names (``class_names``, else from ``dataset_meta``, see :func:`meta_for_task`), else
            the largest label seen + 1.
        class_names (Sequence[str], optional): Class names for the table.
        report_per_class (bool): Also return per-class IoU keys. Defaults to False.
        ignore_index (int): Ignore value. Defaults to 255.
    """

    kind = 'segmentation'

    def __init__(self,
                 task: str,
                 num_classes: Optional[int] = None,
                 class_names: Optional[Sequence[str]] = None,
                 report_per_class: bool = False,
                 ignore_index: Optional[int] = IGNORE_INDEX) -> None:
        super().__init__(task, ignore_index)
        self._num_classes = num_classes
        self._class_names = list(class_names) if class_names is not None else None
        self.report_per_class = report_per_class

    @property
    def class_names(self) -> Optional[List[str]]:
        """Class names from the options or the dataset meta, if any."""
        if self._class_names is not None:
            return self._class_names
        return meta_for_task(self.dataset_meta, self.task, 'classes')

    @property
    def num_classes(self) -> Optional[int]:
        """Number of classes from the options or the class names, if known."""
        if self._num_classes is not None:
            return int(self._num_classes)
        names = self.class_names
        return len(names) if names is not None else None

    def process(self, pred, gt, meta):
        return segmentation_counts(pred, gt, self.num_classes, self.ignore_index)

    def compute(self, payloads):
        n = self.num_classes
        if n is None:
            n = max((p['label'].size for p in payloads), default=0)
        res = segmentation_metrics(payloads, n)
        out = dict(mIoU=100 * res['mIoU'], mIoU_present=100 * res['mIoU_present'],
                   pixel_acc=100 * res['pixel_acc'])
        if self.report_per_class:
            for name, iou in zip(self._names(n), res['IoU']):
                out[f'IoU.{name}'] = 100 * float(iou)
        self._last = res
        return out

    def _names(self, n: int) -> List[str]:
        names = self.class_names or []
        return [str(names[i]) if i < len(names) else f'class_{i}' for i in range(n)]

    def summary(self, payloads, metrics):
        res = getattr(self, '_last', None)
        if res is None or res['num_classes'] == 0:
            return None
        table = PrettyTable()  # the per-class table of mmseg's IoUMetric
        table.add_column('class', self._names(res['num_classes']))
        table.add_column('IoU', [f'{100 * iou:.2f}' for iou in res['IoU']])
        table.add_column('pixels', [int(lab) for lab in res['label']])
        table.align['class'] = 'l'
        lines = [f'{self.task} per-class IoU (%):', table.get_string()]
        absent = int((res['label'] == 0).sum())
        if absent:
            lines.append(
                f'{self.task}: {absent} of {res["num_classes"]} classes are absent from the '
                f'ground truth and count as IoU 0 in mIoU ({100 * res["mIoU"]:.2f}, the papers\' '
                f'definition); mIoU_present averages the other {res["num_classes"] - absent} '
                f'({100 * res["mIoU_present"]:.2f})')
        return '\n'.join(lines)


class DepthEvaluator(TaskEvaluator):
    """Depth: global RMSE over all valid pixels of the dataset (docs/metrics.md), metres.

    Also ``abs_rel``, ``sq_rel``, ``log_rmse`` and ``delta1``/``delta2``/``delta3`` (percent of
    pixels with max(gt/pred, pred/gt) < 1.25, 1.25^2, 1.25^3).

    Args:
        task (str): Task name.
        ignore_index (float, optional): Ignored ground-truth value. Defaults to 255.
        min_depth, max_depth (float, optional): Evaluate only pixels with
            ``min_depth < gt < max_depth`` (either bound optional; Cityscapes: ``0 < gt < 80``
            as the reference). Defaults to None (every valid pixel).
    """

    kind = 'depth'

    def __init__(self, task: str, ignore_index: Optional[float] = IGNORE_INDEX,
                 min_depth: Optional[float] = None,
                 max_depth: Optional[float] = None) -> None:
        super().__init__(task, ignore_index)
        self.min_depth, self.max_depth = min_depth, max_depth

    def process(self, pred, gt, meta):
        return depth_sums(pred, gt, self.ignore_index, min_depth=self.min_depth,
                          max_depth=self.max_depth)

    def compute(self, payloads):
        res = depth_metrics(payloads)
        return dict(
            rmse=res['rmse'],
            abs_rel=res['abs_rel'],
            sq_rel=res['sq_rel'],
            log_rmse=res['log_rmse'],
            delta1=100 * res['delta1'],
            delta2=100 * res['delta2'],
            delta3=100 * res['delta3'])


class NormalsEvaluator(TaskEvaluator):
    """Surface normals: mean angular error over all valid pixels (docs/metrics.md), degrees.

    Also ``median`` (from a 0.05-degree histogram), ``rmse`` and ``within_11.25``,
    ``within_22.5``, ``within_30`` (percent of pixels).
    """

    kind = 'normals'

    def process(self, pred, gt, meta):
        return normals_stats(pred, gt, self.ignore_index)

    def compute(self, payloads):
        res = normals_metrics(payloads)
        out = dict(mean=res['mean'], median=res['median'], rmse=res['rmse'])
        for k, v in res.items():
            if k.startswith('within_'):
                out[k] = 100 * v
        return out


def _saliency_thresholds(task: str, thresholds: Any) -> np.ndarray:
    """The ``thresholds`` option as a non-empty 1-D array of finite values (checked here:
    a scalar or an empty list failed only once the whole evaluation had run)."""
    if is_int(thresholds):
        if thresholds < 1:
            raise UserInputError(f'{task}: thresholds: a count must be >= 1, got {thresholds}')
        return np.arange(1, int(thresholds) + 1) / (int(thresholds) + 1)
    try:
        values = np.asarray(thresholds, dtype=np.float64)
    except (TypeError, ValueError):
        values = None
    if values is None or values.ndim != 1 or values.size == 0 or \
            not np.isfinite(values).all():
        raise UserInputError(f'{task}: thresholds: expected a non-empty list of finite '
                             f'probabilities or their number, got {thresholds!r}')
    return values


class SaliencyEvaluator(TaskEvaluator):
    """Saliency: maxF (beta^2 = 0.3) over thresholds and IoU at 0.5 (docs/metrics.md), percent.

    Args:
        task (str): Task name.
        thresholds (Sequence[float] | int): maxF thresholds, or their number K for
            ``1/(K+1), ..., K/(K+1)`` (as the boundary evaluator's). Defaults to 0.05, 0.10,
            ..., 0.95 (K = 19).
        legacy_double_sigmoid (bool): Apply a sigmoid to the probabilities before
            thresholding, as the reference meters do; reproduces the published maxF. Defaults to
            False (threshold the probabilities).
        beta2 (float): F-measure beta^2. Defaults to 0.3.
        iou_threshold (float): Probability threshold of ``IoU``. Defaults to 0.5.
        ignore_index (float): Ignore value. Defaults to 255.
    """

    kind = 'saliency'

    def __init__(self,
                 task: str,
                 thresholds: Union[Sequence[float], int] = tuple(SAL_THRESHOLDS),
                 legacy_double_sigmoid: bool = False,
                 beta2: float = 0.3,
                 iou_threshold: float = 0.5,
                 ignore_index: Optional[float] = IGNORE_INDEX) -> None:
        super().__init__(task, ignore_index)
        self.thresholds = _saliency_thresholds(task, thresholds)
        self.legacy_double_sigmoid = legacy_double_sigmoid
        self.beta2 = beta2
        self.iou_threshold = iou_threshold

    def process(self, pred, gt, meta):
        return saliency_counts(pred, gt, self.thresholds, self.legacy_double_sigmoid,
                               self.ignore_index, self.iou_threshold)

    def compute(self, payloads):
        res = saliency_metrics(payloads, self.beta2)
        return dict(maxF=100 * res['maxF'], IoU=100 * res['IoU'])


#: Evaluator classes by ``type`` name.
TASK_EVALUATORS: Dict[str, Type[TaskEvaluator]] = {
    cls.kind: cls
    for cls in (SegmentationEvaluator, DepthEvaluator, NormalsEvaluator, SaliencyEvaluator,
                BoundaryEvaluator)
}


def build_task_evaluator(task: str, options: Optional[dict] = None,
                         ignore_index: Optional[float] = IGNORE_INDEX) -> TaskEvaluator:
    """Build the adapter of ``task`` from its config options.

    Args:
        task (str): Task name.
        options (dict, optional): Keyword arguments of the evaluator; ``type`` selects the
            evaluator (``'segmentation'``, ``'depth'``, ``'normals'``, ``'saliency'``,
            ``'boundary'``); default: the ``evaluator`` of the task's definition
            (``mmmt.structures.TASKS``).
        ignore_index (float, optional): Default ignore value.

    Returns:
        TaskEvaluator: The adapter.
    """
    options = dict(options or {})
    kind = options.pop('type', None) or getattr(get_task(task), 'evaluator', None)
    if kind is None:
        raise UnknownNameError(f'unknown task {task!r}: give its evaluator with type=one of '
                               f'{sorted(TASK_EVALUATORS)}')
    if kind not in TASK_EVALUATORS:
        hint = did_you_mean(kind, sorted(TASK_EVALUATORS))
        hint = f'{hint} ' if hint else ''
        raise UnknownNameError(f'task {task!r}: unknown evaluator type {kind!r}; {hint}choose '
                               f'from {sorted(TASK_EVALUATORS)}')
    options.setdefault('ignore_index', ignore_index)
    cls = TASK_EVALUATORS[kind]
    # the options are checked against the signature, not by catching the TypeError of the
    # call: a TypeError raised inside __init__ is a bug and keeps its traceback
    signature = inspect.signature(cls)
    try:
        signature.bind(task, **options)
    except TypeError as err:
        accepted = [name for name in signature.parameters if name != 'task']
        raise InvalidOptionError(f'bad options for task {task!r} ({kind}): {err}; the {kind} '
                                 f'evaluator takes {accepted}') from None
    return cls(task, **options)
