"""The multi-task performance Δm of the papers (docs/metrics.md)."""
from typing import Dict, Iterator, Mapping, Optional, Tuple

from mmmt.structures import TASKS

__all__ = ['DELTA_M_METRICS', 'NYUD_SINGLE_TASK_BASELINES', 'delta_m']


class _DeltaMMetrics(Mapping):
    """Task -> (metric, higher is better) of every registered task that defines ``delta_m``:
    a live view of ``mmmt.structures.TASKS``, so tasks registered later are included."""

    def _items(self) -> Dict[str, Tuple[str, bool]]:
        return {name: spec.delta_m for name, spec in TASKS.items() if spec.delta_m is not None}

    def __getitem__(self, task: str) -> Tuple[str, bool]:
        return self._items()[task]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())


#: Which metric represents each task in Δm, and whether higher is better (semseg/human_parts
#: mIoU, sal maxF, edge odsF higher; depth rmse, normals mean error lower).
DELTA_M_METRICS: Mapping[str, Tuple[str, bool]] = _DeltaMMetrics()

#: Paper Table 2, "Single-task 2xSwin" on NYUD-v2: mIoU %, RMSE m, mErr degrees, odsF %.
NYUD_SINGLE_TASK_BASELINES: Dict[str, float] = {
    'semseg': 54.32,
    'depth': 0.5166,
    'normals': 19.21,
    'edge': 77.30,
}


def delta_m(results: Mapping[str, float],
            baselines: Mapping[str, float],
            metrics: Optional[Mapping[str, Tuple[str, bool]]] = None) -> float:
    """Δm = (1/T) sum_t (-1)^{l_t} (M_mtl,t - M_stl,t) / M_stl,t x 100 (%).

    ``l_t = 1`` for lower-is-better metrics (depth RMSE, normals mErr), 0 otherwise. Results
    and baselines must be in the same units (percent for mIoU/maxF/odsF).

    Args:
        results: Metric values keyed ``'<task>/<metric>'`` or by task name.
        baselines: Single-task values keyed by task name; every task listed is used.
        metrics: Task -> (metric name, higher is better); defaults to :data:`DELTA_M_METRICS`.

    Returns:
        float: Δm in percent.

    Raises:
        KeyError: If a baseline task has no result or no metric definition; the message says
            which, and names a task's results when its metric is not among them.
        ValueError: If there are no baselines or a baseline is zero.
    """
    metrics = dict(DELTA_M_METRICS if metrics is None else metrics)
    if not baselines:
        raise ValueError('delta_m needs at least one baseline')
    total = 0.0
    for task, base in baselines.items():
        if task not in metrics:
            raise KeyError(f'no Δm metric defined for task {task!r}')
        name, higher_better = metrics[task]
        key = f'{task}/{name}'
        if key in results:
            value = results[key]
        elif task in results:
            value = results[task]
        else:
            # the task was evaluated but under other names: its delta_m names a metric its
            # evaluator does not report (a misspelt ('miou', True)), which only its results show
            have = sorted(k for k in results if k.startswith(f'{task}/'))
            if have:
                raise KeyError(f'task {task!r}: its Δm metric {name!r} is not one of its results '
                               f"({', '.join(have)}); correct delta_m in the task's definition "
                               "(or the metric's delta_m_metrics)")
            raise KeyError(f'no result {key!r} for task {task!r}')
        if base == 0:
            raise ValueError(f'baseline of {task!r} is zero')
        rel = (float(value) - float(base)) / float(base)
        total += rel if higher_better else -rel
    return 100.0 * total / len(baselines)
