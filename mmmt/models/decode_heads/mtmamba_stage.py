"""One stage of the MTMamba decoder."""
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp

from ..layers import CTMBlock, PatchExpand, STMBlock

__all__ = ['MTMambaDecoderStage']


class MTMambaDecoderStage(nn.Module):
    """Per task: 2x PatchExpand, skip fusion, STM blocks; then one CTM block across tasks.

    Args:
        in_channels (int): Width of the stage input; the output width is half of it and must be
            the width of the skip feature.
        tasks (Sequence[str]): Task names (their order is the CTM's concatenation order).
        num_stm_blocks (int): STM blocks per task. Defaults to 2.
        use_ctm (bool): Append the cross-task block. Defaults to True.
        drop_paths (Sequence[float]): Stochastic-depth rates: one per STM block, then the CTM's.
        ctm_gate (float, optional): Fixed CTM gate (ablation), None = learned.
        with_cp (bool): Recompute the blocks in the backward pass to save memory.
        **ssm_kwargs: SS2D options (``d_state``, ``ssm_ratio``, ``dt_rank``).
    """

    def __init__(self,
                 in_channels: int,
                 tasks: Sequence[str],
                 num_stm_blocks: int = 2,
                 use_ctm: bool = True,
                 drop_paths: Optional[Sequence[float]] = None,
                 ctm_gate: Optional[float] = None,
                 with_cp: bool = False,
                 **ssm_kwargs) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.with_cp = with_cp
        channels = in_channels // 2
        drop_paths = list(drop_paths or [0.0] * (num_stm_blocks + int(use_ctm)))
        if len(drop_paths) != num_stm_blocks + int(use_ctm):
            raise ValueError(f'expected {num_stm_blocks + int(use_ctm)} drop-path rates, got '
                             f'{len(drop_paths)}')
        self.upsample = nn.ModuleDict({t: PatchExpand(in_channels) for t in self.tasks})
        # [upsampled decoder feature, encoder skip] -> C, with bias (docs/differences.md)
        self.skip_fuse = nn.ModuleDict({t: nn.Linear(2 * channels, channels) for t in self.tasks})
        self.stm_blocks = nn.ModuleDict({
            t: nn.Sequential(*[
                STMBlock(channels, drop_path=drop_paths[i], **ssm_kwargs)
                for i in range(num_stm_blocks)
            ])
            for t in self.tasks
        })
        self.ctm = CTMBlock(
            channels, self.tasks, drop_path=drop_paths[-1], fixed_gate=ctm_gate,
            **ssm_kwargs) if use_ctm else None

    def _run(self, module: nn.Module, x):
        if self.with_cp and self.training and torch.is_grad_enabled():
            return cp.checkpoint(module, x, use_reentrant=False)
        return module(x)

    def forward(self, feats: Dict[str, torch.Tensor], skip: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Args:
            feats: task -> (B, in_channels, h, w) NCHW.
            skip: (B, in_channels / 2, 2h, 2w) NCHW encoder feature.

        Returns:
            task -> (B, in_channels / 2, 2h, 2w) NCHW.
        """
        skip = skip.permute(0, 2, 3, 1)
        outs = {}
        for t in self.tasks:
            up = self.upsample[t](feats[t])
            if up.shape[1:3] != skip.shape[1:3]:
                raise ValueError(
                    f'decoder feature {tuple(up.shape[1:3])} and skip feature '
                    f'{tuple(skip.shape[1:3])} differ in size: the input height and width must '
                    'be multiples of 32 (set size_divisor=32 in the data preprocessor)')
            x = self.skip_fuse[t](torch.cat([up, skip], dim=-1))
            for block in self.stm_blocks[t]:
                x = self._run(block, x)
            outs[t] = x
        if self.ctm is not None:
            outs = self._run(self.ctm, outs)
        return {t: x.permute(0, 3, 1, 2).contiguous() for t, x in outs.items()}
