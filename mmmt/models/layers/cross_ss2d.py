"""Cross SS2D: the selective scan of one feature, steered by another (MTMamba++ S-CTM)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .ss2d import SS2D

__all__ = ['CrossSS2D']


class CrossSS2D(SS2D):
    """Gated SS2D whose input-dependent SSM parameters come from a second feature.

    The task feature ``x`` provides the scanned input ``u`` (``in_proj`` main half, depthwise
    conv, SiLU) and the gate ``z`` exactly as in :class:`SS2D`; the shared feature ``m`` is
    projected by ``in_proj_cross`` (no conv, no activation) and cross-scanned in the same four
    directions, and **delta, B and C are projected from it** with ``x_proj_weight`` and
    ``dt_projs_weight`` (docs/differences.md). A, D, the delta bias, the merge, ``out_norm``,
    the SiLU(z) gate and ``out_proj`` are those of the gated SS2D.

    Args:
        embed_dims (int): Width C of the task feature (and of the output).
        source_channels (int, optional): Width of the shared feature. Defaults to ``embed_dims``.
        **kwargs: Passed to :class:`SS2D` (``d_state``, ``ssm_ratio``, ``dt_rank``, ...).

    Shape:
        ``forward(x, source)``: x (B, H, W, C), source (B, H, W, source_channels), both NHWC;
        output (B, H, W, C).
    """

    def __init__(self, embed_dims: int, source_channels: int = None, **kwargs) -> None:
        if kwargs.pop('gated', True) is not True:
            raise ValueError('CrossSS2D is always gated')
        super().__init__(embed_dims, gated=True, **kwargs)
        self.in_proj_cross = nn.Linear(
            source_channels or embed_dims, self.d_inner, bias=False)

    def forward(self, x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        if x.shape[:3] != source.shape[:3]:
            raise ValueError(f'task feature {tuple(x.shape)} and shared feature '
                             f'{tuple(source.shape)} differ in batch or spatial size')
        x, z = self.split_input(x)
        src = self.in_proj_cross(source).permute(0, 3, 1, 2)
        y = self.scan(self._conv_branch(x), source=src)
        return self.out_proj(y * F.silu(z))
