from .multitask_encoder_decoder import (TASK_ACTIVATIONS, MultiTaskEncoderDecoder,
                                        activate)

__all__ = ['MultiTaskEncoderDecoder', 'TASK_ACTIVATIONS', 'activate']
