"""Semantic-aware cross-task Mamba block (S-CTM) of MTMamba++."""
from typing import Dict, Sequence

import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath

from mmmt.registry import MODELS
from .cross_ss2d import CrossSS2D

__all__ = ['SCTMBlock']


@MODELS.register_module()
class SCTMBlock(nn.Module):
    """Each task's scan is steered by a feature shared by all tasks (docs/differences.md).

    For tasks t with features x_t (B, H, W, C)::

        m   = Conv3x3(Conv1x1(LN_share(concat_t x_t)))      shared, (B, H, W, C)
        y_t = x_t + DropPath(CrossSS2D_t(LN_t(x_t), m))

    The two convolutions have biases and no activation between them (Conv1x1: T*C -> C,
    Conv3x3: C -> C, padding 1). In ``CrossSS2D_t`` the scanned input and the gate come from the
    task feature, delta, B and C from ``m``. This is the only cross-task block of the released
    MTMamba++ code (no F-CTM there).

    Args:
        embed_dims (int): Channel width C of every task's feature.
        tasks (Sequence[str]): Task names; their order fixes the concatenation order.
        drop_path (float): Stochastic-depth rate. Defaults to 0.
        **ssm_kwargs: Passed to every :class:`CrossSS2D`.
    """

    def __init__(self,
                 embed_dims: int,
                 tasks: Sequence[str],
                 drop_path: float = 0.0,
                 **ssm_kwargs) -> None:
        super().__init__()
        self.tasks = list(tasks)
        num_tasks = len(self.tasks)
        self.norm_share = nn.LayerNorm(num_tasks * embed_dims)
        self.conv_share = nn.Sequential(
            nn.Conv2d(num_tasks * embed_dims, embed_dims, kernel_size=1),
            nn.Conv2d(embed_dims, embed_dims, kernel_size=3, padding=1))
        self.norm = nn.ModuleDict({t: nn.LayerNorm(embed_dims) for t in self.tasks})
        self.op = nn.ModuleDict({t: CrossSS2D(embed_dims, **ssm_kwargs) for t in self.tasks})
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def shared_feature(self, feats: Dict[str, torch.Tensor]) -> torch.Tensor:
        """The shared map ``m`` (B, H, W, C) from all task features (NHWC)."""
        x = self.norm_share(torch.cat([feats[t] for t in self.tasks], dim=-1))
        return self.conv_share(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    def forward(self, feats: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Args: feats: task -> (B, H, W, C). Returns: task -> (B, H, W, C)."""
        shared = self.shared_feature(feats)
        return {
            t: feats[t] + self.drop_path(self.op[t](self.norm[t](feats[t]), shared))
            for t in self.tasks
        }
