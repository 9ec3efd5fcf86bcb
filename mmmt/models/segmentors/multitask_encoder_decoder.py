"""Backbone + multi-task decode head, with per-task pre- and post-processing."""
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce, get_world_size
from mmengine.structures import PixelData
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig, SampleList
from torch import Tensor

from mmmt.registry import MODELS
from mmmt.structures import MultiTaskDataSample, get_task
from mmmt.structures.tasks import ACTIVATIONS
from mmmt.utils.errors import UserInputError

__all__ = ['MultiTaskEncoderDecoder', 'activate']


def activate(logits: Tensor, kind: str) -> Tensor:
    """Turn (C, H, W) logits into the task's prediction map (C', H, W).

    ``kind`` is a task's ``activation`` (``mmmt.structures.TaskSpec``)."""
    if kind == 'argmax':
        return logits.argmax(dim=0, keepdim=True)
    if kind == 'relu':  # depth in metres: the reference clamps at 0
        return logits.clamp(min=0)
    if kind == 'l2_normalize':
        return F.normalize(logits, p=2, dim=0, eps=1e-12)
    if kind == 'sigmoid':
        return logits.sigmoid()
    if kind == 'softmax_foreground':  # probability of class 1 of a 2-way softmax
        if logits.shape[0] == 1:
            return logits.sigmoid()
        return logits.softmax(dim=0)[1:2]
    if kind == 'identity':
        return logits
    raise ValueError(f'unknown activation {kind!r}')


# mmcv's RandomFlip directions: which (N, C, H, W) dims each one mirrors, and which vector
# channels (0 = x, 1 = y) of a mirrored task (normals) change sign with them.
_FLIP_DIMS = {'horizontal': ((3, ), (0, )), 'vertical': ((2, ), (1, )),
              'diagonal': ((2, 3), (0, 1))}


def _unflip(x: Tensor, direction: Optional[str], mirrored: bool) -> Tensor:
    """Undo a test-time flip of (1, C, H, W) logits; ``mirrored`` negates x/y as the flip did."""
    if direction not in _FLIP_DIMS:
        raise UserInputError(f'a flipped sample has flip_direction {direction!r}; expected one '
                             f'of {sorted(_FLIP_DIMS)} (mmcv RandomFlip)')
    dims, channels = _FLIP_DIMS[direction]
    x = x.flip(dims=dims)  # a copy, so negating below leaves the batch's logits alone
    if mirrored:
        x[:, list(channels)] *= -1
    return x


@MODELS.register_module()
class MultiTaskEncoderDecoder(BaseSegmentor):
    """A shared backbone and a multi-task decode head.

    ``mode='tensor'`` returns ``dict[task, logits]`` at the input size; ``mode='predict'`` fills
    ``pred_<task>`` (and ``<task>_logits``) of the data samples, cropped back to the original
    image (``img_padding_size``) and resized to ``ori_shape``; ``mode='loss'`` returns the head's
    loss dict.

    Args:
        backbone (dict): Backbone config, e.g. ``dict(type='mmpretrain.SwinTransformer', ...)``.
        decode_head (dict): Multi-task head config (``MTMambaHead``, ``MTMambaPlusHead``,
            ...; ``MTMambaSegHead`` for a single task).
        neck (dict, optional): Neck config.
        task_activations (dict, optional): Task -> activation turning logits into predictions
            ('argmax', 'relu', 'l2_normalize', 'sigmoid', 'softmax_foreground', 'identity');
            other tasks use the ``activation`` of their definition (``mmmt.structures.TASKS``).
        train_cfg, test_cfg (dict, optional): Passed to the head; ``test_cfg.mode`` can only
            be ``'whole'`` (mmseg's ``'slide'`` is refused, not ignored).
        data_preprocessor (dict, optional): Defaults to ``MultiTaskDataPreProcessor``.
        pretrained (str, optional): Backbone checkpoint with ``backbone.*`` keys (an
            mmpretrain classifier); sets the backbone's ``init_cfg``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: ConfigType,
                 decode_head: ConfigType,
                 neck: OptConfigType = None,
                 task_activations: Optional[Dict[str, str]] = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 pretrained: Optional[str] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='MultiTaskDataPreProcessor')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if pretrained is not None:
            # OpenMMLab checkpoints (mmpretrain classifiers, swin2mmpretrain.py) name it backbone.*
            backbone = dict(backbone, init_cfg=dict(type='Pretrained', checkpoint=pretrained,
                                                    prefix='backbone.'))
        self.backbone = MODELS.build(backbone)
        if neck is not None:
            self.neck = MODELS.build(neck)
        self.decode_head = MODELS.build(decode_head)
        self.align_corners = self.decode_head.align_corners
        self.tasks: List[str] = list(self.decode_head.tasks)
        activations = dict(task_activations or {})
        for t, kind in activations.items():  # found at predict time only, naming no option
            if t not in self.tasks:
                raise UserInputError(f'task_activations: {t!r} is not a task of the head '
                                     f'{self.tasks}')
            if kind not in ACTIVATIONS:
                raise UserInputError(f'task_activations.{t}: {kind!r} is not one of '
                                     f'{list(ACTIVATIONS)}')
        for t in self.tasks:
            if t not in activations:
                spec = get_task(t)
                if spec is None:
                    raise UserInputError(f'task {t!r} has no default activation: add it to '
                                         'task_activations (or register the task)')
                activations[t] = spec.activation
        self.task_activations = activations
        # tasks whose x/y channels change sign with a mirrored image (normals)
        self.mirrored_tasks = {t for t in self.tasks if getattr(get_task(t), 'mirror_channels',
                                                                False)}
        mode = (test_cfg or {}).get('mode', 'whole')
        if mode != 'whole':
            # the head predicts the whole (centre-padded) image; any other mode was ignored
            raise UserInputError(f"test_cfg.mode: only 'whole' is supported (the whole "
                                 f'centre-padded image, as the reference), got {mode!r}')
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        # this rank's own log values of the last parse_losses (the logged ones are averaged)
        self.rank_log_vars: Optional[Dict[str, Tensor]] = None

    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        x = self.backbone(inputs)
        if self.with_neck:
            x = self.neck(x)
        return list(x)

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Dict[str, Tensor]:
        """Logits of every task at the (padded) input size."""
        return self.decode_head.predict(self.extract_feat(inputs), batch_img_metas, self.test_cfg)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        return self.decode_head.loss(self.extract_feat(inputs), data_samples, self.train_cfg)

    def parse_losses(self, losses: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        """mmengine's sum of the loss terms, with the logged values averaged over the ranks.

        mmengine's ``BaseModel.parse_losses`` does not reduce, so in distributed training the
        log showed rank 0's batch alone (mmseg 0.x averaged the log variables over the ranks);
        the logged values are now the mean over the ranks, by one ``all_reduce`` of them all
        stacked. The returned loss, which is back-propagated, stays this rank's own: DDP
        averages its gradients, which are unchanged. This rank's own values are kept in
        :attr:`rank_log_vars` (``NonFiniteLossHook`` names the rank whose loss is not finite).

        Args:
            losses (dict[str, Tensor]): The ``mode='loss'`` outputs (``loss_<task>``,
                ``raw_<task>``, ...).

        Returns:
            tuple[Tensor, dict[str, Tensor]]: The loss and the values to log.
        """
        loss, log_vars = super().parse_losses(losses)
        self.rank_log_vars = OrderedDict((k, v.detach()) for k, v in log_vars.items())
        if get_world_size() == 1:
            return loss, log_vars
        # the keys come from the head's tasks, the same on every rank; float64 holds any
        # float dtype exactly, and each value gets its own dtype back
        values = torch.stack([v.detach().to(torch.float64) for v in log_vars.values()])
        all_reduce(values, op='mean')
        return loss, OrderedDict((k, mean.to(v.dtype)) for (k, v), mean in zip(
            self.rank_log_vars.items(), values))

    def _forward(self, inputs: Tensor, data_samples: SampleList = None) -> Dict[str, Tensor]:
        logits = self.decode_head.forward(self.extract_feat(inputs))
        if isinstance(logits, Tensor):
            logits = {self.tasks[0]: logits}
        return {
            t: F.interpolate(x, size=inputs.shape[2:], mode='bilinear',
                             align_corners=self.align_corners)
            if x.shape[2:] != inputs.shape[2:] else x
            for t, x in logits.items()
        }

    def predict(self, inputs: Tensor, data_samples: SampleList = None) -> SampleList:
        if data_samples is None:
            metas = [dict(ori_shape=inputs.shape[2:], img_shape=inputs.shape[2:],
                          pad_shape=inputs.shape[2:], img_padding_size=[0, 0, 0, 0])
                     ] * inputs.shape[0]
            data_samples = [MultiTaskDataSample(metainfo=m) for m in metas]
        metas = [s.metainfo for s in data_samples]
        logits = self.encode_decode(inputs, metas)
        if isinstance(logits, Tensor):
            logits = {self.tasks[0]: logits}
        return self.postprocess_result(logits, data_samples)

    def postprocess_result(self, seg_logits: Dict[str, Tensor],
                           data_samples: SampleList) -> SampleList:
        """Crop padding, undo a flip, resize to ``ori_shape`` and activate, per task."""
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            left, right, top, bottom = meta.get('img_padding_size',
                                                meta.get('padding_size', [0, 0, 0, 0]))
            for t, logits in seg_logits.items():
                _, _, height, width = logits.shape
                x = logits[i:i + 1, :, top:height - bottom, left:width - right]
                if meta.get('flip', False):
                    x = _unflip(x, meta.get('flip_direction', 'horizontal'),
                                t in self.mirrored_tasks)
                ori_shape = tuple(meta.get('ori_shape', x.shape[2:]))[:2]
                if tuple(x.shape[2:]) != ori_shape:
                    x = F.interpolate(x, size=ori_shape, mode='bilinear',
                                      align_corners=self.align_corners)
                x = x[0]
                sample.set_field(PixelData(data=x), f'{t}_logits')
                sample.set_field(
                    PixelData(data=activate(x, self.task_activations[t])), f'pred_{t}')
        return data_samples
