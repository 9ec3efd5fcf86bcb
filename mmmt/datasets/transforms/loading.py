"""Loading of images and per-task annotations of the multi-task datasets.

The datasets only produce paths (``img_path`` and ``ann_info``); these transforms read the files
and decode every modality as reference-spec C.2/C.3 describes. Arrays are kept HWC / HW numpy
(what the geometric transforms work on) until :class:`PackMultiTaskInputs` makes tensors.

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
import io
import warnings
from typing import Dict, Optional, Sequence, Tuple

import cv2
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform
from PIL import Image

from mmmt.registry import ANNOTATION_DECODERS, TRANSFORMS
from mmmt.structures import IGNORE_INDEX, get_task
from ..class_names import (PASCAL_NORMALS_VALID_CONTEXT_IDS, PASCAL_PART_GROUPS,
                           PERSON_CLASS_ID)

__all__ = [
    'LoadMultiTaskImage', 'LoadMultiTaskAnnotations', 'read_pascal_part_mask', 'DecodeContext'
]


def _where(results: dict) -> str:
    """A short 'sample ... of split list ...' suffix for error messages."""
    parts = []
    if results.get('img_id') is not None:
        parts.append(f"id '{results['img_id']}'")
    if results.get('split_file'):
        parts.append(f"listed in {results['split_file']}")
    return f" ({', '.join(parts)})" if parts else ''


def _read_bytes(path: str, results: dict, backend_args: Optional[dict] = None) -> bytes:
    """The bytes of ``path`` through mmengine's file backends (local disk, HTTP, S3, petrel:
    ``backend_args``), naming the file (and its sample) when it does not exist."""
    try:
        return fileio.get(path, backend_args=backend_args)
    except (FileNotFoundError, IsADirectoryError):
        raise FileNotFoundError(f'File not found: {path}{_where(results)}') from None


def _open_pil(path: str, results: dict, backend_args: Optional[dict] = None) -> Image.Image:
    """Open and fully decode an image file with PIL, naming the file on any failure.

    PIL rather than ``mmcv.imfrombytes``: mmcv's pillow path composites RGBA images on a grey
    background and its cv2 path reads BGR, while the reference converts with PIL.
    """
    data = _read_bytes(path, results, backend_args)
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as e:  # PIL raises several types for truncated / corrupt data
        raise OSError(f'Cannot read image file {path}{_where(results)}: {e}') from e
    return img


def _read_label_png(path: str, results: dict,
                    backend_args: Optional[dict] = None) -> np.ndarray:
    """A single-channel label PNG as an (H, W) integer array (palette PNGs give their indices)."""
    img = _open_pil(path, results, backend_args)
    if img.mode not in ('L', 'P', 'I', 'I;16', 'I;16B', 'I;16L', '1'):
        raise ValueError(f'Expected a single-channel (grayscale or palette) label PNG, got '
                         f'mode {img.mode!r}: {path}{_where(results)}')
    return np.asarray(img).astype(np.int64)


def _read_gray_png(path: str, results: dict,
                   backend_args: Optional[dict] = None) -> np.ndarray:
    img = _open_pil(path, results, backend_args)
    if img.mode != 'L':
        img = img.convert('L')
    return np.asarray(img)


def _read_rgb_png(path: str, results: dict,
                  backend_args: Optional[dict] = None) -> np.ndarray:
    img = _open_pil(path, results, backend_args)
    if img.mode != 'RGB':
        img = img.convert('RGB')
    return np.asarray(img)


def _loadmat(path: str, results: dict, backend_args: Optional[dict] = None) -> dict:
    import scipy.io
    data = _read_bytes(path, results, backend_args)
    try:
        return scipy.io.loadmat(io.BytesIO(data))
    except Exception as e:
        raise OSError(f'Cannot read .mat file {path}{_where(results)}: {e}') from e


def read_context_labelmap(path: str, results: Optional[dict] = None,
                          backend_args: Optional[dict] = None) -> np.ndarray:
    """The PASCAL-Context ``LabelMap`` (459-class ids) of a ``trainval/<id>.mat`` file."""
    results = results or {}
    mat = _loadmat(path, results, backend_args)
    if 'LabelMap' not in mat:
        raise KeyError(f"No 'LabelMap' variable in {path}{_where(results)}")
    return np.asarray(mat['LabelMap']).astype(np.int64)


def read_pascal_part_mask(path: str, results: Optional[dict] = None,
                          backend_args: Optional[dict] = None) -> Optional[np.ndarray]:
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
    if not fileio.exists(path, backend_args=backend_args):
        return None
    mat = _loadmat(path, results, backend_args)
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

    Args:
        backend_args (dict, optional): Arguments of mmengine's file backend (e.g.
            ``dict(backend='petrel')``); files are read through ``mmengine.fileio``.

    Added keys: ``img``, ``img_shape``, ``ori_shape`` (both (H, W)).
    """

    def __init__(self, backend_args: Optional[dict] = None) -> None:
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        path = results['img_path']
        img = _open_pil(path, results, self.backend_args)
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
    dataset class); the encoding names a decoder of ``mmmt.registry.ANNOTATION_DECODERS``
    (a new dataset registers its own). mmmt's encodings (reference-spec C.2/C.3):

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
        how = getattr(get_task(task), 'label_interpolation', 'nearest')
        warnings.warn(f'{task} annotation {path} has size {arr.shape[:2]} but its image has '
                      f'size {tuple(size)}; resizing it to the image size ({how}).')
        interp = cv2.INTER_CUBIC if how == 'bicubic' else cv2.INTER_NEAREST
        out = cv2.resize(arr, (int(size[1]), int(size[0])), interpolation=interp)
        return out.astype(arr.dtype)

    def _context(self, path: str, results: dict, cache: dict, size) -> np.ndarray:
        if path not in cache:
            lm = read_context_labelmap(path, results, self.backend_args)
            if size is not None and lm.shape != tuple(size):
                warnings.warn(f'Context LabelMap {path} has size {lm.shape} but its image has '
                              f'size {tuple(size)}; resizing it (nearest).')
                lm = cv2.resize(lm.astype(np.float32), (int(size[1]), int(size[0])),
                                interpolation=cv2.INTER_NEAREST).astype(np.int64)
            cache[path] = lm
        return cache[path]

    def _decode(self, task: str, info: dict, results: dict, cache: dict, size):
        enc = info['encoding']
        try:
            decoder = ANNOTATION_DECODERS.get(enc)
        except KeyError:  # a malformed scoped name
            decoder = None
        if decoder is None:
            raise ValueError(f"Unknown annotation encoding '{enc}' for task '{task}'; known: "
                             f'{sorted(ANNOTATION_DECODERS.module_dict)}')
        ctx = DecodeContext(self, task, results, cache, size)
        return decoder(info['path'], info, ctx), info['path']

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(tasks={self.tasks})'


class DecodeContext:
    """What an annotation decoder may need besides the file: the sample, the image size, the
    file backend (:meth:`read_bytes`) and the PASCAL-Context label map shared by several tasks
    of one sample (read once)."""

    def __init__(self, loader: 'LoadMultiTaskAnnotations', task: str, results: dict,
                 cache: dict, size: Optional[Tuple[int, int]]) -> None:
        self.loader, self.task, self.results, self.size = loader, task, results, size
        self.backend_args = loader.backend_args
        self._cache = cache

    def read_bytes(self, path: str) -> bytes:
        """The bytes of ``path`` through mmengine's file backends."""
        return _read_bytes(path, self.results, self.backend_args)

    def context_labelmap(self, path: str) -> np.ndarray:
        """The Context ``LabelMap`` of ``path`` at the image size (cached per sample)."""
        return self.loader._context(path, self.results, self._cache, self.size)

    def fit_to_image(self, arr: np.ndarray, path: str) -> np.ndarray:
        """``arr`` resized to the image size if it differs (with a warning)."""
        if self.size is not None and arr.shape[:2] != tuple(self.size):
            arr = self.loader._resize(self.task, arr, self.size, path)
        return arr


# Decoders of the encodings of mmmt's datasets (reference-spec C.2/C.3). A new dataset
# registers its own: ``@ANNOTATION_DECODERS.register_module('my_encoding')`` on a function
# ``(path, info, ctx) -> np.ndarray`` (see docs/how_to_add_a_dataset.md).
@ANNOTATION_DECODERS.register_module('nyud_semseg_png')
def decode_nyud_semseg_png(path: str, info: dict, ctx: DecodeContext) -> np.ndarray:
    raw = _read_label_png(path, ctx.results, ctx.backend_args)
    n = int(info['num_classes'])
    bad = (raw < 0) | (raw > n)
    if bad.any():
        raise ValueError(f'semseg label values {np.unique(raw[bad])[:10].tolist()} '
                         f'outside 0..{n} in {path}{_where(ctx.results)}')
    out = (raw - 1).astype(np.int64)
    out[raw == 0] = IGNORE_INDEX
    return out.astype(np.uint8)


@ANNOTATION_DECODERS.register_module('semseg_png')
def decode_semseg_png(path: str, info: dict, ctx: DecodeContext) -> np.ndarray:
    raw = _read_label_png(path, ctx.results, ctx.backend_args)
    n = int(info['num_classes'])
    bad = ((raw < 0) | (raw >= n)) & (raw != IGNORE_INDEX)
    if bad.any():
        raise ValueError(f'semseg label values {np.unique(raw[bad])[:10].tolist()} '
                         f'outside 0..{n - 1} and {IGNORE_INDEX} in '
                         f'{path}{_where(ctx.results)}')
    return raw.astype(np.uint8)


@ANNOTATION_DECODERS.register_module('depth_npy')
def decode_depth_npy(path: str, info: dict, ctx: DecodeContext) -> np.ndarray:
    data = ctx.read_bytes(path)
    try:
        depth = np.load(io.BytesIO(data))
    except Exception as e:
        raise OSError(f'Cannot read depth file {path}{_where(ctx.results)}: {e}') from e
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim == 3 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2:
        raise ValueError(f'Depth map must be (H, W), got {depth.shape}: {path}')
    return depth


@ANNOTATION_DECODERS.register_module('normals_png')
def decode_normals_png(path: str, info: dict, ctx: DecodeContext) -> np.ndarray:
    rgb = _read_rgb_png(path, ctx.results, ctx.backend_args).astype(np.float32)
    return (2.0 * rgb / 255.0 - 1.0).astype(np.float32)


@ANNOTATION_DECODERS.register_module('context_masked_normals_png')
def decode_context_masked_normals_png(path: str, info: dict,
                                      ctx: DecodeContext) -> np.ndarray:
    normals = ctx.fit_to_image(decode_normals_png(path, info, ctx), path)
    valid = np.isin(ctx.context_labelmap(info['context_path']),
                    PASCAL_NORMALS_VALID_CONTEXT_IDS)
    normals[~valid] = 0.0
    return normals


@ANNOTATION_DECODERS.register_module('edge_png')
def decode_edge_png(path: str, info: dict, ctx: DecodeContext) -> np.ndarray:
    return _read_gray_png(path, ctx.results, ctx.backend_args).astype(np.float32) / 255.0


@ANNOTATION_DECODERS.register_module('context_edge_mat')
def decode_context_edge_mat(path: str, info: dict, ctx: DecodeContext) -> np.ndarray:
    from skimage.morphology import thin
    lap = cv2.Laplacian(ctx.context_labelmap(path).astype(np.float64), cv2.CV_64F)
    return thin(np.abs(lap) > 0).astype(np.float32)


@ANNOTATION_DECODERS.register_module('pascal_parts_mat')
def decode_pascal_parts_mat(path: str, info: dict, ctx: DecodeContext) -> np.ndarray:
    parts = read_pascal_part_mask(path, ctx.results, ctx.backend_args)
    if parts is None:
        shape = tuple(ctx.size) if ctx.size is not None else (512, 512)
        parts = np.zeros(shape, dtype=np.uint8)
    return parts


@ANNOTATION_DECODERS.register_module('sal_png')
def decode_sal_png(path: str, info: dict, ctx: DecodeContext) -> np.ndarray:
    gray = _read_gray_png(path, ctx.results, ctx.backend_args).astype(np.float32)
    return (gray / 255.0 > 0.5).astype(np.float32)
