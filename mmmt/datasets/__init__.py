"""Multi-task datasets (NYUDv2, PASCAL-Context, Cityscapes) and their transforms.

The synthetic dataset generator is in :mod:`mmmt.testing`.

The transforms extend mmseg's, whose package needs ``mmcv._ext``; with mmcv-lite the raising
placeholder of :mod:`mmmt.utils.mmcv_compat` is installed first (a no-op beside a full mmcv).
"""
from mmmt import _package_check  # noqa: F401  # isort: skip  (first: names the clone-folder trap)
from mmmt.utils.mmcv_compat import install_mmcv_ext_placeholder

install_mmcv_ext_placeholder()

from .base_multitask import BaseMultiTaskDataset  # noqa: F401,E402
from .cityscapes import (CITYSCAPES_CLASSES, CITYSCAPES_PALETTE,  # noqa: F401,E402
                         CityscapesMultiTaskDataset)
from .class_names import (HUMAN_PART_CLASSES, NYUD_CLASSES,  # noqa: F401,E402
                          PASCAL_NORMALS_VALID_CONTEXT_IDS, PASCAL_PART_GROUPS, VOC_CLASSES)
from .integrity import (LAYOUTS, STANDARD_SPLIT_SIZES, check_built_dataset,  # noqa: F401,E402
                        check_config_split, check_sample, check_split)
from .nyud import NYUDv2MultiTaskDataset  # noqa: F401,E402
from .pascal_context import PascalContextMultiTaskDataset  # noqa: F401,E402
from .transforms import *  # noqa: F401,F403,E402
from .transforms import __all__ as _transforms_all  # noqa: E402

__all__ = [
    'BaseMultiTaskDataset', 'NYUDv2MultiTaskDataset', 'PascalContextMultiTaskDataset',
    'CityscapesMultiTaskDataset', 'CITYSCAPES_CLASSES', 'CITYSCAPES_PALETTE',
    'NYUD_CLASSES', 'VOC_CLASSES', 'HUMAN_PART_CLASSES', 'PASCAL_PART_GROUPS',
    'PASCAL_NORMALS_VALID_CONTEXT_IDS', 'LAYOUTS', 'STANDARD_SPLIT_SIZES', 'check_sample',
    'check_split', 'check_config_split', 'check_built_dataset'
] + list(_transforms_all)
