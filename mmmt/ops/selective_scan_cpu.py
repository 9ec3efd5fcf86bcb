"""Selective scan on the CPU through the compiled kernel (``csrc/selective_scan_cpu.cpp``).

The kernel fuses the whole recurrence of
:func:`~mmmt.ops.selective_scan_torch.selective_scan_torch` -- delta bias and softplus, the
scan, the ``D`` skip and the ``z`` gate ``y * silu(z)`` -- forward and backward, for float32 and
float64. The backward pass recomputes states chunk by chunk from checkpoints saved by the
forward pass (one state vector per ``CHUNK`` steps) instead of storing every state, so its
memory is ``O(batch * D * L * N / CHUNK)``.
"""
from typing import Optional, Tuple, Union

import torch
from torch.autograd.function import once_differentiable

from ._scan_args import TIME_VARYING_BC, bc_time_varying, compute_dtype, needs_grad
from .cpp_loader import load_scan_ops

__all__ = ['selective_scan_cpu', 'CHUNK']

#: Time steps between two saved states (the kernel's buffers allow up to 128).
CHUNK = 64


#: Channel slices per (batch, group) in the backward pass, each with its own dB/dC accumulator
#: of L * N values; 0 lets the kernel choose (about two tasks per thread). Tests change it.
SLICES = 0


class SelectiveScanCpuFn(torch.autograd.Function):

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, need_grad):
        ops = load_scan_ops()
        ctx.b_ndim, ctx.c_ndim = B.dim(), C.dim()
        Bt = (B if B.dim() == 4 else B.unsqueeze(1)).transpose(-1, -2).contiguous()
        Ct = (C if C.dim() == 4 else C.unsqueeze(1)).transpose(-1, -2).contiguous()
        out, last, ckpt = ops.fwd(u, delta, A, Bt, Ct, D, z, delta_bias, delta_softplus, CHUNK,
                                  need_grad)
        if need_grad:
            ctx.save_for_backward(u, delta, A, Bt, Ct, D, z, delta_bias, ckpt)
            ctx.delta_softplus = delta_softplus
        ctx.set_materialize_grads(False)
        return out, last

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dlast):
        u, delta, A, Bt, Ct, D, z, delta_bias, ckpt = ctx.saved_tensors
        if dout is None:
            dout = torch.zeros_like(u)
        du, ddelta, dz, dBs, dCs, dA, dD, dbias = load_scan_ops().bwd(
            u, delta, A, Bt, Ct, D, z, delta_bias, ctx.delta_softplus, CHUNK,
            ckpt, dout.contiguous(), None if dlast is None else dlast.contiguous(), SLICES)
        need = ctx.needs_input_grad

        def bc_grad(slices_grad, groups_in, ndim):
            g = slices_grad.sum(2)  # (batch, G, L, N)
            if groups_in == 1 and g.shape[1] > 1:
                g = g.sum(1, keepdim=True)
            g = g.transpose(-1, -2).contiguous()  # (batch, G', N, L)
            return g if ndim == 4 else g.squeeze(1)

        return (du if need[0] else None,
                ddelta if need[1] else None,
                dA.sum(0).to(A.dtype) if need[2] else None,
                bc_grad(dBs, Bt.shape[1], ctx.b_ndim) if need[3] else None,
                bc_grad(dCs, Ct.shape[1], ctx.c_ndim) if need[4] else None,
                dD.sum(0).to(u.dtype) if (D is not None and need[5]) else None,
                dz if (z is not None and need[6]) else None,
                dbias.sum(0).to(u.dtype) if (delta_bias is not None and need[7]) else None,
                None, None)


def selective_scan_cpu(
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
    """Selective scan with the compiled CPU kernel; same arguments and results as
    :func:`~mmmt.ops.selective_scan_torch.selective_scan_torch`, except that ``B``/``C`` must
    vary over time ((batch, N, L) or (batch, G, N, L)).

    Computes in float64 for float64 ``u``, else float32 (other inputs are cast); returns the
    output in ``u``'s dtype and the last state in the compute dtype. The last state is
    differentiable.
    """
    if not bc_time_varying(B, C):
        raise ValueError(f'selective_scan_cpu: {TIME_VARYING_BC}')
    dtype_in = u.dtype
    compute = compute_dtype(dtype_in)

    def prep(t):
        return None if t is None else t.to(compute).contiguous()

    args = [prep(t) for t in (u, delta, A, B, C, D, z, delta_bias)]
    need_grad = needs_grad((u, delta, A, B, C, D, z, delta_bias))
    out, last = SelectiveScanCpuFn.apply(*args, bool(delta_softplus), need_grad)
    out = out.to(dtype_in)
    return (out, last) if return_last_state else out
