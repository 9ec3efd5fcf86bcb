"""Conv3x3 -> norm -> ReLU: the per-task head convolution of MTMamba++."""
from collections import OrderedDict

import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model.weight_init import trunc_normal_

from mmmt.registry import MODELS

__all__ = ['ConvNormReLU']


@MODELS.register_module()
class ConvNormReLU(nn.Sequential):
    """``Conv3x3 (bias) -> norm -> ReLU`` with children named ``conv``, ``bn``, ``relu`` (the
    layout of MTMamba++'s ``final_expand.{task}.{0,1}`` checkpoints); NCHW in and out.

    Not mmcv's ``ConvModule``: that one names its norm after the norm type (``bn``/``syncbn``
    would differ between configs) and initialises the conv with Kaiming instead of the
    reference's truncated normal.

    Args:
        in_channels (int): Input width.
        out_channels (int): Output width.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
        weight_std (float): Std of the conv weight's truncated-normal init. Defaults to 0.02.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 weight_std: float = 0.02) -> None:
        conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        trunc_normal_(conv.weight, std=weight_std)
        super().__init__(OrderedDict(conv=conv, bn=build_norm_layer(norm_cfg, out_channels)[1],
                                     relu=nn.ReLU(inplace=True)))
        self.out_channels = out_channels
