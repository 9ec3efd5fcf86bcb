"""Optimisation components: the multi-task optim wrapper and its gradient balancers."""
from .balancers import IMTLG, MGDAUB, AlignedMTL, BaseBalancer, CAGrad, GradNorm, NashMTL, PCGrad
from .multi_task_optim_wrapper import MultiTaskOptimWrapper, task_objectives

__all__ = [
    'MultiTaskOptimWrapper', 'task_objectives', 'BaseBalancer', 'PCGrad', 'CAGrad', 'GradNorm',
    'IMTLG', 'MGDAUB', 'NashMTL', 'AlignedMTL'
]
