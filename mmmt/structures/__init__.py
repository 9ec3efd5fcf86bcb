from .multitask_data_sample import KNOWN_TASKS, MultiTaskDataSample

__all__ = ['MultiTaskDataSample', 'KNOWN_TASKS']
