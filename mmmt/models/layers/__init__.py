from .ctm_block import CTMBlock
from .patch_expand import FinalPatchExpandX4, PatchExpand, channels_to_space
from .ss2d import SS2D, cross_merge, cross_scan
from .stm_block import STMBlock

__all__ = [
    'SS2D', 'cross_scan', 'cross_merge', 'STMBlock', 'CTMBlock', 'PatchExpand',
    'FinalPatchExpandX4', 'channels_to_space'
]
