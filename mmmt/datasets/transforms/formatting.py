"""Packing of a multi-task sample into ``inputs`` and a :class:`MultiTaskDataSample`."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmmt.registry import TRANSFORMS
from mmmt.structures import MultiTaskDataSample, get_task

__all__ = ['PackMultiTaskInputs']


@TRANSFORMS.register_module()
class PackMultiTaskInputs(BaseTransform):
    """Pack the image and every task's ground truth for the model.

    ``inputs`` is the (C, H, W) float32 image tensor (already normalised in the pipeline).
    ``data_samples`` is a :class:`~mmmt.structures.MultiTaskDataSample` with ``gt_<task>``
    (C, H, W) for each task in ``results['tasks']`` that has a ``gt_<task>`` array: int64 for
    tasks whose definition (``mmmt.structures.TASKS``) has ``label_dtype='int64'``
    (semseg/human_parts), float32 otherwise (conventions in the data sample's docstring). A
    registered task's map must have its ``gt_channels`` channels.

    Metainfo (missing keys get these defaults):

    - ``img_path``, ``img_id``: the source file and sample id;
    - ``ori_shape``: (H, W) of the image file;
    - ``img_shape``: (H, W) after scaling/cropping, before padding;
    - ``pad_shape``: (H, W) of ``inputs`` (default ``img_shape``);
    - ``img_padding_size``: ``[left, right, top, bottom]`` (default zeros), read by mmseg's
      ``BaseSegmentor.postprocess_result`` to crop predictions back;
    - ``flip`` (default False), ``flip_direction`` (None);
    - ``scale_factor``: (w, h) resize ratios (default (1.0, 1.0));
    - ``tasks``: list of task names.

    Args:
        meta_keys (Sequence[str]): Keys copied into the metainfo.
    """

    def __init__(self,
                 meta_keys: Sequence[str] = ('img_path', 'img_id', 'ori_shape', 'img_shape',
                                             'pad_shape', 'img_padding_size', 'flip',
                                             'flip_direction', 'scale_factor', 'tasks')
                 ) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        inputs = torch.from_numpy(
            np.ascontiguousarray(img.transpose(2, 0, 1)).astype(np.float32, copy=False))

        sample = MultiTaskDataSample()
        tasks = list(results.get('tasks', []))
        for task in tasks:
            arr = results.get(f'gt_{task}')
            if arr is None:
                continue
            arr = np.asarray(arr)
            arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
            spec = get_task(task)
            if spec is not None and arr.shape[0] != spec.gt_channels:
                raise ValueError(f"gt_{task} of {results.get('img_path', 'a sample')} has "
                                 f'{arr.shape[0]} channels; task {task!r} expects '
                                 f'{spec.gt_channels}')
            dtype = np.int64 if spec is not None and spec.is_int else np.float32
            sample.set_gt(task, torch.from_numpy(np.ascontiguousarray(arr).astype(dtype)))

        defaults = dict(
            img_shape=img.shape[:2], flip=False, flip_direction=None, scale_factor=(1.0, 1.0),
            img_padding_size=[0, 0, 0, 0], tasks=tasks)
        defaults['pad_shape'] = img.shape[:2]
        meta = {}
        for key in self.meta_keys:
            if key in results:
                meta[key] = results[key]
            elif key in defaults:
                meta[key] = defaults[key]
        for key in ('img_shape', 'ori_shape', 'pad_shape'):
            if key in meta:
                meta[key] = tuple(int(v) for v in meta[key])
        sample.set_metainfo(meta)
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
