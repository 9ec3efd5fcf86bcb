"""MGDA-UB: the min-norm point of the task gradients (Sener & Koltun, NeurIPS 2018)."""
import torch
from torch import Tensor

from mmmt.registry import BALANCERS
from mmmt.utils.errors import UserInputError
from .base import BaseBalancer

__all__ = ['MGDAUB', 'min_norm_weights']

NORMALIZATIONS = ('none', 'l2', 'loss', 'loss+')


def _line_search(aa: Tensor, ab: Tensor, bb: Tensor) -> Tensor:
    """argmin over gamma in [0, 1] of ||(1 - gamma) a + gamma b||^2, from the inner products.

    Sener & Koltun, Algorithm 1 (the two-vector case), written for the step towards b.
    """
    denom = aa - 2 * ab + bb
    if denom <= 0:  # a == b: any gamma
        return torch.zeros((), dtype=aa.dtype, device=aa.device)
    return ((aa - ab) / denom).clamp(0.0, 1.0)


#: Up to this many tasks the min-norm problem is solved exactly (2^T - 1 faces, each a small
#: linear system); beyond it by Frank-Wolfe.
MAX_EXACT_TASKS = 10


def _exact_min_norm(gram: Tensor) -> Tensor:
    """The exact minimiser of ``w^T M w`` over the simplex, by enumerating its faces.

    The minimiser lies in the relative interior of some face S of the simplex, where it solves
    the KKT system ``M_SS w_S = lambda 1, sum(w_S) = 1``. Every face's solution (least squares,
    for a singular M_SS) that is non-negative is a feasible point; the one of smallest
    ``w^T M w`` is the global minimum, as the optimal face is among those tried.
    """
    num = gram.shape[0]
    m = gram.detach().cpu().double()
    m = m / m.diagonal().mean().clamp(min=1e-300)  # entries of order 1 for the tolerances
    best, best_value = None, float('inf')
    for mask in range(1, 2**num):
        face = [t for t in range(num) if mask >> t & 1]
        size = len(face)
        kkt = torch.zeros(size + 1, size + 1, dtype=torch.float64)
        kkt[:size, :size] = m[face][:, face]
        kkt[:size, size] = -1
        kkt[size, :size] = 1
        rhs = torch.zeros(size + 1, 1, dtype=torch.float64)
        rhs[size] = 1
        w_face = torch.linalg.lstsq(kkt, rhs, driver='gelsd').solution[:size, 0]
        if (w_face < -1e-10).any() or w_face.sum() <= 0:
            continue  # the face's stationary point is outside the simplex
        w = torch.zeros(num, dtype=torch.float64)
        w[face] = w_face.clamp(min=0)
        w = w / w.sum()
        value = float(w @ m @ w)
        # ties (several optimal faces, e.g. equal gradients): keep the first, smallest face
        if value < best_value - 1e-12:
            best, best_value = w, value
    return best.to(gram.device)


def _frank_wolfe(gram: Tensor, max_iter: int, tol: float) -> Tensor:
    """Sener & Koltun's Algorithm 2: Frank-Wolfe with exact line search from the centre."""
    num = gram.shape[0]
    w = torch.full((num, ), 1.0 / num, dtype=gram.dtype, device=gram.device)
    for _ in range(max_iter):
        mw = gram @ w
        t = int(torch.argmin(mw))
        gamma = _line_search(w @ mw, mw[t], gram[t, t])
        new = (1 - gamma) * w
        new[t] += gamma
        change = (new - w).abs().sum()
        w = new
        if change < tol:
            break
    return w


def min_norm_weights(gram: Tensor, max_iter: int = 250, tol: float = 1e-5) -> Tensor:
    """Weights on the simplex of the min-norm point of the convex hull of the gradients.

    Solves ``min_{w >= 0, sum w = 1} w^T M w`` (Sener & Koltun, Eq. 3 restricted to the shared
    parameters). Two tasks are solved in closed form (their Algorithm 1:
    ``w_1 = clip((g_2 - g_1) . g_2 / ||g_1 - g_2||^2, 0, 1)``); up to
    :data:`MAX_EXACT_TASKS` tasks exactly, face by face of the simplex (the paper's Frank-Wolfe,
    their Algorithm 2, is an iterative approximation of the same point and, stopped after a few
    hundred steps, is off by up to a few hundredths in w on random 4-task problems); more tasks
    by Frank-Wolfe with exact line search, stopped when the step changes w by less than ``tol``.

    Args:
        gram (Tensor): (T, T) float64 Gram matrix.
        max_iter (int): Frank-Wolfe iterations at most (more than ``MAX_EXACT_TASKS`` tasks).
            Defaults to 250.
        tol (float): Frank-Wolfe stopping threshold on the change of w. Defaults to 1e-5.

    Returns:
        Tensor: (T,) weights.
    """
    num = gram.shape[0]
    if num == 1:
        return torch.ones(1, dtype=gram.dtype, device=gram.device)
    if num == 2:
        gamma = _line_search(gram[1, 1], gram[0, 1], gram[0, 0])  # from g_2 towards g_1
        return torch.stack([gamma, 1 - gamma])
    if gram.diagonal().max() <= 0:  # every gradient is zero: any w; the centre
        return torch.full((num, ), 1.0 / num, dtype=gram.dtype, device=gram.device)
    if num <= MAX_EXACT_TASKS:
        return _exact_min_norm(gram).to(gram.dtype)
    return _frank_wolfe(gram, max_iter, tol)


@BALANCERS.register_module()
class MGDAUB(BaseBalancer):
    """Multiple-gradient descent towards a Pareto-stationary point, with the upper bound.

    Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018. The
    update is the min-norm element of the convex hull of the task gradients (Eq. 3, solved by
    :func:`min_norm_weights`, exactly for up to 10 tasks). MGDA-UB (their Sec. 3.3, Theorem 1)
    replaces the gradients w.r.t. the shared parameters by the gradients w.r.t. the shared
    representation Z, whose weights then multiply the task losses in one backward pass through
    the encoder.

    Here Z is the output of the last shared module (the backbone's feature maps, all levels
    concatenated) when ``upper_bound=True``: :class:`MultiTaskOptimWrapper` back-propagates each
    task loss only to Z, solves for w on those gradients, and back-propagates
    ``sum_t w_t dL_t/dZ`` through the backbone once. With ``upper_bound=False`` it is plain MGDA
    on the backbone's parameter gradients.

    A task whose gradient is zero within the gradients' dtype (no valid pixel in the batch) is
    left out and weighted 0: in the paper's problem it is the min-norm point itself, which would
    give ``d = 0`` and stop the encoder for every task.

    Args:
        upper_bound (bool): Use the representation's gradients (MGDA-UB). Defaults to True.
        normalization (str): Scaling of each gradient before the min-norm solve, as in the
            authors' code: 'none' (the paper's formulation, default), 'l2' (unit norm), 'loss'
            (divided by the loss), 'loss+' (by loss x norm). As in the authors' code, the
            weights found for the scaled gradients multiply the unscaled ones: the update is
            still a convex combination of the task gradients, of their scale (dividing the
            weights by the scales instead would make it the min-norm point of the scaled
            gradients, whose length is unrelated to the gradients' and, with 'loss+', of the
            order of 1 / (loss x norm)).
        max_iter (int): Frank-Wolfe iterations at most (more than 10 tasks). Defaults to 250.
        tol (float): Frank-Wolfe stopping threshold. Defaults to 1e-5.
    """

    def __init__(self,
                 upper_bound: bool = True,
                 normalization: str = 'none',
                 max_iter: int = 250,
                 tol: float = 1e-5) -> None:
        if normalization not in NORMALIZATIONS:
            raise UserInputError(f'MGDAUB: normalization must be one of {NORMALIZATIONS}, got '
                                 f'{normalization!r}')
        self.upper_bound = upper_bound
        self.normalization = normalization
        self.max_iter = max_iter
        self.tol = tol

    @property
    def uses_representation(self) -> bool:  # type: ignore[override]
        return self.upper_bound

    def weights(self, gram: Tensor, losses: Tensor) -> Tensor:
        gram, losses = self._prepare(gram, losses)
        # a zero gradient (no valid pixel in the batch, a frozen head) is itself the min-norm
        # point: it would take all the weight and stop the encoder (d = 0) for every task. A
        # task not seen in the batch is not a stationary one: MGDA of the others, it 0
        left_out = self._weights_without_zero_tasks(gram, losses)
        if left_out is not None:
            return left_out
        norms = gram.diagonal().clamp(min=0).sqrt()
        if self.normalization == 'l2':
            scale = norms
        elif self.normalization == 'loss':
            scale = losses
        elif self.normalization == 'loss+':
            scale = losses * norms
        else:
            scale = torch.ones_like(norms)
        scale = scale.clamp(min=1e-12)
        # the authors' code: solve on the scaled gradients, weight the unscaled ones
        return min_norm_weights(gram / torch.outer(scale, scale), self.max_iter, self.tol)
