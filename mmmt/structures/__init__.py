from .multitask_data_sample import MultiTaskDataSample, pred_to_array
from .tasks import (IGNORE_INDEX, TASKS, TaskSpec, get_task, meta_for_task, ordered_tasks,
                    register_task, register_tasks)

__all__ = [
    'MultiTaskDataSample', 'pred_to_array', 'IGNORE_INDEX', 'TASKS', 'TaskSpec', 'get_task',
    'meta_for_task', 'ordered_tasks', 'register_task', 'register_tasks'
]
