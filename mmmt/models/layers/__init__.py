from .ablation_blocks import (AttentionGatedSS2D, CrossTaskMixerBlock, MixerBlock,
                              WindowAttentionMixer)
from .builder import build_block
from .conv_nhwc import LinearNHWC, PointwiseConvNHWC
from .conv_norm_relu import ConvNormReLU
from .cross_ss2d import CrossSS2D
from .ctm_block import CTMBlock
from .patch_expand import FinalPatchExpandX4, PatchExpand, channels_to_space
from .sctm_block import SCTMBlock
from .ss2d import SS2D, cross_merge, cross_scan
from .stm_block import STMBlock
from .window_attention import SwinBlock2d, WindowMSA2d

__all__ = [
    'SS2D', 'cross_scan', 'cross_merge', 'STMBlock', 'CTMBlock', 'PatchExpand',
    'FinalPatchExpandX4', 'channels_to_space', 'CrossSS2D', 'SCTMBlock', 'PointwiseConvNHWC',
    'WindowMSA2d', 'SwinBlock2d', 'WindowAttentionMixer', 'AttentionGatedSS2D', 'MixerBlock',
    'CrossTaskMixerBlock', 'LinearNHWC', 'ConvNormReLU', 'build_block'
]
