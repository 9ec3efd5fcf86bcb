"""PCGrad: project conflicting gradients (Yu et al., NeurIPS 2020)."""
from typing import Any, Dict

import torch
from torch import Tensor

from mmmt.registry import BALANCERS
from .base import BaseBalancer

__all__ = ['PCGrad']


@BALANCERS.register_module()
class PCGrad(BaseBalancer):
    """Gradient surgery: remove from each task gradient its component along conflicting ones.

    Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020, Algorithm 1: for every
    task i, for the other tasks j in random order, if ``g_i^PC . g_j < 0``::

        g_i^PC <- g_i^PC - (g_i^PC . g_j) / ||g_j||^2 * g_j

    (projection onto the normal plane of the *original* g_j), and the update is
    ``sum_i g_i^PC``. Each g_i^PC is tracked as coefficients over the original gradients, so only
    the Gram matrix is needed. A task whose gradient is zero within the gradients' dtype (no
    valid pixel in the batch) has no normal plane: it is left out and weighted 0. PCGrad has no
    hyper-parameters.

    Args:
        seed (int): Seed of the balancer's own generator for the random task order. It is fixed
            (not drawn from the run's seed) so that every DDP rank shuffles identically; its
            state is saved in checkpoints, so a resumed run continues the same sequence.
            Defaults to 0.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._generator = torch.Generator().manual_seed(seed)

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        gram, _ = self._prepare(gram, losses)
        num = gram.shape[0]
        # a gradient zero within the gradients' dtype (no valid pixel in the batch) has no normal
        # plane: projecting onto that of its rounding noise gave it coefficients up to 1e8. It
        # conflicts with nothing: left out and weighted 0
        active = self._nonzero_tasks(gram).cpu()
        coeffs = torch.diag(active.double())
        for i in range(num):
            # drawn for every task, left out or not: the random sequence of the later steps is
            # the same as without the degenerate step
            order = torch.randperm(num, generator=self._generator).tolist()
            if not active[i]:
                continue
            for j in order:
                if j == i or not active[j]:
                    continue
                dot = coeffs[i] @ gram[:, j].cpu()
                if dot < 0:
                    coeffs[i, j] -= dot / gram[j, j].cpu()
        return coeffs.sum(dim=0).to(gram.device)

    def state_dict(self) -> Dict[str, Any]:
        return dict(generator=self._generator.get_state())

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._generator.set_state(state['generator'])
