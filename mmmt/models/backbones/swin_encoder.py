"""mmpretrain's Swin Transformer as MTMamba's encoder."""
from typing import Sequence

import torch.nn as nn
from mmpretrain.models.backbones import SwinTransformer

from mmmt.registry import MODELS

__all__ = ['SwinEncoder']


@MODELS.register_module()
class SwinEncoder(SwinTransformer):
    """mmpretrain's :class:`~mmpretrain.models.backbones.SwinTransformer` whose output norms
    start from identity after a pretrained initialisation.

    The reference loads Microsoft's ImageNet checkpoint into mmseg's Swin: the checkpoint's
    final ``norm`` is the classifier's and has no counterpart among the per-stage output norms,
    so all four start at ``weight=1, bias=0`` (docs/differences.md). OpenMMLab's converted Swin
    checkpoints store that classifier norm as ``backbone.norm3`` (and mmpretrain renames a
    Microsoft ``norm.`` to ``norm3.`` when loading), which would make the stride-32 feature
    entering the decoder start with the classifier's normalisation. With ``fresh_out_norms``
    (the default) the output norms of ``out_indices`` are reset to identity right after the
    pretrained weights are loaded. Checkpoints of trained models (``load_from``, ``--resume``)
    are loaded after this initialisation and keep their trained norms.

    Parameter names are those of mmpretrain's class, so converted checkpoints load unchanged.

    Args:
        fresh_out_norms (bool): Reset the output norms after a ``Pretrained`` init.
            Defaults to True.
        *args, **kwargs: See mmpretrain's ``SwinTransformer``.
    """

    def __init__(self, *args, fresh_out_norms: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fresh_out_norms = fresh_out_norms

    def _output_norms(self) -> Sequence[nn.Module]:
        return [getattr(self, f'norm{i}') for i in self.out_indices if hasattr(self, f'norm{i}')]

    def init_weights(self) -> None:
        super().init_weights()
        pretrained = isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained'
        if self.fresh_out_norms and pretrained:
            for norm in self._output_norms():
                if getattr(norm, 'weight', None) is not None:
                    nn.init.ones_(norm.weight)
                if getattr(norm, 'bias', None) is not None:
                    nn.init.zeros_(norm.bias)
