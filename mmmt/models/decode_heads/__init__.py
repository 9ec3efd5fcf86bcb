from .mtmamba_head import MultiTaskMambaDecodeHead
from .mtmamba_stage import MTMambaDecoderStage
from .reference_keys import mmmt_to_reference_key, reference_to_mmmt_key

__all__ = [
    'MultiTaskMambaDecodeHead', 'MTMambaDecoderStage', 'reference_to_mmmt_key',
    'mmmt_to_reference_key'
]
