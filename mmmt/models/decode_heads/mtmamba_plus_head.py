"""The MTMamba++ multi-task decoder: a configuration of :class:`MTMambaHead`."""
from typing import Dict, Optional, Sequence, Union

from mmseg.utils import ConfigType

from mmmt.registry import MODELS
from mmmt.utils.errors import InvalidOptionError, UserInputError, is_int
from .mtmamba_head import MTMambaHead

__all__ = ['MTMambaPlusHead', 'MTMambaPlusDecodeHead']


@MODELS.register_module(name=['MTMambaPlusHead', 'MTMambaPlusDecodeHead'])
class MTMambaPlusHead(MTMambaHead):
    """MTMamba++ decoder: STM blocks, semantic-aware cross-task blocks, convolutional heads.

    :class:`MTMambaHead` with these block configs (see docs/differences.md):

    * skip fusion ``[upsampled, skip] -> Conv1x1 (2C -> C, bias)`` instead of a Linear
      (``skip_fuse=dict(type='PointwiseConvNHWC')``, same arithmetic);
    * the cross-task block of each stage is :class:`~mmmt.models.layers.SCTMBlock` (S-CTM: the
      cross SS2D takes delta, B and C from a shared feature); the released code has no F-CTM;
    * per-task head ``Conv3x3 (C0 -> head_channels, bias; trunc-normal std 0.02) -> BN ->
      ReLU`` (:class:`~mmmt.models.layers.ConvNormReLU` as ``final_conv``) and the 1x1
      projection on the stride-4 map, then 4x bilinear upsampling, instead of
      FinalPatchExpand_X4 + Conv1x1.

    The stage layout, the STM blocks and the stochastic-depth slots (0.2 -> 0 over
    3 x [STM, STM, S-CTM]) are MTMamba's. ``MTMambaPlusDecodeHead`` is its earlier name.

    Args:
        in_channels (Sequence[int]): Backbone widths. Defaults to Swin-L's.
        tasks (dict): Task name -> output channels.
        num_stm_blocks (int): STM blocks per task and stage. Defaults to 2.
        head_channels (int): Width of the head's 3x3 conv. Defaults to 96.
        norm_cfg (dict): Norm of the heads: ``dict(type='SyncBN')`` for multi-GPU training as
            the reference, ``dict(type='BN')`` (default) otherwise (SyncBN needs CUDA).
        drop_path_rate (float): Largest decoder stochastic-depth rate. Defaults to 0.2.
        d_state (int): SSM state size. Defaults to 16.
        ssm_ratio (int): SS2D expansion factor. Defaults to 2.
        dt_rank (int | str): Delta projection rank, 'auto' = ceil(C / 16). Defaults to 'auto'.
        **kwargs: As for :class:`MTMambaHead` (``with_cp``, ``task_losses``,
            ``loss_combiner``, ...).
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
        for key in ('use_ctm', 'ctm_gate', 'ctm_block', 'skip_fuse', 'final_head',
                    'logits_scale'):
            if key in kwargs:
                raise InvalidOptionError(f'{type(self).__name__} has no {key!r} option (it is '
                                         'MTMambaHead with fixed blocks)')
        if not is_int(head_channels) or head_channels < 1:  # 0 built a head of empty maps
            raise UserInputError(f'{type(self).__name__}: head_channels must be an int >= 1, '
                                 f'got {head_channels!r}')
        ssm_kwargs = dict(d_state=d_state, ssm_ratio=ssm_ratio, dt_rank=dt_rank)
        super().__init__(
            in_channels=in_channels, tasks=tasks, num_stm_blocks=num_stm_blocks,
            drop_path_rate=drop_path_rate, use_ctm=True,
            ctm_block=dict(type='SCTMBlock', **ssm_kwargs),
            skip_fuse=dict(type='PointwiseConvNHWC'),
            final_head=dict(name='final_conv', type='ConvNormReLU', out_channels=head_channels,
                            norm_cfg=norm_cfg),
            logits_scale=4, **ssm_kwargs, **kwargs)
        self.norm_cfg = norm_cfg


#: The class's earlier name, kept for code using it (the registry knows both names).
MTMambaPlusDecodeHead = MTMambaPlusHead
