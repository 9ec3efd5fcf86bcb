"""The MTMamba++ multi-task decoder (docs/differences.md)."""
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model.weight_init import trunc_normal_
from mmseg.utils import ConfigType

from mmmt.registry import MODELS
from ..layers import PointwiseConvNHWC, SCTMBlock, STMBlock
from .mtmamba_head import MultiTaskMambaDecodeHead
from .mtmamba_variants import stage_drop_paths, stage_widths

__all__ = ['MTMambaPlusDecodeHead']


@MODELS.register_module()
class MTMambaPlusDecodeHead(MultiTaskMambaDecodeHead):
    """MTMamba++ decoder: STM blocks, semantic-aware cross-task blocks, convolutional heads.

    Differences from :class:`MultiTaskMambaDecodeHead` (docs/differences.md):

    * skip fusion ``[upsampled, skip] -> Conv1x1 (2C -> C, bias)`` instead of a Linear
      (:class:`~mmmt.models.layers.PointwiseConvNHWC`, same arithmetic);
    * the cross-task block of each stage is :class:`~mmmt.models.layers.SCTMBlock` (S-CTM: the
      cross SS2D takes delta, B and C from a shared feature); the released code has no F-CTM;
    * per-task head ``Conv3x3 (C0 -> head_channels, bias; trunc-normal std 0.02) -> BN ->
      ReLU -> Conv1x1 (-> n_out)`` on the stride-4 map, then 4x bilinear upsampling, instead of
      FinalPatchExpand_X4 + Conv1x1.

    The stage layout, the STM blocks and the stochastic-depth slots (0.2 -> 0 over
    3 x [STM, STM, S-CTM]) are MTMamba's.

    Args:
        in_channels (Sequence[int]): Backbone widths. Defaults to Swin-L's.
        tasks (dict): Task name -> output channels.
        num_stm_blocks (int): STM blocks per task and stage. Defaults to 2.
        head_channels (int): Width of the head's 3x3 conv. Defaults to 96.
        norm_cfg (dict): Norm of the heads: ``dict(type='SyncBN')`` for multi-GPU training as
            the reference, ``dict(type='BN')`` (default) otherwise (SyncBN needs CUDA).
        drop_path_rate (float): Largest decoder stochastic-depth rate. Defaults to 0.2.
        **kwargs: As for :class:`MultiTaskMambaDecodeHead` (``d_state``, ``ssm_ratio``,
            ``dt_rank``, ``with_cp``, ``task_losses``, ``loss_combiner``, ...).
    """

    def __init__(self,
                 in_channels: Sequence[int] = (192, 384, 768, 1536),
                 tasks: Optional[Dict[str, int]] = None,
                 num_stm_blocks: int = 2,
                 head_channels: int = 96,
                 norm_cfg: ConfigType = dict(type='BN', requires_grad=True),
                 drop_path_rate: float = 0.2,
                 d_state: int = 16,
                 ssm_ratio: int = 2,
                 dt_rank: Union[int, str] = 'auto',
                 **kwargs) -> None:
        for key in ('use_ctm', 'ctm_gate'):
            if key in kwargs:
                raise TypeError(f'MTMambaPlusDecodeHead has no {key!r} option')
        # The parent builds the patch expands and the losses; blocks, skip fusion and output
        # heads are MTMamba++'s and replace the parent's below.
        super().__init__(
            in_channels=in_channels, tasks=tasks, d_state=d_state, ssm_ratio=ssm_ratio,
            dt_rank=dt_rank, num_stm_blocks=0, use_ctm=False, drop_path_rate=drop_path_rate,
            norm_cfg=norm_cfg, **kwargs)
        ssm_kwargs = dict(d_state=d_state, ssm_ratio=ssm_ratio, dt_rank=dt_rank)
        rates = stage_drop_paths(drop_path_rate, num_stm_blocks + 1)
        for s, (stage, width) in enumerate(zip(self.stages, stage_widths(self.in_channels))):
            stage.skip_fuse = nn.ModuleDict(
                {t: PointwiseConvNHWC(2 * width, width)
                 for t in self.tasks})
            stage.stm_blocks = nn.ModuleDict({
                t: nn.Sequential(*[
                    STMBlock(width, drop_path=rates[s][i], **ssm_kwargs)
                    for i in range(num_stm_blocks)
                ])
                for t in self.tasks
            })
            stage.ctm = SCTMBlock(width, self.tasks, drop_path=rates[s][-1], **ssm_kwargs)

        finest = self.in_channels[0]
        del self.final_expand
        self.final_conv = nn.ModuleDict(
            {t: self._make_head_conv(finest, head_channels)
             for t in self.tasks})
        self.final_project = nn.ModuleDict({
            t: nn.Conv2d(head_channels, self.task_channels[t], kernel_size=1)
            for t in self.tasks
        })

    def _make_head_conv(self, in_channels: int, channels: int) -> nn.Sequential:
        conv = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1)
        trunc_normal_(conv.weight, std=0.02)
        return nn.Sequential(
            OrderedDict(
                conv=conv,
                bn=build_norm_layer(self.norm_cfg, channels)[1],
                relu=nn.ReLU(inplace=True)))

    def forward(self, inputs: Sequence[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Decode the four backbone levels (finest first, NCHW) into task -> logits at 4x the
        finest level's size (a tensor with ``tensor_output=True``)."""
        feats = self._transform_inputs(inputs)
        x = {t: feats[3] for t in self.tasks}
        for s, stage in enumerate(self.stages):
            x = stage(x, feats[2 - s])
        logits = {}
        for t in self.tasks:
            y = self.final_project[t](self.final_conv[t](x[t]))
            logits[t] = F.interpolate(
                y, size=(4 * y.shape[2], 4 * y.shape[3]), mode='bilinear',
                align_corners=self.align_corners)
        return logits[self.tasks[0]] if self.tensor_output else logits
