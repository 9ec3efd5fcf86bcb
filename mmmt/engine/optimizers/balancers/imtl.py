"""IMTL-G: impartial gradients (Liu et al., ICLR 2021)."""
import torch
from torch import Tensor

from mmmt.registry import BALANCERS
from .base import BaseBalancer

__all__ = ['IMTLG']


@BALANCERS.register_module()
class IMTLG(BaseBalancer):
    """The combination whose projections onto every task's gradient direction are equal.

    Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021, the closed form of IMTL-G:
    with ``u_t = g_t / ||g_t||``, ``D = [g_1 - g_2, ..., g_1 - g_T]`` and
    ``U = [u_1 - u_2, ..., u_1 - u_T]`` (rows),

        alpha_{2:T} = g_1 U^T (D U^T)^{-1},   alpha_1 = 1 - sum_{t>=2} alpha_t,

    and ``d = sum_t alpha_t g_t`` satisfies ``d . u_1 = ... = d . u_T``. Every product is an
    entry of the Gram matrix divided by a norm. A task whose gradient is zero within the
    gradients' dtype (e.g. no valid pixel in the batch) has no direction u_t: it is left out of
    the system and weighted 0.
    IMTL-G has no hyper-parameters. (The paper also
    learns loss scales, IMTL-L; that part is a loss weighting, not a gradient balancer.)

    The paper's algorithm takes g_t w.r.t. the shared feature z (the encoder's output, as
    MGDA-UB) and back-propagates ``sum_t alpha_t L_t`` through the encoder;
    ``representation=True`` does that. By default the gradients w.r.t. the shared parameters
    are balanced (the closed form is the same; the gradients are the exact ones).

    Args:
        representation (bool): Balance the gradients w.r.t. the shared representation, as the
            paper. Defaults to False (the shared parameters' gradients).
    """

    def __init__(self, representation: bool = False) -> None:
        self.representation = representation

    @property
    def uses_representation(self) -> bool:  # type: ignore[override]
        return self.representation

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        gram, _ = self._prepare(gram, losses)
        # a task with a zero gradient (no valid pixel in the batch) has no direction u_t;
        # taking u_t = 0 would force every projection, hence d, to 0 and stop the encoder for
        # the step. It constrains nothing: balance the others, weight it 0. A gradient zero
        # within the gradients' dtype counts too: its direction is rounding noise, and an equal
        # projection on it took all the weight (d of the noise's size)
        left_out = self._weights_without_zero_tasks(gram, losses)
        if left_out is not None:
            return left_out
        num = gram.shape[0]
        if num == 1:
            return torch.ones(1, dtype=gram.dtype, device=gram.device)
        norms = gram.diagonal().clamp(min=1e-24).sqrt()
        g_dot_u = gram / norms[None, :]  # [a, b] = g_a . u_b
        rest = slice(1, num)
        g1_ut = g_dot_u[0, 0] - g_dot_u[0, rest]  # g_1 . (u_1 - u_j)
        d_ut = (g_dot_u[0, 0] - g_dot_u[0, rest])[None, :] \
            - (g_dot_u[rest, 0][:, None] - g_dot_u[rest, rest])  # (g_1 - g_i) . (u_1 - u_j)
        # alpha_{2:T} (D U^T) = g_1 U^T, solved by least squares for a singular system
        alpha_rest = torch.linalg.lstsq(d_ut.T, g1_ut[:, None]).solution[:, 0]
        return torch.cat([1 - alpha_rest.sum()[None], alpha_rest])
