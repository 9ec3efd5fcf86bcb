"""Aligned-MTL: align the task gradients' principal components (Senushkin et al., CVPR 2023)."""
from typing import Dict, Optional

import torch
from torch import Tensor

from mmmt.registry import BALANCERS
from mmmt.utils.errors import UnknownNameError
from .base import BaseBalancer

__all__ = ['AlignedMTL']


@BALANCERS.register_module()
class AlignedMTL(BaseBalancer):
    """Make the gradient system's condition number one, then sum with the task weights.

    Senushkin et al., "Independent Component Alignment for Multi-Task Learning", CVPR 2023,
    Algorithm 1. With the eigen-decomposition ``G G^T = V diag(lambda) V^T`` of the Gram matrix
    (the squared singular values of G), the aligned gradients are

        G_hat = sigma_min V diag(lambda)^{-1/2} V^T G,   sigma_min = sqrt(min nonzero lambda),

    i.e. G with every singular value set to the smallest one (condition number 1), and the
    update is ``d = G_hat^T w`` for pre-defined task weights w. Eigenvalues below
    ``max(lambda) * T * eps`` are treated as zero (a rank-deficient system is aligned on its
    range), with eps that of the gradients' dtype (:attr:`grad_dtype`, float32 in training),
    as the authors' code: the Gram matrix is a float32 product, so smaller eigenvalues are
    its rounding error, and keeping one as sigma_min would shrink the whole update to that
    noise level.

    Args:
        task_weights (dict, optional): Task -> pre-defined weight w_t, keyed by the loss names
            without the ``loss_`` prefix; all 1 by default (the paper's setting).
    """

    def __init__(self, task_weights: Optional[Dict[str, float]] = None) -> None:
        self.task_weights = dict(task_weights or {})

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        gram, _ = self._prepare(gram, losses)
        num = gram.shape[0]
        w = torch.ones(num, dtype=gram.dtype, device=gram.device)
        if self.task_weights:
            names = self.task_names or []
            unknown = set(self.task_weights) - set(names)
            if unknown:
                # found at the first step (the task names come with the losses), but only
                # the config can fix it: a one-line input error, not a crash
                raise UnknownNameError(f'AlignedMTL: task_weights for unknown tasks '
                                       f'{sorted(unknown)}; tasks are {names}')
            w = torch.tensor([self.task_weights.get(t, 1.0) for t in names],
                             dtype=gram.dtype, device=gram.device)
        lambdas, vectors = torch.linalg.eigh(gram)
        # the precision of the Gram matrix's entries, not of the float64 copy solved here
        eps = torch.finfo(self.grad_dtype).eps
        keep = lambdas > lambdas.max().clamp(min=0) * num * eps
        if not keep.any():  # all gradients are zero
            return torch.zeros(num, dtype=gram.dtype, device=gram.device)
        lambdas, vectors = lambdas[keep], vectors[:, keep]
        balance = lambdas.min().sqrt() * (vectors * lambdas.rsqrt()) @ vectors.T
        return balance.T @ w
