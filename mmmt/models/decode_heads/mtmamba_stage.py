"""One stage of the MTMamba decoder, built from block configs."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp

from ..layers import PatchExpand, build_block

__all__ = ['MTMambaDecoderStage', 'stage_drop_paths']


def stage_drop_paths(drop_path_rate: float, blocks_per_stage: int,
                     num_stages: int = 3) -> List[List[float]]:
    """The decoder's stochastic depth: linear from ``drop_path_rate`` to 0 over all blocks,
    coarsest stage first, split per stage (3 x [STM, STM, CTM] = 9 slots for MTMamba)."""
    total = num_stages * blocks_per_stage
    rates = torch.linspace(drop_path_rate, 0, total).tolist() if total > 1 \
        else [drop_path_rate] * total
    return [rates[s * blocks_per_stage:(s + 1) * blocks_per_stage] for s in range(num_stages)]


class MTMambaDecoderStage(nn.Module):
    """Per task: 2x PatchExpand, skip fusion, a chain of blocks; then one cross-task block.

    Every block is built from its config through ``mmmt.registry.MODELS`` (in scope
    ``mmmt``), so MTMamba, MTMamba++ and the ablations differ only in the configs they pass.

    Args:
        in_channels (int): Width of the stage input; the output width is half of it and must be
            the width of the skip feature.
        tasks (Sequence[str]): Task names (their order is the cross-task concatenation order).
        blocks (Sequence[dict]): One config per per-task block (e.g. ``dict(type='STMBlock',
            drop_path=0.2)``); ``embed_dims`` is filled in. Defaults to none.
        cross_task (dict, optional): Config of the block across tasks (``CTMBlock``,
            ``SCTMBlock``, ...); ``embed_dims`` and ``tasks`` are filled in. None: no such block.
        skip_fuse (dict): Config of the ``[upsampled, skip] (2C) -> C`` fusion;
            ``in_channels``/``out_channels`` are filled in. Defaults to ``LinearNHWC``
            (MTMamba's Linear with bias); MTMamba++ uses ``PointwiseConvNHWC``.
        with_cp (bool): Recompute the blocks in the backward pass to save memory.
    """

    def __init__(self,
                 in_channels: int,
                 tasks: Sequence[str],
                 blocks: Sequence[dict] = (),
                 cross_task: Optional[dict] = None,
                 skip_fuse: dict = dict(type='LinearNHWC'),
                 with_cp: bool = False) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.with_cp = with_cp
        channels = in_channels // 2
        self.upsample = nn.ModuleDict({t: PatchExpand(in_channels) for t in self.tasks})
        self.skip_fuse = nn.ModuleDict({
            t: build_block(skip_fuse, in_channels=2 * channels, out_channels=channels)
            for t in self.tasks
        })
        self.stm_blocks = nn.ModuleDict({
            t: nn.Sequential(*[build_block(cfg, embed_dims=channels) for cfg in blocks])
            for t in self.tasks
        })
        self.ctm = None if cross_task is None else build_block(
            cross_task, embed_dims=channels, tasks=self.tasks)

    def _run(self, module: nn.Module, x):
        if self.with_cp and self.training and torch.is_grad_enabled():
            return cp.checkpoint(module, x, use_reentrant=False)
        return module(x)

    def forward(self, feats: Dict[str, torch.Tensor],
                skip: torch.Tensor) -> Dict[str, torch.Tensor]:
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
