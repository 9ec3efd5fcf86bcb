"""CAGrad: conflict-averse gradient descent (Liu et al., NeurIPS 2021)."""
import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from mmmt.registry import BALANCERS
from mmmt.utils.errors import UserInputError
from .base import BaseBalancer

__all__ = ['CAGrad']


@BALANCERS.register_module()
class CAGrad(BaseBalancer):
    """The update that maximises the worst task's improvement near the average gradient.

    Liu et al., "Conflict-Averse Gradient Descent for Multi-task Learning", NeurIPS 2021,
    Algorithm 1. With g_0 the average gradient, ``phi = c^2 ||g_0||^2`` and ``g_w = sum_t w_t g_t``,
    solve the dual over the simplex::

        w* = argmin_w  g_w . g_0 + sqrt(phi) ||g_w||

    and update with ``d = g_0 + sqrt(phi) / ||g_w*|| * g_w*``. Both terms only need the Gram
    matrix; the small convex problem is solved with scipy's SLSQP.

    The paper states CAGrad for the *average* loss; mmmt trains the *sum* of the task losses
    (the task-specific parameters get the sum's gradient). The returned coefficients are
    therefore T times the paper's, i.e. CAGrad of the sum, as the authors' code does (it
    multiplies its update by T to match the summed loss): with ``c = 0`` the update is exactly
    plain training (w = 1 for every task), and the encoder is not trained at 1/T of the
    decoder's rate.

    Args:
        c (float): Radius of the ball around g_0 (the paper's c in [0, 1)). Defaults to 0.4,
            the value of the paper's NYUv2 experiments.
        rescale (bool): Divide d by (1 + c^2), an option of the authors' code that keeps the
            step size comparable to plain descent; the authors' NYUv2 and Cityscapes runs use it.
            Defaults to False (the paper's Algorithm 1).
    """

    def __init__(self, c: float = 0.4, rescale: bool = False) -> None:
        if not 0 <= c < 1:
            raise UserInputError(f'CAGrad: c must be in [0, 1), got {c}')
        self.c = c
        self.rescale = rescale

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        gram_t, losses_t = self._prepare(gram, losses)
        active = self._nonzero_tasks(gram_t)
        if active.any() and not active.all():
            # a zero gradient (no valid pixel in the batch) would only shrink g_0 and blow up
            # its own coefficient (1e15): CAGrad of the other tasks, this one weighted 0
            coeffs = torch.zeros(gram_t.shape[0], dtype=torch.float64, device=gram_t.device)
            coeffs[active] = self.weights(gram_t[active][:, active], losses_t[active])
            return coeffs
        gram = gram_t.cpu().numpy()
        num = gram.shape[0]
        mean = np.full(num, 1.0 / num)
        g0_norm = float(np.sqrt(max(mean @ gram @ mean, 0.0)))
        radius = self.c * g0_norm
        coeffs = mean.copy()
        if g0_norm > 0 and radius > 0:
            m_g0 = gram @ mean  # g_t . g_0

            def objective(w):
                gw_norm = np.sqrt(max(w @ gram @ w, 1e-20))
                value = w @ m_g0 + radius * gw_norm
                grad = m_g0 + radius * (gram @ w) / gw_norm
                return value, grad

            result = minimize(objective, mean, jac=True, method='SLSQP',
                              bounds=[(0.0, 1.0)] * num,
                              constraints=[dict(type='eq', fun=lambda w: w.sum() - 1.0,
                                                jac=lambda w: np.ones_like(w))],
                              options=dict(ftol=1e-12, maxiter=200))
            w = np.clip(result.x, 0.0, None)
            gw_norm = np.sqrt(max(w @ gram @ w, 0.0))
            if gw_norm > 0:
                coeffs = mean + radius / gw_norm * w
        coeffs = num * coeffs  # CAGrad of the sum of the losses (see the class doc)
        if self.rescale:
            coeffs = coeffs / (1 + self.c**2)
        return torch.as_tensor(coeffs, dtype=torch.float64, device=gram_t.device)
