"""The public selective-scan entry point and its backend selection."""
import functools
import os
from typing import Callable, Optional, Tuple, Union

import torch

from .selective_scan_torch import selective_scan_torch

__all__ = ['selective_scan_fn', 'available_backends', 'BACKEND_ENV']

#: Environment variable that forces a backend (``torch``, ``cuda``); empty = automatic.
BACKEND_ENV = 'MMMT_SCAN_BACKEND'


@functools.lru_cache(maxsize=None)
def _mamba_cuda_fn() -> Optional[Callable]:
    """mamba-ssm's fused CUDA scan, or None where mamba-ssm is not importable."""
    try:
        from mamba_ssm.ops.selective_scan_interface import \
            selective_scan_fn as fn
    except Exception:  # ImportError, or a broken CUDA build (e.g. selective_scan_cuda missing)
        return None
    return fn


def available_backends() -> Tuple[str, ...]:
    """Names of the scan backends usable in this process."""
    names = ['torch']
    if _mamba_cuda_fn() is not None and torch.cuda.is_available():
        names.append('cuda')
    return tuple(names)


def _pick_backend(u: torch.Tensor) -> str:
    forced = os.environ.get(BACKEND_ENV, '').strip().lower()
    if forced:
        if forced not in ('torch', 'cuda'):
            raise ValueError(f'{BACKEND_ENV}={forced!r}: expected "torch" or "cuda"')
        if forced == 'cuda' and (_mamba_cuda_fn() is None or not u.is_cuda):
            raise RuntimeError(f'{BACKEND_ENV}=cuda needs mamba-ssm and CUDA tensors')
        return forced
    if u.is_cuda and _mamba_cuda_fn() is not None:
        return 'cuda'
    return 'torch'


def selective_scan_fn(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor] = None,
    z: Optional[torch.Tensor] = None,
    delta_bias: Optional[torch.Tensor] = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Selective scan (Mamba S6), a drop-in for mamba-ssm's ``selective_scan_fn``.

    Shapes: ``u``, ``delta``, ``z``: (batch, D, L); ``A``: (D, N); ``B``, ``C``: (batch, N, L) or
    grouped (batch, G, N, L) (channel d uses group ``d // (D // G)``, as SS2D's four directions
    do); ``D``, ``delta_bias``: (D,). See :func:`~mmmt.ops.selective_scan_torch.selective_scan_torch`
    for the recurrence.

    The backend is chosen per call: mamba-ssm's fused kernel for CUDA tensors when mamba-ssm
    imports, else the differentiable PyTorch implementation. Set the environment variable
    ``MMMT_SCAN_BACKEND`` to force one.

    Returns:
        Tensor or (Tensor, Tensor): (batch, D, L) output in ``u``'s dtype, plus the last state
        (batch, D, N) if ``return_last_state``.
    """
    backend = _pick_backend(u)
    if backend == 'cuda':
        return _mamba_cuda_fn()(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                return_last_state)
    return selective_scan_torch(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                return_last_state)
