"""Cityscapes for multi-task learning: semantic segmentation (19 classes) and disparity.

The two annotation encodings of the layout are registered here in
``mmmt.registry.ANNOTATION_DECODERS`` (see docs/how_to_add_a_dataset.md):

- ``cityscapes_labelids_png``: a ``*_gtFine_labelIds.png`` (raw label ids 0..33) mapped to the
  19 train ids of the Cityscapes benchmark, every other id (void) to 255.
- ``cityscapes_disparity_png``: a ``*_disparity.png`` (uint16) decoded as ``(d - 1) / 256``
  pixels of disparity for ``d > 0``; ``d = 0`` (no stereo match) gives 0, mmmt's "invalid"
  (ignored in the loss and the metric after ``AddIgnoreRegions``). Optionally the pixels of
  one raw label id (sky) are set to 0 as well; see docs/differences.md (Cityscapes) for the
  reference's choice of id.

The ``depth`` task of this dataset is disparity in pixels: the reference trains and evaluates
on disparity and never converts it to metric depth (docs/differences.md).
"""
import os.path as osp
from typing import Dict, List, Optional

import mmengine.fileio as fileio
import numpy as np

from mmmt.registry import ANNOTATION_DECODERS, DATASETS
from mmmt.structures import IGNORE_INDEX
from mmmt.utils.errors import InputFileNotFoundError, UserInputError, is_int
from .base_multitask import BaseMultiTaskDataset
from .transforms.decoders import DecodeContext, _read_label_png, read_image, sample_location

__all__ = [
    'CityscapesMultiTaskDataset', 'CITYSCAPES_CLASSES', 'CITYSCAPES_PALETTE',
    'CITYSCAPES_LABEL_TO_TRAIN_ID', 'CITYSCAPES_SKY_LABEL_ID', 'REFERENCE_SKY_LABEL_ID',
    'labelids_to_trainids', 'decode_cityscapes_labelids_png',
    'decode_cityscapes_disparity_png'
]

#: The 19 evaluated classes, in train-id order (as mmseg's ``CityscapesDataset``).
CITYSCAPES_CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole',
                      'traffic light', 'traffic sign', 'vegetation', 'terrain', 'sky', 'person',
                      'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle')
#: Their colours (the official Cityscapes colours, as mmseg's ``CityscapesDataset``).
CITYSCAPES_PALETTE = [[128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156],
                      [190, 153, 153], [153, 153, 153], [250, 170, 30], [220, 220, 0],
                      [107, 142, 35], [152, 251, 152], [70, 130, 180], [220, 20, 60],
                      [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100], [0, 80, 100],
                      [0, 0, 230], [119, 11, 32]]
#: Raw label id -> train id of the 19 classes (cityscapesScripts' ``labels.py``); every other
#: id of 0..33 is void.
CITYSCAPES_LABEL_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
    26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18
}
#: The largest raw label id of ``*_gtFine_labelIds.png`` (license plate, -1, is not stored).
MAX_LABEL_ID = 33
#: The raw label id of "sky".
CITYSCAPES_SKY_LABEL_ID = 23
#: The raw label id the reference compares with to find the sky (it is "rail track", a void
#: class; 10 is sky's *train* id). ``sky_label_id=REFERENCE_SKY_LABEL_ID`` reproduces it.
REFERENCE_SKY_LABEL_ID = 10

# A lookup table over 0..255 (the values a uint8 PNG can hold), void -> IGNORE_INDEX.
_LUT = np.full(256, IGNORE_INDEX, dtype=np.uint8)
for _label_id, _train_id in CITYSCAPES_LABEL_TO_TRAIN_ID.items():
    _LUT[_label_id] = _train_id
del _label_id, _train_id


def labelids_to_trainids(label_ids: np.ndarray) -> np.ndarray:
    """Map raw Cityscapes label ids (0..33) to train ids (0..18), void to 255 (uint8)."""
    return _LUT[np.asarray(label_ids, dtype=np.int64)]


def _read_label_ids(path: str, ctx: DecodeContext) -> np.ndarray:
    raw = _read_label_png(path, ctx.results, ctx.backend_args)
    bad = (raw < 0) | (raw > MAX_LABEL_ID)
    if bad.any():
        raise ValueError(f'Cityscapes label ids must be 0..{MAX_LABEL_ID}, found '
                         f'{np.unique(raw[bad])[:10].tolist()} in '
                         f'{path}{sample_location(ctx.results)} '
                         '(is it a *_gtFine_labelIds.png, not a color or trainIds image?)')
    return raw


@ANNOTATION_DECODERS.register_module('cityscapes_labelids_png')
def decode_cityscapes_labelids_png(path: str, info: dict, ctx: DecodeContext) -> np.ndarray:
    """A ``*_gtFine_labelIds.png`` as a uint8 train-id map (void -> 255)."""
    return labelids_to_trainids(_read_label_ids(path, ctx))


@ANNOTATION_DECODERS.register_module('cityscapes_disparity_png')
def decode_cityscapes_disparity_png(path: str, info: dict, ctx: DecodeContext) -> np.ndarray:
    """A ``*_disparity.png`` as float32 disparity in pixels, 0 = invalid.

    ``info`` may hold ``sky_label_id`` (an int, or None for no sky handling) and
    ``label_path`` (the sample's ``*_gtFine_labelIds.png``): pixels whose raw label id equals
    ``sky_label_id`` get disparity 0 (invalid).
    """
    img = read_image(path, ctx.results, ctx.backend_args)
    if not img.mode.startswith('I'):
        # 'L', 'P', '1' would decode as disparities below 1 px without a word
        raise ValueError(f'Cityscapes disparity PNG must be 16-bit (256 * disparity + 1), got '
                         f'mode {img.mode!r}: {path}{sample_location(ctx.results)}')
    raw = np.asarray(img).astype(np.int64)
    if raw.min() < 0 or raw.max() > np.iinfo(np.uint16).max:
        raise ValueError(f'Cityscapes disparity PNG must be uint16, found values '
                         f'{int(raw.min())}..{int(raw.max())} in '
                         f'{path}{sample_location(ctx.results)}')
    disparity = np.where(raw > 0, (raw - 1) / 256.0, 0.0).astype(np.float32)
    sky = info.get('sky_label_id')
    if sky is not None:
        label_ids = _read_label_ids(info['label_path'], ctx)
        if label_ids.shape != disparity.shape:
            raise ValueError(f'label map {info["label_path"]} {label_ids.shape} and disparity '
                             f'{path} {disparity.shape} differ in size'
                             f'{sample_location(ctx.results)}')
        disparity[label_ids == int(sky)] = 0.0
    return disparity


@DATASETS.register_module()
class CityscapesMultiTaskDataset(BaseMultiTaskDataset):
    """Cityscapes (fine annotations) with semseg (19 classes) and disparity (``depth``).

    Layout under ``data_root`` (the official ``leftImg8bit_trainvaltest``,
    ``gtFine_trainvaltest`` and ``disparity_trainvaltest`` packages unpacked together)::

        leftImg8bit/{train,val}/<city>/<id>_leftImg8bit.png   RGB image, 1024x2048
        gtFine/{train,val}/<city>/<id>_gtFine_labelIds.png    raw label ids 0..33
        disparity/{train,val}/<city>/<id>_disparity.png       uint16, (d - 1) / 256, 0 invalid

    Samples are the images found under ``leftImg8bit/<split>/`` (2975 train, 500 val), sorted,
    unless ``ann_file`` names a split list of ``<city>/<id>`` lines (``<id>`` as
    ``aachen_000000_000019``). ``gtFine/*_labelIds.png`` is read for semseg, and for depth
    while ``sky_label_id`` is set.

    Args:
        data_root (str): Dataset root, e.g. ``'data/cityscapes'``.
        split (str): ``'train'`` or ``'val'`` (the papers' test set).
        tasks (Sequence[str], optional): Subset of ``('semseg', 'depth')`` (default: both).
        sky_label_id (int, optional): Raw label id whose pixels get disparity 0 (invalid).
            Defaults to 23, sky. The reference compares with 10 (rail track):
            ``REFERENCE_SKY_LABEL_ID`` reproduces it; None keeps every disparity.
        **kwargs: See :class:`~mmmt.datasets.base_multitask.BaseMultiTaskDataset`.
    """

    METAINFO = dict(classes=CITYSCAPES_CLASSES, palette=CITYSCAPES_PALETTE)
    SUPPORTED_TASKS = ('semseg', 'depth')
    DEFAULT_TASKS = ('semseg', 'depth')
    SPLIT_FILE = ''  # no split list: the images under leftImg8bit/<split>/ are the split
    IMG_SUFFIX = '_leftImg8bit.png'
    LABEL_SUFFIX = '_gtFine_labelIds.png'
    DISPARITY_SUFFIX = '_disparity.png'

    def __init__(self, *args, sky_label_id: Optional[int] = CITYSCAPES_SKY_LABEL_ID,
                 **kwargs) -> None:
        # set before the base class lists the samples (which reads it)
        if sky_label_id is not None and not (is_int(sky_label_id) and 0 <= sky_label_id <= 255):
            # 23.9 was truncated to 23; -5 or 300 masked nothing
            raise UserInputError(f'sky_label_id: expected a Cityscapes label id (an integer '
                                 f'0..255) or None, got {sky_label_id!r}')
        self.sky_label_id = None if sky_label_id is None else int(sky_label_id)
        super().__init__(*args, **kwargs)

    def read_split(self) -> List[str]:
        """``<city>/<id>`` of every image of the split (or of the lines of ``ann_file``)."""
        if self.ann_file:
            return super().read_split()
        folder = osp.join(self.data_root, 'leftImg8bit', self.split)
        if not fileio.isdir(folder, backend_args=self.backend_args):
            raise InputFileNotFoundError(
                f"Image folder '{folder}' of split '{self.split}' does not exist "
                f"(data_root='{self.data_root}'). Unpack Cityscapes as README.md ('Data') "
                'describes, set data_root to where it is, or write a synthetic one with '
                'tools/dataset_converters/synthetic_mt.py cityscapes.')
        files = fileio.list_dir_or_file(folder, list_dir=False, suffix=self.IMG_SUFFIX,
                                        recursive=True, backend_args=self.backend_args)
        ids = sorted(f[:-len(self.IMG_SUFFIX)].replace(osp.sep, '/') for f in files)
        if not ids:
            raise UserInputError(f"No '*{self.IMG_SUFFIX}' image under '{folder}' "
                                 f"(split '{self.split}').")
        return ids

    def _path(self, folder: str, img_id: str, suffix: str) -> str:
        return osp.join(self.data_root, folder, self.split, *img_id.split('/')) + suffix

    def sample_info(self, img_id: str) -> Dict:
        if img_id.count('/') != 1:
            raise UserInputError(f"Cityscapes ids are '<city>/<id>', got {img_id!r}"
                                 + (f' in {self.ann_file}' if self.ann_file else ''))
        img_path = self._path('leftImg8bit', img_id, self.IMG_SUFFIX)
        label_path = self._path('gtFine', img_id, self.LABEL_SUFFIX)
        ann_info = {}
        if 'semseg' in self.tasks:
            ann_info['semseg'] = dict(path=label_path, encoding='cityscapes_labelids_png',
                                      num_classes=len(CITYSCAPES_CLASSES))
        if 'depth' in self.tasks:
            ann_info['depth'] = dict(path=self._path('disparity', img_id,
                                                     self.DISPARITY_SUFFIX),
                                     encoding='cityscapes_disparity_png',
                                     sky_label_id=self.sky_label_id, label_path=label_path)
        required = [img_path] + [a['path'] for a in ann_info.values()]
        if 'depth' in self.tasks and self.sky_label_id is not None:
            required.append(label_path)
        return dict(img_path=img_path, ann_info=ann_info,
                    required_files=list(dict.fromkeys(required)))
