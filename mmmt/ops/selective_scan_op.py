"""The selective scan as opaque ``torch.library`` ops, for :func:`torch.compile`.

Dynamo cannot trace the scan itself: the compiled kernels have no fake-tensor versions, and
choosing a backend runs first-use checks and fallbacks. Under ``torch.compile``
:func:`~mmmt.ops.selective_scan_fn` therefore calls ``torch.ops.mmmt.selective_scan``: the graph
holds the scan as one node whose shapes come from a fake implementation, with no graph break
around it, and at run time the op runs the eager dispatcher
(:func:`~mmmt.ops.selective_scan.scan_eager`), which picks the backend as an uncompiled call
does. Eager calls never go through these ops.

Its backward pass is a second op, ``torch.ops.mmmt.selective_scan_backward``: it re-runs the
scan's forward pass under autograd from the saved inputs, then its backward pass, with the same
backend, so the gradients are those of an eager call. A compiled model thus keeps only the
scan's inputs between its forward and backward passes (as the eager ``torch`` backend does) and
pays one more scan forward pass in its backward pass.
"""
import contextlib
from typing import Iterator, List, Optional, Tuple

import torch
from torch import Tensor

from ._scan_args import compute_dtype

__all__ = ['traceable_selective_scan']

_INPUTS = 8  # u, delta, A, B, C, D, z, delta_bias


def _scan_eager():
    # imported at call time: mmmt.ops.selective_scan imports this module
    from .selective_scan import scan_eager
    return scan_eager


@torch.library.custom_op('mmmt::selective_scan', mutates_args=())
def _scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor],
          z: Optional[Tensor], delta_bias: Optional[Tensor],
          delta_softplus: bool) -> Tuple[Tensor, Tensor]:
    """(output, last state) of the eager scan; its gradients come from the backward op."""
    with torch.no_grad():  # no autograd graph (nor the C++ kernel's checkpoints) to keep
        out, last = _scan_eager()(u, delta, A, B, C, D, z, delta_bias, delta_softplus, True)
    # contiguous, as the fake results are (the torch backend's output is a slice)
    return out.contiguous(), last.contiguous()


@_scan.register_fake
def _scan_fake(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    batch, dim, _ = u.shape
    return (torch.empty_like(u, memory_format=torch.contiguous_format),
            u.new_empty(batch, dim, A.shape[-1], dtype=compute_dtype(u.dtype)))


@contextlib.contextmanager
def _autograd_on() -> Iterator[None]:
    """Autograd inside a custom op's implementation, which PyTorch runs below autograd (its
    dispatch keys excluded) -- torch.utils.checkpoint re-includes ADInplaceOrView likewise."""
    keys = torch._C.DispatchKey
    with torch._C._SetExcludeDispatchKeyGuard(keys.AutogradFunctionality, False), \
            torch._C._SetExcludeDispatchKeyGuard(keys.ADInplaceOrView, False), \
            torch.enable_grad():
        yield


@torch.library.custom_op('mmmt::selective_scan_backward', mutates_args=())
def _scan_backward(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                   D: Optional[Tensor], z: Optional[Tensor], delta_bias: Optional[Tensor],
                   dout: Optional[Tensor], dlast: Optional[Tensor], delta_softplus: bool,
                   needs: List[bool]) -> List[Tensor]:
    """Gradients of the inputs flagged in `needs`, in input order, by re-running the scan."""
    inputs = (u, delta, A, B, C, D, z, delta_bias)
    with _autograd_on():
        leaves = [None if t is None else t.detach().requires_grad_(need)
                  for t, need in zip(inputs, needs)]
        outs = _scan_eager()(*leaves, delta_softplus, True)
        wrt = [t for t, need in zip(leaves, needs) if need]
        pairs = [(o, g) for o, g in zip(outs, (dout, dlast)) if g is not None]
        grads = torch.autograd.grad([o for o, _ in pairs], wrt, [g for _, g in pairs],
                                    allow_unused=True)
    # an input the scan's result does not depend on (D with zero u, say) gets zeros: the op's
    # results are tensors, never None
    return [torch.zeros_like(t) if g is None else g.contiguous() for t, g in zip(wrt, grads)]


@_scan_backward.register_fake
def _scan_backward_fake(u, delta, A, B, C, D, z, delta_bias, dout, dlast, delta_softplus,
                        needs):
    inputs = (u, delta, A, B, C, D, z, delta_bias)
    return [torch.empty_like(t, memory_format=torch.contiguous_format)
            for t, need in zip(inputs, needs) if need]


def _setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs[:_INPUTS])
    ctx.delta_softplus = inputs[_INPUTS]
    ctx.set_materialize_grads(False)  # an unused output (the last state, mostly) has no grad


def _backward(ctx, dout: Optional[Tensor], dlast: Optional[Tensor]):
    needs = [bool(n) for n in ctx.needs_input_grad[:_INPUTS]]
    grads = iter(_scan_backward(*ctx.saved_tensors, dout, dlast, ctx.delta_softplus, needs))
    return tuple(next(grads) if need else None for need in needs) + (None, )


_scan.register_autograd(_backward, setup_context=_setup_context)


def traceable_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                             return_last_state):
    """:func:`~mmmt.ops.selective_scan_fn` through ``torch.ops.mmmt.selective_scan``: what
    Dynamo traces instead of the dispatcher."""
    out, last = _scan(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus))
    return (out, last) if return_last_state else out
