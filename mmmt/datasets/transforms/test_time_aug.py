"""Image-only wrapper of geometric transforms, for test-time augmentation views."""
from typing import List

from mmcv.transforms import BaseTransform, Compose

from mmmt.registry import TRANSFORMS

__all__ = ['ImageOnly']


@TRANSFORMS.register_module()
class ImageOnly(BaseTransform):
    """Apply ``transforms`` to the image only; the labels stay in the original frame.

    In a ``tta_pipeline`` every view (flipped, rescaled) is evaluated against the *original*
    ground truth, because :class:`~mmmt.models.MultiTaskEncoderDecoder` maps each view's
    prediction back to the original frame (un-flip, normals' x negated back, resize to
    ``ori_shape``). The ``seg_fields`` labels are set aside while ``transforms`` run and put back
    unchanged afterwards; the metainfo the transforms record (``flip``, ``scale_factor``,
    ``img_shape``) stays.

    Args:
        transforms (list[dict]): Transform configs, e.g.
            ``[dict(type='MultiTaskRandomFlip', prob=1.0)]``.
    """

    def __init__(self, transforms: List[dict]) -> None:
        self.transforms = Compose(transforms)

    def transform(self, results: dict) -> dict:
        fields = list(results.get('seg_fields', []))
        labels = {k: results.pop(k) for k in fields if k in results}
        results['seg_fields'] = []
        results = self.transforms(results)
        results.update(labels)
        results['seg_fields'] = fields
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(transforms={self.transforms!r})'
