from .multitask_encoder_decoder import MultiTaskEncoderDecoder, activate

__all__ = ['MultiTaskEncoderDecoder', 'activate']
