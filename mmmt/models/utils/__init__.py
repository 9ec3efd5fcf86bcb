"""Checkpoint-key mappings between mmmt and other layouts, used by the model converters.

:mod:`.reference_keys`: the reference MTMamba / MTMamba++ implementation's decoder names;
:mod:`.swin_keys`: Microsoft's Swin checkpoints vs mmpretrain's names and patch-merging order.
"""
from .reference_keys import (REFERENCE_VARIANTS, detect_reference_variant, mmmt_to_reference_key,
                             mmmt_to_reference_state_dict, mmseg_swin_to_mmpretrain_key,
                             reference_to_mmmt_key, reference_to_mmmt_state_dict)
from .swin_keys import (merge_order_to_unfold, microsoft_swin_to_mmpretrain,
                        mmpretrain_swin_to_microsoft, unfold_to_merge_order)

__all__ = [
    'REFERENCE_VARIANTS', 'reference_to_mmmt_key', 'mmmt_to_reference_key',
    'detect_reference_variant', 'reference_to_mmmt_state_dict', 'mmmt_to_reference_state_dict',
    'mmseg_swin_to_mmpretrain_key', 'merge_order_to_unfold', 'unfold_to_merge_order',
    'microsoft_swin_to_mmpretrain', 'mmpretrain_swin_to_microsoft'
]
