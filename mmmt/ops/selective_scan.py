"""The public selective-scan entry point and its backend selection.

Backends:

- ``cpp``: the compiled CPU kernel (:mod:`mmmt.ops.selective_scan_cpu`), built just-in-time on
  first use and cached (:mod:`mmmt.ops.cpp_loader`). Chosen automatically for CPU tensors with
  time-varying ``B``/``C``. If it cannot be built (no compiler), the ``torch`` backend is used
  instead, with a one-line warning, once per process.
- ``torch``: the chunked pure-PyTorch scan (:mod:`mmmt.ops.selective_scan_torch`); any device.
  When gradients are needed it runs under activation checkpointing (recomputed in the backward
  pass), so only its inputs are kept between the forward and the backward pass.
- ``triton``: the Triton kernels (:mod:`mmmt.ops.selective_scan_triton`), compiled at run time;
  chosen automatically for CUDA tensors with time-varying ``B``/``C`` (N <= 64) where Triton
  imports, ahead of ``cuda``: no GPU has timed the two against each other yet
  (docs/benchmarks_gpu.md), and Triton needs no compiled extension. If a kernel fails to
  compile, or if on first use with a set of options the kernels disagree with the float64
  PyTorch scan on a small problem (:mod:`mmmt.ops.triton_self_check`,
  ``MMMT_TRITON_SELF_CHECK=0`` skips it), the ``cuda`` or ``torch`` backend is used instead,
  with a one-line warning, once per process, for every kind of call that has not run with
  Triton yet (those that have keep it: a recompute under activation checkpointing must take
  the backend of its forward pass). With ``TRITON_INTERPRET=1`` a forced ``triton``
  backend also runs on CPU tensors, in Triton's interpreter (for tests). Three kernel pairs
  exist (``runs``, the default, ``statewise`` and ``tile``); ``MMMT_TRITON_SCAN_KERNEL=NAME``
  or ``NAME:STEPS:TILE:WARPS`` (for ``runs`` optionally ``:prefetch``) picks one, and its
  launch sizes (:func:`~mmmt.ops.selective_scan_triton.parse_kernel`).
- ``cuda``: mamba-ssm's fused CUDA kernel, for CUDA tensors where mamba-ssm imports.

``MMMT_SCAN_BACKEND=torch|cpp|cuda|triton`` forces a backend; ``MMMT_DISABLE_CPP_SCAN=1`` never
builds or uses the C++ kernel.

Under :func:`torch.compile` (mmengine's ``compile=True``) :func:`selective_scan_fn` is one
opaque op in the graph, ``torch.ops.mmmt.selective_scan`` (:mod:`mmmt.ops.selective_scan_op`):
no graph break; at run time the op picks the backend as an eager call does.

Precision under :func:`torch.autocast`: the scan always runs in float32 (float64 for float64
``u``): every input is cast to that dtype with autocast disabled (the ``triton`` backend reads
float16/bfloat16 inputs as they are and converts them in registers instead), and the output is
returned in ``u``'s dtype.
"""
import functools
import os
import warnings
from typing import Callable, Optional, Tuple, Union

import torch

from . import cpp_loader
from . import selective_scan_triton as triton_scan
from . import triton_self_check
from ._scan_args import bc_time_varying, compute_dtype, needs_grad
from .selective_scan_cpu import selective_scan_cpu
from .selective_scan_op import traceable_selective_scan
from .selective_scan_recompute import grads_by_recompute
from .selective_scan_torch import selective_scan_torch

__all__ = ['selective_scan_fn', 'available_backends', 'BACKEND_ENV', 'TritonSelfCheckError']

#: Environment variable that forces a backend (``torch``, ``cpp``, ``cuda``, ``triton``); empty
#: = automatic.
BACKEND_ENV = 'MMMT_SCAN_BACKEND'
_BACKENDS = ('torch', 'cpp', 'cuda', 'triton')
_warned_fallback = False
#: The kinds of call (:func:`_call_key`) that ran with Triton in this process. After a Triton
#: failure they keep it and only other kinds fall back: under activation checkpointing a
#: recompute must take the backend of its forward pass (another backend saves other tensors,
#: and torch stops with a ``CheckpointError``).
_triton_calls: set = set()


@functools.lru_cache(maxsize=None)
def _mamba_cuda_fn() -> Optional[Callable]:
    """mamba-ssm's fused CUDA scan, or None where mamba-ssm is not importable."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as fn
    except Exception:  # ImportError, or a broken CUDA build (e.g. selective_scan_cuda missing)
        return None
    return fn


def available_backends() -> Tuple[str, ...]:
    """Names of the scan backends usable in this process (builds the C++ kernel if needed)."""
    names = ['torch']
    if cpp_loader.scan_ops_or_none() is not None:
        names.append('cpp')
    if _mamba_cuda_fn() is not None and torch.cuda.is_available():
        names.append('cuda')
    if (torch.cuda.is_available() or triton_scan.interpreter_enabled()) and _triton_usable():
        names.append('triton')
    return tuple(names)


def _triton_usable() -> bool:
    return triton_scan.failure is None and triton_scan.triton_available()


def _cpp_supports(u: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> bool:
    return u.device.type == 'cpu' and bc_time_varying(B, C)


def _call_key(u, delta, A, B, C, D, z, delta_bias, delta_softplus) -> tuple:
    """What picks the compiled kernels of a call: devices, dtypes, shapes, options."""
    return (triton_scan.tensor_signature((u, delta, A, B, C, D, z, delta_bias)),
            bool(delta_softplus), triton_scan.kernel_choice())


def _pick_backend(u: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                  call: Optional[tuple] = None) -> str:
    """The backend of a call; ``call`` is its :func:`_call_key` (for CUDA tensors)."""
    global _warned_fallback
    forced = os.environ.get(BACKEND_ENV, '').strip().lower()
    if forced:
        if forced not in _BACKENDS:
            raise ValueError(f'{BACKEND_ENV}={forced!r}: expected one of {_BACKENDS}')
        if forced == 'cuda' and (_mamba_cuda_fn() is None or not u.is_cuda):
            raise RuntimeError(f'{BACKEND_ENV}=cuda needs mamba-ssm and CUDA tensors')
        if forced == 'triton':
            reason = (triton_scan.failure
                      or ('' if triton_scan.triton_available() else 'Triton does not import')
                      or triton_scan.check_supported(u, B, C))
            if reason:
                raise RuntimeError(f'{BACKEND_ENV}=triton: {reason}')
        if forced == 'cpp':
            if not _cpp_supports(u, B, C):
                raise RuntimeError(f'{BACKEND_ENV}=cpp needs CPU tensors and time-varying B/C')
            if cpp_loader.scan_ops_or_none() is None:
                raise RuntimeError(f'{BACKEND_ENV}=cpp but the C++ scan is unavailable: '
                                   f'{cpp_loader.build_error() or "disabled"}')
        return forced
    if u.is_cuda:
        return _automatic_cuda_backend(u, B, C, call)
    if _cpp_supports(u, B, C) and not cpp_loader.disabled():
        if cpp_loader.scan_ops_or_none() is not None:
            return 'cpp'
        if not _warned_fallback:
            _warned_fallback = True
            warnings.warn(
                'mmmt: C++ selective scan unavailable, using the slower PyTorch scan '
                f'({cpp_loader.build_error()}); set {cpp_loader.DISABLE_ENV}=1 to silence',
                RuntimeWarning, stacklevel=4)
    return 'torch'


def _automatic_cuda_backend(u: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                            call: Optional[tuple]) -> str:
    """Triton where it takes the call and has not failed (or has run this kind of call
    before), else mamba-ssm's kernel or the PyTorch scan."""
    if (triton_scan.triton_available() and triton_scan.check_supported(u, B, C) is None
            and (triton_scan.failure is None or call in _triton_calls)):
        return 'triton'
    return _cuda_fallback()


def _cuda_fallback() -> str:
    """The backend for CUDA tensors when Triton is not used."""
    return 'cuda' if _mamba_cuda_fn() is not None else 'torch'


class TritonSelfCheckError(RuntimeError):
    """The compiled Triton kernels disagree with the PyTorch scan (see
    :mod:`mmmt.ops.triton_self_check`)."""


def _self_check_applies(u: torch.Tensor) -> bool:
    """Whether calls with `u` are checked first: compiled kernels (CUDA tensors), unless
    ``MMMT_TRITON_SELF_CHECK=0``."""
    return u.is_cuda and triton_self_check.self_check_enabled()


def _passes_through(e: BaseException) -> bool:
    """Exceptions that are not the kernels' failure: activation checkpointing's own (its early
    stop of a recompute, its consistency checks)."""
    names = {cls.__name__ for cls in type(e).__mro__}
    return bool(names & {'CheckpointError', '_StopRecomputationError'})


def _triton_or_fallback(forced: bool, u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                        return_last_state, call: Optional[tuple] = None):
    """The Triton scan; if its kernels fail to compile or launch (no C compiler for Triton's
    launcher, an unsupported GPU, a Triton bug) or fail their first-use check, None after one
    warning (the first failure's), and from then on only the kinds of call that already ran
    with Triton use it. A forced backend raises instead; so do inputs that do not fit
    together, whichever backend runs. ``call`` is the call's :func:`_call_key`, if the caller
    has it already."""
    triton_scan.kernel_choice()  # a misspelt kernel choice is the user's error, not a failure
    triton_scan.check_inputs(u, delta, A, B, C, D, z, delta_bias)
    if call is None:
        call = _call_key(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    try:
        if _self_check_applies(u):
            reason = triton_self_check.self_check(u, delta, A, B, C, D, z, delta_bias,
                                                  delta_softplus)
            if reason:
                raise TritonSelfCheckError(reason)
        # check_supported ran when the backend was picked, check_inputs above
        res = triton_scan.scan_checked_inputs(u, delta, A, B, C, D, z, delta_bias,
                                              delta_softplus, return_last_state,
                                              backward_fallback=not forced)
    except torch.OutOfMemoryError:
        raise
    except Exception as e:  # noqa: BLE001 -- compile errors come in many types
        if forced or _passes_through(e):
            raise
        if triton_scan.record_failure(e):
            warnings.warn(
                f'mmmt: the Triton selective scan failed ({triton_scan.failure}); '
                f'using the {_cuda_fallback()} scan instead for the rest of this process (the '
                'kinds of call that already ran with Triton keep it); set '
                f'{BACKEND_ENV}=torch or {BACKEND_ENV}=cuda to silence', RuntimeWarning,
                stacklevel=4)
        return None
    _triton_calls.add(call)
    return res


class _TorchScanRecompute(torch.autograd.Function):
    """The PyTorch scan, keeping only its inputs for the backward pass, which re-runs it under
    autograd (activation checkpointing for one op), a slice of channels at a time when the graph
    would exceed the budget (:mod:`~mmmt.ops.selective_scan_recompute`). Returns
    (out, last_state)."""

    @staticmethod
    def forward(ctx, delta_softplus, *args):
        ctx.delta_softplus = delta_softplus
        ctx.save_for_backward(*args)
        ctx.set_materialize_grads(False)
        with torch.no_grad():
            return selective_scan_torch(*args, delta_softplus, True)

    @staticmethod
    def backward(ctx, dout, dlast):
        args = ctx.saved_tensors
        return (None, ) + tuple(grads_by_recompute(ctx.delta_softplus, args,
                                                   ctx.needs_input_grad[1:], dout, dlast))


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
    do); ``D``, ``delta_bias``: (D,). See
    :func:`~mmmt.ops.selective_scan_torch.selective_scan_torch` for the recurrence.

    The backend is chosen per call (see the module docstring): the compiled kernel for CPU
    tensors, the Triton kernels for CUDA tensors where Triton imports (else mamba-ssm's fused
    kernel where mamba-ssm imports), else the differentiable PyTorch implementation.
    ``MMMT_SCAN_BACKEND`` forces one.

    Returns:
        Tensor or (Tensor, Tensor): (batch, D, L) output in ``u``'s dtype, plus the last state
        (batch, D, N) in the compute dtype (float32, or float64 for float64 ``u``) if
        ``return_last_state``.
    """
    if torch.compiler.is_compiling():  # the graph holds one op that runs scan_eager
        return traceable_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                        return_last_state)
    return scan_eager(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


def scan_eager(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state):
    """:func:`selective_scan_fn` without compiling: picks the backend and runs it."""
    kernels_may_run = u.is_cuda or triton_scan.interpreter_enabled()
    call = _call_key(u, delta, A, B, C, D, z, delta_bias,
                     delta_softplus) if kernels_may_run else None
    backend = _pick_backend(u, B, C, call)
    if backend == 'triton':  # before the casts below: it reads half inputs natively
        with torch.autocast(device_type=u.device.type, enabled=False):
            res = _triton_or_fallback(bool(os.environ.get(BACKEND_ENV, '').strip()), u, delta,
                                      A, B, C, D, z, delta_bias, delta_softplus,
                                      return_last_state, call)
        if res is not None:
            return res
        backend = _cuda_fallback()
    dtype_in = u.dtype
    compute = compute_dtype(dtype_in)

    def cast(t):
        return None if t is None else t.to(compute)

    with torch.autocast(device_type=u.device.type, enabled=False):
        args = [cast(t) for t in (u, delta, A, B, C, D, z, delta_bias)]
        if backend == 'cpp':
            res = selective_scan_cpu(*args, delta_softplus, return_last_state)
        elif backend == 'cuda':
            res = _mamba_cuda_fn()(*args, delta_softplus, return_last_state)
        elif needs_grad(args):
            # Recompute in the backward pass instead of keeping the chunked scan's autograd
            # graph (about 8 x batch*D*L*N*4 bytes per call) alive until then: a model with
            # dozens of scans per step would not fit in memory otherwise.
            res = _TorchScanRecompute.apply(delta_softplus, *args)
            res = res if return_last_state else res[0]
        else:
            res = selective_scan_torch(*args, delta_softplus, return_last_state)
    if return_last_state:
        out, last = res
        return out.to(dtype_in), last
    return res.to(dtype_in)
