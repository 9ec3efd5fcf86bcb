"""Window attention and Swin blocks on NHWC maps, for the paper's attention ablations."""
import torch
import torch.nn as nn
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones.swin_transformer import SwinBlock
from mmpretrain.models.utils import ShiftWindowMSA

from mmmt.registry import MODELS

__all__ = ['WindowMSA2d', 'SwinBlock2d']


@MODELS.register_module()
class WindowMSA2d(nn.Module):
    """Swin's window multi-head self-attention (W-MSA, optionally shifted) on a (B, H, W, C) map.

    A thin NHWC wrapper around mmpretrain's ``ShiftWindowMSA`` (qkv with bias, relative
    position bias table of (2w-1)^2 x heads, output projection). Maps that are not multiples of
    the window are zero-padded at the bottom/right, as in Swin for dense prediction.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Attention heads.
        window_size (int): Window side w.
        shift (bool): Shift the windows by w // 2 (SW-MSA). Defaults to False (W-MSA).
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int,
                 shift: bool = False) -> None:
        super().__init__()
        self.attn = ShiftWindowMSA(
            embed_dims, num_heads, window_size,
            shift_size=window_size // 2 if shift else 0, pad_small_map=True)
        # what mmpretrain's init_weights does, without its logging
        trunc_normal_(self.attn.w_msa.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = x.shape
        y = self.attn(x.reshape(batch, height * width, channels), (height, width))
        return y.view(batch, height, width, channels)


@MODELS.register_module()
class SwinBlock2d(SwinBlock):
    """A standard Swin Transformer block (LN, (S)W-MSA, LN, MLP ratio 4) on NHWC maps.

    The decoder block of the paper's "Multi-task 2xSwin" baseline (Table 2). Small maps are
    padded to the window (``pad_small_map=True``).

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Attention heads.
        window_size (int): Window side. Defaults to 12 (the encoder's).
        shift (bool): SW-MSA instead of W-MSA. Defaults to False.
        drop_path (float): Stochastic-depth rate. Defaults to 0.
        **kwargs: Passed to mmpretrain's ``SwinBlock``.
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int = 12,
                 shift: bool = False, drop_path: float = 0.0, **kwargs) -> None:
        kwargs.setdefault('pad_small_map', True)
        super().__init__(embed_dims, num_heads, window_size=window_size, shift=shift,
                         drop_path=drop_path, **kwargs)
        trunc_normal_(self.attn.w_msa.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = x.shape
        y = super().forward(x.reshape(batch, height * width, channels), (height, width))
        return y.view(batch, height, width, channels)
