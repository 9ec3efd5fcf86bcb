"""Building a layer from its config inside mmmt's scope."""
import torch.nn as nn

from mmmt.registry import MODELS

__all__ = ['build_block']


def build_block(cfg: dict, **fill) -> nn.Module:
    """Build ``cfg`` with the keys of ``fill`` set (they override the config's), in scope
    ``mmmt`` unless the config names one with ``_scope_``: decoder blocks are built the same way
    under a plain mmseg config (``default_scope='mmseg'``)."""
    cfg = dict(cfg, **fill)
    cfg.setdefault('_scope_', 'mmmt')
    return MODELS.build(cfg)
