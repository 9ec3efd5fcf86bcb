"""A first-use check of the compiled Triton scan against the PyTorch scan in float64.

The automatic backend gives every CUDA user the Triton kernels, compiled on their machine by
their Triton for their GPU. Before the first call with a combination of options and dtypes,
:func:`self_check` runs the kernels on a small problem with those options and compares the
output, the last state and every input gradient with :func:`selective_scan_torch` in
float64 on the CPU. A disagreement is reported (and the dispatcher falls back, see
:mod:`mmmt.ops.selective_scan`) instead of training on wrong values. The check problem is
compiled as the call is: the call's chunk length and channel block, and whether that block
divides its channels per group (:func:`check_shape`), select other compiled code, so a call
that differs in them is checked again. It costs one small launch of each kernel (272 steps,
16 channels per B/C group, for the usual calls) and the float64 scan of that problem, once per
process and combination; ``MMMT_TRITON_SELF_CHECK=0`` skips it.
"""
import os
from typing import Dict, Optional, Tuple

import torch

from . import selective_scan_triton as triton_scan
from .selective_scan_torch import selective_scan_torch

__all__ = ['self_check', 'self_check_enabled', 'check_shape', 'SELF_CHECK_ENV']

SELF_CHECK_ENV = 'MMMT_TRITON_SELF_CHECK'
#: The problem: 272 steps (three 128-step chunks, the last one partial, and divisible by 16
#: like the Swin-L lengths, so the kernels compiled for it are those the model uses), 16
#: channels per B/C group (17 for a call whose channel block leaves a remainder); shorter or
#: fewer where the call's launch sizes need them (:func:`check_shape`).
LENGTH, CHANNELS_PER_GROUP = 272, 16
#: Largest relative error (max |difference| / max |reference|) accepted, by input dtype: the
#: kernels' float32 sums differ from float64 by about 1e-6; half-precision inputs and
#: gradients are rounded to 8 or 11 bits.
TOLERANCE = {torch.float32: 1e-4, torch.float16: 3e-2, torch.bfloat16: 3e-2}
#: The same for the gradients, by the dtype of their input (they are returned in it).
GRAD_TOLERANCE = {torch.float32: 1e-3, torch.float16: 3e-2, torch.bfloat16: 3e-2}
_results: Dict[tuple, Optional[str]] = {}


def self_check_enabled() -> bool:
    """False if ``MMMT_TRITON_SELF_CHECK`` is ``0`` (or ``false``/``no``/``off``)."""
    return os.environ.get(SELF_CHECK_ENV, '1').strip().lower() not in ('0', 'false', 'no', 'off')


def check_shape(u: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                A: torch.Tensor) -> Tuple[int, int, tuple]:
    """(steps, channels per B/C group) of the check problem for this call, and what of the
    call's launch it reproduces: the kernels' chunk length and channel block (they set the
    chunk loop and the runs of a thread, :func:`~mmmt.ops.selective_scan_triton._launch_sizes`)
    and whether the block divides the channels of a group (the ``runs`` kernels then drop the
    channel masks). The problem is :data:`LENGTH` x :data:`CHANNELS_PER_GROUP` where that
    compiles the same; else twice a chunk and 16 steps (chunks longer than :data:`LENGTH`) or
    a chunk less 3 steps (a call shorter than the configured chunk), and 1 more channel (a
    remainder) or the call's own channels per group (a channel block fitted to fewer)."""
    name, cfg = triton_scan.kernel_choice()
    groups = max(m.shape[1] if m.dim() == 4 else 1 for m in (B, C))
    dim_group, dim_state = u.shape[1] // groups, A.shape[1]

    def launch(channels: int, steps: int) -> tuple:
        block_d, _, block_l = triton_scan._launch_sizes(name, channels, dim_state, steps,
                                                        cfg=cfg)
        return block_l, block_d, channels % block_d == 0

    want = launch(dim_group, u.shape[2])
    steps = next(s for s in (LENGTH, 2 * want[0] + 16, want[0] - 3)
                 if s > 0 and launch(dim_group, s)[0] == want[0])
    channels = next(c for c in (CHANNELS_PER_GROUP + (not want[2]), max(dim_group, 1))
                    if launch(c, steps) == want)
    return steps, channels, want


def _problem(u, delta, A, B, C, D, z, delta_bias, delta_softplus: bool, length: int,
             channels: int) -> Dict[str, Optional[torch.Tensor]]:
    """Random inputs shaped like the call's (its dtypes, options, B/C groups and N), on its
    device, of `length` steps and `channels` per B/C group (:func:`check_shape`), with steps
    dt of about 0.05 as SS2D's (positive without the softplus too, so that no state grows
    without bound)."""
    g = torch.Generator().manual_seed(0)
    groups = [m.shape[1] if m.dim() == 4 else 1 for m in (B, C)]
    dim, n = max(groups) * channels, A.shape[1]

    def rand(*shape, like, scale=1.0, shift=0.0):
        x = torch.randn(*shape, generator=g) * scale + shift
        return x.to(device=like.device, dtype=like.dtype)

    def bc(m, groups_m):
        shape = (1, groups_m, n, length) if m.dim() == 4 else (1, n, length)
        return rand(*shape, like=m)

    if delta_softplus:  # softplus(delta + bias) ~ softplus(-3 +- 0.7)
        dt = rand(1, dim, length, like=delta, scale=0.5, shift=-1.0)
        bias = None if delta_bias is None else rand(dim, like=delta_bias, scale=0.5, shift=-2.0)
    else:
        dt = rand(1, dim, length, like=delta).abs_().mul_(0.05)
        bias = None if delta_bias is None else rand(dim, like=delta_bias).abs_().mul_(0.01)
    return dict(
        u=rand(1, dim, length, like=u), delta=dt,
        A=-torch.rand(dim, n, generator=g).add(0.5).mul(
            torch.arange(1, n + 1)).to(device=A.device, dtype=A.dtype),
        B=bc(B, groups[0]), C=bc(C, groups[1]),
        D=None if D is None else rand(dim, like=D),
        z=None if z is None else rand(1, dim, length, like=z), delta_bias=bias)


def _run(x: Dict[str, Optional[torch.Tensor]], fn, delta_softplus: bool,
         weights: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> tuple:
    """Output, last state, the gradients of a weighting of both through `fn`, and the weights
    (random, representable in the output's dtype, unless given)."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in x.items() if v is not None}
    with torch.enable_grad():
        out, last = fn(**leaves, delta_softplus=delta_softplus, return_last_state=True)
        if weights is None:
            g = torch.Generator().manual_seed(1)
            weights = (torch.randn(out.shape, generator=g).to(out),
                       torch.randn(last.shape, generator=g).to(last))
        w_out, w_last = (w.to(device=t.device, dtype=t.dtype) for w, t in zip(weights, (out, last)))
        loss = (out * w_out).sum() + (last * w_last).sum()
        grads = torch.autograd.grad(loss, list(leaves.values()))
    return out.detach(), last.detach(), dict(zip(leaves, grads)), weights


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().cpu().double(), b.detach().cpu().double()
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-30)).item()


def self_check(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
               C: torch.Tensor, D: Optional[torch.Tensor] = None, z: Optional[torch.Tensor] = None,
               delta_bias: Optional[torch.Tensor] = None,
               delta_softplus: bool = False) -> Optional[str]:
    """Why the Triton kernels disagree with the float64 PyTorch scan on a small problem with
    this call's options and dtypes (what disagrees, by how much), or None if they agree.

    Computed once per process for each device, dtype, kernel choice and set of options; the
    arguments are only read for those. Errors of the kernels themselves (a failed compile)
    propagate.
    """
    length, channels, launch = check_shape(u, B, C, A)
    key = (u.device, u.dtype, delta.dtype, A.dtype, B.dtype, C.dtype, B.dim(), C.dim(),
           None if D is None else D.dtype, None if z is None else z.dtype,
           None if delta_bias is None else delta_bias.dtype, bool(delta_softplus),
           A.shape[1], triton_scan.kernel_choice(),
           torch.are_deterministic_algorithms_enabled(),  # another backward variant
           launch)  # other compiled code (check_shape)
    if key in _results:
        return _results[key]
    # its own tensors and gradients, whatever mode the call came in (no_grad, inference_mode,
    # autocast), and its own graph: identity saved-tensor hooks keep an enclosing activation
    # checkpoint (--with-cp) from tracking it, which would re-run the checkpointed block here
    with torch.inference_mode(False), torch.autocast(u.device.type, enabled=False), \
            torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
        x = _problem(u, delta, A, B, C, D, z, delta_bias, delta_softplus, length, channels)
        out, last, grads, weights = _run(x, triton_scan.selective_scan_triton, delta_softplus)
        with torch.no_grad():  # inference keeps two state slots instead of every chunk's
            plain_out, plain_last = triton_scan.selective_scan_triton(
                **x, delta_softplus=delta_softplus, return_last_state=True)
        ref = {k: None if v is None else v.detach().cpu().double() for k, v in x.items()}
        ref_out, ref_last, ref_grads, _ = _run(ref, selective_scan_torch, delta_softplus,
                                               weights)
    tol = TOLERANCE.get(u.dtype, 1e-4)
    last_tol = 1e-3 if tol > 1e-4 else 1e-4
    errors = [('output', _rel_err(out, ref_out), tol),
              ('last state', _rel_err(last, ref_last), last_tol),
              ('output without gradients', _rel_err(plain_out, ref_out), tol),
              ('last state without gradients', _rel_err(plain_last, ref_last), last_tol)]
    errors += [(f'gradient of {k}', _rel_err(v, ref_grads[k]),
                GRAD_TOLERANCE.get(x[k].dtype, 1e-3)) for k, v in grads.items()]
    bad = [f'{name} {err:.2g} (at most {limit:g})' for name, err, limit in errors
           if not err <= limit]  # NaN fails too
    reason = None
    if bad:
        name, cfg = triton_scan.kernel_choice()
        reason = (f'the {name} kernels ({cfg}) disagree with the float64 PyTorch scan on a '
                  f'{length}-step check problem, relative error: {", ".join(bad)}')
    _results[key] = reason
    return reason
