"""PASCAL-Context multi-task dataset (semseg, human_parts, sal, normals, edge).

The reference's layout; where mmmt reads it differently: docs/differences.md.
"""
import os.path as osp
from typing import Dict, List

import mmengine.fileio as fileio

from mmmt.registry import DATASETS
from .base_multitask import BaseMultiTaskDataset
from .class_names import HUMAN_PART_CLASSES, HUMAN_PART_PALETTE, VOC_CLASSES, VOC_PALETTE

__all__ = ['PascalContextMultiTaskDataset']


@DATASETS.register_module()
class PascalContextMultiTaskDataset(BaseMultiTaskDataset):
    """PASCAL-Context with the multi-task annotations of the ATRC/InvPT/MTMamba tarball.

    Layout under ``data_root`` (ids like ``2008_000002``)::

        JPEGImages/<id>.jpg               RGB image
        ImageSets/Context/{train,val}.txt 4,998 / 5,105 ids (val is the test set)
        pascal-context/trainval/<id>.mat  variable LabelMap (459-class Context ids): the edges
                                          (|Laplacian| > 0, thinned) and the normals mask
        semseg/VOC12/<id>.png             21 VOC classes (0 = background), 255 = ignore;
        semseg/pascal-context/<id>.png    used when the VOC12 file does not exist
        human_parts/<id>.mat              PASCAL-Part struct 'anno' (6 part groups)
        normals_distill/<id>.png          RGB, 2 v / 255 - 1; kept on 170 Context classes
        sal_distill/<id>.png              grayscale, v / 255 > 0.5

    A missing ``human_parts/<id>.mat`` means "no annotated person": the map is all ignored, as
    in the reference; but when no id of the split has one (the folder was not extracted, or is
    elsewhere), construction stops with an error naming the folder (``check_files``), rather
    than train and test human parts on nothing. The reference's JSON cache
    ``ImageSets/Parts/*.txt`` is neither read nor written (the object classes are read from the
    ``.mat`` directly), and ``edge/*.png`` is not needed (edges are derived from the LabelMap).

    Args:
        data_root (str): Dataset root, e.g. ``'data/PASCALContext'``.
        split (str): ``'train'`` or ``'val'``.
        tasks (Sequence[str], optional): Subset of
            ``('semseg', 'human_parts', 'sal', 'normals', 'edge')`` (the default: all five).
        **kwargs: See :class:`~mmmt.datasets.base_multitask.BaseMultiTaskDataset`.
    """

    METAINFO = dict(classes=VOC_CLASSES, palette=VOC_PALETTE, part_classes=HUMAN_PART_CLASSES,
                    part_palette=HUMAN_PART_PALETTE)
    SUPPORTED_TASKS = ('semseg', 'human_parts', 'sal', 'normals', 'edge')
    DEFAULT_TASKS = ('semseg', 'human_parts', 'sal', 'normals', 'edge')
    SPLIT_FILE = 'ImageSets/Context/{split}.txt'

    def sample_info(self, img_id: str) -> Dict:
        root = self.data_root
        img_path = osp.join(root, 'JPEGImages', f'{img_id}.jpg')
        context = osp.join(root, 'pascal-context', 'trainval', f'{img_id}.mat')
        required = [img_path]
        ann_info = {}
        for task in self.tasks:
            if task == 'semseg':
                path = osp.join(root, 'semseg', 'VOC12', f'{img_id}.png')
                if not fileio.isfile(path, backend_args=self.backend_args):
                    path = osp.join(root, 'semseg', 'pascal-context', f'{img_id}.png')
                ann = dict(path=path, encoding='semseg_png', num_classes=len(VOC_CLASSES))
            elif task == 'human_parts':
                ann = dict(path=osp.join(root, 'human_parts', f'{img_id}.mat'),
                           encoding='pascal_parts_mat')
            elif task == 'sal':
                ann = dict(path=osp.join(root, 'sal_distill', f'{img_id}.png'),
                           encoding='sal_png')
            elif task == 'normals':
                ann = dict(path=osp.join(root, 'normals_distill', f'{img_id}.png'),
                           encoding='context_masked_normals_png', context_path=context)
                required.append(context)
            else:  # edge
                ann = dict(path=context, encoding='context_edge_mat')
            if task != 'human_parts':
                required.append(ann['path'])
            ann_info[task] = ann
        return dict(img_path=img_path, ann_info=ann_info,
                    required_files=list(dict.fromkeys(required)))

    def split_problems(self, data_list: List[dict]) -> List[str]:
        if 'human_parts' in self.tasks and data_list and not any(
                fileio.isfile(d['ann_info']['human_parts']['path'],
                              backend_args=self.backend_args) for d in data_list):
            # one missing file is an image without persons; all of them missing is a
            # missing folder, which would silently ignore every human-parts pixel
            folder = osp.dirname(data_list[0]['ann_info']['human_parts']['path'])
            return [f"None of the {len(data_list)} ids of split list '{self.ann_file}' has a "
                    f"PASCAL-Part file in '{folder}' (human_parts/<id>.mat); extract the "
                    'human_parts annotations there, or leave human_parts out of tasks']
        return []
