"""MTMamba decoders with other blocks in the stages: the paper's ablations (Tables 2-5).

:class:`MTMambaVariantHead` keeps everything of :class:`MultiTaskMambaDecodeHead` (patch expands,
skip fusion, output heads, losses, pre/post-processing) and only changes what runs between the
skip fusion and the end of a stage:

================================  ==========================================================
paper                              config
================================  ==========================================================
Table 2, n x STM (+ CTM)           ``MultiTaskMambaDecodeHead`` (``num_stm_blocks``, ``use_ctm``)
Table 2, "Multi-task 2xSwin"       ``block='swin'`` (two standard Swin blocks, no CTM)
Table 3, "MFE -> W-MSA"            ``mixer='wmsa'``
Table 4, "Linear -> W-MSA"         ``gate='attention'``
Table 5, g = 0 / g = 1             ``MultiTaskMambaDecodeHead`` (``ctm_gate``)
================================  ==========================================================
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn

from mmmt.registry import MODELS
from ..layers import (AttentionGatedSS2D, CrossTaskMixerBlock, MixerBlock, STMBlock,
                      SwinBlock2d, WindowAttentionMixer)
from .mtmamba_head import MultiTaskMambaDecodeHead

__all__ = ['MTMambaVariantHead', 'stage_drop_paths']


def stage_drop_paths(drop_path_rate: float, blocks_per_stage: int,
                     num_stages: int = 3) -> List[List[float]]:
    """The reference's decoder stochastic depth: linear from ``drop_path_rate`` to 0 over all
    blocks, coarsest stage first, split per stage (3 x [STM, STM, CTM] = 9 slots for MTMamba)."""
    total = num_stages * blocks_per_stage
    if total == 0:
        return [[] for _ in range(num_stages)]
    rates = torch.linspace(drop_path_rate, 0, total).tolist() if total > 1 \
        else [drop_path_rate]
    return [rates[s * blocks_per_stage:(s + 1) * blocks_per_stage] for s in range(num_stages)]


def stage_widths(in_channels: Sequence[int]) -> List[int]:
    """Decoder stage widths, coarsest first: the widths of backbone levels 2, 1, 0."""
    return [in_channels[2], in_channels[1], in_channels[0]]


@MODELS.register_module()
class MTMambaVariantHead(MultiTaskMambaDecodeHead):
    """The MTMamba decoder with window attention in place of its SSM parts, or Swin blocks.

    Args:
        in_channels (Sequence[int]): Backbone widths. Defaults to Swin-L's.
        tasks (dict): Task name -> output channels.
        block (str): 'stm' (STM blocks, with ``mixer``/``gate`` variants) or 'swin' (standard
            Swin blocks alternating W-MSA / SW-MSA with MLP ratio 4; the "2xSwin" decoder).
            Defaults to 'stm'.
        mixer (str): 'mfe' (the SS2D-based MFE) or 'wmsa' (window attention) in every STM and
            CTM block. Defaults to 'mfe'.
        gate (str): 'linear' or 'attention' (W-MSA before the gate's Linear) in every STM and
            CTM block. Defaults to 'linear'.
        num_stm_blocks (int): Blocks per task and stage. Defaults to 2.
        use_ctm (bool): Cross-task block per stage (not with ``block='swin'``). Defaults to True.
        ctm_gate (float, optional): Fixed CTM gate. Defaults to None (learned).
        num_heads (Sequence[int], optional): Attention heads per stage, coarsest first.
            Defaults to width // 32 (the encoder's heads at that resolution: 24, 12, 6 for
            Swin-L).
        window_size (int): Window of the attention ablations (``mixer``/``gate``). Defaults to
            8, the value that reproduces the paper's parameter counts.
        swin_window_size (int): Window of the Swin blocks. Defaults to 12 (the encoder's; the
            paper's 303.18 M needs it).
        drop_path_rate (float): Largest decoder stochastic-depth rate. Defaults to 0.2.
        **kwargs: As for :class:`MultiTaskMambaDecodeHead` (``d_state``, ``ssm_ratio``,
            ``dt_rank``, ``task_losses``, ``loss_combiner``, ...).
    """

    def __init__(self,
                 in_channels: Sequence[int] = (192, 384, 768, 1536),
                 tasks: Optional[Dict[str, int]] = None,
                 block: str = 'stm',
                 mixer: str = 'mfe',
                 gate: str = 'linear',
                 num_stm_blocks: int = 2,
                 use_ctm: bool = True,
                 ctm_gate: Optional[float] = None,
                 num_heads: Optional[Sequence[int]] = None,
                 window_size: int = 8,
                 swin_window_size: int = 12,
                 drop_path_rate: float = 0.2,
                 d_state: int = 16,
                 ssm_ratio: int = 2,
                 dt_rank: Union[int, str] = 'auto',
                 **kwargs) -> None:
        if block not in ('stm', 'swin'):
            raise ValueError(f"block must be 'stm' or 'swin', got {block!r}")
        if mixer not in ('mfe', 'wmsa') or gate not in ('linear', 'attention'):
            raise ValueError(f"mixer must be 'mfe'|'wmsa' and gate 'linear'|'attention', got "
                             f'{mixer!r}, {gate!r}')
        if block == 'swin' and (use_ctm or mixer != 'mfe' or gate != 'linear'):
            raise ValueError("block='swin' is the plain 2xSwin decoder: set use_ctm=False and "
                             'leave mixer/gate at their defaults')
        # The parent builds the patch expands, skip fusion and output heads; its stages get no
        # blocks, which are filled in below.
        super().__init__(
            in_channels=in_channels, tasks=tasks, d_state=d_state, ssm_ratio=ssm_ratio,
            dt_rank=dt_rank, num_stm_blocks=0, use_ctm=False, drop_path_rate=drop_path_rate,
            **kwargs)
        self.block_type, self.mixer, self.gate = block, mixer, gate
        widths = stage_widths(self.in_channels)
        num_heads = list(num_heads or [c // 32 for c in widths])
        if len(num_heads) != 3 or min(num_heads) < 1:
            raise ValueError(f'num_heads must give 3 positive head counts, got {num_heads}')
        ssm_kwargs = dict(d_state=d_state, ssm_ratio=ssm_ratio, dt_rank=dt_rank)
        rates = stage_drop_paths(drop_path_rate, num_stm_blocks + int(use_ctm))

        for s, stage in enumerate(self.stages):
            width, heads = widths[s], num_heads[s]

            def make_block(i):
                if block == 'swin':
                    return SwinBlock2d(width, heads, window_size=swin_window_size,
                                       shift=i % 2 == 1, drop_path=rates[s][i])
                if mixer == 'mfe' and gate == 'linear':
                    return STMBlock(width, drop_path=rates[s][i], **ssm_kwargs)
                if mixer == 'wmsa':
                    op = WindowAttentionMixer(width, heads, window_size, gated=True,
                                              ssm_ratio=ssm_ratio)
                else:
                    op = AttentionGatedSS2D(width, heads, window_size, **ssm_kwargs)
                return MixerBlock(width, op, drop_path=rates[s][i])

            stage.stm_blocks = nn.ModuleDict({
                t: nn.Sequential(*[make_block(i) for i in range(num_stm_blocks)])
                for t in self.tasks
            })
            if use_ctm:
                stage.ctm = CrossTaskMixerBlock(
                    width, self.tasks, heads, window_size, mixer=mixer, gate=gate,
                    drop_path=rates[s][-1], fixed_gate=ctm_gate, **ssm_kwargs)
