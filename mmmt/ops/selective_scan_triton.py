"""Selective scan with Triton kernels: forward and backward, compiled at run time for the GPU.

Same arguments and results as :func:`~mmmt.ops.selective_scan_torch.selective_scan_torch`,
with ``B``/``C`` varying over time ((batch, N, L) or grouped (batch, G, N, L), all groups in one
launch), N up to :data:`MAX_STATE`. The kernels (:mod:`mmmt.ops._selective_scan_triton_kernels`)
read float32, float16 or bfloat16 inputs as they are (no up-cast copies under AMP), keep the
state and every accumulation in float32 (float64 for float64 ``u``), and write the output in
``u``'s dtype. The forward pass saves the state at the start of every chunk of
:data:`BLOCK_L` steps (batch * D * ceil(L / BLOCK_L) * N values); the backward pass recomputes
each chunk's states from it and runs the reverse-time adjoint scan, so no per-step state is
ever stored.

With ``TRITON_INTERPRET=1`` in the environment at call time the kernels run in Triton's
interpreter, on CPU tensors too (slow; that is how the tests check them without a GPU). The
interpreted kernels are a separate module object, so the compiled ones in the same process are
unaffected.
"""
import contextlib
import functools
import importlib.util
import os
import os.path as osp
import warnings
from types import ModuleType
from typing import Optional, Tuple, Union

import torch
from torch.autograd.function import once_differentiable

from .selective_scan_torch import selective_scan_torch

__all__ = ['selective_scan_triton', 'triton_available', 'interpreter_enabled', 'MAX_STATE']

#: Largest state size N supported (the whole state of a channel block lives in registers).
MAX_STATE = 64
#: Time steps per chunk: the scan tile's length and the checkpoint interval (a power of 2).
BLOCK_L = 64
#: Elements of one (channels x states x steps) scan tile in the forward and the backward pass,
#: and warps per program. Chosen from ptxas's register report for sm_90 (N = 16, 64-step chunks,
#: 2 channels per program, no z as SS2D calls it: forward 128 registers with the next chunk's
#: inputs prefetched, backward 182; no spills; 4 channels per program need 164 and 255), not
#: from GPU timings: none were possible yet (docs/benchmarks_gpu.md).
TILE_FWD = 2048
TILE_BWD = 2048
NUM_WARPS = 8
#: Why a Triton kernel failed in this process (it is then not used again), or None.
failure: Optional[str] = None


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """Whether Triton imports in this process."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # noqa: BLE001 -- ImportError, or a broken install
        return False
    return True


def interpreter_enabled() -> bool:
    """Whether ``TRITON_INTERPRET`` asks for Triton's interpreter (read at call time)."""
    return os.environ.get('TRITON_INTERPRET', '').strip().lower() in ('1', 'true', 'yes', 'on')


@functools.lru_cache(maxsize=None)
def _kernels(interpret: bool) -> ModuleType:
    """The kernel module, decorated for the GPU compiler or for the interpreter. Triton decides
    the mode when ``@triton.jit`` runs, so the file is executed once per mode, as its own
    module, with ``TRITON_INTERPRET`` set accordingly for that moment only."""
    path = osp.join(osp.dirname(osp.abspath(__file__)), '_selective_scan_triton_kernels.py')
    name = 'mmmt.ops._selective_scan_triton_kernels' + ('_interpreted' if interpret else '')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    old = os.environ.get('TRITON_INTERPRET')
    os.environ['TRITON_INTERPRET'] = '1' if interpret else '0'
    try:
        spec.loader.exec_module(module)
    finally:
        if old is None:
            del os.environ['TRITON_INTERPRET']
        else:
            os.environ['TRITON_INTERPRET'] = old
    return module


def _tl_dtype(dtype: torch.dtype):
    import triton.language as tl
    return tl.float64 if dtype == torch.float64 else tl.float32


def _blocks(dim_group: int, dim_state: int, tile: int, block_l: int) -> Tuple[int, int]:
    """(channels, padded states) per program for a scan tile of about `tile` elements."""
    import triton
    block_n = max(2, triton.next_power_of_2(dim_state))
    block_d = max(1, min(tile // (block_n * block_l), triton.next_power_of_2(dim_group), 16))
    return block_d, block_n


def _on_device(t: torch.Tensor):
    """Triton launches on the current CUDA device: make it the tensors' one."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def _as_groups(m: torch.Tensor) -> torch.Tensor:
    return (m if m.dim() == 4 else m.unsqueeze(1)).contiguous()


def _opt(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return None if t is None else t.contiguous()


class SelectiveScanTritonFn(torch.autograd.Function):

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, need_grad):
        kern = _kernels(interpreter_enabled())
        batch, dim, length = u.shape
        dim_state = A.shape[1]
        Bg, Cg = _as_groups(B), _as_groups(C)
        groups = max(Bg.shape[1], Cg.shape[1])
        acc = torch.float64 if u.dtype == torch.float64 else torch.float32
        block_d, block_n = _blocks(dim // groups, dim_state, TILE_FWD, BLOCK_L)
        nchunk = -(-length // BLOCK_L)
        out = torch.empty_like(u)
        last = torch.empty(batch, dim, dim_state, dtype=acc, device=u.device)
        ckpt = (torch.empty(batch, dim, nchunk, dim_state, dtype=acc, device=u.device)
                if need_grad else last)
        grid = (-(-(dim // groups) // block_d), groups, batch)
        with _on_device(u):
            kern.scan_fwd_kernel[grid](
                u, delta, A, Bg, Cg, D if D is not None else u, z if z is not None else u,
                delta_bias if delta_bias is not None else u, out, last, ckpt, length, dim,
                dim // groups, dim_state, nchunk, Bg.shape[1], Cg.shape[1],
                HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
                SOFTPLUS=bool(delta_softplus), SAVE_CKPT=need_grad, ACC=_tl_dtype(acc),
                BLOCK_D=block_d, BLOCK_N=block_n, BLOCK_L=BLOCK_L, num_warps=NUM_WARPS)
        if need_grad:
            ctx.save_for_backward(u, delta, A, Bg, Cg, D, z, delta_bias, ckpt)
            ctx.delta_softplus = bool(delta_softplus)
            ctx.block_l = BLOCK_L  # the checkpoint interval
            ctx.b_ndim, ctx.c_ndim = B.dim(), C.dim()
        ctx.set_materialize_grads(False)
        return out, last

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dlast):
        global failure
        try:
            grads = _backward_kernel(ctx, dout, dlast)
        except torch.OutOfMemoryError:
            raise
        except Exception as e:  # noqa: BLE001 -- compile errors come in many types
            failure = f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'
            warnings.warn(f'mmmt: the Triton selective scan backward failed ({failure}); '
                          'recomputing it with the PyTorch scan, and not using Triton again in '
                          'this process', RuntimeWarning)
            grads = _backward_torch(ctx, dout, dlast)
        need = ctx.needs_input_grad
        grads = [g if n else None for g, n in zip(grads, need)]
        for i, ndim in ((3, ctx.b_ndim), (4, ctx.c_ndim)):
            if grads[i] is not None and ndim == 3:
                grads[i] = grads[i].squeeze(1)
        return tuple(grads) + (None, None)


def _backward_torch(ctx, dout, dlast):
    """The gradients by autograd through the PyTorch scan (the fallback of a failed kernel)."""
    saved = ctx.saved_tensors[:8]
    leaves = [None if t is None else t.detach().requires_grad_(True) for t in saved]
    with torch.enable_grad():
        out, last = selective_scan_torch(*leaves, ctx.delta_softplus, True)
        outs, grads_out = [out], [torch.zeros_like(out) if dout is None else dout]
        if dlast is not None:
            outs.append(last)
            grads_out.append(dlast)
        wrt = [t for t in leaves if t is not None]
        parts = iter(torch.autograd.grad(outs, wrt, grads_out, allow_unused=True))
    return [None if t is None else next(parts) for t in leaves]


def _backward_kernel(ctx, dout, dlast):
    """The gradients of (u, delta, A, B (grouped), C (grouped), D, z, delta_bias)."""
    u, delta, A, Bg, Cg, D, z, delta_bias, ckpt = ctx.saved_tensors
    kern = _kernels(interpreter_enabled())
    batch, dim, length = u.shape
    dim_state = A.shape[1]
    groups = max(Bg.shape[1], Cg.shape[1])
    acc = ckpt.dtype
    block_d, block_n = _blocks(dim // groups, dim_state, TILE_BWD, ctx.block_l)
    nchunk = ckpt.shape[2]
    dout = torch.zeros_like(u) if dout is None else dout.contiguous()
    du, ddelta = torch.empty_like(u), torch.empty_like(delta)
    dz = torch.empty_like(z) if z is not None else None
    dA = torch.empty(batch, dim, dim_state, dtype=acc, device=u.device)
    dB = torch.zeros(Bg.shape, dtype=acc, device=u.device)
    dC = torch.zeros(Cg.shape, dtype=acc, device=u.device)
    dD = torch.empty(batch, dim, dtype=acc, device=u.device)
    dbias = torch.empty(batch, dim, dtype=acc, device=u.device)
    grid = (-(-(dim // groups) // block_d), groups, batch)
    with _on_device(u):
        kern.scan_bwd_kernel[grid](
            u, delta, A, Bg, Cg, D if D is not None else u, z if z is not None else u,
            delta_bias if delta_bias is not None else u, ckpt, dout,
            dlast.contiguous() if dlast is not None else ckpt, du, ddelta, dA, dB, dC, dD,
            dbias, dz if dz is not None else du, length, dim, dim // groups, dim_state, nchunk,
            Bg.shape[1], Cg.shape[1],
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
            SOFTPLUS=ctx.delta_softplus, HAS_DLAST=dlast is not None, ACC=_tl_dtype(acc),
            BLOCK_D=block_d, BLOCK_N=block_n, BLOCK_L=ctx.block_l, num_warps=NUM_WARPS)
    return [du, ddelta, dA.sum(0).to(A.dtype), dB.to(Bg.dtype), dC.to(Cg.dtype),
            None if D is None else dD.sum(0).to(D.dtype), dz,
            None if delta_bias is None else dbias.sum(0).to(delta_bias.dtype)]


def check_supported(u: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> Optional[str]:
    """Why the Triton scan cannot take these inputs, or None if it can."""
    if B.dim() < 3 or C.dim() < 3:
        return 'B and C must vary over time ((batch, [G,] N, L))'
    if B.shape[-2] > MAX_STATE:
        return f'N = {B.shape[-2]} states, at most {MAX_STATE} supported'
    if not (u.is_cuda or interpreter_enabled()):
        return 'needs CUDA tensors (or TRITON_INTERPRET=1 for the interpreter)'
    return None


def selective_scan_triton(
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
    """Selective scan with the Triton kernels; arguments and results as
    :func:`~mmmt.ops.selective_scan_torch.selective_scan_torch` (``B``/``C`` time-varying).

    Inputs may be float32, float16 or bfloat16 (each read in its own dtype); the state and all
    sums are float32 (float64 for float64 ``u``). Returns the output in ``u``'s dtype and, if
    asked, the last state (batch, D, N) in the compute dtype; the last state is differentiable.
    """
    reason = check_supported(u, B, C)
    if reason:
        raise ValueError(f'selective_scan_triton: {reason}')
    batch, dim, length = u.shape
    groups = max(m.shape[1] if m.dim() == 4 else 1 for m in (B, C))
    if dim % groups:
        raise ValueError(f'channels ({dim}) must be divisible by the B/C groups ({groups})')
    for name, m in (('B', B), ('C', C)):
        if m.shape[-2:] != (A.shape[1], length) or m.shape[0] != batch:
            raise ValueError(f'selective_scan_triton: {name} has shape {tuple(m.shape)}, '
                             f'expected (batch={batch}, [G,] N={A.shape[1]}, L={length})')
    args = [_opt(t) for t in (u, delta, A, B, C, D, z, delta_bias)]
    need_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in args)
    if length == 0:  # nothing to scan: empty output, zero state
        out = u.new_zeros(u.shape)
        last = u.new_zeros(batch, dim, A.shape[1],
                           dtype=torch.float64 if u.dtype == torch.float64 else torch.float32)
        return (out, last) if return_last_state else out
    out, last = SelectiveScanTritonFn.apply(*args, bool(delta_softplus), need_grad)
    return (out, last) if return_last_state else out
