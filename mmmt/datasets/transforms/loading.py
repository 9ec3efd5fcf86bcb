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
import os.path as osp
import warnings
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image

from mmmt.registry import TRANSFORMS
from ..class_names import (PASCAL_NORMALS_VALID_CONTEXT_IDS, PASCAL_PART_GROUPS,
                           PERSON_CLASS_ID)

__all__ = ['LoadMultiTaskImage', 'LoadMultiTaskAnnotations', 'read_pascal_part_mask']

IGNORE_INDEX = 255


def _where(results: dict) -> str:
    """A short 'sample ... of split list ...' suffix for error messages."""
    parts = []
    if results.get('img_id') is not None:
        parts.append(f"id '{results['img_id']}'")
    if results.get('split_file'):
        parts.append(f"listed in {results['split_file']}")
    return f" ({', '.join(parts)})" if parts else ''


def _open_pil(path: str, results: dict) -> Image.Image:
    """Open and fully decode an image file with PIL, naming the file on any failure."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'File not found: {path}{_where(results)}')
    try:
        img = Image.open(path)
        img.load()
    except Exception as e:  # PIL raises several types for truncated / corrupt data
        raise OSError(f'Cannot read image file {path}{_where(results)}: {e}') from e
    return img


def _read_label_png(path: str, results: dict) -> np.ndarray:
    """A single-channel label PNG as an (H, W) integer array (palette PNGs give their indices)."""
    img = _open_pil(path, results)
    if img.mode not in ('L', 'P', 'I', 'I;16', 'I;16B', 'I;16L', '1'):
        raise ValueError(f'Expected a single-channel (grayscale or palette) label PNG, got '
                         f'mode {img.mode!r}: {path}{_where(results)}')
    return np.asarray(img).astype(np.int64)


def _read_gray_png(path: str, results: dict) -> np.ndarray:
    img = _open_pil(path, results)
    if img.mode != 'L':
        img = img.convert('L')
    return np.asarray(img)


def _read_rgb_png(path: str, results: dict) -> np.ndarray:
    img = _open_pil(path, results)
    if img.mode != 'RGB':
        img = img.convert('RGB')
    return np.asarray(img)


def _loadmat(path: str, results: dict) -> dict:
    import scipy.io
    if not osp.isfile(path):
        raise FileNotFoundError(f'File not found: {path}{_where(results)}')
    try:
        return scipy.io.loadmat(path)
    except Exception as e:
        raise OSError(f'Cannot read .mat file {path}{_where(results)}: {e}') from e


def read_context_labelmap(path: str, results: Optional[dict] = None) -> np.ndarray:
    """The PASCAL-Context ``LabelMap`` (459-class ids) of a ``trainval/<id>.mat`` file."""
    results = results or {}
    mat = _loadmat(path, results)
    if 'LabelMap' not in mat:
        raise KeyError(f"No 'LabelMap' variable in {path}{_where(results)}")
    return np.asarray(mat['LabelMap']).astype(np.int64)


def read_pascal_part_mask(path: str, results: Optional[dict] = None
                          ) -> Optional[np.ndarray]:
    """The 6-group human-part map of a PASCAL-Part ``human_parts/<id>.mat`` file.

    The file holds a struct ``anno``; its objects are ``anno[0][0][1][0]``; object ``o`` has its
    class id at ``o[1][0][0]``, its instance mask at ``o[2]`` and its part list at ``o[3]`` (each
    part ``p``: name ``p[0][0]``, mask ``p[1]``). Objects whose instance mask is empty do not
    count. If a person (class 15) is present, every person object with parts paints each part
    mask with its group id (:data:`PASCAL_PART_GROUPS`, later parts overwrite earlier ones).

    Unlike the reference, no JSON cache of object classes is written to
    ``ImageSets/Parts/``: the object list is read from the ``.mat`` directly (same result).

    Returns:
        np.ndarray | None: (H, W) uint8 map, or None when the image has no person with parts
        (the caller then ignores the whole map) or the file does not exist.
    """
    results = results or {}
    if not osp.isfile(path):
        return None
    mat = _loadmat(path, results)
    try:
        field = mat['anno'][0][0][1]
        if field.size == 0:  # no objects at all
            return None
        objects = field[0]
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise ValueError(f"Unexpected PASCAL-Part structure (need struct 'anno' with an "
                         f'object list) in {path}{_where(results)}: {e}') from e
    classes = []
    for obj in objects:
        mask = np.asarray(obj[2])
        classes.append(int(np.asarray(obj[1]).ravel()[0]) if mask.sum() > 0 else -1)
    if PERSON_CLASS_ID not in classes:
        return None
    target = None
    for obj in objects:
        is_person = int(np.asarray(obj[1]).ravel()[0]) == PERSON_CLASS_ID
        parts = obj[3]
        if not is_person or len(parts) == 0:
            continue
        if target is None:
            target = np.zeros(np.asarray(obj[2]).shape, dtype=np.uint8)
        for part in parts[0]:
            name = str(part[0][0])
            target[np.asarray(part[1]).astype(bool)] = PASCAL_PART_GROUPS.get(name, 0)
    return target


@TRANSFORMS.register_module()
class LoadMultiTaskImage(BaseTransform):
    """Load ``results['img_path']`` as an RGB float32 image in [0, 255] (H, W, 3).

    Differs from ``mmcv.LoadImageFromFile``: decodes with PIL and keeps **RGB** order (the
    reference pipeline, its photometric distortion and its normalisation constants are RGB),
    and returns float32 so that random scaling interpolates un-rounded values as the reference
    does. A missing or corrupt file raises an error naming the file (and its split list).

    Added keys: ``img``, ``img_shape``, ``ori_shape`` (both (H, W)).
    """

    def transform(self, results: dict) -> dict:
        path = results['img_path']
        img = _open_pil(path, results)
        if img.mode != 'RGB':
            img = img.convert('RGB')
        arr = np.asarray(img, dtype=np.float32)
        results['img'] = arr
        results['img_shape'] = arr.shape[:2]
        results['ori_shape'] = arr.shape[:2]
        return results


@TRANSFORMS.register_module()
class LoadMultiTaskAnnotations(BaseTransform):
    """Load and decode the ground truth of every task in ``results['tasks']``.

    ``results['ann_info']`` maps each task to a dict with ``path`` and ``encoding`` (set by the
    dataset class). Encodings (docs/differences.md):

    - ``nyud_semseg_png``: PNG values 0..num_classes; ``v - 1``, 0 (unlabelled) becomes 255.
    - ``semseg_png``: PNG values 0..num_classes-1 and 255, used as is.
    - ``depth_npy``: float depth map, cast to float32.
    - ``normals_png``: RGB PNG mapped to ``2 v / 255 - 1``.
    - ``context_masked_normals_png``: as ``normals_png``, then zeroed on pixels whose Context
      label (``context_path``) is not one of the 170 valid classes.
    - ``edge_png``: ``v / 255``.
    - ``context_edge_mat``: ``|Laplacian(LabelMap)| > 0`` (cv2, float64), thinned with
      ``skimage.morphology.thin``, binary float32.
    - ``pascal_parts_mat``: :func:`read_pascal_part_mask`; no person with parts gives an
      all-zero map (ignored entirely by :class:`AddIgnoreRegions`).
    - ``sal_png``: grayscale ``v / 255 > 0.5`` as float32 {0, 1}.

    Semseg values outside the class range raise an error naming the file. An annotation whose
    size differs from the image is resized to the image size (nearest, bicubic for normals) as
    the reference does, with a warning naming the file.

    Args:
        tasks (Sequence[str], optional): Load only these tasks (default: ``results['tasks']``).
    """

    def __init__(self, tasks: Optional[Sequence[str]] = None) -> None:
        self.tasks = None if tasks is None else tuple(tasks)

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
                raise KeyError(f"No annotation entry for task '{task}'{_where(results)}")
            info = ann_info[task]
            arr, path = self._decode(task, info, results, cache, size)
            if size is not None and arr.shape[:2] != tuple(size):
                arr = self._resize(task, arr, size, path)
            key = f'gt_{task}'
            results[key] = arr
            if key not in seg_fields:
                seg_fields.append(key)
        return results

    @staticmethod
    def _resize(task: str, arr: np.ndarray, size: Tuple[int, int], path: str) -> np.ndarray:
        warnings.warn(f'{task} annotation {path} has size {arr.shape[:2]} but its image has '
                      f'size {tuple(size)}; resizing it to the image size '
                      f"({'bicubic' if task == 'normals' else 'nearest'}).")
        interp = cv2.INTER_CUBIC if task == 'normals' else cv2.INTER_NEAREST
        out = cv2.resize(arr, (int(size[1]), int(size[0])), interpolation=interp)
        return out.astype(arr.dtype)

    def _context(self, path: str, results: dict, cache: dict, size) -> np.ndarray:
        if path not in cache:
            lm = read_context_labelmap(path, results)
            if size is not None and lm.shape != tuple(size):
                warnings.warn(f'Context LabelMap {path} has size {lm.shape} but its image has '
                              f'size {tuple(size)}; resizing it (nearest).')
                lm = cv2.resize(lm.astype(np.float32), (int(size[1]), int(size[0])),
                                interpolation=cv2.INTER_NEAREST).astype(np.int64)
            cache[path] = lm
        return cache[path]

    def _decode(self, task: str, info: dict, results: dict, cache: dict, size):
        enc = info['encoding']
        path = info['path']
        if enc == 'nyud_semseg_png':
            raw = _read_label_png(path, results)
            n = int(info['num_classes'])
            bad = (raw < 0) | (raw > n)
            if bad.any():
                raise ValueError(f'semseg label values {np.unique(raw[bad])[:10].tolist()} '
                                 f'outside 0..{n} in {path}{_where(results)}')
            out = (raw - 1).astype(np.int64)
            out[raw == 0] = IGNORE_INDEX
            return out.astype(np.uint8), path
        if enc == 'semseg_png':
            raw = _read_label_png(path, results)
            n = int(info['num_classes'])
            bad = ((raw < 0) | (raw >= n)) & (raw != IGNORE_INDEX)
            if bad.any():
                raise ValueError(f'semseg label values {np.unique(raw[bad])[:10].tolist()} '
                                 f'outside 0..{n - 1} and {IGNORE_INDEX} in '
                                 f'{path}{_where(results)}')
            return raw.astype(np.uint8), path
        if enc == 'depth_npy':
            if not osp.isfile(path):
                raise FileNotFoundError(f'File not found: {path}{_where(results)}')
            try:
                depth = np.load(path)
            except Exception as e:
                raise OSError(f'Cannot read depth file {path}{_where(results)}: {e}') from e
            depth = np.asarray(depth, dtype=np.float32)
            if depth.ndim == 3 and depth.shape[-1] == 1:
                depth = depth[..., 0]
            if depth.ndim != 2:
                raise ValueError(f'Depth map must be (H, W), got {depth.shape}: {path}')
            return depth, path
        if enc in ('normals_png', 'context_masked_normals_png'):
            rgb = _read_rgb_png(path, results).astype(np.float32)
            normals = 2.0 * rgb / 255.0 - 1.0
            if enc == 'context_masked_normals_png':
                if size is not None and normals.shape[:2] != tuple(size):
                    normals = self._resize(task, normals, size, path)
                lm = self._context(info['context_path'], results, cache, size)
                valid = np.isin(lm, PASCAL_NORMALS_VALID_CONTEXT_IDS)
                normals[~valid] = 0.0
            return normals.astype(np.float32), path
        if enc == 'edge_png':
            return (_read_gray_png(path, results).astype(np.float32) / 255.0), path
        if enc == 'context_edge_mat':
            from skimage.morphology import thin
            lm = self._context(path, results, cache, size)
            lap = cv2.Laplacian(lm.astype(np.float64), cv2.CV_64F)
            return thin(np.abs(lap) > 0).astype(np.float32), path
        if enc == 'pascal_parts_mat':
            parts = read_pascal_part_mask(path, results)
            if parts is None:
                shape = tuple(size) if size is not None else (512, 512)
                parts = np.zeros(shape, dtype=np.uint8)
            return parts, path
        if enc == 'sal_png':
            gray = _read_gray_png(path, results).astype(np.float32)
            return (gray / 255.0 > 0.5).astype(np.float32), path
        raise ValueError(f"Unknown annotation encoding '{enc}' for task '{task}'")

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(tasks={self.tasks})'
