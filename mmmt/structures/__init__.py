from mmmt import _package_check  # noqa: F401  # isort: skip  (first: names the clone-folder trap)
from .multitask_data_sample import (MultiTaskDataSample, array_to_pred, class_map_dtype,
                                    pred_to_array)
from .tasks import (IGNORE_INDEX, TASKS, TaskSpec, get_task, meta_for_task, ordered_tasks,
                    register_task, register_tasks)

__all__ = [
    'MultiTaskDataSample', 'pred_to_array', 'array_to_pred', 'class_map_dtype', 'IGNORE_INDEX',
    'TASKS', 'TaskSpec', 'get_task', 'meta_for_task', 'ordered_tasks', 'register_task',
    'register_tasks'
]
