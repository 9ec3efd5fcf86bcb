"""The MTMamba multi-task decoder: stages built from block configs, one head per task."""
from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.utils import ConfigType, SampleList

from mmmt.registry import MODELS
from mmmt.structures import TASKS, get_task, ordered_tasks
from mmmt.utils.errors import (UnknownNameError, UserInputError, is_int, is_number,
                               registry_miss_message)
from ..layers import build_block
from .mtmamba_stage import MTMambaDecoderStage, stage_drop_paths

__all__ = ['MTMambaHead', 'MultiTaskMambaDecodeHead']

BlockCfg = Union[dict, Sequence[dict]]


def _per_stage(cfg: Union[BlockCfg, Sequence[BlockCfg]], name: str) -> List[BlockCfg]:
    """A block config for every stage: one dict (all stages) or a sequence of three."""
    if isinstance(cfg, dict):
        return [cfg] * 3
    cfg = list(cfg)
    if len(cfg) != 3:
        raise UserInputError(f'{name} must be a config dict or one entry per stage (3), got '
                             f'{len(cfg)} entries')
    return cfg


def _build_loss(task: str, cfg: ConfigType, given: bool) -> nn.Module:
    """Build a task's loss; a ``type`` no registry knows is named with the task and where the
    loss came from (a task definition's ``loss`` is not checked when the task is registered:
    its module may be imported later)."""
    try:
        return MODELS.build(cfg)
    except KeyError as e:
        loss_type = cfg.get('type') if isinstance(cfg, Mapping) else None
        miss = registry_miss_message(e)
        if miss is None or not isinstance(loss_type, str) or MODELS.get(loss_type) is not None:
            raise  # a KeyError of the loss itself, or a type found under another scope
        source = ('decode_head.task_losses' if given else
                  "the loss of the task's definition, register_task / custom_tasks")
        # the registry's message (closest names, scopes, custom_imports), and whose loss it is
        raise UnknownNameError(f'task {task!r}, loss from {source}: {miss}') from None


@MODELS.register_module()
class MTMambaHead(BaseModule):
    """MTMamba decoder (ECCV 2024): three Mamba stages with cross-task blocks, per-task heads.

    From the coarsest backbone feature, each of three stages upsamples every task's feature 2x,
    fuses the encoder skip of that resolution, applies ``num_stm_blocks`` per-task blocks and
    one cross-task block over all tasks. A final layer per task (4x patch expansion for
    MTMamba) and a 1x1 convolution give logits at 4x the finest feature map (the input size for
    Swin).

    Every block is built from a config through ``mmmt.registry.MODELS``; MTMamba++
    (:class:`MTMambaPlusHead`) and the paper's ablations (:class:`MTMambaVariantHead`) are
    other configs of this class. The stochastic-depth rates (:func:`stage_drop_paths`) and
    ``embed_dims`` / ``tasks`` are filled into the block configs here.

    Args:
        in_channels (Sequence[int]): Widths of the four backbone levels (strides 4..32), each
            twice the previous. Defaults to Swin-L's (192, 384, 768, 1536).
        tasks (dict): Task name -> output channels, e.g.
            ``dict(semseg=40, depth=1, normals=3, edge=1)``. Registered tasks are ordered by
            their canonical order (``mmmt.structures.TASKS``: the reference's semseg, depth,
            human_parts, sal, normals, edge first), other names follow in config order.
        d_state (int): SSM state size. Defaults to 16.
        ssm_ratio (int): SS2D expansion factor. Defaults to 2.
        dt_rank (int | str): Delta projection rank, 'auto' = ceil(C / 16). Defaults to 'auto'.
        num_stm_blocks (int): Per-task blocks per stage. Defaults to 2.
        use_ctm (bool): Use the cross-task block in each stage. Defaults to True.
        ctm_gate (float, optional): Fix the CTM gate to a constant (Table 5 ablation).
        stm_block (dict | list, optional): Config of the per-task blocks: one dict, or one
            entry per stage (coarsest first), each a dict or a list of dicts used in turn
            (block i takes entry ``i % len``). Defaults to ``STMBlock`` with the SSM options.
        ctm_block (dict | list, optional): Config of the cross-task block (or one per stage).
            Defaults to ``CTMBlock`` with the SSM options and ``ctm_gate``.
        skip_fuse (dict): Config of the skip fusion. Defaults to ``dict(type='LinearNHWC')``.
        final_head (dict): Config of the per-task layer before the 1x1 projection (NCHW in
            and out; its ``out_channels`` is the projection's input). ``name`` is the attribute
            (and checkpoint prefix) it lives under. Defaults to MTMamba's
            ``FinalPatchExpandX4`` as ``final_expand``.
        logits_scale (int): Bilinear upsampling of the logits after the projection (4 for
            MTMamba++'s stride-4 heads). Defaults to 1.
        drop_path_rate (float): Largest stochastic-depth rate; rates decay linearly to 0 over
            all blocks, coarsest first (reference: 0.2 over 9 slots). Defaults to 0.2.
        with_cp (bool): Activation checkpointing of the decoder blocks. Defaults to False.
        task_losses (dict, optional): Task -> loss config; other tasks use the ``loss`` of
            their definition in ``mmmt.structures.TASKS`` (the reference's for its tasks).
        loss_combiner (dict): Config of the multi-task combination.
            Defaults to ``dict(type='MultiTaskLoss', scheme='log')``.
        align_corners (bool): Of every bilinear resize. Defaults to False.
        init_cfg (dict, optional): Initialisation config.
    """

    #: Whether the head builds ``task_losses`` and ``loss_combiner`` (its own loss).
    with_task_losses = True

    @property
    def num_classes(self) -> int:
        """Not defined: the head predicts one map per task (``task_channels``).

        mmseg's ``EncoderDecoder`` reads ``decode_head.num_classes`` while it builds; without
        this property its error was only "'MTMambaHead' object has no attribute
        'num_classes'". It raises :class:`UserInputError` (not ``AttributeError``, which
        ``nn.Module.__getattr__`` would replace by that bare message) naming the two fixes.
        """
        name = type(self).__name__
        raise UserInputError(
            f'{name} predicts a dict of task maps ({", ".join(self.tasks)}) and has no single '
            f'num_classes, which mmseg\'s EncoderDecoder needs: for several tasks use '
            f"model=dict(type='mmmt.MultiTaskEncoderDecoder', ...); inside mmseg's "
            f"EncoderDecoder use decode_head=dict(type='mmmt.MTMambaSegHead', num_classes=...) "
            '(one task, a tensor output)')

    def __init__(self,
                 in_channels: Sequence[int] = (192, 384, 768, 1536),
                 tasks: Optional[Dict[str, int]] = None,
                 d_state: int = 16,
                 ssm_ratio: int = 2,
                 dt_rank: Union[int, str] = 'auto',
                 num_stm_blocks: int = 2,
                 use_ctm: bool = True,
                 ctm_gate: Optional[float] = None,
                 stm_block: Optional[Union[BlockCfg, Sequence[BlockCfg]]] = None,
                 ctm_block: Optional[Union[dict, Sequence[dict]]] = None,
                 skip_fuse: ConfigType = dict(type='LinearNHWC'),
                 final_head: ConfigType = dict(
                     name='final_expand', type='FinalPatchExpandX4', nchw_output=True),
                 logits_scale: int = 1,
                 drop_path_rate: float = 0.2,
                 with_cp: bool = False,
                 task_losses: Optional[Dict[str, ConfigType]] = None,
                 loss_combiner: ConfigType = dict(type='MultiTaskLoss', scheme='log'),
                 align_corners: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        name = type(self).__name__
        if not tasks or not isinstance(tasks, Mapping):
            raise UserInputError(f'{name}: `tasks` must map task names to output channels, e.g. '
                                 f'dict(semseg=40, depth=1, normals=3, edge=1), got {tasks!r}')
        for t, n in tasks.items():
            # int() would truncate 40.5 to 40 and fail on '40x' with a bare ValueError
            if not is_int(n) or n < 1:
                raise UserInputError(f'{name}: tasks[{t!r}] must be a number of output channels '
                                     f'(an int >= 1), got {n!r}')
        # checked here: each failed in forward (or in torch) with an error naming no option,
        # and a drop_path_rate >= 1 made DropPath scale the branch by a negative factor
        for option, value, ok, expected in (
                ('num_stm_blocks', num_stm_blocks, lambda v: v >= 0, 'an int >= 0'),
                ('logits_scale', logits_scale, lambda v: v >= 1, 'an int >= 1'),
                ('d_state', d_state, lambda v: v >= 1, 'an int >= 1'),
                ('ssm_ratio', ssm_ratio, lambda v: v >= 1, 'an int >= 1')):
            if not is_int(value) or not ok(value):
                raise UserInputError(f'{name}: {option} must be {expected}, got {value!r}')
        if not is_number(drop_path_rate) or not 0 <= drop_path_rate < 1:
            raise UserInputError(f'{name}: drop_path_rate must be a number in [0, 1), got '
                                 f'{drop_path_rate!r}')
        if not (dt_rank == 'auto' or (is_int(dt_rank) and dt_rank >= 1)):
            raise UserInputError(f"{name}: dt_rank must be 'auto' or an int >= 1, got "
                                 f'{dt_rank!r}')
        if not isinstance(final_head, Mapping) or 'name' not in final_head:
            raise UserInputError(f'{name}: final_head must be a config with a `name` (the '
                                 "attribute it lives under), e.g. dict(name='final_expand', "
                                 "type='FinalPatchExpandX4', nchw_output=True), got "
                                 f'{final_head!r}')
        if 'out_channels' in final_head and not (is_int(final_head['out_channels'])
                                                 and final_head['out_channels'] >= 1):
            # else a negative-dimension error inside torch, or (0) a head of empty maps
            raise UserInputError(f'{name}: final_head.out_channels must be an int >= 1, got '
                                 f"{final_head['out_channels']!r}")
        in_channels = list(in_channels)
        if len(in_channels) != 4 or any(in_channels[i + 1] != 2 * in_channels[i]
                                        for i in range(3)):
            raise UserInputError(f'{name}: in_channels must list 4 backbone widths, each twice the '
                                 f'previous, got {in_channels}')
        BaseModule.__init__(self, init_cfg=init_cfg)  # not super(): see MTMambaSegHead's MRO
        self.in_channels = in_channels
        self.align_corners = align_corners
        self.tasks = ordered_tasks(tasks)
        self.task_channels = {t: int(tasks[t]) for t in self.tasks}
        for t, n in self.task_channels.items():
            fixed = getattr(get_task(t), 'out_channels', None)
            if fixed is not None and n != fixed:
                raise UserInputError(f'{name}: tasks[{t!r}] = {n}, but a {t} prediction has '
                                     f'{fixed} channel(s) (its task definition)')
        self.logits_scale = logits_scale

        ssm_kwargs = dict(d_state=d_state, ssm_ratio=ssm_ratio, dt_rank=dt_rank)
        stm = _per_stage(stm_block or dict(type='STMBlock', **ssm_kwargs), 'stm_block')
        ctm = _per_stage(ctm_block or dict(type='CTMBlock', fixed_gate=ctm_gate, **ssm_kwargs),
                         'ctm_block')
        rates = stage_drop_paths(drop_path_rate, num_stm_blocks + int(use_ctm))
        stages = []
        for s in range(3):
            templates = [stm[s]] if isinstance(stm[s], dict) else list(stm[s])
            blocks = [dict(templates[i % len(templates)], drop_path=rates[s][i])
                      for i in range(num_stm_blocks)]
            cross = dict(ctm[s], drop_path=rates[s][-1]) if use_ctm else None
            stages.append(MTMambaDecoderStage(
                in_channels[3 - s], self.tasks, blocks=blocks, cross_task=cross,
                skip_fuse=skip_fuse, with_cp=with_cp))
        self.stages = nn.ModuleList(stages)

        final_head = dict(final_head)
        self.final_name = final_head.pop('name')
        # the projection first: MTMamba's construction (and so its seeded initialisation) order
        head_channels = final_head.get('out_channels', in_channels[0])
        self.final_project = nn.ModuleDict({
            t: nn.Conv2d(head_channels, self.task_channels[t], kernel_size=1)
            for t in self.tasks
        })
        self.add_module(self.final_name, nn.ModuleDict({
            t: build_block(final_head, in_channels=in_channels[0])
            for t in self.tasks
        }))
        if self.with_task_losses:
            self._build_losses(task_losses, loss_combiner)

    def _build_losses(self, task_losses: Optional[Dict[str, ConfigType]],
                      loss_combiner: ConfigType) -> None:
        task_losses = dict(task_losses or {})
        given = set(task_losses)
        unknown = set(task_losses) - set(self.tasks)
        if unknown:
            raise UserInputError(f'task_losses given for unknown tasks {sorted(unknown)}; '
                                 f'tasks are {self.tasks}')
        for t in self.tasks:
            if t not in task_losses:
                spec = get_task(t)
                if spec is None:
                    raise UserInputError(
                        f'decode_head.tasks: {t!r} is not a registered task (registered: '
                        f'{", ".join(TASKS)}); check the name, or define the task (in '
                        'custom_tasks or a custom_imports module, docs/how_to_add_a_task.md)')
                if spec.loss is None:
                    raise UserInputError(f'task {t!r} has no default loss: add it to task_losses '
                                         '(or register the task with a loss)')
                # scope-qualified: the head may be built under another default scope
                # (default_scope='mmseg' in a plain mmseg config)
                task_losses[t] = dict(spec.loss, _scope_='mmmt')
        self.task_losses = nn.ModuleDict(
            {t: _build_loss(t, task_losses[t], given=t in given) for t in self.tasks})
        loss_combiner = dict(loss_combiner, tasks=self.tasks)
        loss_combiner.setdefault('_scope_', 'mmmt')  # loss combiners exist only in mmmt
        self.loss_combiner = MODELS.build(loss_combiner)

    def forward(self, inputs: Sequence[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Decode the four backbone levels.

        Args:
            inputs (Sequence[Tensor]): Backbone features, finest first, NCHW.

        Returns:
            dict[str, Tensor]: task -> logits (B, C_t, 4h, 4w) with (h, w) the finest level's
            size.
        """
        feats = list(inputs)[:4]
        widths = [f.shape[1] if f.dim() == 4 else None for f in feats]
        if widths != self.in_channels:  # else a bare 'mat1 and mat2 shapes' or IndexError
            raise UserInputError(
                f'{type(self).__name__}: the backbone gives {len(list(inputs))} feature '
                f'level(s) of {widths} channels, decode_head.in_channels is '
                f'{self.in_channels}: set in_channels to the backbone\'s widths (and its '
                'out_indices=(0, 1, 2, 3))')
        x = {t: feats[3] for t in self.tasks}
        for s, stage in enumerate(self.stages):
            x = stage(x, feats[2 - s])
        finals = getattr(self, self.final_name)
        logits = {}
        for t in self.tasks:
            y = self.final_project[t](finals[t](x[t]))
            if self.logits_scale != 1:
                y = F.interpolate(
                    y, size=(self.logits_scale * y.shape[2], self.logits_scale * y.shape[3]),
                    mode='bilinear', align_corners=self.align_corners)
            logits[t] = y
        return logits

    def loss(self, inputs: Sequence[torch.Tensor], batch_data_samples: SampleList,
             train_cfg: Optional[ConfigType] = None) -> dict:
        """The losses of a batch (``train_cfg`` is unused, as in mmseg's heads)."""
        return self.loss_by_feat(self.forward(inputs), batch_data_samples)

    def predict(self, inputs: Sequence[torch.Tensor], batch_img_metas: List[dict],
                test_cfg: Optional[ConfigType] = None):
        """Logits at the (padded) input size of the batch."""
        return self.predict_by_feat(self.forward(inputs), batch_img_metas)

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

    def loss_by_feat(self, seg_logits: Dict[str, torch.Tensor],
                     batch_data_samples: SampleList) -> dict:
        """Per-task losses combined by ``loss_combiner``.

        Logits are resized bilinearly to the ground-truth size when they differ.
        """
        per_task = {}
        for t in self.tasks:
            gt = self._stack_task_gt(t, batch_data_samples).to(seg_logits[t].device)
            logits = seg_logits[t]
            if logits.shape[2:] != gt.shape[2:]:
                logits = F.interpolate(
                    logits, size=gt.shape[2:], mode='bilinear', align_corners=self.align_corners)
            loss = self.task_losses[t](logits, gt)
            # the combiner's 'log' scheme takes the log per image: a batch scalar or a per-pixel
            # map would be accepted by its arithmetic and silently optimise another objective
            if not isinstance(loss, torch.Tensor) or tuple(loss.shape) != (gt.shape[0], ):
                got = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
                raise UserInputError(
                    f'task {t!r}: its loss {type(self.task_losses[t]).__name__} returned '
                    f'{got}; a task loss returns one value per image, shape (B,) = '
                    f'({gt.shape[0]},) (docs/how_to_add_a_task.md)')
            per_task[t] = loss
        return self.loss_combiner(per_task)

    def predict_by_feat(self, seg_logits: Dict[str, torch.Tensor],
                        batch_img_metas: List[dict]) -> Dict[str, torch.Tensor]:
        """Resize every task's logits to the (padded) input size of the batch.

        That is ``batch_input_shape`` (set by the data preprocessor); without it (a direct call
        on pipeline outputs) ``pad_shape``, the size after ``CenterPad``, as mmseg's heads
        read it, and only then ``img_shape`` (the image before the padding).
        """
        meta = batch_img_metas[0]
        size = meta.get('batch_input_shape') or meta.get('pad_shape') or meta['img_shape']
        return {
            t: F.interpolate(x, size=tuple(size[:2]), mode='bilinear',
                             align_corners=self.align_corners)
            if tuple(x.shape[2:]) != tuple(size[:2]) else x
            for t, x in seg_logits.items()
        }


#: The class's earlier name, kept for code using it (configs: see ``mtmamba_seg_head.py``).
MultiTaskMambaDecodeHead = MTMambaHead
