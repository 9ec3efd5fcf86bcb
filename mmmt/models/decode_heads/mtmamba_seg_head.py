"""The MTMamba decoder as a single-task mmseg decode head (mmseg's ``EncoderDecoder``)."""
import warnings
from typing import Optional

import torch
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS as SEG_MODELS
from mmseg.structures import build_pixel_sampler
from mmseg.utils import ConfigType

from mmmt.registry import MODELS
from mmmt.structures import IGNORE_INDEX
from mmmt.utils.errors import InvalidOptionError, UserInputError
from .mtmamba_head import MTMambaHead

__all__ = ['MTMambaSegHead']


@MODELS.register_module()
class MTMambaSegHead(MTMambaHead, BaseDecodeHead):
    """One task of :class:`MTMambaHead` under the contract of mmseg's ``BaseDecodeHead``:
    ``forward``/``predict`` return the logits tensor and the loss is mmseg's ``loss_decode`` on
    ``gt_sem_seg`` (mmseg's own ``loss_by_feat``/``predict_by_feat``).

    It is a ``BaseDecodeHead`` for mmseg's type checks but does not run its ``__init__``,
    which would build a ``conv_seg`` classifier the decoder does not use (each task has its
    ``final_project``); the attributes mmseg's methods read are set here.

    Args:
        num_classes (int, optional): Classes of the task; or give ``tasks`` with one entry.
        tasks (dict, optional): ``{name: num_classes}`` with exactly one task.
        loss_decode (dict | list): mmseg loss config(s). Defaults to mmseg's cross entropy
            averaged over non-ignored pixels.
        ignore_index (int): Label ignored by the loss. Defaults to 255.
        sampler (dict, optional): mmseg pixel sampler config.
        threshold (float, optional): mmseg's binary-segmentation threshold.
        **kwargs: As for :class:`MTMambaHead` (``in_channels``, ``num_stm_blocks``,
            ``use_ctm``, ``drop_path_rate``, ``align_corners``, ...; no loss options).
    """

    # mmseg's loss_decode replaces the per-task losses and their combination
    with_task_losses = False
    #: Set in ``__init__``; this plain class attribute replaces MTMambaHead's raising
    #: property, so the instance attribute can be assigned.
    num_classes: Optional[int] = None

    def __init__(self,
                 num_classes: Optional[int] = None,
                 tasks: Optional[dict] = None,
                 loss_decode: ConfigType = dict(
                     type='mmseg.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                     avg_non_ignore=True),
                 ignore_index: int = IGNORE_INDEX,
                 sampler: Optional[ConfigType] = None,
                 threshold: Optional[float] = None,
                 **kwargs) -> None:
        if tasks is None:
            if num_classes is None:
                raise UserInputError('MTMambaSegHead needs num_classes (or tasks=dict(name=n))')
            tasks = dict(semseg=num_classes)
        if len(tasks) != 1:
            raise UserInputError(f'MTMambaSegHead is single-task, got tasks {list(tasks)}')
        for key in ('task_losses', 'loss_combiner'):
            if key in kwargs:
                raise InvalidOptionError(f'MTMambaSegHead takes loss_decode, not {key!r}')
        super().__init__(tasks=tasks, **kwargs)
        channels = self.task_channels[self.tasks[0]]
        # what BaseDecodeHead.__init__ sets and its loss/predict methods read
        self.num_classes = channels if channels > 1 else 2
        self.out_channels = channels
        self.threshold = threshold
        self.ignore_index = ignore_index
        self.in_index, self.input_transform = [0, 1, 2, 3], 'multiple_select'
        if isinstance(loss_decode, dict):
            self.loss_decode = SEG_MODELS.build(loss_decode)  # as mmseg's own heads do
        else:
            self.loss_decode = torch.nn.ModuleList([SEG_MODELS.build(c) for c in loss_decode])
        self.sampler = None if sampler is None else build_pixel_sampler(sampler, context=self)

    def forward(self, inputs) -> torch.Tensor:
        """The task's logits (B, C, 4h, 4w) from the four backbone levels."""
        return super().forward(inputs)[self.tasks[0]]

    loss_by_feat = BaseDecodeHead.loss_by_feat
    predict_by_feat = BaseDecodeHead.predict_by_feat
    _stack_batch_gt = BaseDecodeHead._stack_batch_gt


#: mmseg ``BaseDecodeHead`` options the earlier multi-task head accepted and never used.
_UNUSED_MULTITASK_OPTIONS = ('ignore_index', 'loss_decode', 'sampler', 'threshold',
                             'dropout_ratio', 'norm_cfg', 'act_cfg', 'conv_cfg', 'channels',
                             'in_index', 'input_transform', 'num_classes', 'out_channels')


@MODELS.register_module(name='MultiTaskMambaDecodeHead')
def build_multitask_mamba_decode_head(tensor_output: bool = False, **kwargs):
    """The config name ``MultiTaskMambaDecodeHead`` of earlier releases: an
    :class:`MTMambaHead`, or with ``tensor_output=True`` (mmseg's single-task contract) an
    :class:`MTMambaSegHead`. New configs name either class directly."""
    if tensor_output:
        return MTMambaSegHead(**kwargs)
    unused = [k for k in _UNUSED_MULTITASK_OPTIONS if k in kwargs]
    if unused:
        warnings.warn(f'MultiTaskMambaDecodeHead: ignoring {unused}, options of mmseg\'s '
                      'single-task head that the multi-task head never used (remove them, '
                      'or use MTMambaSegHead for one task under mmseg)')
        for key in unused:
            kwargs.pop(key)
    return MTMambaHead(**kwargs)
