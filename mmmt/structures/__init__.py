from mmmt import _package_check  # noqa: F401,I001  (names the clone-folder trap)
from .multitask_data_sample import (KNOWN_TASKS, MultiTaskDataSample, class_map_dtype,
                                   pred_to_array)

__all__ = ['MultiTaskDataSample', 'KNOWN_TASKS', 'pred_to_array', 'class_map_dtype']
