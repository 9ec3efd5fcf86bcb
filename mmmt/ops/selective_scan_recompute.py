"""Gradients of the PyTorch scan by recomputing it under autograd, a slice of channels at a
time within a memory budget: the backward pass of the ``torch`` backend (which keeps only its
inputs between the passes) and of a Triton backward that failed (the fallback).

One job, shared by both so that the fallback has the same memory bound: building the chunked
scan's whole autograd graph at once needs about 8 x batch * channels * L * N * 4 bytes (12 GB
per call at the Swin-L stage-3 shape).
"""
from typing import List, Optional, Sequence

import torch

from .selective_scan_torch import selective_scan_torch

__all__ = ['RECOMPUTE_BYTES', 'recompute_budget', 'grads_by_recompute']

#: Bytes of autograd graph the PyTorch scan may build at once on the CPU when it recomputes for
#: the backward pass (it needs about 8 x batch * channels * L * N * 4 bytes; larger problems are
#: recomputed a slice of channels at a time). On a GPU the budget is a quarter of the free
#: memory, at least this much: there every slice costs hundreds of kernel launches.
RECOMPUTE_BYTES = 1 << 29


def recompute_budget(t: torch.Tensor) -> int:
    """Bytes of autograd graph one recompute slice may build for tensors like `t`."""
    if t.is_cuda:
        try:
            free, _ = torch.cuda.mem_get_info(t.device)
            return max(RECOMPUTE_BYTES, free // 4)
        except Exception:  # noqa: BLE001 -- no CUDA query possible: the CPU budget
            pass
    return RECOMPUTE_BYTES


def grads_by_recompute(delta_softplus: bool, args: Sequence[Optional[torch.Tensor]],
                       needs: Sequence[bool], dout: Optional[torch.Tensor],
                       dlast: Optional[torch.Tensor]) -> List[Optional[torch.Tensor]]:
    """The gradients of (u, delta, A, B, C, D, z, delta_bias) of the PyTorch scan.

    Args:
        delta_softplus (bool): As for the scan.
        args: The scan's inputs (u, delta, A, B, C, D, z, delta_bias); None for absent ones.
        needs: Which of them need a gradient.
        dout (Tensor, optional): Gradient of the output (None: zero).
        dlast (Tensor, optional): Gradient of the last state (None: zero).

    Returns:
        list: A gradient per input, None where absent or not needed.
    """
    u, delta, A, B, C, D, z, delta_bias = args
    batch, dim, length = u.shape
    if dout is None:
        dout = torch.zeros_like(u)
    grads = [None if t is None or not n else torch.zeros_like(t) for t, n in zip(args, needs)]
    # channel slices that never straddle a B/C group (a slice uses one group's B/C)
    groups = max(m.shape[1] if m.dim() == 4 else 1 for m in (B, C))
    per_group = dim // groups
    per_slice = max(1, min(per_group, recompute_budget(u) // max(
        1, 8 * batch * length * A.shape[1] * u.element_size())))
    for g in range(groups):
        for d0 in range(g * per_group, (g + 1) * per_group, per_slice):
            d1 = min(d0 + per_slice, (g + 1) * per_group)
            _recompute_slice(delta_softplus, args, needs, grads, dout, dlast, d0, d1, g, dim)
    return grads


def _recompute_slice(delta_softplus, args, needs, grads, dout, dlast, d0, d1, g, dim):
    """Re-run the scan for channels [d0, d1) (all in B/C group g) under autograd and add their
    gradients into `grads`."""
    u, delta, A, B, C, D, z, delta_bias = args

    def bc(m):
        if m.dim() == 2:  # constant over time: per channel
            return m[d0:d1]
        if m.dim() == 4 and m.shape[1] > 1:
            return m[:, g:g + 1]
        return m

    sliced = [None if t is None else (bc(t) if i in (3, 4) else
                                      t[:, d0:d1] if t.dim() == 3 else t[d0:d1])
              for i, t in enumerate(args)]
    leaves = [None if t is None else t.detach().requires_grad_(n)
              for t, n in zip(sliced, needs)]
    with torch.enable_grad():
        out, last = selective_scan_torch(*leaves, delta_softplus, True)
    wrt = [t for t, n in zip(leaves, needs) if t is not None and n]
    if not wrt:
        return
    outs, grads_out = [out], [dout[:, d0:d1]]
    if dlast is not None:
        outs.append(last)
        grads_out.append(dlast[:, d0:d1])
    parts = iter(torch.autograd.grad(outs, wrt, grads_out, allow_unused=True))
    for i, (t, n) in enumerate(zip(leaves, needs)):
        if t is None or not n:
            continue
        part = next(parts)
        if part is None:
            continue
        if i in (3, 4):  # B, C: into this group's slot (or the shared one)
            m = args[i]
            if m.dim() == 2:
                grads[i][d0:d1] += part
            elif m.dim() == 4 and m.shape[1] > 1:
                grads[i][:, g:g + 1] += part
            else:
                grads[i] += part
        elif t.dim() == 3:
            grads[i][:, d0:d1] += part
        else:
            grads[i][d0:d1] += part
