"""The interface every gradient balancer implements."""
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor

__all__ = ['BaseBalancer', 'check_gram']


def check_gram(gram: Tensor, losses: Tensor) -> None:
    """Reject a Gram matrix that is not (T, T) with T matching the losses."""
    if gram.dim() != 2 or gram.shape[0] != gram.shape[1]:
        raise ValueError(f'balancer: the Gram matrix must be (T, T), got {tuple(gram.shape)}')
    if losses.shape != (gram.shape[0], ):
        raise ValueError(f'balancer: {gram.shape[0]} tasks in the Gram matrix but losses of '
                         f'shape {tuple(losses.shape)}')


class BaseBalancer:
    """Turns the task gradients of the shared parameters into one update direction.

    Every method implemented here returns a direction that is a linear combination
    ``d = sum_t w_t g_t`` of the task gradients g_t, and needs the gradients only through their
    inner products. So a balancer sees the Gram matrix ``M = G G^T`` (``M[i, j] = g_i . g_j``)
    and the task losses, and returns the coefficients w; :class:`MultiTaskOptimWrapper` forms
    ``d = w^T G``. This keeps the balancers independent of the number of parameters (the
    small T x T problems are solved in float64) and makes them testable on 2-D gradients.

    Subclasses set :attr:`uses_representation` to ask for the gradients with respect to the
    shared representation (the backbone's output) instead of the shared parameters (MGDA-UB).
    """

    #: Whether the Gram matrix is of the gradients w.r.t. the shared representation.
    uses_representation: bool = False
    #: Task names in the order of the Gram matrix, set by the optim wrapper before each call.
    task_names: Optional[List[str]] = None
    #: Dtype of the gradients the Gram matrix was computed from (their products are summed in
    #: it), set by the optim wrapper before each call: the Gram matrix arrives in float64, but
    #: its entries are only as precise as this dtype.
    grad_dtype: torch.dtype = torch.float32

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        """Coefficients of the task gradients in the update direction.

        Args:
            gram (Tensor): (T, T) Gram matrix of the task gradients.
            losses (Tensor): (T,) task losses of this step (detached).

        Returns:
            Tensor: (T,) float64 coefficients w; the shared update is ``sum_t w_t g_t``.
        """
        raise NotImplementedError

    def state_dict(self) -> Dict[str, Any]:
        """State to save in checkpoints (tensors and plain Python values only)."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        if state:
            raise KeyError(f'{type(self).__name__} has no state, got keys {sorted(state)}')

    def _nonzero_tasks(self, gram: Tensor) -> Tensor:
        """Mask of the tasks whose gradient is not zero within :attr:`grad_dtype`'s precision.

        A task without a valid pixel in the batch has a zero gradient. ``||g_t|| <=
        eps * max_s ||g_s||`` (eps of the gradients' dtype) counts as zero: added to the others
        in ``d = sum_t w_t g_t`` with a weight of order one, such a gradient changes no entry
        of the largest one by more than its rounding error.

        Args:
            gram (Tensor): (T, T) float64 Gram matrix.

        Returns:
            Tensor: (T,) bool mask, all False when every gradient is zero.
        """
        sq_norms = gram.diagonal().clamp(min=0)
        eps = torch.finfo(self.grad_dtype).eps
        return sq_norms > (eps**2) * sq_norms.max()

    def _weights_without_zero_tasks(self, gram: Tensor, losses: Tensor) -> Optional[Tensor]:
        """:meth:`weights` of the tasks whose gradient is not zero (:meth:`_nonzero_tasks`),
        0 for the others; None when there is none to leave out (every gradient, or none, is
        zero), for the caller to solve the whole problem.

        For the balancers whose problem a zero gradient makes degenerate (the min-norm point
        of MGDA, a direction of rounding noise for IMTL-G, a shrunk g_0 for CAGrad): such a
        task, not seen in the batch, is not one the others conflict with.

        Args:
            gram (Tensor): (T, T) float64 Gram matrix.
            losses (Tensor): (T,) float64 task losses.

        Returns:
            Tensor or None: (T,) float64 coefficients.
        """
        active = self._nonzero_tasks(gram)
        if active.all() or not active.any():
            return None
        weights = torch.zeros(gram.shape[0], dtype=torch.float64, device=gram.device)
        weights[active] = self.weights(gram[active][:, active], losses[active])
        return weights

    @staticmethod
    def _prepare(gram: Tensor, losses: Tensor):
        """Check shapes and return float64 copies of the Gram matrix and the losses."""
        check_gram(gram, losses)
        return gram.detach().double(), losses.detach().double()

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v!r}' for k, v in vars(self).items() if not k.startswith('_'))
        return f'{type(self).__name__}({args})'
