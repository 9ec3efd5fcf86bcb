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

    When 0 is in the convex hull of some tasks S (e.g. exactly opposite gradients), the best
    g_w* is 0 and the paper's d is 0/0: every d of the ball orthogonal to g_S is optimal (the
    worst task gains 0). mmmt then takes, of those, CAGrad's choice for the other tasks: their
    problem projected onto the orthogonal complement of g_S, in the part of the ball left there.

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

    def _ball_step(self, gram: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
        """Coefficients of ``argmax_{|d - c| <= radius} min_t g_t . d``, by the dual.

        Args:
            gram (np.ndarray): (k, k) Gram matrix of the gradients g_t.
            center (np.ndarray): (k,) coefficients of the ball's centre c over the g_t.
            radius (float): The ball's radius, > 0.

        Returns:
            np.ndarray: (k,) coefficients of d over the g_t.
        """
        num = gram.shape[0]
        m_g0 = gram @ center  # g_t . c

        def objective(w):
            gw_norm = np.sqrt(max(w @ gram @ w, 1e-20))
            value = w @ m_g0 + radius * gw_norm
            grad = m_g0 + radius * (gram @ w) / gw_norm
            return value, grad

        start = np.full(num, 1.0 / num)
        result = minimize(objective, start, jac=True, method='SLSQP', bounds=[(0.0, 1.0)] * num,
                          constraints=[dict(type='eq', fun=lambda w: w.sum() - 1.0,
                                            jac=lambda w: np.ones_like(w))],
                          options=dict(ftol=1e-12, maxiter=200))
        w = np.clip(result.x, 0.0, None)
        gw_norm = np.sqrt(max(w @ gram @ w, 0.0))
        # |g_w|^2 = w^T M w sums entries only as precise as the gradients' dtype: when the terms
        # cancel to below sqrt(eps) of sum_t w_t |g_t|, it is rounding noise, and so is g_w's
        # direction (a single short gradient is not cancelled: its direction is exact)
        eps = torch.finfo(self.grad_dtype).eps
        norms = np.sqrt(np.clip(gram.diagonal(), 0.0, None))
        uncancelled = w @ norms
        if gw_norm > np.sqrt(eps) * uncancelled:
            return center + radius / gw_norm * w
        if uncancelled <= 0:  # every gradient is 0 (a projected problem): all d are optimal
            return center
        # 0 is in the convex hull of the tasks S that carry w (e.g. g_2 = -g_1): d = c + r g_w/|g_w|
        # is 0/0 (it was c + 1e10 x noise, weights of 1e10 that float32 cannot cancel). Some
        # g_s . d < 0 unless g_S . d = 0: the optimum is 0, reached by every d of the ball
        # orthogonal to g_S. Of those, the one CAGrad picks for the other tasks R: their problem
        # projected onto g_S's orthogonal complement, P g_t = g_t - G_S^T M_SS^+ G_S g_t. A task
        # whose part w_t g_t of g_w is within the noise is not in S (the solver, stalled at the
        # kink of |g_w| = 0, leaves weights of 1e-4 on tasks of the optimal w_t = 0)
        in_s = w * norms > np.sqrt(eps) * uncancelled
        s_idx, r_idx = np.flatnonzero(in_s), np.flatnonzero(~in_s)
        lambdas, vectors = np.linalg.eigh(gram[np.ix_(s_idx, s_idx)])
        keep = lambdas > max(lambdas.max(), 0.0) * num * eps  # pseudo-inverse, as Aligned-MTL
        pinv = (vectors[:, keep] / lambdas[keep]) @ vectors[:, keep].T
        proj = np.eye(num)  # column t: the coefficients of P g_t over the g_t
        proj[s_idx] -= pinv @ gram[s_idx]
        projected_center = proj @ center  # P c = sum_{t in R} c_t P g_t, as P g_S = 0
        off = center - projected_center  # (1 - P) c
        sub_radius_sq = radius**2 - max(off @ gram @ off, 0.0)
        if r_idx.size == 0 or sub_radius_sq <= 0:
            return projected_center
        proj_r = proj[:, r_idx]
        sub = self._ball_step(proj_r.T @ gram @ proj_r, center[r_idx],
                              float(np.sqrt(sub_radius_sq)))
        return proj_r @ sub

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        gram_t, losses_t = self._prepare(gram, losses)
        # a zero gradient (no valid pixel in the batch) would only shrink g_0 and blow up its
        # own coefficient (1e15): CAGrad of the other tasks, this one weighted 0
        left_out = self._weights_without_zero_tasks(gram_t, losses_t)
        if left_out is not None:
            return left_out
        gram = gram_t.cpu().numpy()
        num = gram.shape[0]
        mean = np.full(num, 1.0 / num)
        g0_norm = float(np.sqrt(max(mean @ gram @ mean, 0.0)))
        radius = self.c * g0_norm
        coeffs = mean.copy()
        if g0_norm > 0 and radius > 0:
            coeffs = self._ball_step(gram, mean, radius)
        coeffs = num * coeffs  # CAGrad of the sum of the losses (see the class doc)
        if self.rescale:
            coeffs = coeffs / (1 + self.c**2)
        return torch.as_tensor(coeffs, dtype=torch.float64, device=gram_t.device)
