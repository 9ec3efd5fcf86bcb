from .optimizers import (MGDAUB, AlignedMTL, BaseBalancer, CAGrad, GradNorm, IMTLG,
                         MultiTaskOptimWrapper, NashMTL, PCGrad)

__all__ = [
    'MultiTaskOptimWrapper', 'BaseBalancer', 'PCGrad', 'CAGrad', 'GradNorm', 'IMTLG', 'MGDAUB',
    'NashMTL', 'AlignedMTL'
]
