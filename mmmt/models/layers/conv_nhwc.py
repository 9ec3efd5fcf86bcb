"""Pointwise layers on channels-last maps: the decoder's skip-fusion choices."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmmt.registry import MODELS

__all__ = ['PointwiseConvNHWC', 'LinearNHWC']


@MODELS.register_module()
class LinearNHWC(nn.Linear):
    """``nn.Linear(in_channels, out_channels)`` (same parameters, names and init) under the
    ``in_channels``/``out_channels`` signature of :class:`PointwiseConvNHWC`, so the decoder
    builds either from one config. MTMamba fuses the skip connection with it."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, bias=bias)


@MODELS.register_module()
class PointwiseConvNHWC(nn.Conv2d):
    """``nn.Conv2d(in, out, 1)`` (same parameters, names, init) that takes (B, H, W, C_in).

    Equal to permuting to NCHW, convolving and permuting back, without the copies. MTMamba++
    fuses the skip connection with a 1x1 convolution where MTMamba has a Linear; this keeps the
    convolution's checkpoint layout (C_out, C_in, 1, 1) inside the channels-last decoder.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.flatten(1), self.bias)
