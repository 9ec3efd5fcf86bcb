"""Batch assembly for multi-task dense prediction."""
import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor
from mmengine.structures import PixelData

from mmmt.registry import MODELS
from mmmt.structures import IGNORE_INDEX
from mmmt.utils.errors import UserInputError

__all__ = ['MultiTaskDataPreProcessor']


@MODELS.register_module()
class MultiTaskDataPreProcessor(BaseDataPreprocessor):
    """Stack images into a batch, optionally normalise, and pad to a common size.

    mmmt's pipelines normalise and (centre-)pad in the transforms, as the reference does, so by
    default this only stacks. Images of different sizes (e.g. an inferencer over arbitrary
    photos) are padded at the bottom/right to the largest size rounded up to ``size_divisor``;
    the padding is added to each sample's ``img_padding_size`` (mmseg's
    ``[left, right, top, bottom]``) so predictions are cropped back exactly, and in training
    every ``gt_<task>`` map is padded with the ignore value.

    Args:
        mean (Sequence[float], optional): Per-channel mean to subtract (None = already done).
        std (Sequence[float], optional): Per-channel std to divide by.
        bgr_to_rgb (bool): Reverse the channel order first. Defaults to False.
        size_divisor (int, optional): Pad height and width to multiples of this (32 for the
            MTMamba decoder on a Swin backbone with inputs of arbitrary size).
        pad_val (float): Image fill value (0 = the mean colour after normalisation).
        non_blocking (bool): Copy the batch to the device asynchronously (mmengine's
            ``BaseDataPreprocessor``). Defaults to False.
    """

    def __init__(self,
                 mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None,
                 bgr_to_rgb: bool = False,
                 size_divisor: Optional[int] = None,
                 pad_val: float = 0.0,
                 non_blocking: bool = False) -> None:
        super().__init__(non_blocking)
        if (mean is None) != (std is None):
            raise UserInputError('mean and std must be given together')
        self._normalize = mean is not None
        if self._normalize and not (len(mean) == len(std) and len(mean) in (1, 3)):
            # else a bare broadcasting error at the first batch
            raise UserInputError(f'mean and std must list 1 or 3 channel values each, got '
                                 f'mean={list(mean)}, std={list(std)}')
        if size_divisor is not None and (isinstance(size_divisor, bool) or not isinstance(
                size_divisor, int) or size_divisor < 1):
            raise UserInputError(f'size_divisor must be an int >= 1 or None, got '
                                 f'{size_divisor!r}')
        if self._normalize:
            self.register_buffer('mean', torch.tensor(mean).view(-1, 1, 1), False)
            self.register_buffer('std', torch.tensor(std).view(-1, 1, 1), False)
        self.bgr_to_rgb = bgr_to_rgb
        self.size_divisor = size_divisor
        self.pad_val = pad_val

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs = data['inputs']
        samples = data.get('data_samples', None)
        if isinstance(inputs, torch.Tensor):
            inputs = list(inputs)
        images = []
        for img in inputs:
            img = img.float()
            if self.bgr_to_rgb:
                img = img.flip(0)
            if self._normalize:
                img = (img - self.mean) / self.std
            images.append(img)
        height = max(img.shape[1] for img in images)
        width = max(img.shape[2] for img in images)
        if self.size_divisor:
            height = math.ceil(height / self.size_divisor) * self.size_divisor
            width = math.ceil(width / self.size_divisor) * self.size_divisor
        batch = []
        for i, img in enumerate(images):
            extra_h, extra_w = height - img.shape[1], width - img.shape[2]
            if extra_h or extra_w:
                img = F.pad(img, (0, extra_w, 0, extra_h), value=self.pad_val)
                if samples is not None:
                    self._record_padding(samples[i], extra_h, extra_w, training)
            batch.append(img)
        if samples is not None:
            for sample in samples:
                sample.set_metainfo(dict(batch_input_shape=(height, width)))
        return dict(inputs=torch.stack(batch), data_samples=samples)

    @staticmethod
    def _record_padding(sample, extra_h: int, extra_w: int, training: bool) -> None:
        left, right, top, bottom = sample.metainfo.get('img_padding_size', (0, 0, 0, 0))
        sample.set_metainfo(
            dict(img_padding_size=[left, right + extra_w, top, bottom + extra_h]))
        if not training:
            return
        for key in list(sample.keys()):
            if key.startswith('gt_') and isinstance(sample.get(key), PixelData):
                gt = sample.get(key).data
                padded = F.pad(gt, (0, extra_w, 0, extra_h), value=IGNORE_INDEX)
                sample.set_field(PixelData(data=padded), key)
