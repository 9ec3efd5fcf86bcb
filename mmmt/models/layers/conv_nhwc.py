"""A 1x1 convolution applied to channels-last maps."""
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['PointwiseConvNHWC']


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
