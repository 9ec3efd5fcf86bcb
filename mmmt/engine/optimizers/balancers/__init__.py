"""Gradient balancers of :class:`~mmmt.engine.MultiTaskOptimWrapper`, one module per method."""
from .aligned_mtl import AlignedMTL
from .base import BaseBalancer
from .cagrad import CAGrad
from .gradnorm import GradNorm
from .imtl import IMTLG
from .mgda import MGDAUB, min_norm_weights
from .nash_mtl import NashMTL, nash_bargaining_weights
from .pcgrad import PCGrad

__all__ = [
    'BaseBalancer', 'PCGrad', 'CAGrad', 'GradNorm', 'IMTLG', 'MGDAUB', 'NashMTL', 'AlignedMTL',
    'min_norm_weights', 'nash_bargaining_weights'
]
