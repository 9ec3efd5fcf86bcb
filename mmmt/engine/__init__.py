"""Training-engine components of mmmt: hooks (visualization, checkpoint safety, non-finite
losses), the multi-task optim wrapper and its gradient balancers."""
from mmmt import _package_check  # noqa: F401  # isort: skip  (first: names the clone-folder trap)
from .hooks import *  # noqa: F401,F403
from .hooks import __all__ as _hooks_all
from .optimizers import (IMTLG, MGDAUB, AlignedMTL, BaseBalancer, CAGrad, GradNorm,  # noqa: F401
                         MultiTaskOptimWrapper, NashMTL, PCGrad)

__all__ = [
    'MultiTaskOptimWrapper', 'BaseBalancer', 'PCGrad', 'CAGrad', 'GradNorm', 'IMTLG', 'MGDAUB',
    'NashMTL', 'AlignedMTL'
] + list(_hooks_all)
