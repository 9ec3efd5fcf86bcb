"""Self-task Mamba (STM) block."""
import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath

from mmmt.registry import MODELS
from .ss2d import SS2D

__all__ = ['STMBlock']


@MODELS.register_module()
class STMBlock(nn.Module):
    """``x + DropPath(SS2D(LN(x)))``: one pre-norm residual around the gated SS2D.

    The paper's Eqs. 14-18: Eq. 14 is the LayerNorm, the gate's Linear (Eq. 16) is fused into
    SS2D's ``in_proj``, and the reference uses ``mlp_ratio=0``, so there is no FFN branch.
    DropPath is not in the paper but is in the reference code.

    Args:
        embed_dims (int): Channel width C.
        drop_path (float): Stochastic-depth rate. Defaults to 0.
        **ssm_kwargs: Passed to :class:`SS2D` (``d_state``, ``ssm_ratio``, ``dt_rank``, ...).

    Shape:
        (B, H, W, C) -> (B, H, W, C).
    """

    def __init__(self, embed_dims: int, drop_path: float = 0.0, **ssm_kwargs) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(embed_dims)
        self.op = SS2D(embed_dims, gated=True, **ssm_kwargs)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.op(self.norm(x)))
