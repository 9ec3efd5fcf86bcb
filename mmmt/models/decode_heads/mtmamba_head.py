"""The MTMamba multi-task decoder as an mmseg decode head."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.utils import ConfigType, SampleList

from mmmt.registry import MODELS
from ..layers import FinalPatchExpandX4
from ..losses import DEFAULT_TASK_LOSSES
from .mtmamba_stage import MTMambaDecoderStage

__all__ = ['MultiTaskMambaDecodeHead']

#: Canonical task order of the reference (fixes the CTM's concatenation order).
TASK_ORDER = ('semseg', 'depth', 'human_parts', 'sal', 'normals', 'edge')


def ordered_tasks(tasks: Dict[str, int]) -> List[str]:
    """Known tasks in the reference order, then any other task in config order."""
    known = [t for t in TASK_ORDER if t in tasks]
    return known + [t for t in tasks if t not in TASK_ORDER]


@MODELS.register_module()
class MultiTaskMambaDecodeHead(BaseDecodeHead):
    """MTMamba decoder (ECCV 2024): three Mamba stages with cross-task blocks, per-task heads.

    From the coarsest backbone feature, each of three stages upsamples every task's feature 2x,
    fuses the encoder skip of that resolution, applies ``num_stm_blocks`` self-task Mamba blocks
    per task and one cross-task Mamba block over all tasks. A 4x patch expansion and a 1x1
    convolution per task give logits at 4x the finest feature map (the input size for Swin).

    Args:
        in_channels (Sequence[int]): Widths of the four backbone levels (strides 4..32), each
            twice the previous. Defaults to Swin-L's (192, 384, 768, 1536).
        tasks (dict): Task name -> output channels, e.g.
            ``dict(semseg=40, depth=1, normals=3, edge=1)``. Known tasks are ordered as the
            reference orders them (semseg, depth, human_parts, sal, normals, edge).
        d_state (int): SSM state size. Defaults to 16.
        ssm_ratio (int): SS2D expansion factor. Defaults to 2.
        dt_rank (int | str): Delta projection rank, 'auto' = ceil(C / 16). Defaults to 'auto'.
        num_stm_blocks (int): STM blocks per task and stage. Defaults to 2.
        use_ctm (bool): Use the cross-task block in each stage. Defaults to True.
        ctm_gate (float, optional): Fix the CTM gate to a constant (Table 5 ablation).
        drop_path_rate (float): Largest stochastic-depth rate; rates decay linearly to 0 over
            all blocks, coarsest first (reference: 0.2 over 9 slots). Defaults to 0.2.
        with_cp (bool): Activation checkpointing of the decoder blocks. Defaults to False.
        task_losses (dict, optional): Task -> loss config; unspecified known tasks use the
            reference's loss (``mmmt.models.losses.DEFAULT_TASK_LOSSES``).
        loss_combiner (dict): Config of the multi-task combination.
            Defaults to ``dict(type='MultiTaskLoss', scheme='log')``.
        tensor_output (bool): With exactly one task, return that task's logits as a tensor from
            ``forward`` and ``predict`` and use mmseg's single-task loss (``loss_decode`` on
            ``gt_sem_seg``): the contract of mmseg's ``EncoderDecoder``. Defaults to False.
        **kwargs: Passed to mmseg's ``BaseDecodeHead`` (``loss_decode``, ``ignore_index``,
            ``align_corners``, ``threshold``, ``init_cfg``...).
    """

    def __init__(self,
                 in_channels: Sequence[int] = (192, 384, 768, 1536),
                 tasks: Optional[Dict[str, int]] = None,
                 d_state: int = 16,
                 ssm_ratio: int = 2,
                 dt_rank: Union[int, str] = 'auto',
                 num_stm_blocks: int = 2,
                 use_ctm: bool = True,
                 ctm_gate: Optional[float] = None,
                 drop_path_rate: float = 0.2,
                 with_cp: bool = False,
                 task_losses: Optional[Dict[str, ConfigType]] = None,
                 loss_combiner: ConfigType = dict(type='MultiTaskLoss', scheme='log'),
                 tensor_output: bool = False,
                 **kwargs) -> None:
        if not tasks:
            raise ValueError('MultiTaskMambaDecodeHead: `tasks` must map task names to output '
                             'channels, e.g. dict(semseg=40, depth=1, normals=3, edge=1)')
        in_channels = list(in_channels)
        if len(in_channels) != 4 or any(in_channels[i + 1] != 2 * in_channels[i]
                                        for i in range(3)):
            raise ValueError('MultiTaskMambaDecodeHead: in_channels must list 4 backbone widths, '
                             f'each twice the previous, got {in_channels}')
        if tensor_output and len(tasks) != 1:
            raise ValueError('tensor_output=True needs exactly one task, got '
                             f'{list(tasks)}')
        task_order = ordered_tasks(tasks)
        first = tasks[task_order[0]]
        kwargs.setdefault('init_cfg', None)
        kwargs.setdefault('dropout_ratio', 0.0)
        # scope-qualified, so it builds whatever the current default scope is
        kwargs.setdefault('loss_decode',
                          dict(type='mmseg.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                               avg_non_ignore=True))
        # BaseDecodeHead expects a segmentation head: give it the first task's classes (used by
        # mmseg's EncoderDecoder only in single-task mode) and drop its unused conv_seg below.
        super().__init__(
            in_channels=in_channels,
            channels=in_channels[0],
            num_classes=first if first > 1 else 2,
            out_channels=first,
            in_index=[0, 1, 2, 3],
            input_transform='multiple_select',
            **kwargs)
        del self.conv_seg
        self.tasks = task_order
        self.task_channels = {t: int(tasks[t]) for t in task_order}
        self.tensor_output = tensor_output

        num_slots = 3 * (num_stm_blocks + int(use_ctm))
        rates = torch.linspace(drop_path_rate, 0, num_slots).tolist() if num_slots > 1 \
            else [drop_path_rate]
        per_stage = num_stm_blocks + int(use_ctm)
        ssm_kwargs = dict(d_state=d_state, ssm_ratio=ssm_ratio, dt_rank=dt_rank)
        self.stages = nn.ModuleList([
            MTMambaDecoderStage(
                in_channels[3 - s],
                self.tasks,
                num_stm_blocks=num_stm_blocks,
                use_ctm=use_ctm,
                drop_paths=rates[s * per_stage:(s + 1) * per_stage],
                ctm_gate=ctm_gate,
                with_cp=with_cp,
                **ssm_kwargs) for s in range(3)
        ])
        finest = in_channels[0]
        self.final_project = nn.ModuleDict(
            {t: nn.Conv2d(finest, self.task_channels[t], kernel_size=1)
             for t in self.tasks})
        self.final_expand = nn.ModuleDict({t: FinalPatchExpandX4(finest) for t in self.tasks})

        task_losses = dict(task_losses or {})
        unknown = set(task_losses) - set(self.tasks)
        if unknown:
            raise ValueError(f'task_losses given for unknown tasks {sorted(unknown)}; '
                             f'tasks are {self.tasks}')
        for t in self.tasks:
            if t not in task_losses:
                if t not in DEFAULT_TASK_LOSSES:
                    raise ValueError(f'task {t!r} has no default loss: add it to task_losses')
                # scope-qualified: the head may be built under another default scope
                # (default_scope='mmseg' in a plain mmseg config)
                task_losses[t] = dict(DEFAULT_TASK_LOSSES[t], _scope_='mmmt')
        self.task_losses = nn.ModuleDict({t: MODELS.build(task_losses[t]) for t in self.tasks})
        loss_combiner = dict(loss_combiner, tasks=self.tasks)
        loss_combiner.setdefault('_scope_', 'mmmt')  # loss combiners exist only in mmmt
        self.loss_combiner = MODELS.build(loss_combiner)

    def forward(self, inputs: Sequence[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Decode the four backbone levels.

        Args:
            inputs (Sequence[Tensor]): Backbone features, finest first, NCHW.

        Returns:
            dict[str, Tensor]: task -> logits (B, C_t, 4h, 4w) with (h, w) the finest level's
            size; a tensor instead of the dict with ``tensor_output=True``.
        """
        feats = self._transform_inputs(inputs)
        x = {t: feats[3] for t in self.tasks}
        for s, stage in enumerate(self.stages):
            x = stage(x, feats[2 - s])
        logits = {
            t: self.final_project[t](self.final_expand[t](x[t]).permute(0, 3, 1, 2))
            for t in self.tasks
        }
        return logits[self.tasks[0]] if self.tensor_output else logits

    def _stack_task_gt(self, task: str, batch_data_samples: SampleList) -> torch.Tensor:
        gts = []
        for i, sample in enumerate(batch_data_samples):
            gt = sample.get(f'gt_{task}', None)
            if gt is None:
                raise KeyError(f'data sample {i} has no `gt_{task}`: the training pipeline must '
                               f'load ground truth for every task of the head ({self.tasks})')
            gts.append(gt.data)
        try:
            return torch.stack(gts)
        except RuntimeError as e:
            raise ValueError(f'gt_{task} maps differ in size within the batch: '
                             f'{[tuple(g.shape) for g in gts]}') from e

    def loss_by_feat(self, seg_logits: Union[Dict[str, torch.Tensor], torch.Tensor],
                     batch_data_samples: SampleList) -> dict:
        """Per-task losses combined by ``loss_combiner``.

        Logits are resized bilinearly to the ground-truth size when they differ.
        """
        if self.tensor_output:
            return super().loss_by_feat(seg_logits, batch_data_samples)
        per_task = {}
        for t in self.tasks:
            gt = self._stack_task_gt(t, batch_data_samples).to(seg_logits[t].device)
            logits = seg_logits[t]
            if logits.shape[2:] != gt.shape[2:]:
                logits = F.interpolate(
                    logits, size=gt.shape[2:], mode='bilinear', align_corners=self.align_corners)
            per_task[t] = self.task_losses[t](logits, gt)
        return self.loss_combiner(per_task)

    def predict_by_feat(self, seg_logits: Union[Dict[str, torch.Tensor], torch.Tensor],
                        batch_img_metas: List[dict]) -> Union[Dict[str, torch.Tensor],
                                                              torch.Tensor]:
        """Resize every task's logits to the (padded) input size of the batch."""
        if self.tensor_output:
            return super().predict_by_feat(seg_logits, batch_img_metas)
        size = batch_img_metas[0].get('batch_input_shape', batch_img_metas[0]['img_shape'])
        return {
            t: F.interpolate(x, size=tuple(size[:2]), mode='bilinear',
                             align_corners=self.align_corners)
            if tuple(x.shape[2:]) != tuple(size[:2]) else x
            for t, x in seg_logits.items()
        }

    def cls_seg(self, feat: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError('MultiTaskMambaDecodeHead has one classifier per task '
                                  '(final_project), no shared conv_seg')
