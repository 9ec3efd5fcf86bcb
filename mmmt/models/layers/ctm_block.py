"""Cross-task Mamba (CTM) block."""
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath

from mmmt.registry import MODELS
from .builder import build_block
from .ss2d import SS2D  # noqa: F401  (registers the default op)

__all__ = ['CTMBlock']


@MODELS.register_module()
class CTMBlock(nn.Module):
    """Exchange information across tasks with a shared and a per-task SS2D.

    For tasks t with features x_t (B, H, W, C)::

        s   = SS2D_share(LN_share(concat_t x_t))          shared, (B, H, W, 2C)
        n_t = LN_t(x_t)
        a_t = SS2D_t(n_t)                                 task-specific, (B, H, W, 2C)
        g_t = sigmoid(in_proj_t(n_t))
        y_t = x_t + DropPath(out_proj_t(g_t * s + (1 - g_t) * a_t))

    Both SS2D are the ungated variant (no SiLU(z) gate, no out_proj). The attention ablations
    swap the SS2D (``op``) or put window attention before the gate (``gate_attn``).

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
        op (dict): Config of the ungated feature extractor, built once per task and once for
            the concatenated input (``embed_dims``, ``in_channels`` and ``gated=False`` are
            filled in; ``**ssm_kwargs`` are its defaults). Defaults to ``dict(type='SS2D')``;
            the attention ablation gives ``WindowAttentionMixer``.
        gate_attn (dict, optional): Config of a token mixer applied before each gate's
            ``in_proj`` (``embed_dims`` filled in), e.g. ``dict(type='WindowMSA2d', ...)`` for
            the "Linear -> W-MSA" ablation. Defaults to None (the gate is a Linear).
        **ssm_kwargs: Defaults of ``op`` (``d_state``, ``ssm_ratio``, ``dt_rank``, ...).
    """

    def __init__(self,
                 embed_dims: int,
                 tasks: Sequence[str],
                 drop_path: float = 0.0,
                 fixed_gate: Optional[float] = None,
                 op: dict = dict(type='SS2D'),
                 gate_attn: Optional[dict] = None,
                 **ssm_kwargs) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.fixed_gate = fixed_gate
        num_tasks = len(self.tasks)
        op = dict(ssm_kwargs, **op)

        self.norm = nn.ModuleDict({t: nn.LayerNorm(embed_dims) for t in self.tasks})
        self.op = nn.ModuleDict(
            {t: build_block(op, embed_dims=embed_dims, gated=False)
             for t in self.tasks})
        d_inner = self.op[self.tasks[0]].d_inner
        if fixed_gate is None:
            self.in_proj = nn.ModuleDict(
                {t: nn.Linear(embed_dims, d_inner, bias=False)
                 for t in self.tasks})
            if gate_attn is not None:
                self.gate_attn = nn.ModuleDict(
                    {t: build_block(gate_attn, embed_dims=embed_dims)
                     for t in self.tasks})
        self.out_proj = nn.ModuleDict(
            {t: nn.Linear(d_inner, embed_dims, bias=False)
             for t in self.tasks})
        self.norm_share = nn.LayerNorm(num_tasks * embed_dims)
        self.op_share = build_block(
            op, embed_dims=embed_dims, in_channels=num_tasks * embed_dims, gated=False)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, feats: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Args: feats: task -> (B, H, W, C). Returns: task -> (B, H, W, C)."""
        shared = self.op_share(self.norm_share(torch.cat([feats[t] for t in self.tasks], -1)))
        outs = {}
        for t in self.tasks:
            normed = self.norm[t](feats[t])
            specific = self.op[t](normed)
            if self.fixed_gate is not None:
                gate = self.fixed_gate
            else:
                g_in = self.gate_attn[t](normed) if hasattr(self, 'gate_attn') else normed
                gate = torch.sigmoid(self.in_proj[t](g_in))
            fused = gate * shared + (1 - gate) * specific
            outs[t] = feats[t] + self.drop_path(self.out_proj[t](fused))
        return outs
