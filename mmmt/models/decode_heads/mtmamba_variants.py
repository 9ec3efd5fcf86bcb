"""MTMamba decoders with other blocks in the stages: the paper's ablations (Tables 2-5).

:class:`MTMambaVariantHead` keeps everything of :class:`MTMambaHead` (patch expands, skip
fusion, output heads, losses, pre/post-processing) and only changes the block configs of the
stages:

================================  ==========================================================
paper                              config
================================  ==========================================================
Table 2, n x STM (+ CTM)           ``MTMambaHead`` (``num_stm_blocks``, ``use_ctm``)
Table 2, "Multi-task 2xSwin"       ``block='swin'`` (two standard Swin blocks, no CTM)
Table 3, "MFE -> W-MSA"            ``mixer='wmsa'``
Table 4, "Linear -> W-MSA"         ``gate='attention'``
Table 5, g = 0 / g = 1             ``MTMambaHead`` (``ctm_gate``)
================================  ==========================================================
"""
from typing import Dict, Optional, Sequence, Union

from mmmt.registry import MODELS
from mmmt.utils.errors import InvalidOptionError, UserInputError
from .mtmamba_head import MTMambaHead

__all__ = ['MTMambaVariantHead']


@MODELS.register_module()
class MTMambaVariantHead(MTMambaHead):
    """The MTMamba decoder with window attention in place of its SSM parts, or Swin blocks.

    It only translates the ablation options into the block configs of :class:`MTMambaHead`.

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
        d_state (int): SSM state size. Defaults to 16.
        ssm_ratio (int): SS2D expansion factor (also the window-attention mixer's).
            Defaults to 2.
        dt_rank (int | str): Delta projection rank, 'auto' = ceil(C / 16). Defaults to 'auto'.
        **kwargs: As for :class:`MTMambaHead` (``task_losses``, ``loss_combiner``, ...).
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
            raise UserInputError(f"block must be 'stm' or 'swin', got {block!r}")
        if mixer not in ('mfe', 'wmsa') or gate not in ('linear', 'attention'):
            raise UserInputError(f"mixer must be 'mfe'|'wmsa' and gate 'linear'|'attention', got "
                                 f'{mixer!r}, {gate!r}')
        if block == 'swin' and (use_ctm or mixer != 'mfe' or gate != 'linear'):
            raise UserInputError("block='swin' is the plain 2xSwin decoder: set use_ctm=False and "
                                 'leave mixer/gate at their defaults')
        for key in ('stm_block', 'ctm_block'):  # else "got multiple values" from the base
            if key in kwargs:
                raise InvalidOptionError(f'{type(self).__name__} has no {key!r} option (it '
                                         'builds its blocks from block, mixer and gate)')
        if len(in_channels) != 4:  # before the widths are read (an IndexError)
            raise UserInputError(f'{type(self).__name__}: in_channels must list 4 backbone '
                                 f'widths, got {list(in_channels)}')
        widths = [in_channels[2], in_channels[1], in_channels[0]]  # stage widths, coarsest first
        num_heads = list(num_heads or [c // 32 for c in widths])
        if len(num_heads) != 3 or min(num_heads) < 1:
            raise UserInputError(f'num_heads must give 3 positive head counts, got {num_heads}')
        ssm_kwargs = dict(d_state=d_state, ssm_ratio=ssm_ratio, dt_rank=dt_rank)
        stm_block, ctm_block = [], []
        for heads in num_heads:
            attention = dict(num_heads=heads, window_size=window_size)
            if block == 'swin':
                stm_block.append([
                    dict(type='SwinBlock2d', num_heads=heads, window_size=swin_window_size,
                         shift=shift) for shift in (False, True)])
            elif mixer == 'wmsa':
                stm_block.append(dict(type='MixerBlock', op=dict(
                    type='WindowAttentionMixer', gated=True, ssm_ratio=ssm_ratio, **attention)))
            elif gate == 'attention':
                stm_block.append(dict(type='MixerBlock', op=dict(
                    type='AttentionGatedSS2D', **attention, **ssm_kwargs)))
            else:
                stm_block.append(dict(type='STMBlock', **ssm_kwargs))
            ctm_block.append(dict(type='CrossTaskMixerBlock', mixer=mixer, gate=gate,
                                  fixed_gate=ctm_gate, **attention, **ssm_kwargs))
        super().__init__(
            in_channels=in_channels, tasks=tasks, num_stm_blocks=num_stm_blocks,
            use_ctm=use_ctm, stm_block=stm_block, ctm_block=ctm_block,
            drop_path_rate=drop_path_rate, **ssm_kwargs, **kwargs)
        self.block_type, self.mixer, self.gate = block, mixer, gate
