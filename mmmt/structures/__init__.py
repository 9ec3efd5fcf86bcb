from .multitask_data_sample import KNOWN_TASKS, MultiTaskDataSample, pred_to_array

__all__ = ['MultiTaskDataSample', 'KNOWN_TASKS', 'pred_to_array']
