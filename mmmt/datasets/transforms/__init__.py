"""Transforms of the multi-task pipelines: loading, geometric/photometric, ignore rules, packing."""
from .decoders import DecodeContext
from .formatting import PackMultiTaskInputs
from .loading import LoadMultiTaskAnnotations, LoadMultiTaskImage
from .test_time_aug import ImageOnly
from .transforms import (AddIgnoreRegions, CenterPad, MultiTaskPhotoMetricDistortion,
                         MultiTaskRandomCrop, MultiTaskRandomFlip, RandomScaling)

__all__ = [
    'LoadMultiTaskImage', 'LoadMultiTaskAnnotations', 'RandomScaling', 'MultiTaskRandomCrop',
    'MultiTaskRandomFlip', 'MultiTaskPhotoMetricDistortion', 'CenterPad', 'AddIgnoreRegions',
    'PackMultiTaskInputs', 'ImageOnly', 'DecodeContext'
]
