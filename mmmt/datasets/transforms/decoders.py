"""Reading and decoding the annotation files of the multi-task datasets.

Every file is read through ``mmengine.fileio`` (local disk, HTTP, S3, petrel: ``backend_args``)
and decoded in memory. Each annotation format is a function ``(path, info, ctx) -> np.ndarray``
registered in ``mmmt.registry.ANNOTATION_DECODERS`` under the ``encoding`` name a dataset gives
its files; :class:`~mmmt.datasets.transforms.LoadMultiTaskAnnotations` looks them up. A new
dataset registers its own (docs/how_to_add_a_dataset.md).
"""
import io
import warnings
from typing import Optional, Tuple

import cv2
import mmengine.fileio as fileio
import numpy as np
from PIL import Image

from mmmt.registry import ANNOTATION_DECODERS
from mmmt.structures import IGNORE_INDEX, get_task
from mmmt.utils.image_formats import PIL_READ_FORMATS
from ..class_names import PASCAL_NORMALS_VALID_CONTEXT_IDS, PASCAL_PART_GROUPS, PERSON_CLASS_ID

__all__ = [
    'DecodeContext', 'decode_annotation', 'fit_to_size', 'read_context_labelmap',
    'read_pascal_part_mask', 'read_image', 'sample_location', 'PIL_READ_FORMATS', 'WIDE_MODES'
]


def sample_location(results: dict) -> str:
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
        raise FileNotFoundError(f'File not found: {path}{sample_location(results)}') from None


def read_image(path: str, results: dict, backend_args: Optional[dict] = None,
               mode: Optional[str] = None) -> Image.Image:
    """Open and fully decode an image file with PIL (converted to ``mode`` if given, e.g.
    ``'RGB'``), naming the file on any failure.

    PIL rather than ``mmcv.imfrombytes``: mmcv's pillow path applies the EXIF orientation and
    composites grey+alpha images on a coloured background, which the reference (PIL's plain
    ``convert``) does not.
    """
    data = _read_bytes(path, results, backend_args)
    try:
        img = Image.open(io.BytesIO(data), formats=PIL_READ_FORMATS)
        img.load()
    except Exception as e:  # PIL raises several types for truncated / corrupt data
        raise OSError(f'Cannot read image file {path}{sample_location(results)}: {e}') from e
    return img.convert(mode) if mode is not None and img.mode != mode else img


def _read_label_png(path: str, results: dict,
                    backend_args: Optional[dict] = None) -> np.ndarray:
    """A single-channel label PNG as an (H, W) integer array (palette PNGs give their indices)."""
    img = read_image(path, results, backend_args)
    if img.mode not in ('L', 'P', 'I', 'I;16', 'I;16B', 'I;16L', '1'):
        raise ValueError(f'Expected a single-channel (grayscale or palette) label PNG, got '
                         f'mode {img.mode!r}: {path}{sample_location(results)}')
    return np.asarray(img).astype(np.int64)


def _loadmat(path: str, results: dict, backend_args: Optional[dict] = None) -> dict:
    import scipy.io
    data = _read_bytes(path, results, backend_args)
    try:
        return scipy.io.loadmat(io.BytesIO(data))
    except Exception as e:
        raise OSError(f'Cannot read .mat file {path}{sample_location(results)}: {e}') from e


def read_context_labelmap(path: str, results: Optional[dict] = None,
                          backend_args: Optional[dict] = None) -> np.ndarray:
    """The PASCAL-Context ``LabelMap`` (459-class ids) of a ``trainval/<id>.mat`` file."""
    results = results or {}
    mat = _loadmat(path, results, backend_args)
    if 'LabelMap' not in mat:
        raise KeyError(f"No 'LabelMap' variable in {path}{sample_location(results)}")
    labels = _check_map(mat['LabelMap'], 'LabelMap', path, results)
    where = f'{path}{sample_location(results)}'
    if labels.dtype.kind == 'f':
        # a class id map: a fraction, NaN or inf is a broken file (the cast made them garbage)
        bad = ~np.isfinite(labels) | (labels != np.round(labels))
        if bad.any():
            raise ValueError(f'LabelMap must hold whole class ids, got '
                             f'{float(labels[bad].flat[0])} at {bad.sum()} pixel(s): {where}')
    low, high = (labels.min().item(), labels.max().item()) if labels.size else (0, 0)
    if low < 0 or high > np.iinfo(np.int32).max:
        raise ValueError(f'LabelMap must hold class ids >= 0, got values from {low} to {high}: '
                         f'{where}')
    return labels.astype(np.int64)


def _check_map(arr, what: str, path: str, results: dict) -> np.ndarray:
    """A numeric, non-empty (H, W) array, or an error naming the file and what is wrong."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f'{what} must be a numeric (H, W) array, got dtype {arr.dtype}: '
                         f'{path}{sample_location(results)}')
    if arr.ndim != 2 or 0 in arr.shape:
        raise ValueError(f'{what} must be a non-empty (H, W) array, got shape {arr.shape}: '
                         f'{path}{sample_location(results)}')
    return arr


#: Largest plausible depth in metres; beyond it values are no depth map (a millimetre map
#: reaches about 1e4) and squared errors overflow float32.
MAX_DEPTH = 1e5


def _check_depth(depth: np.ndarray, path: str, results: dict,
                 max_depth: float = MAX_DEPTH) -> np.ndarray:
    """Depth as float32 (H, W) metres; NaN, inf, negative or absurd values (above
    ``max_depth``) are an error.

    0 marks a pixel without measurement (ignored by the loss and the metrics); there is no
    other ignore value, so a NaN or a negative number is a broken file, not a mask.
    """
    depth = _check_map(depth, 'Depth map', path, results)
    if not np.issubdtype(depth.dtype, np.floating):
        # an integer map is the raw sensor's (Kinect: uint16 millimetres), 1000x metres
        raise ValueError(f'Depth map has dtype {depth.dtype}, expected floating-point metres '
                         f'(divide raw millimetre maps by 1000): {path}{sample_location(results)}')
    depth = depth.astype(np.float32)
    problems = []
    for name, mask in (('NaN', np.isnan(depth)), ('infinite', np.isinf(depth)),
                       ('negative', depth < 0),
                       (f'> {max_depth:g} m', np.isfinite(depth) & (depth > max_depth))):
        if mask.any():
            problems.append(f'{int(mask.sum())} {name}')
    if problems:
        raise ValueError(f'Depth map has {", ".join(problems)} pixel(s) (expected metres >= 0, '
                         f'0 = no measurement): {path}{sample_location(results)}')
    return depth


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

    def structure_error(e: Exception) -> ValueError:
        # a field missing anywhere is one error naming the file (numpy's is a bare IndexError)
        return ValueError(f"Unexpected PASCAL-Part structure (need struct 'anno' with an "
                          'object list, each object with a class id, a mask and a part list) '
                          f'in {path}{sample_location(results)}: {type(e).__name__}: {e}')

    try:
        field = mat['anno'][0][0][1]
        if field.size == 0:  # no objects at all
            return None
        objects = [(obj, int(np.asarray(obj[1]).ravel()[0]), np.asarray(obj[2]))
                   for obj in field[0]]
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise structure_error(e) from e
    classes = [class_id if mask.sum() > 0 else -1 for _, class_id, mask in objects]
    if PERSON_CLASS_ID not in classes:
        return None
    target = None
    for obj, class_id, obj_mask in objects:
        if class_id != PERSON_CLASS_ID:
            continue
        try:  # the parts of persons only (those of other objects are never read)
            if len(obj[3]) == 0:
                continue
            parts = [(str(part[0][0]), np.asarray(part[1]).astype(bool)) for part in obj[3][0]]
        except (IndexError, ValueError, TypeError) as e:
            raise structure_error(e) from e
        if target is None:
            target = np.zeros(obj_mask.shape, dtype=np.uint8)
        for name, mask in parts:
            if mask.shape != target.shape:  # numpy would raise a bare IndexError
                raise ValueError(f"PASCAL-Part mask of part '{name}' has size {mask.shape}, "
                                 f'the person masks {target.shape}: '
                                 f'{path}{sample_location(results)}')
            target[mask] = PASCAL_PART_GROUPS.get(name, 0)
    return target


def _refuse_transposed(what: str, shape: Tuple[int, ...], size: Tuple[int, int],
                       path: str) -> None:
    """A map of size (w, h) for an (h, w) image has its rows and columns swapped (saved
    column-major, or rotated): resizing it would stretch every label to the wrong place."""
    hw, size = tuple(int(v) for v in shape[:2]), tuple(int(v) for v in size)
    if size[0] != size[1] and hw == size[::-1]:
        raise ValueError(f'{what} {path} has size {hw}, its image {size}: rows and columns '
                         'are swapped (expected the image size)')


def fit_to_size(task: str, arr: np.ndarray, size: Tuple[int, int], path: str) -> np.ndarray:
    """``arr`` resized to ``size`` (h, w) with a warning naming the file: nearest, or bicubic
    for tasks whose definition says so (normals, as the reference). A map of the transposed
    size is an error instead."""
    _refuse_transposed(f'{task} annotation', arr.shape, size, path)
    how = getattr(get_task(task), 'label_interpolation', 'nearest')
    warnings.warn(f'{task} annotation {path} has size {arr.shape[:2]} but its image has '
                  f'size {tuple(size)}; resizing it to the image size ({how}).')
    interp = cv2.INTER_CUBIC if how == 'bicubic' else cv2.INTER_NEAREST
    out = cv2.resize(arr, (int(size[1]), int(size[0])), interpolation=interp)
    return out.astype(arr.dtype)


class DecodeContext:
    """What an annotation decoder may need besides the file: the sample (``results``), the
    image size (``size``, (h, w) or None), the file backend (:meth:`read_bytes`) and the
    PASCAL-Context label map shared by several tasks of one sample (read once per sample).

    Args:
        task (str): The task being decoded.
        results (dict): The pipeline's results dict of the sample.
        size (tuple, optional): (h, w) of the image.
        backend_args (dict, optional): mmengine file backend arguments.
        cache (dict): Per-sample cache of decoded shared files.
    """

    def __init__(self, task: str, results: dict, size: Optional[Tuple[int, int]],
                 backend_args: Optional[dict], cache: dict) -> None:
        self.task, self.results, self.size, self.backend_args = task, results, size, backend_args
        self._cache = cache

    def read_bytes(self, path: str) -> bytes:
        """The bytes of ``path`` through mmengine's file backends."""
        return _read_bytes(path, self.results, self.backend_args)

    def context_labelmap(self, path: str) -> np.ndarray:
        """The Context ``LabelMap`` of ``path`` at the image size (cached per sample)."""
        size = self.size
        if path not in self._cache:
            lm = read_context_labelmap(path, self.results, self.backend_args)
            if size is not None and lm.shape != tuple(size):
                _refuse_transposed('Context LabelMap', lm.shape, size, path)
                warnings.warn(f'Context LabelMap {path} has size {lm.shape} but its image has '
                              f'size {tuple(size)}; resizing it (nearest).')
                lm = cv2.resize(lm.astype(np.float32), (int(size[1]), int(size[0])),
                                interpolation=cv2.INTER_NEAREST).astype(np.int64)
            self._cache[path] = lm
        return self._cache[path]

    def fit_to_image(self, arr: np.ndarray, path: str) -> np.ndarray:
        """``arr`` resized to the image size if it differs (:func:`fit_to_size`)."""
        if self.size is not None and arr.shape[:2] != tuple(self.size):
            arr = fit_to_size(self.task, arr, self.size, path)
        return arr


def decode_annotation(task: str, info: dict, ctx: DecodeContext) -> np.ndarray:
    """Decode ``info['path']`` with the decoder registered under ``info['encoding']``."""
    enc = info['encoding']
    try:
        decoder = ANNOTATION_DECODERS.get(enc)
    except KeyError:  # a malformed scoped name
        decoder = None
    if decoder is None:
        raise ValueError(f"Unknown annotation encoding '{enc}' for task '{task}'; known: "
                         f'{sorted(ANNOTATION_DECODERS.module_dict)}')
    return _checked_map(decoder(info['path'], info, ctx), task, enc, info['path'], ctx)


def _checked_map(arr, task: str, enc: str, path: str, ctx: DecodeContext) -> np.ndarray:
    """The decoder's result, refused (naming the encoding, the file and the sample) when it is
    no (H, W) or (H, W, C) array, or, for a class-index task (``label_dtype='int64'``), holds
    values that are no class index: packing casts them to int64, which truncated 0.6 to 0,
    wrapped NaN and kept -1 or 300 for the loss to fail on."""
    where = f"encoding '{enc}' of task '{task}' for {path}{sample_location(ctx.results)}"
    if not isinstance(arr, np.ndarray) or arr.ndim not in (2, 3) or arr.size == 0:
        got = (f'shape {arr.shape}' if isinstance(arr, np.ndarray) else type(arr).__name__)
        raise ValueError(f'{where}: a decoder returns a non-empty (H, W) or (H, W, C) numpy '
                         f'array, got {got}')
    spec = get_task(task)
    channels = spec.gt_channels if spec is not None else None
    if arr.ndim == 3 and channels and channels > 1 and arr.shape[0] == channels \
            and arr.shape[2] != channels:
        # transposed by the transforms as (H, W, C), it became "a map of H channels"
        raise ValueError(f'{where}: shape {arr.shape} is channels-first; a decoder returns '
                         f'(H, W, {channels}) (np.moveaxis(arr, 0, -1))')
    if spec is None or not spec.is_int or arr.dtype == np.uint8 or arr.dtype == np.bool_:
        return arr  # uint8 holds only 0..255: nothing to check
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f'{where}: class indices need an integer array, got dtype {arr.dtype}')
    with np.errstate(invalid='ignore'):
        bad = ~np.isfinite(arr) | (arr < 0) | (arr > IGNORE_INDEX) | (arr != np.round(arr)) \
            if np.issubdtype(arr.dtype, np.floating) else (arr < 0) | (arr > IGNORE_INDEX)
    if bad.any():
        raise ValueError(f'{where}: values {np.unique(arr[bad])[:5].tolist()} are no class '
                         f'index (label_dtype int64: integers 0..{IGNORE_INDEX - 1}, '
                         f'{IGNORE_INDEX} = ignore)')
    return arr


def _num_classes(path: str, info: dict, ctx: DecodeContext) -> int:
    """``info['num_classes']``, which a label decoder checks the values against; a dataset
    that gives none (a new dataset's ``sample_info``) is named, not a bare KeyError."""
    if 'num_classes' not in info:
        raise ValueError(f"ann_info['{ctx.task}'] has no 'num_classes' (encoding "
                         f"'{info.get('encoding')}' checks the labels against it): the "
                         f"dataset's sample_info must set it, for "
                         f'{path}{sample_location(ctx.results)}')
    n = int(info['num_classes'])
    if not 1 <= n <= IGNORE_INDEX:
        # the maps are uint8 with IGNORE_INDEX = 255: class 255 would be ignored and classes
        # from 256 on would wrap around to 0, 1, ...
        raise ValueError(f"ann_info['{ctx.task}']['num_classes'] is {n}; encoding "
                         f"'{info.get('encoding')}' holds 1..{IGNORE_INDEX} classes (0-based "
                         f'indices below the ignore value {IGNORE_INDEX}), for '
                         f'{path}{sample_location(ctx.results)}')
    return n


# Decoders of the encodings of mmmt's datasets (docs/differences.md). A new dataset
# registers its own: ``@ANNOTATION_DECODERS.register_module('my_encoding')`` on a function
# ``(path, info, ctx) -> np.ndarray`` (see docs/how_to_add_a_dataset.md).
@ANNOTATION_DECODERS.register_module('nyud_semseg_png')
def decode_nyud_semseg_png(path: str, info: dict, ctx: DecodeContext) -> np.ndarray:
    raw = _read_label_png(path, ctx.results, ctx.backend_args)
    n = _num_classes(path, info, ctx)
    bad = (raw < 0) | (raw > n)
    if bad.any():
        raise ValueError(f'{ctx.task} label values {np.unique(raw[bad])[:10].tolist()} '
                         f'outside 0..{n} in {path}{sample_location(ctx.results)}')
    out = (raw - 1).astype(np.int64)
    out[raw == 0] = IGNORE_INDEX
    return out.astype(np.uint8)


@ANNOTATION_DECODERS.register_module('semseg_png')
def decode_semseg_png(path: str, info: dict, ctx: DecodeContext) -> np.ndarray:
    raw = _read_label_png(path, ctx.results, ctx.backend_args)
    n = _num_classes(path, info, ctx)
    bad = ((raw < 0) | (raw >= n)) & (raw != IGNORE_INDEX)
    if bad.any():
        raise ValueError(f'{ctx.task} label values {np.unique(raw[bad])[:10].tolist()} '
                         f'outside 0..{n - 1} and {IGNORE_INDEX} in '
                         f'{path}{sample_location(ctx.results)}')
    return raw.astype(np.uint8)


@ANNOTATION_DECODERS.register_module('depth_npy')
def decode_depth_npy(path: str, info: dict, ctx: DecodeContext) -> np.ndarray:
    data = ctx.read_bytes(path)
    if not data.startswith(np.lib.format.MAGIC_PREFIX):
        # np.load would take a .npz for an archive, and call any other bytes "pickled (object)
        # data" that "you can load unsafely" with allow_pickle
        kind = ('empty (0 bytes)' if not data else 'a .npz archive (numpy.savez)'
                if data.startswith(b'PK') else f'not a .npy file (it starts with {data[:8]!r})')
        raise OSError(f'Cannot read depth file {path}{sample_location(ctx.results)}: {kind}; '
                      'expected one (H, W) array saved with numpy.save')
    try:
        depth = np.load(io.BytesIO(data))
    except Exception as e:
        raise OSError(f'Cannot read depth file {path}{sample_location(ctx.results)}: {e}') from e
    return _check_depth(depth, path, ctx.results, float(info.get('max_depth', MAX_DEPTH)))


#: PIL modes of an 8-bit colour PNG: converted to RGB, the stored colour values are unchanged.
_COLOUR_MODES = ('RGB', 'RGBA', 'P')
#: PIL modes of single-channel images with more than 8 bits: converting them to 'L' clips
#: every value above 255.
WIDE_MODES = ('I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F')


def _read_8bit(path: str, ctx: DecodeContext, what: str, mode: str) -> np.ndarray:
    """``path`` as an 8-bit ``mode`` ('RGB' or 'L') array; an image whose values do not fit
    that (a grayscale normals map, a 16-bit edge map) is an error naming the file."""
    img = read_image(path, ctx.results, ctx.backend_args)
    if mode == 'RGB' and img.mode not in _COLOUR_MODES:
        raise ValueError(f'{what} must be an 8-bit RGB PNG, got mode {img.mode!r}: '
                         f'{path}{sample_location(ctx.results)}')
    if mode == 'L' and img.mode in WIDE_MODES:
        raise ValueError(f'{what} must be an 8-bit grayscale PNG (values 0..255), got mode '
                         f'{img.mode!r}: {path}{sample_location(ctx.results)}')
    return np.asarray(img if img.mode == mode else img.convert(mode))


@ANNOTATION_DECODERS.register_module('normals_png')
def decode_normals_png(path: str, info: dict, ctx: DecodeContext) -> np.ndarray:
    rgb = _read_8bit(path, ctx, f'{ctx.task} map', 'RGB').astype(np.float32)
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
    gray = _read_8bit(path, ctx, f'{ctx.task} map', 'L')
    return gray.astype(np.float32) / 255.0


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
    gray = _read_8bit(path, ctx, f'{ctx.task} map', 'L').astype(np.float32)
    return (gray / 255.0 > 0.5).astype(np.float32)
