"""NYUDv2 multi-task dataset (semseg, depth, normals, edge) in the reference's layout."""
import os.path as osp
from typing import Dict

from mmmt.registry import DATASETS
from mmmt.utils.errors import UserInputError
from .base_multitask import BaseMultiTaskDataset
from .class_names import NYUD_CLASSES, NYUD_PALETTE

__all__ = ['NYUDv2MultiTaskDataset', 'NYUD_MAX_DEPTH']

#: Largest depth (metres) accepted in an NYUD depth map. The Kinect measures up to about 10 m;
#: 100 m leaves room and still stops a map in millimetres or centimetres, whose RMSE would be
#: 1000 or 100 times the metres'.
NYUD_MAX_DEPTH = 100.0


@DATASETS.register_module()
class NYUDv2MultiTaskDataset(BaseMultiTaskDataset):
    """NYUDv2 with the multi-task annotations of the ATRC/InvPT/MTMamba tarball.

    Layout under ``data_root`` (ids are the stems listed in the split file, e.g. ``0001``)::

        images/<id>.png        RGB image (native 425x560)
        segmentation/<id>.png  0 = unlabelled (-> 255 ignore), 1..40 = classes 0..39
        depth/<id>.npy         float depth, 0 = invalid (-> 255 ignore)
        normals/<id>.png       RGB, n = 2 v / 255 - 1
        edge/<id>.png          v / 255 in [0, 1]
        gt_sets/train.txt      795 ids
        gt_sets/val.txt        654 ids (the test set)

    Unlike the reference, which asserts that every modality exists even for disabled tasks,
    only the image and the files of the selected ``tasks`` are required. A depth map with a
    value above ``max_depth`` is an error naming the file (a map in other units than metres).

    Args:
        data_root (str): Dataset root, e.g. ``'data/NYUDv2'``.
        split (str): ``'train'`` or ``'val'``.
        tasks (Sequence[str], optional): Subset of ``('semseg', 'depth', 'normals', 'edge')``
            (the default: all four).
        max_depth (float): Largest accepted depth in metres. Defaults to
            :data:`NYUD_MAX_DEPTH` (100).
        **kwargs: See :class:`~mmmt.datasets.base_multitask.BaseMultiTaskDataset`.
    """

    METAINFO = dict(classes=NYUD_CLASSES, palette=NYUD_PALETTE)
    SUPPORTED_TASKS = ('semseg', 'depth', 'normals', 'edge')
    DEFAULT_TASKS = ('semseg', 'depth', 'normals', 'edge')
    SPLIT_FILE = 'gt_sets/{split}.txt'
    _FILES = dict(
        semseg=('segmentation', '.png', 'nyud_semseg_png'),
        depth=('depth', '.npy', 'depth_npy'),
        normals=('normals', '.png', 'normals_png'),
        edge=('edge', '.png', 'edge_png'))

    def __init__(self, *args, max_depth: float = NYUD_MAX_DEPTH, **kwargs) -> None:
        try:
            valid = not isinstance(max_depth, bool) and float(max_depth) > 0
        except (TypeError, ValueError):  # None, 'abc': float()'s own error names no field
            valid = False
        if not valid:
            raise UserInputError(f'max_depth must be a positive number of metres, got '
                                 f'{max_depth!r}')
        self.max_depth = float(max_depth)  # read by sample_info, during super().__init__
        super().__init__(*args, **kwargs)

    def sample_info(self, img_id: str) -> Dict:
        root = self.data_root
        img_path = osp.join(root, 'images', f'{img_id}.png')
        ann_info = {}
        for task in self.tasks:
            folder, ext, enc = self._FILES[task]
            ann_info[task] = dict(path=osp.join(root, folder, img_id + ext), encoding=enc)
            if task == 'semseg':
                ann_info[task]['num_classes'] = len(NYUD_CLASSES)
            elif task == 'depth':
                ann_info[task]['max_depth'] = self.max_depth
        required = [img_path] + [a['path'] for a in ann_info.values()]
        return dict(img_path=img_path, ann_info=ann_info, required_files=required)
