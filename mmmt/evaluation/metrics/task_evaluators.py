"""Per-task adapters between :class:`MultiTaskMetric` and the functions in ``functional/``.

Each adapter turns one sample's prediction and ground truth into a *small* payload (counts,
sums, a sparse histogram) and reduces a list of payloads into metric values. Payloads are what
mmengine gathers across processes, so their size bounds the memory of a distributed evaluation.
"""
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Type

import numpy as np
from prettytable import PrettyTable

from mmmt.structures import IGNORE_INDEX, get_task, meta_for_task
from ..functional import (DEFAULT_EDGE_PROTOCOL, boundary_metrics, boundary_pr_counts,
                          check_boundary_options, depth_metrics, depth_sums, edge_protocol,
                          normals_metrics, normals_stats, resolve_edge_thresholds,
                          saliency_counts, saliency_metrics, save_edge_png,
                          segmentation_counts, segmentation_metrics)
from ..functional.saliency import SAL_THRESHOLDS

__all__ = [
    'meta_for_task', 'TaskEvaluator', 'SegmentationEvaluator', 'DepthEvaluator', 'NormalsEvaluator',
    'SaliencyEvaluator', 'BoundaryEvaluator', 'TASK_EVALUATORS', 'build_task_evaluator'
]


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


class SaliencyEvaluator(TaskEvaluator):
    """Saliency: maxF (beta^2 = 0.3) over thresholds and IoU at 0.5 (docs/metrics.md), percent.

    Args:
        task (str): Task name.
        thresholds (Sequence[float]): maxF thresholds. Defaults to 0.05, 0.10, ..., 0.95.
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
                 thresholds: Sequence[float] = tuple(SAL_THRESHOLDS),
                 legacy_double_sigmoid: bool = False,
                 beta2: float = 0.3,
                 iou_threshold: float = 0.5,
                 ignore_index: Optional[float] = IGNORE_INDEX) -> None:
        super().__init__(task, ignore_index)
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.legacy_double_sigmoid = legacy_double_sigmoid
        self.beta2 = beta2
        self.iou_threshold = iou_threshold

    def process(self, pred, gt, meta):
        return saliency_counts(pred, gt, self.thresholds, self.legacy_double_sigmoid,
                               self.ignore_index, self.iou_threshold)

    def compute(self, payloads):
        res = saliency_metrics(payloads, self.beta2)
        return dict(maxF=100 * res['maxF'], IoU=100 * res['IoU'])


def _sample_id(meta: Dict[str, Any]) -> Optional[str]:
    for key in ('img_id', 'sample_id', 'image_id', 'id'):
        if meta.get(key) is not None:
            return str(meta[key])
    path = meta.get('img_path')
    if path:
        return osp.splitext(osp.basename(str(path)))[0]
    return None


def _boundary_payload(prob: np.ndarray, gt: np.ndarray, kwargs: dict) -> Optional[np.ndarray]:
    """(4, K) counts as int32 (a 2**31-pixel image would be needed to overflow)."""
    counts = boundary_pr_counts(prob, gt, **kwargs)
    return None if counts is None else counts.astype(np.int32)


class BoundaryEvaluator(TaskEvaluator):
    """Boundary detection: odsF, oisF and AP in the SEISM way (docs/metrics.md), percent.

    ``protocol`` picks the settings (docs/metrics.md); ``thresholds``, ``nms`` and ``gt_mode``
    left at None take the protocol's value, any other value overrides it:

    * ``'seism'``: the 101 thresholds of SEISM's ``HED.txt``, ``nms='seism'``,
      ``gt_mode='seg2bmap_thin'``;
    * ``'seism-2016-01'``: 99 thresholds 0.01 ... 0.99, no suppression, ``gt_mode='thin'``.

    Args:
        task (str): Task name.
        max_dist (float): Matching tolerance as a fraction of the image diagonal: 0.011 for
            NYUD-v2 (default), 0.0075 for PASCAL-Context.
        protocol (str): ``'seism'`` (default: SEISM's current reader, structured-edge
            non-maximum suppression) or ``'seism-2016-01'`` (mmmt's earlier protocol, no
            suppression).
        thresholds: Threshold set, see
            :func:`~mmmt.evaluation.functional.resolve_edge_thresholds`.
        quantize (bool): Evaluate the 8-bit PNG values SEISM reads. Defaults to True.
        nms (bool | str, optional): ``'seism'``, ``'canny'`` (True) or False, see
            :func:`~mmmt.evaluation.functional.boundary_pr_counts`.
        thin_pred (bool): Thin every binarised prediction (SEISM: True).
        gt_mode (str, optional): ``'seg2bmap_thin'``, ``'thin'``, ``'raw'`` or ``'seg2bmap'``,
            see :func:`~mmmt.evaluation.functional.boundary_pr_counts`.
        gt_threshold (float): Ground-truth pixels > this are boundaries. Defaults to 0.
        evaluate (bool): Compute the metrics; False only writes PNGs (fast). Defaults to True.
        save_dir (str, optional): Write each prediction as ``<save_dir>/<image id>.png``
            (``trunc(255 * prob)``, cropped to ``ori_shape``) for the MATLAB SEISM toolbox.
        overwrite (bool): Replace existing PNGs. Defaults to False (existing files are kept and
            counted in a warning).
        nproc (int): Worker processes for the per-image evaluation (1 = in-process).
        mp_start_method (str): Start method of the workers. Defaults to 'spawn'.
        ignore_index (float): Ignore value. Defaults to 255.
    """

    kind = 'boundary'

    def __init__(self,
                 task: str,
                 max_dist: float = 0.011,
                 protocol: str = DEFAULT_EDGE_PROTOCOL,
                 thresholds: Any = None,
                 quantize: bool = True,
                 nms: Any = None,
                 thin_pred: bool = True,
                 gt_mode: Optional[str] = None,
                 gt_threshold: float = 0.0,
                 evaluate: bool = True,
                 save_dir: Optional[str] = None,
                 overwrite: bool = False,
                 nproc: int = 1,
                 mp_start_method: str = 'spawn',
                 ignore_index: Optional[float] = IGNORE_INDEX) -> None:
        super().__init__(task, ignore_index)
        settings = edge_protocol(protocol)
        self.protocol = protocol
        if thresholds is not None:
            settings['thresholds'] = thresholds
        if nms is not None:
            settings['nms'] = nms
        if gt_mode is not None:
            settings['gt_mode'] = gt_mode
        self.thresholds = resolve_edge_thresholds(settings['thresholds'])
        self.eval_kwargs = dict(
            thresholds=self.thresholds,
            max_dist=float(max_dist),
            quantize=bool(quantize),
            nms=settings['nms'],
            thin_pred=bool(thin_pred),
            gt_mode=settings['gt_mode'],
            gt_threshold=float(gt_threshold),
            ignore_index=ignore_index)
        # Fail at construction, not in a worker, on a bad nms or gt_mode.
        check_boundary_options(settings['nms'], settings['gt_mode'])
        self.evaluate = evaluate
        self.save_dir = save_dir
        self.overwrite = overwrite
        self.nproc = int(nproc)
        self.mp_start_method = mp_start_method
        self._pool = None
        self.num_skipped_existing = 0
        self.num_saved = 0

    @property
    def wants_pred_without_gt(self) -> bool:
        """Predictions without ground truth are still exported as PNGs."""
        return self.save_dir is not None

    def _executor(self):
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor
            ctx = multiprocessing.get_context(self.mp_start_method)
            self._pool = ProcessPoolExecutor(self.nproc, mp_context=ctx)
        return self._pool

    def close(self) -> None:
        """Shut the worker pool down (it is re-created on demand)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_pool'] = None
        return state

    def process(self, pred, gt, meta):
        prob = np.asarray(pred, dtype=np.float32).reshape(pred.shape[-2:])
        if self.save_dir is not None:
            self._save(prob, meta)
        if not self.evaluate or gt is None:
            return None
        gt2d = np.asarray(gt, dtype=np.float32).reshape(gt.shape[-2:])
        if self.nproc > 1:
            return self._executor().submit(_boundary_payload, prob, gt2d, self.eval_kwargs)
        return _boundary_payload(prob, gt2d, self.eval_kwargs)

    def _save(self, prob: np.ndarray, meta: Dict[str, Any]) -> None:
        name = _sample_id(meta)
        if name is None:
            name = f'{self.num_saved + self.num_skipped_existing:06d}'
        path = osp.join(self.save_dir, f'{name}.png')
        if save_edge_png(prob, path, meta.get('ori_shape'), overwrite=self.overwrite):
            self.num_saved += 1
        else:
            self.num_skipped_existing += 1

    def compute(self, payloads):
        payloads = [p for p in payloads if p is not None]
        if not self.evaluate or not payloads:
            return {}
        res = boundary_metrics(payloads, self.thresholds)
        self._last = res
        return dict(odsF=100 * res['odsF'], oisF=100 * res['oisF'], AP=100 * res['AP'])

    def summary(self, payloads, metrics):
        parts = []
        res = getattr(self, '_last', None)
        if res is not None and metrics:
            parts.append(f"{self.task}: ODS threshold {res['ods_threshold']:.3f}, precision "
                         f"{100 * res['ods_precision']:.2f}, recall "
                         f"{100 * res['ods_recall']:.2f} over {res['num_images']} images "
                         f"(protocol {self.protocol!r}, {self.thresholds.size} thresholds, "
                         f"nms {self.eval_kwargs['nms']}, gt {self.eval_kwargs['gt_mode']}, "
                         f"maxDist {self.eval_kwargs['max_dist']})")
        if self.save_dir is not None:
            parts.append(f'{self.task}: wrote {self.num_saved} PNGs to {self.save_dir}')
            if self.num_skipped_existing:
                parts.append(f'{self.task}: WARNING kept {self.num_skipped_existing} existing '
                             'PNGs (set overwrite=True to replace them)')
        return '\n'.join(parts) or None


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
        raise KeyError(f'unknown task {task!r}: give its evaluator with type=one of '
                       f'{sorted(TASK_EVALUATORS)}')
    if kind not in TASK_EVALUATORS:
        raise KeyError(f'unknown evaluator type {kind!r}; choose from {sorted(TASK_EVALUATORS)}')
    options.setdefault('ignore_index', ignore_index)
    cls = TASK_EVALUATORS[kind]
    try:
        return cls(task, **options)
    except TypeError as err:
        raise TypeError(f'bad options for task {task!r} ({kind}): {err}') from err
