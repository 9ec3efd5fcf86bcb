"""Cross-task Mamba (CTM) block."""
from typing import Dict, Sequence

import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath

from .ss2d import SS2D

__all__ = ['CTMBlock']


class CTMBlock(nn.Module):
    """Exchange information across tasks with a shared and a per-task SS2D.

    For tasks t with features x_t (B, H, W, C)::

        s   = SS2D_share(LN_share(concat_t x_t))          shared, (B, H, W, 2C)
        n_t = LN_t(x_t)
        a_t = SS2D_t(n_t)                                 task-specific, (B, H, W, 2C)
        g_t = sigmoid(in_proj_t(n_t))
        y_t = x_t + DropPath(out_proj_t(g_t * s + (1 - g_t) * a_t))

    Both SS2D are the ungated variant (no SiLU(z) gate, no out_proj).

    Note:
        The gate follows the reference code, not the paper: Eq. 24 of the paper writes
        ``g * task + (1 - g) * shared``, while the code (and checkpoints) use
        ``g * shared + (1 - g) * task``. The two are equally expressive (g <-> 1 - g) and the
        paper's Table 5 prose ("g = 1: shared") agrees with the code. ``fixed_gate`` reproduces
        the Table 5 ablations: 0 = task-specific only, 1 = shared only.

    Args:
        embed_dims (int): Channel width C of every task's feature.
        tasks (Sequence[str]): Task names; their order fixes the concatenation order.
        drop_path (float): Stochastic-depth rate. Defaults to 0.
        fixed_gate (float, optional): Use this constant instead of the learned gate (the
            gate's ``in_proj`` is then not built). Defaults to None (learned).
        **ssm_kwargs: Passed to both SS2D (``d_state``, ``ssm_ratio``, ``dt_rank``, ...).
    """

    def __init__(self,
                 embed_dims: int,
                 tasks: Sequence[str],
                 drop_path: float = 0.0,
                 fixed_gate=None,
                 **ssm_kwargs) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.fixed_gate = fixed_gate
        self.norm = nn.ModuleDict({t: nn.LayerNorm(embed_dims) for t in self.tasks})
        self.op = nn.ModuleDict(
            {t: SS2D(embed_dims, gated=False, **ssm_kwargs)
             for t in self.tasks})
        d_inner = self.op[self.tasks[0]].d_inner
        if fixed_gate is None:
            self.in_proj = nn.ModuleDict(
                {t: nn.Linear(embed_dims, d_inner, bias=False)
                 for t in self.tasks})
        self.out_proj = nn.ModuleDict(
            {t: nn.Linear(d_inner, embed_dims, bias=False)
             for t in self.tasks})
        num_tasks = len(self.tasks)
        self.norm_share = nn.LayerNorm(num_tasks * embed_dims)
        self.op_share = SS2D(
            embed_dims, in_channels=num_tasks * embed_dims, gated=False, **ssm_kwargs)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, feats: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Args: feats: task -> (B, H, W, C). Returns: task -> (B, H, W, C)."""
        shared = self.op_share(self.norm_share(torch.cat([feats[t] for t in self.tasks], -1)))
        outs = {}
        for t in self.tasks:
            normed = self.norm[t](feats[t])
            specific = self.op[t](normed)
            if self.fixed_gate is None:
                gate = torch.sigmoid(self.in_proj[t](normed))
            else:
                gate = self.fixed_gate
            fused = gate * shared + (1 - gate) * specific
            outs[t] = feats[t] + self.drop_path(self.out_proj[t](fused))
        return outs
