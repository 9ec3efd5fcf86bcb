"""GradNorm: balance the tasks' gradient norms by learned loss weights (Chen et al., ICML 2018)."""
from typing import Any, Dict

import torch
from torch import Tensor

from mmmt.registry import BALANCERS
from mmmt.utils.errors import UserInputError
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

    A task whose gradient is zero within the gradients' dtype (no valid pixel in the batch) has
    no training rate that step: it is left out of ``mean_k`` (of G and of the loss ratios), its
    weight is kept, and the others are balanced and renormalised among themselves. Its initial
    loss L_t(0) is its first positive loss, should the first batch have none of its labels.

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
        # a task with a zero gradient (no valid pixel in the batch, a frozen head) has G_t = 0
        # and a loss of 0: in the means it pulled every other weight down, step after step,
        # until its own weight was T and the others' 1e-8. It has no training rate this step:
        # left out of the means, its weight kept, the others balanced among themselves
        active = self._nonzero_tasks(gram)
        if self._task_weights is None:
            # a loss of 0 with a zero gradient is a task not seen in the first batch, not a
            # log-scheme loss: its L(0) is taken at its first positive loss
            if ((losses < 0) | ((losses <= 0) & active)).any():
                raise UserInputError(
                    f'GradNorm needs positive task losses, got {losses.tolist()} for tasks '
                    f'{self.task_names}: use MultiTaskLoss(scheme="sum")')
            self._task_weights = torch.ones(num, dtype=torch.float64)
            self._initial_losses = losses.cpu().clone()
        if self._task_weights.shape[0] != num:
            raise ValueError(f'GradNorm: state has {self._task_weights.shape[0]} tasks, '
                             f'this step {num}')
        unset = self._initial_losses <= 0
        if unset.any():  # tasks without a loss yet: this step's, if positive
            self._initial_losses = torch.where(unset & (losses.cpu() > 0), losses.cpu(),
                                               self._initial_losses)
        initial = self._initial_losses.to(gram.device)
        active &= initial > 0
        used = self._task_weights.to(gram.device).clone()
        if not active.any():  # every gradient is zero: no weight moves (G_t = 0 = target)
            return used
        norms = gram.diagonal().clamp(min=0).sqrt()
        weighted = used * norms
        ratios = losses / initial.where(initial > 0, torch.ones_like(initial))
        inverse_rate = ratios / ratios[active].mean()
        target = weighted[active].mean() * inverse_rate**self.alpha
        new = used - self.lr * torch.sign(weighted - target) * norms
        new = new.clamp(min=1e-8)
        kept = used[~active].sum()  # the left-out tasks' weights, unchanged
        new[active] = (num - kept) * new[active] / new[active].sum()
        new[~active] = used[~active]
        self._task_weights = new.cpu()
        return used

    def state_dict(self) -> Dict[str, Any]:
        return dict(task_weights=self._task_weights, initial_losses=self._initial_losses)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._task_weights = state['task_weights']
        self._initial_losses = state['initial_losses']
