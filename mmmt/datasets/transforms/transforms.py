"""Geometric, photometric and ignore-label transforms of the multi-task pipelines.

They follow the reference's pipelines; see docs/differences.md.

All transforms act on ``results['img']`` and on every key in ``results['seg_fields']``
(``gt_<task>`` arrays, HW or HWC numpy). Randomness comes from ``np.random`` as in mmcv/mmseg, so
mmengine's per-worker seeding makes runs reproducible.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms import RandomFlip as MMCV_RandomFlip
from mmcv.transforms.utils import cache_randomness
from mmseg.datasets.transforms.transforms import RandomCrop as MMSEG_RandomCrop

from mmmt.registry import TRANSFORMS
from mmmt.structures import IGNORE_INDEX, get_task
from mmmt.utils.errors import UserInputError

__all__ = [
    'RandomScaling', 'MultiTaskRandomCrop', 'MultiTaskRandomFlip',
    'MultiTaskPhotoMetricDistortion', 'CenterPad', 'AddIgnoreRegions'
]


def _size_pair(value, what: str) -> Tuple[int, int]:
    """``(h, w)`` of a config's size field (an int means a square), both positive integers,
    or a one-line error naming the field: the bare asserts gave no message at all."""
    pair = (value, value) if isinstance(value, int) else value
    try:
        h, w = (int(v) for v in pair)
        ok = (h, w) == tuple(pair) and h > 0 and w > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UserInputError(f'{what} must be (h, w) of two positive integers, got {value!r}')
    return h, w


def _task_of(key: str) -> str:
    return key[3:] if key.startswith('gt_') else key


def _task_spec(key: str):
    """The registered definition of the task of a ``gt_<task>`` key, or None."""
    return get_task(_task_of(key)) if key.startswith('gt_') else None


@TRANSFORMS.register_module()
class RandomScaling(BaseTransform):
    """Rescale image and labels by one continuous random factor (docs/differences.md).

    ``s ~ U(lo, hi)``; new size ``(int(H s), int(W s))``; the image is resized bilinearly and
    every label (normals and depth included) with nearest neighbour (``cv2.resize``); depth
    values are divided by ``s``. ``s == 1`` is a no-op.

    Differs from mmcv's ``RandomResize``: the factor is applied to the current size with floor
    rounding, labels of every task are resized nearest, and depth is rescaled by ``1/s``.

    Updated keys: ``img``, ``img_shape``, ``scale_factor`` (w, h ratios, composed with any
    previous one), every ``seg_fields`` key.

    Args:
        scale_range (tuple[float, float]): Range of the uniform scale factor.
            Defaults to (0.5, 2.0).
        depth_key (str): The key whose values are divided by the factor.
    """

    def __init__(self, scale_range: Sequence[float] = (0.5, 2.0),
                 depth_key: str = 'gt_depth') -> None:
        try:
            lo, hi = (float(v) for v in scale_range)
            ok = 0 < lo <= hi
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise UserInputError(f'RandomScaling: scale_range must be (low, high) with '
                                 f'0 < low <= high, got {scale_range!r}')
        self.scale_range = (lo, hi)
        self.depth_key = depth_key

    @cache_randomness
    def _sample(self) -> float:
        return float(np.random.uniform(*self.scale_range))

    def transform(self, results: dict, scale: Optional[float] = None) -> dict:
        """Apply the transform; ``scale`` forces the factor (for tests)."""
        s = self._sample() if scale is None else float(scale)
        if s == 1.0:
            return results
        h, w = results['img'].shape[:2]
        nh, nw = int(h * s), int(w * s)
        if min(nh, nw) < 1:  # cv2's own error is an assertion on inv_scale_x
            raise ValueError(f'RandomScaling: scale {s:g} makes the {h}x{w} image '
                             f'{results.get("img_path", "")} {nh}x{nw} pixels; raise the low end '
                             f'of scale_range {self.scale_range}')
        results['img'] = cv2.resize(results['img'], (nw, nh), interpolation=cv2.INTER_LINEAR)
        for key in results.get('seg_fields', []):
            arr = cv2.resize(results[key], (nw, nh), interpolation=cv2.INTER_NEAREST)
            if key == self.depth_key:
                arr = arr / np.float32(s)
            results[key] = arr.astype(results[key].dtype)
        results['img_shape'] = (nh, nw)
        sw, sh = results.get('scale_factor', (1.0, 1.0))
        results['scale_factor'] = (sw * nw / w, sh * nh / h)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(scale_range={self.scale_range})'


@TRANSFORMS.register_module()
class MultiTaskRandomCrop(MMSEG_RandomCrop):
    """mmseg's ``RandomCrop`` applied to all tasks, with the category rule on ``gt_semseg``.

    Same rule as the reference (docs/differences.md): offsets uniform in ``[0, max(dim - crop, 0)]``
    (a dimension smaller than the crop is kept whole); a semseg crop is accepted when it has more
    than one non-ignore class and its most frequent class covers less than ``cat_max_ratio`` of
    the non-ignore pixels; after 10 rejected checks a fresh unchecked location is used. The same
    box crops the image and every ``seg_fields`` key.

    Differs from mmseg's only in where the category check reads the labels (``seg_key`` instead
    of ``gt_seg_map``), and skips the check when that key is absent (no semseg task).

    Args:
        crop_size (int | tuple[int, int]): (h, w) of the crop.
        cat_max_ratio (float): Maximum share of one class. Defaults to 0.75.
        ignore_index (int): Ignored label. Defaults to 255.
        seg_key (str): Label map used for the check. Defaults to ``'gt_semseg'``.
    """

    def __init__(self, crop_size: Union[int, Sequence[int]], cat_max_ratio: float = 0.75,
                 ignore_index: int = IGNORE_INDEX, seg_key: str = 'gt_semseg') -> None:
        crop_size = _size_pair(crop_size, 'MultiTaskRandomCrop: crop_size')
        super().__init__(crop_size, cat_max_ratio, ignore_index)
        self.seg_key = seg_key

    def _random_bbox(self, img: np.ndarray) -> Tuple[int, int, int, int]:
        margin_h = max(img.shape[0] - self.crop_size[0], 0)
        margin_w = max(img.shape[1] - self.crop_size[1], 0)
        off_h = np.random.randint(0, margin_h + 1)
        off_w = np.random.randint(0, margin_w + 1)
        return off_h, off_h + self.crop_size[0], off_w, off_w + self.crop_size[1]

    def _accepted(self, seg: np.ndarray, bbox: tuple) -> bool:
        labels, cnt = np.unique(self.crop(seg, bbox), return_counts=True)
        cnt = cnt[labels != self.ignore_index]
        return len(cnt) > 1 and np.max(cnt) / np.sum(cnt) < self.cat_max_ratio

    @cache_randomness
    def crop_bbox(self, results: dict) -> tuple:
        img = results['img']
        bbox = self._random_bbox(img)
        seg = results.get(self.seg_key)
        if self.cat_max_ratio < 1. and seg is not None:
            for _ in range(10):
                if self._accepted(seg, bbox):
                    break
                bbox = self._random_bbox(img)
        return bbox

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(crop_size={self.crop_size}, '
                f'cat_max_ratio={self.cat_max_ratio}, seg_key={self.seg_key!r})')


@TRANSFORMS.register_module()
class MultiTaskRandomFlip(MMCV_RandomFlip):
    """mmcv's ``RandomFlip`` that also mirrors every ``seg_fields`` key and negates normals x.

    As in the reference (docs/differences.md): with probability ``prob`` everything is
    flipped left-right and channel 0 (x) of ``gt_normals`` is negated. Differs from mmcv's
    only in flipping all multi-task label maps (mmcv knows ``gt_seg_map`` only) and in the sign
    change of the normals (of every task whose definition has ``mirror_channels``).

    Args:
        prob (float): Flip probability. Defaults to 0.5.
        direction (str): ``'horizontal'`` (the only direction that negates normals x;
            ``'vertical'`` negates y). Defaults to ``'horizontal'``.
        normals_key (str, optional): The one key whose x/y is negated. Defaults to None: the
            ``gt_<task>`` keys of tasks with ``mirror_channels`` (``gt_normals``).
    """

    def __init__(self, prob: float = 0.5, direction: str = 'horizontal',
                 normals_key: Optional[str] = None) -> None:
        if direction not in ('horizontal', 'vertical'):
            raise UserInputError(f"MultiTaskRandomFlip: direction must be 'horizontal' or "
                                 f"'vertical', got {direction!r}")
        if not (isinstance(prob, (int, float)) and 0 <= prob <= 1):
            raise UserInputError(f'MultiTaskRandomFlip: prob must be a number in [0, 1], got '
                                 f'{prob!r}')
        super().__init__(prob=float(prob), direction=direction)  # mmcv refuses an int
        self.normals_key = normals_key

    def _flip(self, results: dict) -> None:
        super()._flip(results)
        direction = results['flip_direction']
        axis = 1 if direction == 'horizontal' else 0
        for key in results.get('seg_fields', []):
            if key == 'gt_seg_map':  # already flipped by mmcv
                continue
            arr = np.flip(results[key], axis=axis).copy()
            if (key == self.normals_key if self.normals_key is not None else
                    getattr(_task_spec(key), 'mirror_channels', False)):
                arr[..., 0 if axis == 1 else 1] *= -1
            results[key] = arr
        results['img'] = np.ascontiguousarray(results['img'])


@TRANSFORMS.register_module()
class MultiTaskPhotoMetricDistortion(BaseTransform):
    """Photometric distortion of an **RGB** image, as in the reference (docs/differences.md).

    The image is first cast to uint8 by truncation. Then, each step with probability 0.5:
    brightness (add ``U(-32, 32)``), contrast (multiply by ``U(0.5, 1.5)``, no mean centring;
    done first or last, chosen with probability 0.5), saturation (OpenCV RGB->HSV, S times
    ``U(0.5, 1.5)``), hue (H + randint in [-18, 17], mod 180). Each step clips to [0, 255] and
    truncates to uint8. No channel swap. The output is float32.

    Differs from mmseg's ``PhotoMetricDistortion`` in that the image is RGB (HSV conversions use
    ``COLOR_RGB2HSV``; mmseg assumes BGR) and it is truncated to uint8 up front (mmseg would run
    the HSV steps on a float image), and the result is float32.

    Args:
        brightness_delta (int): Defaults to 32.
        contrast_range (tuple[float, float]): Defaults to (0.5, 1.5).
        saturation_range (tuple[float, float]): Defaults to (0.5, 1.5).
        hue_delta (int): Defaults to 18.
    """

    def __init__(self, brightness_delta: int = 32,
                 contrast_range: Sequence[float] = (0.5, 1.5),
                 saturation_range: Sequence[float] = (0.5, 1.5), hue_delta: int = 18) -> None:
        self.brightness_delta = brightness_delta
        self.contrast_lower, self.contrast_upper = contrast_range
        self.saturation_lower, self.saturation_upper = saturation_range
        self.hue_delta = hue_delta

    @staticmethod
    def _convert(img: np.ndarray, alpha: float = 1., beta: float = 0.) -> np.ndarray:
        img = img.astype(np.float32) * alpha + beta
        return np.clip(img, 0, 255).astype(np.uint8)

    def _brightness(self, img: np.ndarray) -> np.ndarray:
        if np.random.randint(2):
            return self._convert(
                img, beta=np.random.uniform(-self.brightness_delta, self.brightness_delta))
        return img

    def _contrast(self, img: np.ndarray) -> np.ndarray:
        if np.random.randint(2):
            return self._convert(
                img, alpha=np.random.uniform(self.contrast_lower, self.contrast_upper))
        return img

    def _saturation(self, img: np.ndarray) -> np.ndarray:
        if np.random.randint(2):
            hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
            hsv[:, :, 1] = self._convert(
                hsv[:, :, 1],
                alpha=np.random.uniform(self.saturation_lower, self.saturation_upper))
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        return img

    def _hue(self, img: np.ndarray) -> np.ndarray:
        if np.random.randint(2):
            hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
            hsv[:, :, 0] = (hsv[:, :, 0].astype(int) +
                            np.random.randint(-self.hue_delta, self.hue_delta)) % 180
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        return img

    def transform(self, results: dict) -> dict:
        img = np.ascontiguousarray(results['img']).astype(np.uint8)
        img = self._brightness(img)
        mode = np.random.randint(2)
        if mode == 1:
            img = self._contrast(img)
        img = self._saturation(img)
        img = self._hue(img)
        if mode == 0:
            img = self._contrast(img)
        results['img'] = img.astype(np.float32)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(brightness_delta={self.brightness_delta}, '
                f'contrast_range=({self.contrast_lower}, {self.contrast_upper}), '
                f'saturation_range=({self.saturation_lower}, {self.saturation_upper}), '
                f'hue_delta={self.hue_delta})')


def center_pad_amounts(shape: Sequence[int], size: Sequence[int]) -> Tuple[int, int, int, int]:
    """``(left, right, top, bottom)`` centred padding of an (h, w) array to at least ``size``.

    Top/left get ``delta // 2``, bottom/right the rest; no padding where already large enough.
    """
    dh = max(int(size[0]) - int(shape[0]), 0)
    dw = max(int(size[1]) - int(shape[1]), 0)
    return dw // 2, dw - dw // 2, dh // 2, dh - dh // 2


def _pad(arr: np.ndarray, amounts: Tuple[int, int, int, int], value: float) -> np.ndarray:
    left, right, top, bottom = amounts
    if not any(amounts):
        return arr
    widths = [(top, bottom), (left, right)] + [(0, 0)] * (arr.ndim - 2)
    # a map whose dtype cannot hold the fill (a bool or int8 label map and 255) is widened
    # to one that can: bool would fill True (class 1), int8 raised an OverflowError
    if float(value).is_integer() and arr.dtype.kind in 'biu':
        dtype = np.promote_types(arr.dtype, np.min_scalar_type(int(value)))
        if dtype != arr.dtype:
            arr = arr.astype(dtype)
    # np.pad, not mmcv.impad: cv2.copyMakeBorder fills a scalar value into the first channel
    # only (normals would get (255, 0, 0)) and turns int64 into int32
    return np.pad(arr, widths, mode='constant', constant_values=value)


@TRANSFORMS.register_module()
class CenterPad(BaseTransform):
    """Pad to ``size`` (h, w), **centred**, with per-task fill values (docs/differences.md).

    Top/left padding is ``delta // 2`` and bottom/right the rest, only where the array is
    smaller than ``size``. Fill values default to 0 for the image (the mean colour after
    normalisation) and to each task's ``pad_value`` (``mmmt.structures.TASKS``: depth 0 and
    normals 0, which become ignore in :class:`AddIgnoreRegions`; the other labels and
    unregistered tasks 255).

    Differs from mmcv's ``Pad``, which pads bottom/right only. The padding is recorded as
    ``img_padding_size = [left, right, top, bottom]``, the key mmseg's
    ``BaseSegmentor.postprocess_result`` crops back.

    Args:
        size (int | tuple[int, int]): Target (h, w); an int is a square.
        pad_val (dict, optional): Overrides of the fill values by task name (``img`` for the
            image).
        pad_gt (bool): Also pad the ``seg_fields`` labels (training). With False only the image
            is padded and labels keep the original size (testing: predictions are cropped back
            to the original size before the metrics, equivalent to ignore-labelled padding).
            Defaults to True.

    Added keys: ``pad_shape``, ``img_padding_size``.
    """

    def __init__(self, size: Union[int, Sequence[int]],
                 pad_val: Optional[Dict[str, float]] = None,
                 pad_gt: bool = True) -> None:
        self.size = _size_pair(size, 'CenterPad: size')
        self.pad_val = dict(img=0)
        if pad_val:
            self.pad_val.update(pad_val)
        self.pad_gt = pad_gt

    def transform(self, results: dict) -> dict:
        amounts = center_pad_amounts(results['img'].shape[:2], self.size)
        results['img'] = _pad(results['img'], amounts, self.pad_val['img'])
        if self.pad_gt:
            for key in results.get('seg_fields', []):
                results[key] = _pad(results[key], amounts, self._label_pad_value(key))
        results['pad_shape'] = results['img'].shape[:2]
        results['img_padding_size'] = list(amounts)
        return results

    def _label_pad_value(self, key: str) -> float:
        task = _task_of(key)
        if task in self.pad_val:
            return self.pad_val[task]
        spec = _task_spec(key)
        return spec.pad_value if spec is not None else IGNORE_INDEX

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, pad_val={self.pad_val}, '
                f'pad_gt={self.pad_gt})')


@TRANSFORMS.register_module()
class AddIgnoreRegions(BaseTransform):
    """Turn invalid ground truth into the ignore value (docs/differences.md).

    Each ``gt_<task>`` key gets the ``ignore_rule`` of its task's definition
    (``mmmt.structures.TASKS``):

    - ``zero_vector`` (normals): pixels whose vector has zero L2 norm get 255 in all channels;
    - ``zero_value`` (depth): pixels equal to 0 become 255;
    - ``empty_map`` (human_parts): if no pixel is a part (all 0 or 255), the whole map
      becomes 255.

    Other tasks are unchanged. There is no mmcv/mmseg equivalent.

    Args:
        ignore_index (int): Defaults to 255 (``mmmt.structures.IGNORE_INDEX``).
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX) -> None:
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        ign = self.ignore_index
        for key in [k for k in results if isinstance(k, str) and k.startswith('gt_')]:
            rule = getattr(_task_spec(key), 'ignore_rule', None)
            if rule == 'zero_vector':
                arr = results[key].copy()
                arr[np.linalg.norm(arr, axis=-1) == 0] = ign
                results[key] = arr
            elif rule == 'zero_value':
                arr = results[key].copy()
                arr[arr == 0] = ign
                results[key] = arr
            elif rule == 'empty_map':
                arr = results[key]
                if np.all((arr == 0) | (arr == ign)):
                    results[key] = np.full_like(arr, ign)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(ignore_index={self.ignore_index})'
