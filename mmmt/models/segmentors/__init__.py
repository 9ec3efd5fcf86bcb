from .multitask_encoder_decoder import MultiTaskEncoderDecoder, activate
from .multitask_tta import MultiTaskTTAModel, merge_task_predictions

__all__ = ['MultiTaskEncoderDecoder', 'activate', 'MultiTaskTTAModel', 'merge_task_predictions']
