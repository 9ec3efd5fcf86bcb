"""Selective scan with Triton kernels: forward and backward, compiled at run time for the GPU.

Same arguments and results as :func:`~mmmt.ops.selective_scan_torch.selective_scan_torch`,
with ``B``/``C`` varying over time ((batch, N, L) or grouped (batch, G, N, L), all groups in one
launch), N up to :data:`MAX_STATE`. The kernels (:mod:`mmmt.ops._selective_scan_triton_kernels`)
read float32, float16 or bfloat16 inputs as they are (no up-cast copies under AMP), keep the
state and every accumulation in float32 (float64 for float64 ``u``), and write the output in
``u``'s dtype. The forward pass saves the state at the start of every chunk of ``block_l``
steps (batch * D * ceil(L / block_l) * N values, :class:`KernelConfig`); the backward pass
recomputes each chunk's states from it and runs the reverse-time adjoint scan, so no per-step
state is ever stored.

With ``TRITON_INTERPRET=1`` in the environment at call time the kernels run in Triton's
interpreter, on CPU tensors too (slow; that is how the tests check them without a GPU). The
interpreted kernels are a separate module object, so the compiled ones in the same process are
unaffected.
"""
import contextlib
import dataclasses
import functools
import importlib.util
import os
import os.path as osp
import warnings
from types import ModuleType
from typing import Optional, Tuple, Union

import torch
from torch.autograd.function import once_differentiable

from ._scan_args import (TIME_VARYING_BC, bc_groups, bc_time_varying, check_channel_groups,
                         compute_dtype, needs_grad)
from .selective_scan_recompute import grads_by_recompute

__all__ = [
    'selective_scan_triton', 'triton_available', 'interpreter_enabled', 'kernel_choice',
    'kernel_name', 'parse_kernel', 'run_length', 'KernelConfig', 'CONFIGS', 'KERNEL_ENV',
    'MAX_STATE', 'MAX_GRID_YZ', 'MAX_STATE_STEPS', 'check_supported', 'check_inputs',
    'describe_failure', 'scan_checked_inputs'
]

#: Largest state size N supported (the ``tile`` kernels hold all the states of a channel block
#: in registers).
MAX_STATE = 64


@dataclasses.dataclass(frozen=True)
class KernelConfig:
    """Launch configuration of one kernel pair.

    Args:
        block_l: Time steps per chunk, the checkpoint interval too (a power of 2); shorter
            sequences use the next power of 2 of their length (at least 16) instead.
        tile: Elements of a program's scan tile: channels x states x steps for ``tile``,
            channels x steps for ``statewise`` and ``runs`` (one state at a time). Sets the
            channels per program (at most 16) and, for ``runs``, the steps per thread.
        num_warps: Warps per program.
        prefetch: ``runs`` forward only: load each state's rows while the state before is
            scanned, two states per loop iteration (more registers, fewer stalls for a
            program of one warp).
    """
    block_l: int
    tile: int
    num_warps: int
    prefetch: bool = False

    def __str__(self) -> str:
        return (f'{self.block_l}:{self.tile}:{self.num_warps}' +
                (':prefetch' if self.prefetch else ''))


#: The kernel pairs (:mod:`mmmt.ops._selective_scan_triton_kernels`). ``runs`` (the default)
#: and ``statewise`` scan one state at a time over a (channels x steps) tile, in the loop order
#: of mamba-ssm's CUDA kernel; ``runs`` has each thread scan a run of consecutive steps in its
#: registers (:func:`run_length`) and only the runs across the lanes; ``tile`` scans a (channels
#: x states x steps) tile at once. All give the same results (the tests run each). No GPU has
#: timed them yet (docs/benchmarks_gpu.md); the default and these sizes come from what they
#: compile to for sm_90 at the Swin-L NYUD shapes (``tools/analysis_tools/triton_scan_sass.py``),
#: in issued instructions per (channel, state, step) update, forward / backward: ``runs`` (4
#: channels x 128 steps, runs of 16, 1 warp) 12.0 / 42.9, ``statewise`` (8 x 128, 4 warps)
#: 27.2 / 86.2, ``tile`` (2 channels x 16 states x 64 steps, 8 warps) 93 / 201. One warp per
#: program: the same work per warp as 16 channels x 4 warps (12.0 / 53.7), but 4x the programs
#: (384 at Swin-L stage 3, batch 1, for an H100's 132 SMs, against 96), and the backward's sums
#: over channels stay within a warp (no shared memory); each B/C row is read once per 4 channels.
#: ``prefetch`` stays off until a GPU has timed it (it adds registers: 254 instead of 161).
CONFIGS = {
    'runs': KernelConfig(block_l=128, tile=512, num_warps=1),
    'statewise': KernelConfig(block_l=128, tile=1024, num_warps=4),
    'tile': KernelConfig(block_l=64, tile=2048, num_warps=8),
}
# the pairs that scan one state at a time and carry it between chunks through memory
_STATE_LOOP = ('statewise', 'runs')
#: Environment variable naming the kernel pair, optionally with other launch sizes
#: (:func:`parse_kernel`; read at call time); empty = :data:`DEFAULT`.
KERNEL_ENV = 'MMMT_TRITON_SCAN_KERNEL'
DEFAULT = 'runs'
#: Why a Triton kernel failed in this process, or None. Calls of a kind that has not run with
#: Triton yet then use another backend; calls that already did keep Triton, so that under
#: activation checkpointing a recompute always takes the backend of its forward pass (see
#: :mod:`mmmt.ops.selective_scan`).
failure: Optional[str] = None
#: The backward kinds (:func:`_backward_key`) whose kernel failed: their backward passes go
#: straight to the PyTorch recompute, without compiling again.
_failed_backwards: set = set()
#: The most programs CUDA launches along a grid's y and z axes (B/C groups and the batch).
MAX_GRID_YZ = 65535
#: The most elements of one batch element's (N, L) block of B or C: the kernels find state
#: n's row at ``n * L``, a product of two int32 values (int32 too; the other offsets are
#: int64, from the batch index), which wraps past it.
MAX_STATE_STEPS = 2**31


def record_failure(e: BaseException) -> bool:
    """Keep the first failure's description in :data:`failure`; True if this was the first
    (the caller warns once)."""
    global failure
    first = failure is None
    failure = failure or describe_failure(e)
    return first


def tensor_signature(tensors) -> tuple:
    """Device, dtype and shape of each tensor (None stays None): what selects a compiled
    kernel variant besides the options."""
    return tuple(None if t is None else (t.device, t.dtype, tuple(t.shape)) for t in tensors)


def describe_failure(e: BaseException) -> str:
    """One line for a failed compile or launch: Triton's ``CompilationError`` keeps the cause
    in ``error_message`` (its text starts with the source position); others in their first
    line. A ``PTXASError``'s ``error_message`` is the kind of failure, then ptxas' whole log
    and the command to repeat it: the kind and the log's first line."""
    detail = getattr(e, 'error_message', None)
    if detail and '\n' in detail.strip():
        lines = [line.strip() for line in detail.splitlines() if line.strip()]
        detail = lines[0]
        if len(lines) > 2 and lines[1].endswith('stderr:'):  # '`ptxas` stderr:', its log
            detail = f'{detail}: {lines[2]}'
    if not detail:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        detail = lines[0] if lines else ''
        if detail.endswith(':') and len(lines) > 1:  # 'at 12:8:' and the source below it
            detail = lines[-1]
    return f'{type(e).__name__}: {detail}'


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


def parse_kernel(text: str) -> Tuple[str, KernelConfig]:
    """A kernel pair and its launch sizes from ``NAME`` (the shipped sizes of
    :data:`CONFIGS`) or ``NAME:STEPS:TILE:WARPS`` (other sizes, to time them), for ``runs``
    optionally followed by ``:prefetch`` (:class:`KernelConfig`)."""
    name, *sizes = text.strip().lower().split(':')
    if name not in CONFIGS:
        raise ValueError(f'{text!r}: expected a kernel pair of {sorted(CONFIGS)}, optionally '
                         'with :STEPS:TILE:WARPS')
    if not sizes:
        return name, CONFIGS[name]
    prefetch = sizes[-1] == 'prefetch'
    if prefetch and name != 'runs':
        raise ValueError(f'{text!r}: only the runs kernels have a prefetch option')
    try:
        cfg = KernelConfig(*map(int, sizes[:-1] if prefetch else sizes), prefetch=prefetch)
    except (TypeError, ValueError):
        cfg = None
    if (cfg is None or min(cfg.block_l, cfg.tile, cfg.num_warps) < 1
            or any(v & (v - 1) for v in (cfg.block_l, cfg.tile, cfg.num_warps))):
        raise ValueError(f'{text!r}: expected NAME:STEPS:TILE:WARPS, three powers of 2 (and '
                         'for runs optionally :prefetch)')
    # found here rather than by the compiler (a bare IndexError of the kernel's tuple of
    # tiles) or, for the warps, only at the first launch on a GPU (Triton's OutOfResources)
    if name == 'runs' and cfg.block_l < 4:
        raise ValueError(f'{text!r}: the runs kernels need chunks of at least 4 steps (a '
                         f'thread scans runs of 4 or more), not {cfg.block_l}')
    if cfg.num_warps > 32:
        raise ValueError(f'{text!r}: at most 32 warps per program (1024 threads, the CUDA '
                         f'limit), not {cfg.num_warps}')
    return name, cfg


def kernel_choice() -> Tuple[str, KernelConfig]:
    """The kernel pair to use and its sizes: ``MMMT_TRITON_SCAN_KERNEL`` if set (see
    :func:`parse_kernel`), else :data:`DEFAULT`."""
    text = os.environ.get(KERNEL_ENV, '').strip() or DEFAULT
    try:
        return parse_kernel(text)
    except ValueError as e:
        raise ValueError(f'{KERNEL_ENV}: {e}') from None


def kernel_name() -> str:
    """The name of the kernel pair :func:`kernel_choice` picks."""
    return kernel_choice()[0]


def _launch_sizes(name: str, dim_group: int, dim_state: int, length: int,
                  block_l: Optional[int] = None,
                  cfg: Optional[KernelConfig] = None) -> Tuple[int, int, int]:
    """(channels per program, padded states, steps per chunk) of kernel pair `name` with the
    sizes `cfg` (default: the shipped ones); the backward pass passes the forward's chunk
    length (its checkpoint interval)."""
    import triton
    cfg = cfg or CONFIGS[name]
    if block_l is None:  # no chunk much longer than the sequence: its lanes would idle
        block_l = min(cfg.block_l, max(16, triton.next_power_of_2(length)))
    block_n = max(2, triton.next_power_of_2(dim_state))
    per_channel = block_l * (1 if name in _STATE_LOOP else block_n)
    block_d = max(1, min(cfg.tile // per_channel, triton.next_power_of_2(dim_group), 16))
    return block_d, block_n, block_l


def run_length(cfg: KernelConfig, block_l: int) -> int:
    """Steps each thread of the ``runs`` kernels scans in its registers: the elements of the
    config's tile per thread, between 4 (one 16-byte load) and 32, at most the chunk."""
    return min(block_l, 32, max(4, cfg.tile // (32 * cfg.num_warps)))


def _kernel_fns(kern: ModuleType, name: str):
    if name == 'statewise':
        return kern.scan_fwd_statewise_kernel, kern.scan_bwd_statewise_kernel
    if name == 'runs':
        return kern.scan_fwd_runs_kernel, kern.scan_bwd_runs_kernel
    return kern.scan_fwd_kernel, kern.scan_bwd_kernel


def _fast_exp(u: torch.Tensor, acc: torch.dtype) -> bool:
    """Whether the kernels may use PTX's ``ex2.approx.ftz`` (float32 on an NVIDIA GPU, compiled:
    Triton's interpreter, which also takes CUDA tensors, cannot run inline assembly)."""
    return (u.is_cuda and torch.version.hip is None and acc == torch.float32
            and not interpreter_enabled())


def _launch(name: str, cfg: KernelConfig, block_d: int, block_l: int, softplus: bool,
            acc: torch.dtype, inputs: tuple) -> Tuple[tuple, tuple, dict]:
    """What every kernel of pair `name` is launched with: the grid, the input tensors it takes
    first (u, delta, A, grouped B and C, then D, z and delta_bias, an absent one as u in its
    place: its HAS_* flag is off, so the kernel never reads it) and the flags."""
    u, delta, A, Bg, Cg, D, z, delta_bias = inputs
    batch, dim, _ = u.shape
    groups = max(Bg.shape[1], Cg.shape[1])
    grid = (-(-(dim // groups) // block_d), groups, batch)
    tensors = (u, delta, A, Bg, Cg) + tuple(u if t is None else t for t in (D, z, delta_bias))
    flags = dict(HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
                 SOFTPLUS=softplus, ACC=_tl_dtype(acc), BLOCK_D=block_d, BLOCK_L=block_l,
                 num_warps=cfg.num_warps)
    if name in _STATE_LOOP:
        flags['FAST_EXP'] = _fast_exp(u, acc)
    if name == 'runs':
        flags['RUN'] = run_length(cfg, block_l)
        flags['EVEN_D'] = (dim // groups) % block_d == 0
    return grid, tensors, flags


def _on_device(t: torch.Tensor):
    """Triton launches on the current CUDA device: make it the tensors' one."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def _as_groups(m: torch.Tensor) -> torch.Tensor:
    return (m if m.dim() == 4 else m.unsqueeze(1)).contiguous()


def _opt(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return None if t is None else t.contiguous()


class SelectiveScanTritonFn(torch.autograd.Function):

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, need_grad,
                backward_fallback):
        name, cfg = kernel_choice()
        fwd_kernel = _kernel_fns(_kernels(interpreter_enabled()), name)[0]
        batch, dim, length = u.shape
        dim_state = A.shape[1]
        Bg, Cg = _as_groups(B), _as_groups(C)
        groups = max(Bg.shape[1], Cg.shape[1])
        acc = compute_dtype(u.dtype)
        block_d, block_n, block_l = _launch_sizes(name, dim // groups, dim_state, length,
                                                  cfg=cfg)
        nchunk = -(-length // block_l)
        out = torch.empty_like(u)
        grid, common, flags = _launch(name, cfg, block_d, block_l, bool(delta_softplus), acc,
                                      (u, delta, A, Bg, Cg, D, z, delta_bias))
        common += (out, )
        if name in _STATE_LOOP:
            # the state entering every chunk, then the last one; two slots in turn without
            # gradients (slot 0 is the zero initial state)
            slots = nchunk + 1 if need_grad else 2
            ckpt = torch.empty(batch, dim, slots, dim_state, dtype=acc, device=u.device)
            ckpt[:, :, 0] = 0
            if name == 'runs':  # a forward-only option
                flags['PREFETCH'] = cfg.prefetch
            with _on_device(u):
                fwd_kernel[grid](*common, ckpt, length, dim, dim // groups, dim_state, nchunk,
                                 slots, Bg.shape[1], Cg.shape[1], **flags)
            last = ckpt[:, :, nchunk % slots].contiguous()
        else:
            last = torch.empty(batch, dim, dim_state, dtype=acc, device=u.device)
            ckpt = (torch.empty(batch, dim, nchunk, dim_state, dtype=acc, device=u.device)
                    if need_grad else last)
            with _on_device(u):
                fwd_kernel[grid](*common, last, ckpt, length, dim, dim // groups, dim_state,
                                 nchunk, Bg.shape[1], Cg.shape[1], SAVE_CKPT=need_grad,
                                 BLOCK_N=block_n, **flags)
        if need_grad:
            ctx.save_for_backward(u, delta, A, Bg, Cg, D, z, delta_bias, ckpt)
            ctx.delta_softplus = bool(delta_softplus)
            # the same kernels and sizes backward; block_l is the checkpoint interval
            ctx.kernel, ctx.cfg, ctx.block_l = name, cfg, block_l
            ctx.b_ndim, ctx.c_ndim = B.dim(), C.dim()
            ctx.backward_fallback = backward_fallback
        ctx.set_materialize_grads(False)
        return out, last

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dlast):
        # read once, outside the try: under activation checkpointing this read runs the
        # recompute, whose errors are not the kernel's
        saved = ctx.saved_tensors
        key = _backward_key(ctx, saved)
        if key in _failed_backwards:
            grads = _backward_torch(ctx, saved, dout, dlast)
        else:
            try:
                grads = _backward_kernel(ctx, saved, dout, dlast)
            except torch.OutOfMemoryError:
                raise
            except Exception as e:  # noqa: BLE001 -- compile errors come in many types
                if not ctx.backward_fallback:
                    raise
                _failed_backwards.add(key)
                if record_failure(e):
                    warnings.warn(
                        f'mmmt: the Triton selective scan backward failed ({failure}); '
                        'recomputing it with the PyTorch scan, and using Triton for no other '
                        'kind of call in this process', RuntimeWarning)
                grads = _backward_torch(ctx, saved, dout, dlast)
        need = ctx.needs_input_grad
        grads = [g if n else None for g, n in zip(grads, need)]
        for i, ndim in ((3, ctx.b_ndim), (4, ctx.c_ndim)):
            if grads[i] is not None and ndim == 3:
                grads[i] = grads[i].squeeze(1)
        return tuple(grads) + (None, None, None)


def _backward_key(ctx, saved) -> tuple:
    """What selects the compiled backward variant: shapes, dtypes, options, kernel sizes."""
    return (tensor_signature(saved), ctx.delta_softplus, ctx.kernel, ctx.cfg,
            torch.are_deterministic_algorithms_enabled())


def _backward_torch(ctx, saved, dout, dlast):
    """The gradients by recomputing the PyTorch scan (the fallback of a failed kernel), in
    channel slices within the same memory budget as the ``torch`` backend's."""
    # in the compute dtype, as the dispatcher runs the PyTorch scan (B's and C's gradients sum
    # over channel slices)
    compute = compute_dtype(saved[0].dtype)
    args = [None if t is None else t.detach().to(compute) for t in saved[:8]]
    needs = [t is not None for t in args]
    grads = grads_by_recompute(ctx.delta_softplus, args, needs,
                               None if dout is None else dout.to(compute),
                               None if dlast is None else dlast.to(compute))
    return [None if g is None else g.to(t.dtype) for g, t in zip(grads, saved[:8])]


def _backward_kernel(ctx, saved, dout, dlast):
    """The gradients of (u, delta, A, B (grouped), C (grouped), D, z, delta_bias)."""
    u, delta, A, Bg, Cg, D, z, delta_bias, ckpt = saved
    bwd_kernel = _kernel_fns(_kernels(interpreter_enabled()), ctx.kernel)[1]
    batch, dim, length = u.shape
    dim_state = A.shape[1]
    groups = max(Bg.shape[1], Cg.shape[1])
    acc = ckpt.dtype
    block_d, block_n, _ = _launch_sizes(ctx.kernel, dim // groups, dim_state, length,
                                        ctx.block_l, ctx.cfg)
    nchunk = -(-length // ctx.block_l)
    dout = torch.zeros_like(u) if dout is None else dout.contiguous()
    du, ddelta = torch.empty_like(u), torch.empty_like(delta)
    dz = torch.empty_like(z) if z is not None else None
    dD = torch.empty(batch, dim, dtype=acc, device=u.device)
    dbias = torch.empty(batch, dim, dtype=acc, device=u.device)
    grid, common, flags = _launch(ctx.kernel, ctx.cfg, block_d, ctx.block_l, ctx.delta_softplus,
                                  acc, (u, delta, A, Bg, Cg, D, z, delta_bias))
    common += (ckpt, )
    # torch.use_deterministic_algorithms(True): every program writes its own dB/dC sums, added
    # up below in a fixed order, instead of atomic adds (whose order varies); more memory
    deterministic = torch.are_deterministic_algorithms_enabled()
    if deterministic:
        dB = torch.empty(batch, groups, grid[0], dim_state, length, dtype=acc, device=u.device)
        dC = torch.empty_like(dB)
    else:
        dB = torch.zeros(Bg.shape, dtype=acc, device=u.device)
        dC = torch.zeros(Cg.shape, dtype=acc, device=u.device)
    flags['DETERMINISTIC'] = deterministic
    if ctx.kernel in _STATE_LOOP:
        # the adjoint entering each chunk from its end, two slots in turn; the first one read
        # holds the gradient of the last state
        dA = torch.empty(batch, dim, nchunk, dim_state, dtype=acc, device=u.device)
        gcarry = torch.empty(batch, dim, 2, dim_state, dtype=acc, device=u.device)
        gcarry[:, :, (nchunk - 1) % 2] = 0 if dlast is None else dlast
        with _on_device(u):
            bwd_kernel[grid](*common, gcarry, dout, du, ddelta, dA, dB, dC, dD, dbias,
                             dz if dz is not None else du, length, dim, dim // groups,
                             dim_state, nchunk, ckpt.shape[2], Bg.shape[1], Cg.shape[1],
                             **flags)
        dA = dA.sum(2)  # the chunks' parts
    else:
        dA = torch.empty(batch, dim, dim_state, dtype=acc, device=u.device)
        with _on_device(u):
            bwd_kernel[grid](*common, dout, dlast.contiguous() if dlast is not None else ckpt,
                             du, ddelta, dA, dB, dC, dD, dbias, dz if dz is not None else du,
                             length, dim, dim // groups, dim_state, nchunk, Bg.shape[1],
                             Cg.shape[1], HAS_DLAST=dlast is not None, BLOCK_N=block_n,
                             **flags)
    if deterministic:  # (batch, groups, blocks, N, L) -> grouped like B and C
        dB, dC = dB.sum(2), dC.sum(2)
        dB = dB if Bg.shape[1] == groups else dB.sum(1, keepdim=True)
        dC = dC if Cg.shape[1] == groups else dC.sum(1, keepdim=True)
    return [du, ddelta, dA.sum(0).to(A.dtype), dB.to(Bg.dtype), dC.to(Cg.dtype),
            None if D is None else dD.sum(0).to(D.dtype), dz,
            None if delta_bias is None else dbias.sum(0).to(delta_bias.dtype)]


def check_supported(u: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> Optional[str]:
    """Why the Triton scan cannot take these inputs, or None if it can."""
    if not bc_time_varying(B, C):
        return TIME_VARYING_BC
    if B.shape[-2] > MAX_STATE:
        return f'N = {B.shape[-2]} states, at most {MAX_STATE} supported'
    if not (u.is_cuda or interpreter_enabled()):
        return 'needs CUDA tensors (or TRITON_INTERPRET=1 for the interpreter)'
    groups = bc_groups(B, C)
    if u.shape[0] > MAX_GRID_YZ or groups > MAX_GRID_YZ:
        return f'batch {u.shape[0]} and B/C groups {groups} must be at most {MAX_GRID_YZ}'
    if B.shape[-2] * u.shape[-1] > MAX_STATE_STEPS:
        return (f'N x L = {B.shape[-2]} x {u.shape[-1]} states and steps, at most '
                f'{MAX_STATE_STEPS} (int32 offsets into B and C)')
    return None


def check_inputs(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                 C: torch.Tensor, D: Optional[torch.Tensor] = None,
                 z: Optional[torch.Tensor] = None,
                 delta_bias: Optional[torch.Tensor] = None) -> None:
    """Raise ``ValueError`` for inputs that do not fit together (shapes, devices): the
    caller's error, whichever backend runs, never a reason to fall back from Triton."""
    batch, dim, length = u.shape
    check_channel_groups(dim, bc_groups(B, C))
    for name, m in (('B', B), ('C', C)):
        if m.shape[-2:] != (A.shape[1], length) or m.shape[0] != batch:
            raise ValueError(f'selective_scan_triton: {name} has shape {tuple(m.shape)}, '
                             f'expected (batch={batch}, [G,] N={A.shape[1]}, L={length})')
    named = dict(delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias)
    for name, t in named.items():
        if t is not None and t.device != u.device:
            raise ValueError(f'selective_scan_triton: {name} is on {t.device}, u on {u.device}')
    for name, t, shape in (('delta', delta, u.shape), ('z', z, u.shape), ('A', A, (dim, )),
                           ('D', D, (dim, )), ('delta_bias', delta_bias, (dim, ))):
        if t is not None and tuple(t.shape[:len(shape)]) != tuple(shape):
            raise ValueError(f'selective_scan_triton: {name} has shape {tuple(t.shape)}, '
                             f'expected {tuple(shape)}' + ('' if name != 'A' else ' x N'))


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
    A backward kernel that fails raises (the dispatcher's automatic backend recomputes with the
    PyTorch scan instead, :func:`scan_checked_inputs`).

    Raises:
        ValueError: inputs the kernels do not take (:func:`check_supported`) or that do not fit
            together (:func:`check_inputs`).
    """
    reason = check_supported(u, B, C)
    if reason:
        raise ValueError(f'selective_scan_triton: {reason}')
    check_inputs(u, delta, A, B, C, D, z, delta_bias)
    return scan_checked_inputs(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                               return_last_state)


def scan_checked_inputs(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor,
                        B: torch.Tensor, C: torch.Tensor, D: Optional[torch.Tensor] = None,
                        z: Optional[torch.Tensor] = None,
                        delta_bias: Optional[torch.Tensor] = None,
                        delta_softplus: bool = False, return_last_state: bool = False,
                        backward_fallback: bool = False):
    """:func:`selective_scan_triton` for inputs the caller has passed through
    :func:`check_supported` and :func:`check_inputs` (the dispatcher does, before choosing a
    backend; checking twice per call is wasted host time on a launch-bound op).

    With ``backward_fallback``, a backward kernel that fails to compile or launch is recorded
    (:data:`failure`), warned about once, and its gradients are recomputed with the PyTorch
    scan; without it, the failure is raised.
    """
    batch, dim, length = u.shape
    args = [_opt(t) for t in (u, delta, A, B, C, D, z, delta_bias)]
    need_grad = needs_grad(args)
    if length == 0:  # nothing to scan: empty output (in u's graph, as the other backends'),
        out = u * 0  # zero state
        last = u.new_zeros(batch, dim, A.shape[1], dtype=compute_dtype(u.dtype))
        return (out, last) if return_last_state else out
    out, last = SelectiveScanTritonFn.apply(*args, bool(delta_softplus), need_grad,
                                            bool(backward_fallback))
    return (out, last) if return_last_state else out
