"""Nash-MTL: the Nash bargaining solution of the tasks (Navon et al., ICML 2022)."""
from typing import Any, Dict, Optional

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from mmmt.registry import BALANCERS
from mmmt.utils.errors import UserInputError
from .base import BaseBalancer

__all__ = ['NashMTL', 'nash_bargaining_weights']


def nash_bargaining_weights(gram: np.ndarray, max_iter: int = 200) -> np.ndarray:
    """The alpha > 0 with ``G G^T alpha = 1 / alpha`` (element-wise).

    That condition is the stationarity condition of the strictly convex (for a full-rank Gram
    matrix M)

        f(alpha) = 1/2 alpha^T M alpha - sum_t log(alpha_t),

    so the bargaining solution is f's minimiser, found by L-BFGS-B (scipy) on M scaled to unit
    trace (alpha scales back by trace^{-1/2}). The paper approximates it by a sequence of
    convex programs instead; the minimiser is the same.

    Args:
        gram (np.ndarray): (T, T) Gram matrix, float64.
        max_iter (int): L-BFGS-B iterations at most. Defaults to 200.

    Returns:
        np.ndarray: (T,) alpha; zeros when every gradient is zero.
    """
    num = gram.shape[0]
    scale = float(np.trace(gram))
    if scale <= 0:
        return np.zeros(num)
    m = gram / scale

    def objective(a):
        ma = m @ a
        return 0.5 * a @ ma - np.log(a).sum(), ma - 1.0 / a

    # alpha is bounded above so that a singular M (exactly opposite gradients, f unbounded
    # below) still returns; the optimum of a well-posed problem is far inside the box
    result = minimize(objective, np.full(num, 1.0), jac=True, method='L-BFGS-B',
                      bounds=[(1e-8, 1e4)] * num,
                      options=dict(maxiter=max_iter, gtol=1e-10, ftol=1e-15))
    return result.x / np.sqrt(scale)


@BALANCERS.register_module()
class NashMTL(BaseBalancer):
    """The update every task agrees to: the Nash bargaining solution.

    Navon et al., "Multi-Task Learning as a Bargaining Game", ICML 2022: the update is
    ``d = sum_t alpha_t g_t`` with alpha > 0 solving ``G G^T alpha = 1 / alpha`` (the
    characterisation of the bargaining solution in their Sec. 3), solved by
    :func:`nash_bargaining_weights` with scipy (no cvxpy). The solution has
    ``||d||^2 = alpha^T G G^T alpha = T`` whatever the gradients' scale.

    Args:
        update_weights_every (int): Solve every this many steps and reuse alpha in between,
            the paper's option to save compute. Defaults to 1 (every step).
        max_norm (float, optional): Clip ``||d||`` to this value, as the authors' code does.
            Defaults to None (no clipping; the paper's update).
    """

    def __init__(self, update_weights_every: int = 1, max_norm: Optional[float] = None) -> None:
        if update_weights_every < 1:
            raise UserInputError(f'NashMTL: update_weights_every must be >= 1, got '
                                 f'{update_weights_every}')
        self.update_weights_every = update_weights_every
        self.max_norm = max_norm
        self._step = 0
        self._alpha = None

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        gram, _ = self._prepare(gram, losses)
        if self._alpha is None or self._step % self.update_weights_every == 0:
            # a zero gradient (no valid pixel in the batch) has no finite alpha_t (1/alpha_t = 0;
            # the solver stopped at its box, 5773): bargain among the others, weight it 0
            active = self._nonzero_tasks(gram).cpu()
            alpha = torch.zeros(gram.shape[0], dtype=torch.float64)
            if active.any():
                sub = gram.cpu()[active][:, active].numpy()
                alpha[active] = torch.as_tensor(nash_bargaining_weights(sub))
            self._alpha = alpha
        self._step += 1
        alpha = self._alpha.to(gram.device)
        if self.max_norm is not None:
            norm = (alpha @ gram @ alpha).clamp(min=0).sqrt()
            if norm > self.max_norm:
                alpha = alpha * (self.max_norm / norm)
        return alpha

    def state_dict(self) -> Dict[str, Any]:
        return dict(step=self._step, alpha=self._alpha)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._step = int(state['step'])
        self._alpha = state['alpha']
