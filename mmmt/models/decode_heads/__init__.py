# the key maps live in mmmt.models.utils; re-exported here, where they used to be
from ..utils.reference_keys import (REFERENCE_VARIANTS, detect_reference_variant,
                                    mmmt_to_reference_key, mmmt_to_reference_state_dict,
                                    reference_to_mmmt_key, reference_to_mmmt_state_dict)
from .mtmamba_head import MTMambaHead, MultiTaskMambaDecodeHead
from .mtmamba_plus_head import MTMambaPlusDecodeHead, MTMambaPlusHead
from .mtmamba_seg_head import MTMambaSegHead
from .mtmamba_stage import MTMambaDecoderStage, stage_drop_paths
from .mtmamba_variants import MTMambaVariantHead

__all__ = [
    'MTMambaHead', 'MultiTaskMambaDecodeHead', 'MTMambaDecoderStage', 'MTMambaPlusHead',
    'MTMambaPlusDecodeHead', 'MTMambaSegHead', 'MTMambaVariantHead', 'stage_drop_paths',
    'REFERENCE_VARIANTS', 'reference_to_mmmt_key', 'mmmt_to_reference_key',
    'detect_reference_variant', 'reference_to_mmmt_state_dict', 'mmmt_to_reference_state_dict'
]
