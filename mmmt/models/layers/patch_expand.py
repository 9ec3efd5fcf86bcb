"""Learned upsampling by channel-to-space rearrangement (Swin-Unet style)."""
import torch
import torch.nn as nn

from mmmt.registry import MODELS

__all__ = ['PatchExpand', 'FinalPatchExpandX4', 'channels_to_space']


def channels_to_space(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Rearrange (B, h, w, s*s*c) into (B, s*h, s*w, c).

    Output pixel (s*i + p1, s*j + p2) takes the channel slice
    ``[(s*p1 + p2)*c, (s*p1 + p2 + 1)*c)`` of input pixel (i, j): p1 outermost, then p2, then c
    innermost (the order the reference checkpoints depend on).
    """
    batch, height, width, channels = x.shape
    c = channels // (scale * scale)
    x = x.reshape(batch, height, width, scale, scale, c)
    x = x.permute(0, 1, 3, 2, 4, 5)  # (B, h, p1, w, p2, c)
    return x.reshape(batch, height * scale, width * scale, c)


@MODELS.register_module()
class PatchExpand(nn.Module):
    """2x upsampling: Linear(C -> 2C) without bias, channels to 2x2 space, LayerNorm(C/2).

    Args:
        in_channels (int): Input width C (must be even).

    Shape:
        (B, C, h, w) NCHW -> (B, 2h, 2w, C/2) NHWC.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        if in_channels % 2:
            raise ValueError(f'PatchExpand needs an even channel count, got {in_channels}')
        self.expand = nn.Linear(in_channels, 2 * in_channels, bias=False)
        self.norm = nn.LayerNorm(in_channels // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.expand(x.permute(0, 2, 3, 1))
        return self.norm(channels_to_space(x, 2))


@MODELS.register_module()
class FinalPatchExpandX4(nn.Module):
    """4x upsampling: Linear(C -> 16C) without bias, channels to 4x4 space, LayerNorm(C).

    The reference calls this ``FinalPatchExpand_X4``.

    Args:
        in_channels (int): Input width C.
        nchw_output (bool): Return (B, C, 4h, 4w) (a permuted view) instead of NHWC, as the
            decoder's final head wants it. Defaults to False.

    Shape:
        (B, C, h, w) NCHW -> (B, 4h, 4w, C) NHWC.
    """

    def __init__(self, in_channels: int, nchw_output: bool = False) -> None:
        super().__init__()
        self.out_channels = in_channels
        self.nchw_output = nchw_output
        self.expand = nn.Linear(in_channels, 16 * in_channels, bias=False)
        self.norm = nn.LayerNorm(in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(channels_to_space(self.expand(x.permute(0, 2, 3, 1)), 4))
        return x.permute(0, 3, 1, 2) if self.nchw_output else x
