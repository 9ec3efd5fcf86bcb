"""Training-engine components of mmmt: the multi-task optim wrapper and its gradient balancers."""
from .optimizers import (MGDAUB, AlignedMTL, BaseBalancer, CAGrad, GradNorm, IMTLG,
                         MultiTaskOptimWrapper, NashMTL, PCGrad)

__all__ = [
    'MultiTaskOptimWrapper', 'BaseBalancer', 'PCGrad', 'CAGrad', 'GradNorm', 'IMTLG', 'MGDAUB',
    'NashMTL', 'AlignedMTL'
]
