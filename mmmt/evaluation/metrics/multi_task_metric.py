"""One mmengine metric for every dense task of a multi-task model."""
import math
import sys
from concurrent.futures import Future, as_completed
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement

from mmmt.registry import METRICS
from mmmt.structures import IGNORE_INDEX
from mmmt.structures.tasks import is_delta_m_pair
from mmmt.utils.errors import UnknownNameError, UserInputError
from mmmt.utils.progress import ProgressBar
from ..functional.delta_m import DELTA_M_METRICS, NYUD_SINGLE_TASK_BASELINES, delta_m
from .task_evaluators import TaskEvaluator, build_task_evaluator

__all__ = ['MultiTaskMetric']

_NYUD_TASKS = frozenset(NYUD_SINGLE_TASK_BASELINES)


def _to_numpy(value: Any) -> np.ndarray:
    """Tensor / PixelData / dict-with-'data' / array -> NumPy array."""
    if isinstance(value, Mapping):
        value = value['data']
    elif isinstance(value, BaseDataElement):
        value = value.data
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _field(sample: Any, name: str) -> Any:
    if isinstance(sample, Mapping):
        return sample.get(name)
    return getattr(sample, name, None) if name in sample else None


def _delta_m_metric(task: str, value: Any) -> Tuple[str, bool]:
    """``delta_m_metrics[task]`` as a (metric, higher_is_better) pair, or a clear error."""
    if not is_delta_m_pair(value):
        raise UserInputError(f'delta_m_metrics[{task!r}]: expected a (metric, '
                             "higher_is_better) pair such as ('mIoU', True) or ('rmse', False), "
                             f'got {value!r}')
    return value[0], value[1]


def _delta_m_baseline(task: str, value: Any) -> float:
    """``delta_m_baselines[task]`` as a finite, non-zero float (Δm divides by it)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if isinstance(value, bool) or number is None or not math.isfinite(number) or number == 0:
        raise UserInputError(f'delta_m_baselines[{task!r}]: expected a finite, non-zero '
                             "number (the single-task result, in the metric's units), got "
                             f'{value!r}')
    return number


def _meta(sample: Any) -> Dict[str, Any]:
    if isinstance(sample, Mapping):
        return {k: v for k, v in sample.items() if not str(k).startswith(('gt_', 'pred_'))}
    return dict(sample.metainfo)


@METRICS.register_module()
class MultiTaskMetric(BaseMetric):
    """Dataset-level metrics of every task, computed the way the papers compute them.

    Results are keyed ``<task>/<metric>``; units follow the papers: mIoU, maxF, odsF and the
    other ratios in percent, depth errors in metres, normal angles in degrees. Each sample only
    contributes small counts and sums to ``self.results`` (per-class pixel counts, depth sums, a
    sparse angle histogram, per-threshold boundary counts), which mmengine gathers from every
    process, so distributed evaluation gives exactly the single-process numbers.

    ============  ==========================================================================
    task kind     keys (``<task>/...``)
    ============  ==========================================================================
    segmentation  ``mIoU``, ``pixel_acc`` (+ ``IoU.<class>`` with ``report_per_class``)
    depth         ``rmse``, ``abs_rel``, ``sq_rel``, ``log_rmse``, ``delta1..3``
    normals       ``mean``, ``median``, ``rmse``, ``within_11.25``, ``within_22.5``,
                  ``within_30``
    saliency      ``maxF``, ``IoU``
    boundary      ``odsF``, ``oisF``, ``AP``
    ============  ==========================================================================

    plus ``multi_task/delta_m`` (percent) when single-task baselines apply.

    Args:
        tasks (Sequence[str] | Mapping[str, dict | None]): The tasks to evaluate; with a mapping,
            the value holds the options of that task's evaluator (see
            :mod:`mmmt.evaluation.metrics.task_evaluators`), e.g.
            ``dict(semseg=dict(num_classes=40), edge=dict(max_dist=0.011))``.
        ignore_index (float): Default ground-truth ignore value of every task. Defaults to 255.
        delta_m_baselines (str | Mapping[str, float] | None): Single-task results for
            ``multi_task/delta_m``: a mapping task -> value (papers' units), ``'nyud'`` for the
            paper's NYUD-v2 baselines (54.32 / 0.5166 / 19.21 / 77.30), ``'auto'`` (default) for
            ``'nyud'`` when exactly the four NYUD tasks are evaluated and none otherwise, or None.
        delta_m_metrics (Mapping[str, tuple], optional): task -> (metric, higher_is_better)
            overriding :data:`~mmmt.evaluation.functional.DELTA_M_METRICS`.
        strict (bool): Raise when a sample has ground truth but no prediction of a task
            (default True); when False such samples are skipped for that task.
        collect_device (str): Device for gathering results, ``'cpu'`` or ``'gpu'``.
        prefix (str, optional): Prefix of the metric keys.
        collect_dir (str, optional): Temporary folder for gathering results on CPU.
    """

    default_prefix: Optional[str] = ''

    def __init__(self,
                 tasks: Union[Sequence[str], Mapping[str, Optional[dict]]],
                 ignore_index: Optional[float] = IGNORE_INDEX,
                 delta_m_baselines: Union[str, Mapping[str, float], None] = 'auto',
                 delta_m_metrics: Optional[Mapping[str, Tuple[str, bool]]] = None,
                 strict: bool = True,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if isinstance(tasks, str):
            tasks = [tasks]
        if isinstance(tasks, Mapping):
            items = list(tasks.items())
        else:
            items = [(t, None) for t in tasks]
        if not items:
            raise ValueError('MultiTaskMetric needs at least one task')
        self.evaluators: Dict[str, TaskEvaluator] = {
            task: build_task_evaluator(task, opts, ignore_index)
            for task, opts in items
        }
        self.tasks: List[str] = list(self.evaluators)
        self.strict = strict
        self.delta_m_metrics = dict(DELTA_M_METRICS)
        if delta_m_metrics:
            self.delta_m_metrics.update({str(k): _delta_m_metric(k, v)
                                         for k, v in dict(delta_m_metrics).items()})
        # checked here: a bad value found by compute_metrics loses the evaluation's results
        self.delta_m_baselines = self._resolve_baselines(delta_m_baselines)

    def _resolve_baselines(self, spec) -> Optional[Dict[str, float]]:
        if spec is None:
            return None
        if isinstance(spec, str):
            key = spec.lower()
            if key == 'auto':
                return dict(NYUD_SINGLE_TASK_BASELINES) if set(
                    self.tasks) == _NYUD_TASKS else None
            if key == 'nyud':
                return dict(NYUD_SINGLE_TASK_BASELINES)
            raise UserInputError("delta_m_baselines must be a mapping, 'nyud', 'auto' or "
                                 f'None, got {spec!r}')
        if not isinstance(spec, Mapping):
            raise UserInputError("delta_m_baselines must be a mapping, 'nyud', 'auto' or "
                                 f'None, got {type(spec).__name__} {spec!r}')
        baselines = {str(k): _delta_m_baseline(k, v) for k, v in spec.items()}
        unknown = [t for t in baselines if t not in self.delta_m_metrics]
        if unknown:
            raise UnknownNameError(f'no Δm metric known for {unknown}; pass delta_m_metrics')
        return baselines or None

    @property
    def dataset_meta(self) -> Optional[dict]:
        """Meta information of the dataset (class names, palettes)."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict) -> None:
        self._dataset_meta = dataset_meta
        for evaluator in getattr(self, 'evaluators', {}).values():
            evaluator.dataset_meta = dataset_meta

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Turn each sample's predictions and ground truth into small per-task payloads.

        Args:
            data_batch (Any): The batch from the dataloader (unused).
            data_samples (Sequence): Model outputs: :class:`MultiTaskDataSample` objects or
                their ``to_dict()`` form, with ``pred_<task>`` and ``gt_<task>`` fields.
        """
        for sample in data_samples:
            meta = _meta(sample)
            result: Dict[str, Any] = {}
            for task, evaluator in self.evaluators.items():
                pred = _field(sample, f'pred_{task}')
                gt = _field(sample, f'gt_{task}')
                if pred is None:
                    if gt is not None and self.strict:
                        raise KeyError(f'sample {meta.get("img_path", "?")} has gt_{task} but '
                                       f'no pred_{task}')
                    result[task] = None
                    continue
                pred_np = _to_numpy(pred)
                gt_np = _to_numpy(gt) if gt is not None else None
                if gt_np is not None and pred_np.shape[-2:] != gt_np.shape[-2:]:
                    raise ValueError(
                        f'{task}: prediction {pred_np.shape} and ground truth {gt_np.shape} '
                        'differ in size; predictions must be at the ground-truth size')
                if gt_np is None and not evaluator.wants_pred_without_gt:
                    result[task] = None
                    continue
                try:
                    result[task] = evaluator.process(pred_np, gt_np, meta)
                except ValueError as e:  # a prediction of the wrong kind: name its task
                    e.args = (f'{task}: {e}', ) + e.args[1:]  # (its type kept)
                    raise
            self.results.append(result)

    def evaluate(self, size: int) -> dict:
        """Wait for pending per-image work, then gather and compute (see BaseMetric).

        Per-image work still running in worker processes (``edge=dict(nproc=N)``) is awaited
        with a progress bar on stdout.
        """
        pending = [p for r in self.results for p in r.values()
                   if isinstance(p, Future) and not p.done()]
        if pending:
            print_log(f'MultiTaskMetric: waiting for {len(pending)} images in worker processes',
                      logger='current')
            bar = ProgressBar(len(pending), file=sys.stdout, description='edge images')
            for _ in as_completed(pending):
                bar.update()
            bar.finish()
        for result in self.results:
            for task, payload in result.items():
                if isinstance(payload, Future):
                    result[task] = payload.result()
        return super().evaluate(size)

    def compute_metrics(self, results: List[Dict[str, Any]]) -> Dict[str, float]:
        """Reduce the gathered per-sample payloads to ``<task>/<metric>`` values.

        Args:
            results (list[dict]): One dict task -> payload per sample (from every process).

        Returns:
            dict[str, float]: The metrics.
        """
        metrics: Dict[str, float] = {}
        for task, evaluator in self.evaluators.items():
            payloads = [r[task] for r in results if r.get(task) is not None]
            payloads = [p.result() if isinstance(p, Future) else p for p in payloads]
            values = evaluator.compute(payloads) if payloads else {}
            if not payloads and getattr(evaluator, 'evaluate', True):
                print_log(f'MultiTaskMetric: no sample with ground truth for {task!r}',
                          logger='current', level=30)
            metrics.update({f'{task}/{k}': float(v) for k, v in values.items()})
            text = evaluator.summary(payloads, values)
            if text:
                print_log(text, logger='current')
        if self.delta_m_baselines:
            try:
                metrics['multi_task/delta_m'] = delta_m(metrics, self.delta_m_baselines,
                                                        self.delta_m_metrics)
                print_log('multi_task/delta_m: percent relative to the single-task baselines '
                          f'{self.delta_m_baselines} (meaningful only on the data they were '
                          'measured on; delta_m_baselines=None turns it off)',
                          logger='current')
            except KeyError as err:
                print_log(f'MultiTaskMetric: Δm not computed: {err.args[0]}',
                          logger='current', level=30)
        return metrics
