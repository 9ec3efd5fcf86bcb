from .multitask_encoder_decoder import (TASK_ACTIVATIONS, MultiTaskEncoderDecoder,
                                        activate)
from .multitask_tta import MultiTaskTTAModel, merge_task_predictions

__all__ = [
    'MultiTaskEncoderDecoder', 'TASK_ACTIVATIONS', 'activate', 'MultiTaskTTAModel',
    'merge_task_predictions'
]
