"""GradNorm: balance the tasks' gradient norms by learned loss weights (Chen et al., ICML 2018)."""
from typing import Any, Dict

import torch
from torch import Tensor

from mmmt.registry import BALANCERS
from .base import BaseBalancer

__all__ = ['GradNorm']


@BALANCERS.register_module()
class GradNorm(BaseBalancer):
    """Learned task weights w_t pulled towards equal training rates.

    Chen et al., "GradNorm: Gradient Normalization for Adaptive Loss Balancing in Deep
    Multitask Networks", ICML 2018. With ``G_t = ||grad_W (w_t L_t)|| = w_t ||g_t||``, the
    inverse training rate ``r_t = (L_t / L_t(0)) / mean_k (L_k / L_k(0))`` and the target
    ``mean_k(G_k) * r_t^alpha`` held constant, the weights descend (Eq. 2)::

        L_grad = sum_t | G_t - mean_k(G_k) * r_t^alpha |

    i.e. ``w_t <- w_t - lr * sign(G_t - target_t) * ||g_t||``, and are then renormalised to sum
    to T. The shared update of this step is ``sum_t w_t g_t`` with the weights before the
    update. W, "the last shared layer" in the paper, is here the whole shared encoder (its
    gradients are computed anyway). The paper weights the task-specific parameters' losses too;
    here, as for every balancer, they get their plain task gradients.

    Task losses must be positive (their ratios are used): combine the tasks with
    ``MultiTaskLoss(scheme='sum')``, not 'log', whose terms can be negative.

    Args:
        alpha (float): Restoring-force strength; 1.5 as in the paper's NYUv2 experiments.
        lr (float): Step size of the weights' gradient descent. The paper updates them with the
            network's optimizer; a separate fixed rate keeps the balancer independent of it.
            Defaults to 0.025.
    """

    def __init__(self, alpha: float = 1.5, lr: float = 0.025) -> None:
        self.alpha = alpha
        self.lr = lr
        self._task_weights = None  # (T,) float64, created on the first step
        self._initial_losses = None

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        gram, losses = self._prepare(gram, losses)
        num = gram.shape[0]
        if self._task_weights is None:
            if (losses <= 0).any():
                raise ValueError(
                    f'GradNorm needs positive task losses, got {losses.tolist()} for tasks '
                    f'{self.task_names}: use MultiTaskLoss(scheme="sum")')
            self._task_weights = torch.ones(num, dtype=torch.float64)
            self._initial_losses = losses.cpu().clone()
        if self._task_weights.shape[0] != num:
            raise ValueError(f'GradNorm: state has {self._task_weights.shape[0]} tasks, '
                             f'this step {num}')
        used = self._task_weights.to(gram.device).clone()
        norms = gram.diagonal().clamp(min=0).sqrt()
        weighted = used * norms
        ratios = losses / self._initial_losses.to(gram.device)
        inverse_rate = ratios / ratios.mean()
        target = weighted.mean() * inverse_rate**self.alpha
        new = used - self.lr * torch.sign(weighted - target) * norms
        new = new.clamp(min=1e-8)
        self._task_weights = (num * new / new.sum()).cpu()
        return used

    def state_dict(self) -> Dict[str, Any]:
        return dict(task_weights=self._task_weights, initial_losses=self._initial_losses)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._task_weights = state['task_weights']
        self._initial_losses = state['initial_losses']
