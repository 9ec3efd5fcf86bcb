"""Blocks for the MTMamba paper's ablations (Tables 3-5): attention instead of the SSM parts.

The paper describes these variants in one sentence each and the reference code does not contain
them. The structures here are the simplest reading of the paper that reproduces its parameter
counts exactly (451.81 M for "MFE -> W-MSA", 345.33 M for "Linear -> W-MSA"): W-MSA with qkv
bias, the encoder's head count at each decoder stage (24, 12, 6 for Swin-L), window size 8.
See docs/complexity.md.
"""
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath

from mmmt.registry import MODELS
from .builder import build_block
from .ctm_block import CTMBlock
from .ss2d import SS2D
from .window_attention import WindowMSA2d

__all__ = ['WindowAttentionMixer', 'AttentionGatedSS2D', 'MixerBlock', 'CrossTaskMixerBlock']


@MODELS.register_module()
class WindowAttentionMixer(nn.Module):
    """An MFE with the SSM part replaced by window attention ("MFE -> W-MSA", Table 3).

    A drop-in for :class:`SS2D` in both of its variants: ``in_proj`` expands to ``d_inner``
    (plus the gate half when gated) and W-MSA at width ``d_inner`` replaces the depthwise conv,
    selective scan and ``out_norm``; the gated variant multiplies by SiLU(z) and applies
    ``out_proj`` as SS2D does.

    Args:
        embed_dims (int): Width C of the block; ``d_inner = ssm_ratio * C``.
        num_heads (int): Attention heads.
        window_size (int): Attention window. Defaults to 8.
        in_channels (int, optional): Input width (T*C for the CTM's shared one).
        ssm_ratio (int): Expansion factor. Defaults to 2.
        gated (bool): Gated (STM) or ungated (CTM) variant. Defaults to True.
        **unused_ssm_kwargs: SS2D's scan options (``d_state``, ``dt_rank``, ...), accepted
            and ignored so that the block configs stay those of the SS2D mixer.
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int = 8,
                 in_channels: Optional[int] = None, ssm_ratio: int = 2, gated: bool = True,
                 **unused_ssm_kwargs) -> None:
        super().__init__()
        self.d_inner = int(ssm_ratio * embed_dims)
        self.gated = gated
        self.in_proj = nn.Linear(
            in_channels or embed_dims, self.d_inner * (2 if gated else 1), bias=False)
        self.attn = WindowMSA2d(self.d_inner, num_heads, window_size)
        self.out_proj = nn.Linear(self.d_inner, embed_dims, bias=False) if gated else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.in_proj(x)
        if not self.gated:
            return self.attn(x)
        x, z = x.chunk(2, dim=-1)
        return self.out_proj(self.attn(x) * F.silu(z))


@MODELS.register_module()
class AttentionGatedSS2D(SS2D):
    """Gated SS2D whose gate is computed by window attention ("Linear -> W-MSA", Table 4).

    ``out_proj(MFE(x) * SiLU(gate_proj(W-MSA(x))))``: the MFE is SS2D's (``in_proj`` only
    produces the main branch here) and W-MSA at the block width precedes the gate's Linear.

    Args:
        embed_dims (int): Width C.
        num_heads (int): Attention heads of the gate.
        window_size (int): Attention window. Defaults to 8.
        **ssm_kwargs: Passed to :class:`SS2D`.
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int = 8,
                 **ssm_kwargs) -> None:
        ssm_kwargs.pop('gated', None)
        super().__init__(embed_dims, gated=False, **ssm_kwargs)
        self.gate_attn = WindowMSA2d(embed_dims, num_heads, window_size)
        self.gate_proj = nn.Linear(embed_dims, self.d_inner, bias=False)
        self.out_proj = nn.Linear(self.d_inner, embed_dims, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)  # ungated: LN(scan(conv(in_proj(x))))
        return self.out_proj(y * F.silu(self.gate_proj(self.gate_attn(x))))


@MODELS.register_module()
class MixerBlock(nn.Module):
    """``x + DropPath(op(LN(x)))`` around any token mixer (the STM block's residual form).

    Args:
        embed_dims (int): Width C.
        op (nn.Module | dict): The mixer, (B, H, W, C) -> (B, H, W, C), or its config
            (``embed_dims`` filled in).
        drop_path (float): Stochastic-depth rate. Defaults to 0.
    """

    def __init__(self, embed_dims: int, op: Union[nn.Module, dict],
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(embed_dims)
        self.op = op if isinstance(op, nn.Module) else build_block(op, embed_dims=embed_dims)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.op(self.norm(x)))


@MODELS.register_module()
class CrossTaskMixerBlock(CTMBlock):
    """The CTM block with its MFEs or its gates replaced by window attention (Tables 3, 4).

    :class:`CTMBlock` (same computation and names) with ``op`` = :class:`WindowAttentionMixer`
    for ``mixer='wmsa'`` and ``gate_attn`` = :class:`WindowMSA2d` for ``gate='attention'``.

    Args:
        embed_dims (int): Width C.
        tasks (Sequence[str]): Task names, in concatenation order.
        num_heads (int): Attention heads.
        window_size (int): Attention window. Defaults to 8.
        mixer (str): 'mfe' (SS2D) or 'wmsa' (:class:`WindowAttentionMixer`). Defaults to 'mfe'.
        gate (str): 'linear' or 'attention' (W-MSA before the gate's Linear).
            Defaults to 'linear'.
        drop_path (float): Stochastic-depth rate. Defaults to 0.
        fixed_gate (float, optional): A constant gate instead of the learned one.
        **ssm_kwargs: Passed to SS2D.
    """

    def __init__(self,
                 embed_dims: int,
                 tasks: Sequence[str],
                 num_heads: int,
                 window_size: int = 8,
                 mixer: str = 'mfe',
                 gate: str = 'linear',
                 drop_path: float = 0.0,
                 fixed_gate: Optional[float] = None,
                 **ssm_kwargs) -> None:
        if mixer not in ('mfe', 'wmsa') or gate not in ('linear', 'attention'):
            raise ValueError(f'mixer must be mfe|wmsa and gate linear|attention, got '
                             f'{mixer!r}, {gate!r}')
        attention = dict(num_heads=num_heads, window_size=window_size)
        op = dict(type='WindowAttentionMixer', **attention) if mixer == 'wmsa' else \
            dict(type='SS2D')
        gate_attn = dict(type='WindowMSA2d', **attention) if gate == 'attention' else None
        super().__init__(embed_dims, tasks, drop_path=drop_path, fixed_gate=fixed_gate, op=op,
                         gate_attn=gate_attn, **ssm_kwargs)
        self.gate = gate
