"""What every selective-scan backend asks of its arguments, in one place.

The dispatcher (:mod:`mmmt.ops.selective_scan`) and the backends it calls each decide the
compute dtype, whether autograd needs a graph, and whether ``B``/``C`` vary over time; these
helpers keep the answers (and the error messages) the same everywhere.
"""
from typing import Iterable, Optional

import torch

__all__ = [
    'compute_dtype', 'needs_grad', 'bc_time_varying', 'TIME_VARYING_BC', 'bc_groups',
    'check_channel_groups'
]

#: What ``B``/``C`` must look like for the kernels that only take them time-varying.
TIME_VARYING_BC = 'B and C must vary over time ((batch, [G,] N, L))'


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the scan computes in for inputs of `dtype`: float64 stays float64, anything
    else (float32, half inputs upcast as mamba-ssm does) is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def needs_grad(tensors: Iterable[Optional[torch.Tensor]]) -> bool:
    """Whether autograd will want gradients of any of `tensors` (``None`` entries allowed)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def bc_time_varying(B: torch.Tensor, C: torch.Tensor) -> bool:
    """Whether both ``B`` and ``C`` vary over time ((batch, N, L) or (batch, G, N, L)), not
    constant (D, N)."""
    return B.dim() >= 3 and C.dim() >= 3


def bc_groups(B: torch.Tensor, C: torch.Tensor) -> int:
    """The number of channel groups of time-varying ``B``/``C`` (1 for ungrouped ones)."""
    return max(m.shape[1] if m.dim() == 4 else 1 for m in (B, C))


def check_channel_groups(dim: int, groups: int) -> None:
    """Raise ``ValueError`` unless the `dim` channels split evenly into the B/C `groups`."""
    if dim % groups:
        raise ValueError(f'channels ({dim}) must be divisible by the B/C groups ({groups})')
