"""Multi-task datasets (NYUDv2, PASCAL-Context, Cityscapes), their transforms and the synthetic generator."""
from mmmt import _package_check  # noqa: F401,I001  (names the clone-folder trap)
from .base_multitask import BaseMultiTaskDataset
from .cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, CityscapesMultiTaskDataset
from .class_names import (HUMAN_PART_CLASSES, NYUD_CLASSES, PASCAL_NORMALS_VALID_CONTEXT_IDS,
                          PASCAL_PART_GROUPS, VOC_CLASSES)
from .integrity import LAYOUTS, STANDARD_SPLIT_SIZES, check_sample, check_split
from .nyud import NYUDv2MultiTaskDataset
from .pascal_context import PascalContextMultiTaskDataset
from .transforms import *  # noqa: F401,F403
from .transforms import __all__ as _transforms_all

__all__ = [
    'BaseMultiTaskDataset', 'NYUDv2MultiTaskDataset', 'PascalContextMultiTaskDataset',
    'CityscapesMultiTaskDataset', 'CITYSCAPES_CLASSES', 'CITYSCAPES_PALETTE',
    'NYUD_CLASSES', 'VOC_CLASSES', 'HUMAN_PART_CLASSES', 'PASCAL_PART_GROUPS',
    'PASCAL_NORMALS_VALID_CONTEXT_IDS', 'LAYOUTS', 'STANDARD_SPLIT_SIZES', 'check_sample',
    'check_split'
] + list(_transforms_all)
