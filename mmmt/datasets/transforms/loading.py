"""Loading of images and per-task annotations of the multi-task datasets.

The datasets only produce paths (``img_path`` and ``ann_info``); these transforms read the files
and decode every modality as the reference does (docs/differences.md). Arrays are kept HWC / HW
numpy (what the geometric transforms work on) until :class:`PackMultiTaskInputs` makes tensors.

Keys written into the results dict:

============== ========================== ===========================================
key            dtype / shape              content after loading
============== ========================== ===========================================
img            float32 (H, W, 3)          RGB in [0, 255]
gt_semseg      uint8 (H, W)               class index, 255 = ignore
gt_depth       float32 (H, W)             depth, 0 = invalid (ignored later)
gt_normals     float32 (H, W, 3)          2 v / 255 - 1 (x, y, z); zero vector = invalid
gt_edge        float32 (H, W)             [0, 1]
gt_human_parts uint8 (H, W)               0 background, 1..6 part groups
gt_sal         float32 (H, W)             {0, 1}
============== ========================== ===========================================

Every gt key is appended to ``results['seg_fields']`` (the mmseg convention), so mmseg/mmcv
geometric transforms that honour ``seg_fields`` move them together with the image.
"""
from typing import Dict, Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from mmmt.registry import TRANSFORMS
from .decoders import (WIDE_MODES, DecodeContext, decode_annotation, fit_to_size, read_image,
                       read_pascal_part_mask, sample_location)

__all__ = ['LoadMultiTaskImage', 'LoadMultiTaskAnnotations', 'read_pascal_part_mask']


@TRANSFORMS.register_module()
class LoadMultiTaskImage(BaseTransform):
    """Load ``results['img_path']`` as an RGB float32 image in [0, 255] (H, W, 3).

    Differs from ``mmcv.LoadImageFromFile``: decodes with PIL and keeps **RGB** order (the
    reference pipeline, its photometric distortion and its normalisation constants are RGB),
    and returns float32 so that random scaling interpolates un-rounded values as the reference
    does. A missing or corrupt file, or one with more than 8 bits per channel (16-bit PNG,
    which the conversion to RGB would clip at 255), raises an error naming the file (and its
    split list).

    Args:
        backend_args (dict, optional): Arguments of mmengine's file backend (e.g.
            ``dict(backend='petrel')``); files are read through ``mmengine.fileio``.

    Added keys: ``img``, ``img_shape``, ``ori_shape`` (both (H, W)).
    """

    def __init__(self, backend_args: Optional[dict] = None) -> None:
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        path = results['img_path']
        img = read_image(path, results, self.backend_args)
        if img.mode in WIDE_MODES:  # PIL's conversion to RGB clips every value above 255
            raise ValueError(f'Image must have 8 bits per channel, got mode {img.mode!r}: '
                             f'{path}{sample_location(results)}')
        arr = np.asarray(img if img.mode == 'RGB' else img.convert('RGB'), dtype=np.float32)
        results['img'] = arr
        results['img_shape'] = arr.shape[:2]
        results['ori_shape'] = arr.shape[:2]
        return results


@TRANSFORMS.register_module()
class LoadMultiTaskAnnotations(BaseTransform):
    """Load and decode the ground truth of every task in ``results['tasks']``.

    ``results['ann_info']`` maps each task to a dict with ``path`` and ``encoding`` (set by the
    dataset class); the encoding names a decoder of ``mmmt.registry.ANNOTATION_DECODERS``
    (a new dataset registers its own). mmmt's encodings (docs/differences.md):

    - ``nyud_semseg_png``: PNG values 0..num_classes; ``v - 1``, 0 (unlabelled) becomes 255.
    - ``semseg_png``: PNG values 0..num_classes-1 and 255, used as is.
    - ``depth_npy``: float depth map in metres, cast to float32; 0 = no measurement (the only
      ignore value). NaN, inf, negative values (and values above ``ann_info``'s ``max_depth``:
      ``MAX_DEPTH`` of ``decoders.py`` by default, 100 m for NYUD), an integer (raw
      millimetre), non-numeric, empty or 3-D array raise an error naming the file.
    - ``normals_png``: 8-bit RGB (or RGBA, palette) PNG mapped to ``2 v / 255 - 1``; a
      grayscale or 16-bit PNG is an error naming the file.
    - ``context_masked_normals_png``: as ``normals_png``, then zeroed on pixels whose Context
      label (``context_path``) is not one of the 170 valid classes.
    - ``edge_png``: ``v / 255`` of an 8-bit PNG (16-bit: an error, as for ``sal_png``).
    - ``context_edge_mat``: ``|Laplacian(LabelMap)| > 0`` (cv2, float64), thinned with
      ``skimage.morphology.thin``, binary float32.
    - ``pascal_parts_mat``: :func:`read_pascal_part_mask`; no person with parts gives an
      all-zero map (ignored entirely by :class:`AddIgnoreRegions`).
    - ``sal_png``: grayscale ``v / 255 > 0.5`` as float32 {0, 1}.

    Semseg values outside the class range, and a ``num_classes`` above 255 (the maps are uint8
    with 255 = ignore), raise an error naming the file. An annotation whose
    size differs from the image is resized to the image size (nearest, bicubic for normals) as
    the reference does, with a warning naming the file.

    Args:
        tasks (Sequence[str], optional): Load only these tasks (default: ``results['tasks']``).
        backend_args (dict, optional): Arguments of mmengine's file backend; every file is
            read through ``mmengine.fileio``.
    """

    def __init__(self, tasks: Optional[Sequence[str]] = None,
                 backend_args: Optional[dict] = None) -> None:
        self.tasks = None if tasks is None else tuple(tasks)
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        tasks = self.tasks if self.tasks is not None else tuple(results.get('tasks', ()))
        ann_info: Dict[str, dict] = results.get('ann_info', {})
        if 'img' in results:
            size = results['img'].shape[:2]
        else:
            size = results.get('ori_shape')
        cache: Dict[str, np.ndarray] = {}
        seg_fields = results.setdefault('seg_fields', [])
        for task in tasks:
            if task not in ann_info:
                raise KeyError(f"No annotation entry for task '{task}'{sample_location(results)}")
            info = ann_info[task]
            ctx = DecodeContext(task, results, size, self.backend_args, cache)
            arr = decode_annotation(task, info, ctx)
            if size is not None and arr.shape[:2] != tuple(size):
                arr = fit_to_size(task, arr, size, info['path'])
            key = f'gt_{task}'
            results[key] = arr
            if key not in seg_fields:
                seg_fields.append(key)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(tasks={self.tasks})'
