"""Triton kernels of the selective scan (see :mod:`mmmt.ops.selective_scan_triton`).

This file holds only ``@triton.jit`` functions. It is loaded by
:func:`mmmt.ops.selective_scan_triton._kernels`, once compiled for the GPU and, if asked, once
more as a separate module for Triton's CPU interpreter (the decorator picks the mode when the
file is executed), so both can exist in one process.

Layout contract (all contiguous, prepared by the wrapper):

- ``u``, ``delta``, ``z``, ``out`` and the gradients ``du``, ``ddelta``, ``dz``: (batch, DIM, L);
- ``A``: (DIM, N); ``D``, ``delta_bias``: (DIM,);
- ``B``: (batch, GB, N, L), ``C``: (batch, GC, N, L), with GB, GC either 1 or G;
- ``ckpt``: (batch, DIM, NCHUNK, N) state at the start of every chunk of ``BLOCK_L`` steps
  (the state-by-state kernels: (batch, DIM, SLOTS, N), see their comments);
- ``last``, ``dlast``, ``dA``: (batch, DIM, N); ``dD``, ``dbias``: (batch, DIM) per-batch sums
  (the wrapper sums over the batch); ``dB``, ``dC``: like ``B``, ``C``, zero-initialised,
  accumulated with atomic adds over the channel blocks of a group (as mamba-ssm's CUDA kernel
  accumulates them), or with ``DETERMINISTIC`` (batch, G, channel blocks, N, L) blocks, one
  per program, that the wrapper adds up.

Three kernel pairs: the ``tile`` kernels described here, the ``statewise`` and the ``runs``
kernels (one state at a time; see the comments above each).

Program (pid_d, g, b) owns channels ``g * DG + pid_d * BLOCK_D + [0, BLOCK_D)`` of group g of
batch element b, all N states, and walks the sequence chunk by chunk. Inside a chunk, the
(BLOCK_D, BLOCK_N, BLOCK_L) tile of decays ``exp(dt * A)`` and inputs ``dt * B * u`` is scanned
with ``tl.associative_scan`` over (decay, input) pairs; the state entering the chunk is then
applied with the scanned decay products. Positions past L get dt = 0 (decay 1, no input), so
the tile's last column is the state at min(L, chunk end) - 1.
"""
import triton
import triton.language as tl
from triton.runtime.jit import JITFunction


def _this_mode(fn):
    """One of triton.language's own ``@jit`` helpers, interpreted if this file is loaded for
    the interpreter: they were compiled-mode functions if Triton was imported without
    ``TRITON_INTERPRET=1``, and an interpreted kernel cannot call those. (The reverse cannot
    be repaired: a process that imported Triton for the interpreter cannot compile kernels.)"""
    if triton.knobs.runtime.interpret and isinstance(fn, JITFunction):
        return triton.jit(fn.fn)
    return fn


_sum = _this_mode(tl.sum)
_zeros = _this_mode(tl.zeros)


@triton.jit
def _zeros_like(x):
    # (tl.zeros_like calls a compiled-mode tl.zeros even when re-decorated by _this_mode)
    return _zeros(x.shape, x.dtype)


@triton.jit
def _combine(a1, x1, a2, x2):
    # (a1, x1) then (a2, x2), each the map h -> a h + x
    return a1 * a2, x1 * a2 + x2


# log(1 + w) / w on [0, 1]: its degree-8 Chebyshev interpolant (at the nodes
# (1 + cos(pi (k + 1/2) / 9)) / 2), as power-series coefficients rounded to float32.
# tests/test_ops/test_selective_scan_triton.py derives them again and bounds the float32
# softplus built on them (2.9e-7 relative at most, below the 3.6e-7 of log(1 + w) w / (v - 1))
LOG1P_COEFFS = tl.constexpr((0.9999999403953552, -0.4999944567680359, 0.3331812024116516,
                             -0.2483539879322052, 0.19076880812644958, -0.13602247834205627,
                             0.0775160863995552, -0.029074065387248993, 0.005126102361828089))


@triton.jit
def _log1p_unit(w):
    """log(1 + w) for w in [0, 1] in float32: a polynomial, 9 FMAs where log and a division
    to restore its precision near 0 took about 40 instructions (tl.math has no log1p)."""
    p = w * LOG1P_COEFFS[8] + LOG1P_COEFFS[7]
    for i in tl.static_range(6, -1, -1):  # Horner's rule
        p = p * w + LOG1P_COEFFS[i]
    return p * w


@triton.jit
def _softplus(x, FAST_EXP: tl.constexpr = False):
    """log(1 + e^x) as max(x, 0) + log1p(e^-|x|) (``FAST_EXP``: see :func:`_exp2`)."""
    if FAST_EXP:
        w = _exp2(-tl.abs(x) * _LOG2E, FAST_EXP)
    else:
        w = tl.exp(-tl.abs(x))
    if x.dtype == tl.float64:  # the polynomial is only float32-accurate
        # log1p(w) = log(v) w / (v - 1), v = 1 + w: exact to rounding for tiny w
        v = 1.0 + w
        lp = tl.where(v == 1.0, w, tl.log(v) * (w / tl.where(v == 1.0, 1.0, v - 1.0)))
    else:
        lp = _log1p_unit(w)
    return tl.maximum(x, 0.0) + lp


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _dt(delta, bias, mask, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, ACC: tl.constexpr,
        FAST_EXP: tl.constexpr = False):
    """dt = softplus(delta + bias) (or without softplus) on a (BLOCK_D, BLOCK_L) tile of delta,
    0 where masked; also the pre-softplus value (for the softplus derivative)."""
    x = delta.to(ACC)
    if HAS_BIAS:
        x = x + bias[:, None]
    dt = x
    if SOFTPLUS:
        dt = _softplus(x, FAST_EXP)
    return tl.where(mask, dt, 0.0), x


@triton.jit
def _dt_tile(delta_ptr, bias, offs, mask, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
             ACC: tl.constexpr, FAST_EXP: tl.constexpr = False):
    """:func:`_dt` of the delta tile at ``offs``."""
    return _dt(tl.load(delta_ptr + offs, mask=mask, other=0.0), bias, mask, HAS_BIAS, SOFTPLUS,
               ACC, FAST_EXP)


@triton.jit
def _load_fwd(u_ptr, delta_ptr, B_ptr, C_ptr, z_ptr, row, b_row, c_row, d_mask, n_mask, c, L,
              HAS_Z: tl.constexpr, BLOCK_L: tl.constexpr):
    """Chunk c's u, delta, B, C and z tiles in their own dtypes (z: u when there is none)."""
    t = c * BLOCK_L + tl.arange(0, BLOCK_L)
    t_mask = t < L
    m2 = d_mask[:, None] & t_mask[None, :]
    mnt = n_mask[:, None] & t_mask[None, :]
    offs = row[:, None] + t[None, :]
    uu = tl.load(u_ptr + offs, mask=m2, other=0.0)
    delta = tl.load(delta_ptr + offs, mask=m2, other=0.0)
    Bv = tl.load(B_ptr + b_row[:, None] + t[None, :], mask=mnt, other=0.0)
    Cv = tl.load(C_ptr + c_row[:, None] + t[None, :], mask=mnt, other=0.0)
    zz = uu
    if HAS_Z:
        zz = tl.load(z_ptr + offs, mask=m2, other=0.0)
    return uu, delta, Bv, Cv, zz


@triton.jit
def _channels(D_ptr, bias_ptr, DIM, DG, L, HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr,
              ACC: tl.constexpr, BLOCK_D: tl.constexpr, EVEN_D: tl.constexpr = False):
    """This program's batch element, channels and their mask, bias and D (0 when absent), and
    the start of each channel's row of u/delta/z. ``EVEN_D``: BLOCK_D divides the channels
    of a group, so the mask is a constant the compiler drops from every load and store."""
    b = tl.program_id(2).to(tl.int64)
    dl = tl.program_id(0) * BLOCK_D + tl.arange(0, BLOCK_D)
    if EVEN_D:
        d_mask = tl.full((BLOCK_D, ), 1, tl.int1)
    else:
        d_mask = dl < DG
    d = tl.program_id(1) * DG + dl
    bias = _zeros((BLOCK_D, ), ACC)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d, mask=d_mask, other=0.0).to(ACC)
    Dv = _zeros((BLOCK_D, ), ACC)
    if HAS_D:
        Dv = tl.load(D_ptr + d, mask=d_mask, other=0.0).to(ACC)
    return b, d, d_mask, bias, Dv, (b * DIM + d) * L


@triton.jit
def _program(A_ptr, D_ptr, bias_ptr, L, DIM, DG, N, GB, GC, HAS_D: tl.constexpr,
             HAS_BIAS: tl.constexpr, ACC: tl.constexpr, BLOCK_D: tl.constexpr,
             BLOCK_N: tl.constexpr):
    """This program's channels and states, their masks and parameters (D and bias 0 when
    absent), and the row offsets of its u/delta/z, B and C rows and of its states."""
    g = tl.program_id(1)
    b, d, d_mask, bias, Dv, row = _channels(D_ptr, bias_ptr, DIM, DG, L, HAS_D, HAS_BIAS, ACC,
                                            BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    n_mask = n < N
    dn_mask = d_mask[:, None] & n_mask[None, :]
    A = tl.load(A_ptr + d[:, None] * N + n[None, :], mask=dn_mask, other=0.0).to(ACC)
    b_row = ((b * GB + g % GB) * N + n) * L  # (BLOCK_N,) start of each state's B row
    c_row = ((b * GC + g % GC) * N + n) * L
    state_offs = (b * DIM + d)[:, None] * N + n[None, :]
    return b, d, d_mask, n, n_mask, dn_mask, A, bias, Dv, row, b_row, c_row, state_offs


@triton.jit
def scan_fwd_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr,
                    last_ptr, ckpt_ptr, L, DIM, DG, N, NCHUNK, GB, GC,
                    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                    SOFTPLUS: tl.constexpr, SAVE_CKPT: tl.constexpr, ACC: tl.constexpr,
                    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr):
    b, d, d_mask, n, n_mask, dn_mask, A, bias, Dv, row, b_row, c_row, state_offs = _program(
        A_ptr, D_ptr, bias_ptr, L, DIM, DG, N, GB, GC, HAS_D, HAS_BIAS, ACC, BLOCK_D, BLOCK_N)
    last_col = (tl.arange(0, BLOCK_L) == BLOCK_L - 1)[None, None, :]
    h = _zeros((BLOCK_D, BLOCK_N), ACC)
    # chunk 0's inputs; in the loop the next chunk's are loaded before this one's are used, so
    # that their memory latency overlaps this chunk's scan (Triton does not pipeline these
    # loads itself; past the last chunk every lane is masked and nothing is read)
    nxt = _load_fwd(u_ptr, delta_ptr, B_ptr, C_ptr, z_ptr, row, b_row, c_row, d_mask, n_mask,
                    0, L, HAS_Z, BLOCK_L)
    for c in range(NCHUNK):
        u_c, delta_c, B_c, C_c, z_c = nxt
        nxt = _load_fwd(u_ptr, delta_ptr, B_ptr, C_ptr, z_ptr, row, b_row, c_row, d_mask,
                        n_mask, c + 1, L, HAS_Z, BLOCK_L)
        t = c * BLOCK_L + tl.arange(0, BLOCK_L)
        m2 = d_mask[:, None] & (t < L)[None, :]
        offs = row[:, None] + t[None, :]
        if SAVE_CKPT:
            tl.store(ckpt_ptr + ((b * DIM + d)[:, None] * NCHUNK + c) * N + n[None, :], h,
                     mask=dn_mask)
        uu = u_c.to(ACC)
        dt, _ = _dt(delta_c, bias, m2, HAS_BIAS, SOFTPLUS, ACC)
        Bv = B_c.to(ACC)
        Cv = C_c.to(ACC)
        decay = tl.exp(dt[:, None, :] * A[:, :, None])
        inp = (dt * uu)[:, None, :] * Bv[None, :, :]
        cum_a, cum_x = tl.associative_scan((decay, inp), 2, _combine)
        hs = cum_a * h[:, :, None] + cum_x
        y = _sum(hs * Cv[None, :, :], axis=1)
        if HAS_D:
            y = y + Dv[:, None] * uu
        if HAS_Z:
            zz = z_c.to(ACC)
            y = y * zz * _sigmoid(zz)
        tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=m2)
        # the state carried on: the chunk's total map applied to h (the scan's last column,
        # taken from the scan rather than from hs, so that the loop-carried chain is one FMA)
        h = (_sum(tl.where(last_col, cum_a, 0.0), axis=2) * h +
             _sum(tl.where(last_col, cum_x, 0.0), axis=2))
    tl.store(last_ptr + state_offs, h, mask=dn_mask)


@triton.jit
def _grad_bases(b_base, c_base, b, N, L, state_offs, DETERMINISTIC: tl.constexpr):
    """Where this program adds its dB and dC sums: into dB and dC themselves at ``b_base`` and
    ``c_base`` (atomic adds), or with ``DETERMINISTIC`` into a (N, L) block of its own in the
    (batch, groups, channel blocks, N, L) buffer that the wrapper adds up in a fixed order,
    ``state_offs`` into it (the states' offsets, like those already in the bases)."""
    if DETERMINISTIC:
        part = ((b * tl.num_programs(1) + tl.program_id(1)) * tl.num_programs(0) +
                tl.program_id(0)) * N * L + state_offs
        return part, part
    else:
        return b_base, c_base


@triton.jit
def _add_grad(ptr, value, mask, DETERMINISTIC: tl.constexpr):
    """Add a program's contribution to dB or dC: stored into its own partial block when
    ``DETERMINISTIC``, else an atomic add (relaxed: only the sum matters, so no memory
    fences; the order of the additions, and so the rounding, varies from run to run)."""
    if DETERMINISTIC:
        tl.store(ptr, value, mask=mask)
    else:
        tl.atomic_add(ptr, value, mask=mask, sem='relaxed')


@triton.jit
def _store_input_grads(du, ddt, x, m2, offs, du_ptr, ddelta_ptr, SOFTPLUS: tl.constexpr):
    """Store a chunk's du and d delta (``ddt`` is d dt: through the softplus, at its input
    ``x``); returns d delta summed over the steps, per channel (for d delta_bias)."""
    if SOFTPLUS:
        ddt = ddt * _sigmoid(x)
    ddt = tl.where(m2, ddt, 0.0)
    tl.store(du_ptr + offs, du.to(du_ptr.dtype.element_ty), mask=m2)
    tl.store(ddelta_ptr + offs, ddt.to(ddelta_ptr.dtype.element_ty), mask=m2)
    return _sum(ddt, axis=1)


@triton.jit
def scan_bwd_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, ckpt_ptr,
                    dout_ptr, dlast_ptr, du_ptr, ddelta_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr,
                    dbias_ptr, dz_ptr, L, DIM, DG, N, NCHUNK, GB, GC,
                    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                    SOFTPLUS: tl.constexpr, HAS_DLAST: tl.constexpr, ACC: tl.constexpr,
                    DETERMINISTIC: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
                    BLOCK_L: tl.constexpr):
    """Reverse-time adjoint scan, chunk by chunk from the end. With g_t = dLoss/dh_t:

        g_t = exp(dt_{t+1} A) g_{t+1} + C_t dy_t,   g_{L-1} = C_{L-1} dy_{L-1} + dlast

    a reverse ``tl.associative_scan`` over (decay of the next step, C dy) pairs, the adjoint
    entering from the next chunk applied with the scanned decay products. The chunk's states
    are recomputed from its checkpoint; ``a_t h_{t-1}`` (for dA and d dt) is ``h_t - dt u B``.
    """
    b, d, d_mask, n, n_mask, dn_mask, A, bias, Dv, row, b_row, c_row, state_offs = _program(
        A_ptr, D_ptr, bias_ptr, L, DIM, DG, N, GB, GC, HAS_D, HAS_BIAS, ACC, BLOCK_D, BLOCK_N)
    db_rows, dc_rows = _grad_bases(b_row, c_row, b, N, L, n * L, DETERMINISTIC)
    first_col = (tl.arange(0, BLOCK_L) == 0)[None, None, :]
    if HAS_DLAST:
        g_next = tl.load(dlast_ptr + state_offs, mask=dn_mask, other=0.0).to(ACC)
    else:
        g_next = _zeros((BLOCK_D, BLOCK_N), ACC)
    dA_acc = _zeros((BLOCK_D, BLOCK_N), ACC)
    dD_acc = _zeros((BLOCK_D, ), ACC)
    dbias_acc = _zeros((BLOCK_D, ), ACC)
    for cc in range(NCHUNK):
        c = NCHUNK - 1 - cc
        t = c * BLOCK_L + tl.arange(0, BLOCK_L)
        t_mask = t < L
        m2 = d_mask[:, None] & t_mask[None, :]
        mnt = n_mask[:, None] & t_mask[None, :]
        offs = row[:, None] + t[None, :]
        # recompute the chunk's states from its checkpoint
        h0 = tl.load(ckpt_ptr + ((b * DIM + d)[:, None] * NCHUNK + c) * N + n[None, :],
                     mask=dn_mask, other=0.0)
        uu = tl.load(u_ptr + offs, mask=m2, other=0.0).to(ACC)
        dt, x = _dt_tile(delta_ptr, bias, offs, m2, HAS_BIAS, SOFTPLUS, ACC)
        Bv = tl.load(B_ptr + b_row[:, None] + t[None, :], mask=mnt, other=0.0).to(ACC)
        Cv = tl.load(C_ptr + c_row[:, None] + t[None, :], mask=mnt, other=0.0).to(ACC)
        dtu = dt * uu
        decay = tl.exp(dt[:, None, :] * A[:, :, None])
        inp = dtu[:, None, :] * Bv[None, :, :]
        cum_a, cum_x = tl.associative_scan((decay, inp), 2, _combine)
        hs = cum_a * h0[:, :, None] + cum_x
        # output gradient -> dy (and dz)
        dy = tl.load(dout_ptr + offs, mask=m2, other=0.0).to(ACC)
        if HAS_Z:
            zz = tl.load(z_ptr + offs, mask=m2, other=0.0).to(ACC)
            y = _sum(hs * Cv[None, :, :], axis=1)
            if HAS_D:
                y = y + Dv[:, None] * uu
            sig = _sigmoid(zz)
            dz = dy * y * sig * (1.0 + zz * (1.0 - sig))
            tl.store(dz_ptr + offs, dz.to(dz_ptr.dtype.element_ty), mask=m2)
            dy = dy * zz * sig
        # decay of the next step (1 past the end: the adjoint there is dlast itself)
        dt_next, _ = _dt_tile(delta_ptr + 1, bias, offs, m2 & (t + 1 < L)[None, :], HAS_BIAS,
                              SOFTPLUS, ACC)
        decay_next = tl.exp(dt_next[:, None, :] * A[:, :, None])
        cum_an, cum_g = tl.associative_scan((decay_next, Cv[None, :, :] * dy[:, None, :]), 2,
                                            _combine, reverse=True)
        gs = cum_an * g_next[:, :, None] + cum_g
        g_next = (_sum(tl.where(first_col, cum_an, 0.0), axis=2) * g_next +
                  _sum(tl.where(first_col, cum_g, 0.0), axis=2))
        # parameter and input gradients of the chunk
        _add_grad(dB_ptr + db_rows[:, None] + t[None, :], _sum(gs * dtu[:, None, :], axis=0),
                  mnt, DETERMINISTIC)
        _add_grad(dC_ptr + dc_rows[:, None] + t[None, :], _sum(hs * dy[:, None, :], axis=0),
                  mnt, DETERMINISTIC)
        g_b = _sum(gs * Bv[None, :, :], axis=1)
        du = dt * g_b
        if HAS_D:
            du = du + Dv[:, None] * dy
            dD_acc += _sum(dy * uu, axis=1)
        g_ah = gs * (hs - inp)  # g_t * a_t * h_{t-1}
        dA_acc += _sum(g_ah * dt[:, None, :], axis=2)
        ddt = uu * g_b + _sum(g_ah * A[:, :, None], axis=1)
        dbias_acc += _store_input_grads(du, ddt, x, m2, offs, du_ptr, ddelta_ptr, SOFTPLUS)
    tl.store(dA_ptr + state_offs, dA_acc, mask=dn_mask)
    tl.store(dD_ptr + b * DIM + d, dD_acc, mask=d_mask)
    tl.store(dbias_ptr + b * DIM + d, dbias_acc, mask=d_mask)


# ---------------------------------------------------------------------------------------------
# The state-by-state kernels ("statewise"): the same computation with a (BLOCK_D, BLOCK_L) tile
# and a loop over the N states inside each chunk, each state a 1-D scan over time (the loop
# order of mamba-ssm's CUDA kernel). Only one state's (decay, input) pairs are live at a time,
# and no (channels x states) register tile is kept: a state's value entering a chunk is read
# from memory, written there by the lane that holds the previous chunk's last step (the
# adjoint's by the lane of the chunk's first step), with one barrier per chunk in between. In
# the forward pass that memory is the checkpoint buffer itself when gradients are needed
# (``SLOTS`` = NCHUNK + 1: the state at the start of every chunk, then the last state), else
# two slots used in turn; the backward pass carries the adjoint in two slots the same way.
# Layout contract as the tile kernels', except ``carry``/``ckpt``: (batch, DIM, SLOTS, N) with
# slot 0 zero, ``gcarry``: (batch, DIM, 2, N) holding the adjoint after the last step (dlast or
# zeros) in slot (NCHUNK - 1) % 2, and ``dA``: (batch, DIM, NCHUNK, N), each chunk's part.

_LOG2E = tl.constexpr(1.4426950408889634)


@triton.jit
def _exp2(x, FAST_EXP: tl.constexpr):
    """2^x. With ``FAST_EXP`` (float32 on an NVIDIA GPU) the bare ``ex2.approx.ftz``
    instruction: a decay below 2^-126 becomes 0 instead of a denormal, which saves the
    denormal range check Triton adds (PTX: not for AMD GPUs or the interpreter)."""
    if FAST_EXP:
        return tl.inline_asm_elementwise('ex2.approx.ftz.f32 $0, $1;', '=r,r', [x],
                                         dtype=tl.float32, is_pure=True, pack=1)
    else:
        return tl.exp2(x)


@triton.jit
def _state_row(ptr, base, n, L, t, t_mask, ACC: tl.constexpr):
    """State n's row of B or C (the block at ``base``) over the chunk's steps ``t``."""
    return tl.load(ptr + base + n * L + t, mask=t_mask, other=0.0).to(ACC)


@triton.jit
def _run_row(ptr, base, n, L, t, m, ACC: tl.constexpr):
    """State n's row of B or C (the block at ``base``) at a tile's steps ``t``, repeated for
    each of its channels (``m``: the tile's mask). Loaded in the tile's own shape, so that it
    arrives in the tile's layout: a smaller tensor would be converted through shared memory,
    with barriers, for every state."""
    return tl.load(ptr + base + n * L + tl.broadcast_to(t, m.shape), mask=m, other=0.0).to(ACC)


@triton.jit
def _state_A(A_ptr, d, d_mask, n, N, ACC: tl.constexpr):
    """State n's A of each channel."""
    return tl.load(A_ptr + d * N + n, mask=d_mask, other=0.0).to(ACC)


@triton.jit
def _state_scan(dt, dtu, A_n, Bn, h0_n, FAST_EXP: tl.constexpr):
    """State n's inputs dt u B_n and states over one chunk, from the state ``h0_n`` entering
    it."""
    decay = _exp2(dt * (A_n * _LOG2E)[:, None], FAST_EXP)
    inp = dtu * Bn[None, :]
    cum_a, cum_x = tl.associative_scan((decay, inp), 1, _combine)
    return inp, cum_a * h0_n[:, None] + cum_x


@triton.jit
def _chunk_inputs(u_ptr, delta_ptr, row, bias, d_mask, c, L, HAS_BIAS: tl.constexpr,
                  SOFTPLUS: tl.constexpr, ACC: tl.constexpr, BLOCK_L: tl.constexpr,
                  FAST_EXP: tl.constexpr):
    """Chunk c's steps, masks, offsets, u, dt and pre-softplus dt of a (BLOCK_D, BLOCK_L) tile."""
    t = c * BLOCK_L + tl.arange(0, BLOCK_L)
    t_mask = t < L
    m2 = d_mask[:, None] & t_mask[None, :]
    offs = row[:, None] + t[None, :]
    uu = tl.load(u_ptr + offs, mask=m2, other=0.0).to(ACC)
    dt, x = _dt_tile(delta_ptr, bias, offs, m2, HAS_BIAS, SOFTPLUS, ACC, FAST_EXP)
    return t, t_mask, m2, offs, uu, dt, x


@triton.jit
def _group_bases(b, g, N, L, GB, GC):
    """Start of this program's B and C blocks ((N, L) each) in their grouped tensors."""
    return (b * GB + g % GB) * N * L, (b * GC + g % GC) * N * L


@triton.jit
def _chunk_output(y, uu, Dv, z_ptr, offs, m2, HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
                  ACC: tl.constexpr):
    """The output from the states' sum ``y``: + D u, then gated by z."""
    if HAS_D:
        y = y + Dv[:, None] * uu
    if HAS_Z:
        zz = tl.load(z_ptr + offs, mask=m2, other=0.0).to(ACC)
        y = y * zz * _sigmoid(zz)
    return y


@triton.jit
def _bwd_program(D_ptr, bias_ptr, L, DIM, DG, N, SLOTS, GB, GC, HAS_D: tl.constexpr,
                 HAS_BIAS: tl.constexpr, ACC: tl.constexpr, DETERMINISTIC: tl.constexpr,
                 BLOCK_D: tl.constexpr, EVEN_D: tl.constexpr = False):
    """What a state-by-state backward program starts from: :func:`_channels`, its B/C blocks
    and where its dB/dC sums go, and the rows of its checkpoints and of its adjoint slots."""
    b, d, d_mask, bias, Dv, row = _channels(D_ptr, bias_ptr, DIM, DG, L, HAS_D, HAS_BIAS, ACC,
                                            BLOCK_D, EVEN_D)
    b_base, c_base = _group_bases(b, tl.program_id(1), N, L, GB, GC)
    db_base, dc_base = _grad_bases(b_base, c_base, b, N, L, 0, DETERMINISTIC)
    return (b, d, d_mask, bias, Dv, row, b_base, c_base, db_base, dc_base,
            (b * DIM + d) * SLOTS * N, (b * DIM + d) * 2 * N)


@triton.jit
def scan_fwd_statewise_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
                              out_ptr, carry_ptr, L, DIM, DG, N, NCHUNK, SLOTS, GB, GC,
                              HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
                              HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                              ACC: tl.constexpr, FAST_EXP: tl.constexpr,
                              BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr):
    b, d, d_mask, bias, Dv, row = _channels(D_ptr, bias_ptr, DIM, DG, L, HAS_D, HAS_BIAS, ACC,
                                            BLOCK_D)
    b_base, c_base = _group_bases(b, tl.program_id(1), N, L, GB, GC)
    carry_row = (b * DIM + d) * SLOTS * N
    last_col = d_mask[:, None] & (tl.arange(0, BLOCK_L) == BLOCK_L - 1)[None, :]
    for c in range(NCHUNK):
        t, t_mask, m2, offs, uu, dt, _x = _chunk_inputs(u_ptr, delta_ptr, row, bias, d_mask, c,
                                                        L, HAS_BIAS, SOFTPLUS, ACC, BLOCK_L,
                                                        FAST_EXP)
        dtu = dt * uu
        y = _zeros((BLOCK_D, BLOCK_L), ACC)
        t_last = c * BLOCK_L + BLOCK_L - 1
        state_in = carry_row + (c % SLOTS) * N
        state_out = carry_row + ((c + 1) % SLOTS) * N
        tl.debug_barrier()  # the states the previous chunk wrote are visible to every thread
        for n in range(N):
            A_n = _state_A(A_ptr, d, d_mask, n, N, ACC)
            h0_n = tl.load(carry_ptr + state_in + n, mask=d_mask, other=0.0)
            _inp, hs = _state_scan(dt, dtu, A_n, _state_row(B_ptr, b_base, n, L, t, t_mask, ACC),
                                   h0_n, FAST_EXP)
            y += hs * _state_row(C_ptr, c_base, n, L, t, t_mask, ACC)[None, :]
            # past L, dt = 0 keeps the state, so the last step's is the state at min(L, end)
            # (offsets that run along the steps like the tile's, so that the store needs no
            # layout conversion; only the last step's lane is unmasked, at offset 0)
            tl.store(carry_ptr + (state_out + n)[:, None] + (t - t_last)[None, :], hs,
                     mask=last_col)
        y = _chunk_output(y, uu, Dv, z_ptr, offs, m2, HAS_D, HAS_Z, ACC)
        tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=m2)


@triton.jit
def scan_bwd_statewise_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
                              ckpt_ptr, gcarry_ptr, dout_ptr, du_ptr, ddelta_ptr, dA_ptr,
                              dB_ptr, dC_ptr, dD_ptr, dbias_ptr, dz_ptr, L, DIM, DG, N, NCHUNK,
                              SLOTS, GB, GC, HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
                              HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                              ACC: tl.constexpr, FAST_EXP: tl.constexpr,
                              DETERMINISTIC: tl.constexpr, BLOCK_D: tl.constexpr,
                              BLOCK_L: tl.constexpr):
    """The tile kernel's reverse-time adjoint scan (see :func:`scan_bwd_kernel`), one state at
    a time; with z, the chunk's output (for dz) is recomputed in a first pass over the
    states."""
    (b, d, d_mask, bias, Dv, row, b_base, c_base, db_base, dc_base, ckpt_row,
     g_row) = _bwd_program(D_ptr, bias_ptr, L, DIM, DG, N, SLOTS, GB, GC, HAS_D, HAS_BIAS, ACC,
                           DETERMINISTIC, BLOCK_D)
    first_col = d_mask[:, None] & (tl.arange(0, BLOCK_L) == 0)[None, :]
    dD_acc = _zeros((BLOCK_D, ), ACC)
    dbias_acc = _zeros((BLOCK_D, ), ACC)
    for cc in range(NCHUNK):
        c = NCHUNK - 1 - cc
        t, t_mask, m2, offs, uu, dt, x = _chunk_inputs(u_ptr, delta_ptr, row, bias, d_mask, c,
                                                       L, HAS_BIAS, SOFTPLUS, ACC, BLOCK_L,
                                                       FAST_EXP)
        dtu = dt * uu
        dy = tl.load(dout_ptr + offs, mask=m2, other=0.0).to(ACC)
        tl.debug_barrier()  # the adjoints the next chunk wrote are visible to every thread
        if HAS_Z:
            zz = tl.load(z_ptr + offs, mask=m2, other=0.0).to(ACC)
            y = _zeros((BLOCK_D, BLOCK_L), ACC)
            for n in range(N):
                A_n = _state_A(A_ptr, d, d_mask, n, N, ACC)
                h0_n = tl.load(ckpt_ptr + ckpt_row + c * N + n, mask=d_mask, other=0.0)
                _inp, hs = _state_scan(dt, dtu, A_n,
                                       _state_row(B_ptr, b_base, n, L, t, t_mask, ACC), h0_n,
                                       FAST_EXP)
                y += hs * _state_row(C_ptr, c_base, n, L, t, t_mask, ACC)[None, :]
            y = _chunk_output(y, uu, Dv, z_ptr, offs, m2, HAS_D, False, ACC)
            sig = _sigmoid(zz)
            dz = dy * y * sig * (1.0 + zz * (1.0 - sig))
            tl.store(dz_ptr + offs, dz.to(dz_ptr.dtype.element_ty), mask=m2)
            dy = dy * zz * sig
        # decay of the next step (1 past the end: the adjoint there is dlast itself)
        dt_next, _x_next = _dt_tile(delta_ptr + 1, bias, offs, m2 & (t + 1 < L)[None, :],
                                    HAS_BIAS, SOFTPLUS, ACC, FAST_EXP)
        du = _zeros((BLOCK_D, BLOCK_L), ACC)
        if HAS_D:
            du = Dv[:, None] * dy
            dD_acc += _sum(dy * uu, axis=1)
        ddt = _zeros((BLOCK_D, BLOCK_L), ACC)
        adj_in = g_row + (c % 2) * N
        adj_out = g_row + ((c + 1) % 2) * N
        for n in range(N):
            A_n = _state_A(A_ptr, d, d_mask, n, N, ACC)
            h0_n = tl.load(ckpt_ptr + ckpt_row + c * N + n, mask=d_mask, other=0.0)
            g_n = tl.load(gcarry_ptr + adj_in + n, mask=d_mask, other=0.0)
            Bn = _state_row(B_ptr, b_base, n, L, t, t_mask, ACC)
            inp, hs = _state_scan(dt, dtu, A_n, Bn, h0_n, FAST_EXP)
            Cn = _state_row(C_ptr, c_base, n, L, t, t_mask, ACC)
            cum_an, cum_g = tl.associative_scan(
                (_exp2(dt_next * (A_n * _LOG2E)[:, None], FAST_EXP), Cn[None, :] * dy), 1,
                _combine, reverse=True)
            gs = cum_an * g_n[:, None] + cum_g
            tl.store(gcarry_ptr + (adj_out + n)[:, None] + (t - c * BLOCK_L)[None, :], gs,
                     mask=first_col)  # (offsets along the steps: see the forward pass)
            # masked channels have gs = hs = 0, so these sums over the block are exact
            _add_grad(dB_ptr + db_base + n * L + t, _sum(gs * dtu, axis=0), t_mask,
                      DETERMINISTIC)
            _add_grad(dC_ptr + dc_base + n * L + t, _sum(hs * dy, axis=0), t_mask,
                      DETERMINISTIC)
            g_b = gs * Bn[None, :]
            du += dt * g_b
            g_ah = gs * (hs - inp)  # g_t * a_t * h_{t-1}
            # this chunk's part of dA: each (channel, state, chunk) its own entry, summed by
            # the wrapper (no atomics, so deterministic)
            tl.store(dA_ptr + ((b * DIM + d) * NCHUNK + c) * N + n, _sum(g_ah * dt, axis=1),
                     mask=d_mask)
            ddt += uu * g_b + g_ah * A_n[:, None]
        dbias_acc += _store_input_grads(du, ddt, x, m2, offs, du_ptr, ddelta_ptr, SOFTPLUS)
    tl.store(dD_ptr + b * DIM + d, dD_acc, mask=d_mask)
    tl.store(dbias_ptr + b * DIM + d, dbias_acc, mask=d_mask)


# The run kernels ("runs"): the statewise kernels' loop order (one state at a time, the state
# carried between chunks through ``carry``/``ckpt`` and ``gcarry``, the same buffers), with each
# thread scanning a run of RUN consecutive steps in its registers. A chunk of BLOCK_L steps is
# BLOCK_L // RUN runs; tile k (of RUN // 4) holds steps 4k..4k+3 of every run, a
# (BLOCK_D, BLOCK_L // RUN, 4) tensor whose last axis one thread loads with one 16-byte load.
# Per state and chunk: each tile's 4 steps are composed in registers, then the tiles of a run
# in order; the runs are scanned across the lanes (tl.associative_scan: log2(BLOCK_L // RUN)
# shuffle steps, against log2(BLOCK_L / 4) when Triton spreads a (BLOCK_D, BLOCK_L) tile over
# the lanes); each run takes the state it starts from from its neighbour (tl.gather), and each
# tile's states follow from it step by step. The steps of a tile are taken apart with
# tl.split, which stays in registers: Triton lowers tl.associative_scan(reverse=True) over a
# thread's own axis with warp shuffles (55 for a 4-step tile of 16 x 8 runs on sm_90).


@triton.jit
def _split4(x):
    """A tile's 4 steps (its last axis) as 4 tensors (BLOCK_D, BLOCK_L // RUN)."""
    lo, hi = tl.split(tl.reshape(x, (x.shape[0], x.shape[1], 2, 2)))
    e0, e2 = tl.split(lo)
    e1, e3 = tl.split(hi)
    return e0, e1, e2, e3


@triton.jit
def _join4(e0, e1, e2, e3):
    """The inverse of :func:`_split4`."""
    return tl.reshape(tl.join(tl.join(e0, e2), tl.join(e1, e3)), (e0.shape[0], e0.shape[1], 4))


@triton.jit
def _compose4(a0, a1, a2, a3, x0, x1, x2, x3):
    """Four steps h -> a h + x, taken in the order given, as one: its (a, x)."""
    return a0 * a1 * a2 * a3, ((x0 * a1 + x1) * a2 + x2) * a3 + x3


@triton.jit
def _walk4(a0, a1, a2, a3, x0, x1, x2, x3, h):
    """The values after each of four steps h -> a h + x, taken in the order given from h."""
    s0 = a0 * h + x0
    s1 = a1 * s0 + x1
    s2 = a2 * s1 + x2
    return s0, s1, s2, a3 * s2 + x3


@triton.jit
def _tile_total(decay, inp, REVERSE: tl.constexpr):
    """A tile's 4 steps composed in time order (states), or backwards (``REVERSE``:
    adjoints)."""
    a0, a1, a2, a3 = _split4(decay)
    x0, x1, x2, x3 = _split4(inp)
    if REVERSE:
        return _compose4(a3, a2, a1, a0, x3, x2, x1, x0)
    else:
        return _compose4(a0, a1, a2, a3, x0, x1, x2, x3)


@triton.jit
def _tile_walk(decay, inp, h, REVERSE: tl.constexpr):
    """A tile's states from the state ``h`` before its first step, or (``REVERSE``) its
    adjoints from the adjoint ``h`` after its last step."""
    a0, a1, a2, a3 = _split4(decay)
    x0, x1, x2, x3 = _split4(inp)
    if REVERSE:
        s3, s2, s1, s0 = _walk4(a3, a2, a1, a0, x3, x2, x1, x0, h)
    else:
        s0, s1, s2, s3 = _walk4(a0, a1, a2, a3, x0, x1, x2, x3, h)
    return _join4(s0, s1, s2, s3)


@triton.jit
def _run_steps(c, k, BLOCK_L: tl.constexpr, RUN: tl.constexpr):
    """Steps (1, BLOCK_L // RUN, 4) of tile k of chunk c."""
    j = tl.arange(0, BLOCK_L // RUN)[None, :, None]
    return c * BLOCK_L + j * RUN + 4 * k + tl.arange(0, 4)[None, None, :]


@triton.jit
def _run_chunk(u_ptr, delta_ptr, row, bias, d_mask, c, L, HAS_BIAS: tl.constexpr,
               SOFTPLUS: tl.constexpr, ACC: tl.constexpr, FAST_EXP: tl.constexpr,
               BLOCK_L: tl.constexpr, RUN: tl.constexpr, LAST: tl.constexpr):
    """Chunk c's tiles: per tile, its steps, mask, offsets, u, dt, pre-softplus dt and dt u.
    Only the ``LAST`` chunk may reach past L: the others' masks leave time out, and with
    ``EVEN_D`` (see :func:`_channels`) are constants that no load or store evaluates."""
    tiles = ()
    for k in tl.static_range(RUN // 4):
        t = _run_steps(c, k, BLOCK_L, RUN)
        if LAST:
            m = d_mask[:, None, None] & (t < L)
        else:
            m = d_mask[:, None, None] & tl.full(t.shape, 1, tl.int1)
        offs = row[:, None, None] + t
        uu = tl.load(u_ptr + offs, mask=m, other=0.0).to(ACC)
        dt, x = _dt_tile(delta_ptr, bias[:, None], offs, m, HAS_BIAS, SOFTPLUS, ACC, FAST_EXP)
        tiles = tiles + ((t, m, offs, uu, dt, x, dt * uu), )
    return tiles


@triton.jit
def _run_rows(ptr, base, n, L, tiles, ACC: tl.constexpr):
    """State n's row of B or C (:func:`_run_row`) for each tile of a chunk."""
    rows = ()
    for k in tl.static_range(len(tiles)):
        rows = rows + (_run_row(ptr, base, n, L, tiles[k][0], tiles[k][1], ACC), )
    return rows


@triton.jit
def _run_states(tiles, A2, h0, Bs, FAST_EXP: tl.constexpr, T: tl.constexpr):
    """A state over a chunk from the state ``h0`` entering it (``A2``: A log2(e), (BLOCK_D,
    1, 1); ``Bs``: its B row per tile): per tile its B row, inputs dt u B and states; and the
    state after each run (BLOCK_D, T), the last one being the state after the chunk."""
    parts = ()
    for k in tl.static_range(len(tiles)):
        t, m, _offs, _uu, dt, _x, dtu = tiles[k]
        Bn = Bs[k]
        decay = _exp2(dt * A2, FAST_EXP)
        inp = dtu * Bn
        ta, tx = _tile_total(decay, inp, False)
        parts = parts + ((Bn, decay, inp, ta, tx), )
    ra = parts[0][3]
    rx = parts[0][4]
    for k in tl.static_range(1, len(tiles)):
        ra, rx = _combine(ra, rx, parts[k][3], parts[k][4])
    pa, px = tl.associative_scan((ra, rx), 1, _combine)
    h_end = pa * h0[:, None] + px
    j = tl.arange(0, T)[None, :]
    prev = tl.gather(h_end, tl.broadcast_to(tl.maximum(j - 1, 0), h_end.shape), 1)
    h = tl.where(j == 0, h0[:, None], prev)
    states = ()
    for k in tl.static_range(len(tiles)):
        Bn, decay, inp, ta, tx = parts[k]
        states = states + ((Bn, inp, _tile_walk(decay, inp, h, False)), )
        h = ta * h + tx
    return states, h_end


@triton.jit
def _run_adjoints(tiles, dts_next, dys, Cs, A2, g_n, FAST_EXP: tl.constexpr, T: tl.constexpr):
    """State n's adjoints over a chunk, backwards from ``g_n``, the adjoint at the first step
    of the next chunk: per tile, g_t = a_{t+1} g_{t+1} + C_t dy_t; and the adjoint at the
    first step of each run (BLOCK_D, T), the first one being the chunk's."""
    K: tl.constexpr = len(tiles)
    parts = ()
    for k in tl.static_range(K):
        decay = _exp2(dts_next[k] * A2, FAST_EXP)
        inp = Cs[k] * dys[k]
        ta, tx = _tile_total(decay, inp, True)
        parts = parts + ((decay, inp, ta, tx), )
    ra = parts[K - 1][2]
    rx = parts[K - 1][3]
    for kk in tl.static_range(1, K):
        ra, rx = _combine(ra, rx, parts[K - 1 - kk][2], parts[K - 1 - kk][3])
    pa, px = tl.associative_scan((ra, rx), 1, _combine, reverse=True)
    g_first = pa * g_n[:, None] + px
    j = tl.arange(0, T)[None, :]
    nxt = tl.gather(g_first, tl.broadcast_to(tl.minimum(j + 1, T - 1), g_first.shape), 1)
    g = tl.where(j == T - 1, g_n[:, None], nxt)
    adj = ()
    for kk in tl.static_range(K):
        decay, inp, ta, tx = parts[K - 1 - kk]
        adj = (_tile_walk(decay, inp, g, True), ) + adj
        g = ta * g + tx
    return adj, g_first


@triton.jit
def _run_output(y, uu, Dv, z_ptr, offs, m, HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
                ACC: tl.constexpr):
    """:func:`_chunk_output` of one tile."""
    return _chunk_output(y, uu, Dv[:, None], z_ptr, offs, m, HAS_D, HAS_Z, ACC)


@triton.jit
def _add_outputs(ys, states, Cs):
    """The outputs ``ys`` of a chunk's tiles plus one state's part: its states times C."""
    new_ys = ()
    for k in tl.static_range(len(ys)):
        new_ys = new_ys + (ys[k] + states[k][2] * Cs[k], )
    return new_ys


@triton.jit
def _store_chunk_end(carry_ptr, offset, h_end, last_run, j, T: tl.constexpr):
    """Store a state after the chunk at ``offset`` (``h_end``: the state after each run).
    Past L, dt = 0 keeps the state, so the last run's end is the state at min(L, chunk end);
    only that lane is unmasked, at offset 0."""
    tl.store(carry_ptr + offset[:, None] + (j - (T - 1)), h_end, mask=last_run)


@triton.jit
def _runs_fwd_chunk(c, u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, z_ptr, out_ptr, carry_ptr, d,
                    d_mask, bias, Dv, row, b_base, c_base, carry_row, L, N, SLOTS,
                    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                    SOFTPLUS: tl.constexpr, ACC: tl.constexpr, FAST_EXP: tl.constexpr,
                    PREFETCH: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
                    RUN: tl.constexpr, LAST: tl.constexpr):
    """Chunk c of :func:`scan_fwd_runs_kernel`: its output, and the state after it in slot
    (c + 1) % SLOTS."""
    T: tl.constexpr = BLOCK_L // RUN
    j = tl.arange(0, T)[None, :]
    last_run = d_mask[:, None] & (j == T - 1)
    tiles = _run_chunk(u_ptr, delta_ptr, row, bias, d_mask, c, L, HAS_BIAS, SOFTPLUS, ACC,
                       FAST_EXP, BLOCK_L, RUN, LAST)
    ys = ()
    for k in tl.static_range(RUN // 4):
        ys = ys + (_zeros((BLOCK_D, T, 4), ACC), )
    state_in = carry_row + (c % SLOTS) * N
    state_out = carry_row + ((c + 1) % SLOTS) * N
    tl.debug_barrier()  # the states the previous chunk wrote are visible to every thread
    if PREFETCH:
        # each state's A, entering state and B/C rows are loaded while the state before is
        # scanned, and two states per iteration let the compiler interleave their
        # dependency chains: a one-warp program has no other warp to hide latency with
        A_n = _state_A(A_ptr, d, d_mask, 0, N, ACC)
        h0_n = tl.load(carry_ptr + state_in, mask=d_mask, other=0.0)
        Bs = _run_rows(B_ptr, b_base, 0, L, tiles, ACC)
        Cs = _run_rows(C_ptr, c_base, 0, L, tiles, ACC)
        for n in tl.range(0, N, loop_unroll_factor=2):
            nxt = tl.minimum(n + 1, N - 1)  # the last state loads its own rows again
            A_next = _state_A(A_ptr, d, d_mask, nxt, N, ACC)
            h0_next = tl.load(carry_ptr + state_in + nxt, mask=d_mask, other=0.0)
            Bs_next = _run_rows(B_ptr, b_base, nxt, L, tiles, ACC)
            Cs_next = _run_rows(C_ptr, c_base, nxt, L, tiles, ACC)
            states, h_end = _run_states(tiles, (A_n * _LOG2E)[:, None, None], h0_n, Bs,
                                        FAST_EXP, T)
            ys = _add_outputs(ys, states, Cs)
            _store_chunk_end(carry_ptr, state_out + n, h_end, last_run, j, T)
            A_n, h0_n, Bs, Cs = A_next, h0_next, Bs_next, Cs_next
    else:
        for n in range(N):
            A2 = _state_A(A_ptr, d, d_mask, n, N, ACC) * _LOG2E
            h0_n = tl.load(carry_ptr + state_in + n, mask=d_mask, other=0.0)
            states, h_end = _run_states(tiles, A2[:, None, None], h0_n,
                                        _run_rows(B_ptr, b_base, n, L, tiles, ACC), FAST_EXP, T)
            # C after the states: loaded before them, it made the compiler recompute values
            # in this loop (tools/analysis_tools/triton_scan_sass.py: 0.5 more instructions
            # per update)
            ys = _add_outputs(ys, states, _run_rows(C_ptr, c_base, n, L, tiles, ACC))
            _store_chunk_end(carry_ptr, state_out + n, h_end, last_run, j, T)
    for k in tl.static_range(RUN // 4):
        _t, m, offs, uu = tiles[k][0], tiles[k][1], tiles[k][2], tiles[k][3]  # noqa: F841
        y = _run_output(ys[k], uu, Dv, z_ptr, offs, m, HAS_D, HAS_Z, ACC)
        tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=m)


@triton.jit
def scan_fwd_runs_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr,
                         carry_ptr, L, DIM, DG, N, NCHUNK, SLOTS, GB, GC, HAS_D: tl.constexpr,
                         HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                         ACC: tl.constexpr, FAST_EXP: tl.constexpr, EVEN_D: tl.constexpr,
                         PREFETCH: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
                         RUN: tl.constexpr):
    b, d, d_mask, bias, Dv, row = _channels(D_ptr, bias_ptr, DIM, DG, L, HAS_D, HAS_BIAS, ACC,
                                            BLOCK_D, EVEN_D)
    b_base, c_base = _group_bases(b, tl.program_id(1), N, L, GB, GC)
    carry_row = (b * DIM + d) * SLOTS * N
    # every chunk but the last without time masks: no select or zeroing per element
    for c in range(NCHUNK - 1):
        _runs_fwd_chunk(c, u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, z_ptr, out_ptr, carry_ptr, d,
                        d_mask, bias, Dv, row, b_base, c_base, carry_row, L, N, SLOTS, HAS_D,
                        HAS_Z, HAS_BIAS, SOFTPLUS, ACC, FAST_EXP, PREFETCH, BLOCK_D, BLOCK_L,
                        RUN, False)
    _runs_fwd_chunk(NCHUNK - 1, u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, z_ptr, out_ptr, carry_ptr,
                    d, d_mask, bias, Dv, row, b_base, c_base, carry_row, L, N, SLOTS, HAS_D,
                    HAS_Z, HAS_BIAS, SOFTPLUS, ACC, FAST_EXP, PREFETCH, BLOCK_D, BLOCK_L, RUN,
                    True)


@triton.jit
def _run_outputs(tiles, A_ptr, ckpt_ptr, ckpt_in, B_ptr, C_ptr, b_base, c_base, d, d_mask, Dv,
                 z_ptr, L, N, HAS_D: tl.constexpr, ACC: tl.constexpr, FAST_EXP: tl.constexpr,
                 T: tl.constexpr):
    """The chunk's output before the z gate, per tile, recomputed from its checkpoint."""
    ys = ()
    for k in tl.static_range(len(tiles)):
        ys = ys + (_zeros_like(tiles[k][3]), )
    for n in range(N):
        A2 = _state_A(A_ptr, d, d_mask, n, N, ACC) * _LOG2E
        h0_n = tl.load(ckpt_ptr + ckpt_in + n, mask=d_mask, other=0.0)
        states, _h = _run_states(tiles, A2[:, None, None], h0_n,
                                 _run_rows(B_ptr, b_base, n, L, tiles, ACC), FAST_EXP, T)
        ys = _add_outputs(ys, states, _run_rows(C_ptr, c_base, n, L, tiles, ACC))
    out = ()
    for k in tl.static_range(len(tiles)):
        out = out + (_run_output(ys[k], tiles[k][3], Dv, z_ptr, tiles[k][2], tiles[k][1], HAS_D,
                                 False, ACC), )
    return out


@triton.jit
def _runs_bwd_chunk(c, dD_acc, dbias_acc, u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, z_ptr, ckpt_ptr,
                    gcarry_ptr, dout_ptr, du_ptr, ddelta_ptr, dA_ptr, dB_ptr, dC_ptr, dz_ptr, b,
                    d, d_mask, bias, Dv, row, b_base, c_base, db_base, dc_base, ckpt_row, g_row,
                    L, DIM, N, NCHUNK, HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
                    HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, ACC: tl.constexpr,
                    FAST_EXP: tl.constexpr, DETERMINISTIC: tl.constexpr, BLOCK_L: tl.constexpr,
                    RUN: tl.constexpr, LAST: tl.constexpr):
    """Chunk c of :func:`scan_bwd_runs_kernel`: its input gradients, its part of dA, dB and
    dC, the adjoint before it in slot (c + 1) % 2, and the sums dD and d delta_bias so far."""
    T: tl.constexpr = BLOCK_L // RUN
    K: tl.constexpr = RUN // 4
    j = tl.arange(0, T)[None, :]
    first_run = d_mask[:, None] & (j == 0)
    tiles = _run_chunk(u_ptr, delta_ptr, row, bias, d_mask, c, L, HAS_BIAS, SOFTPLUS, ACC,
                       FAST_EXP, BLOCK_L, RUN, LAST)
    dys = ()
    dts_next = ()  # decay of the next step (1 past the end: the adjoint there is dlast)
    steps_in = ()  # the steps before L, for the (1, T, 4) rows of dB and dC
    for k in tl.static_range(K):
        t, m, offs = tiles[k][0], tiles[k][1], tiles[k][2]
        dys = dys + (tl.load(dout_ptr + offs, mask=m, other=0.0).to(ACC), )
        if LAST:
            m_next = m & (t + 1 < L)
            steps_in = steps_in + (t < L, )
        else:  # the step after the chunk's last one is the next chunk's first
            m_next = m
            steps_in = steps_in + (tl.full(t.shape, 1, tl.int1), )
        dt_next, _x_next = _dt_tile(delta_ptr + 1, bias[:, None], offs, m_next, HAS_BIAS,
                                    SOFTPLUS, ACC, FAST_EXP)
        dts_next = dts_next + (dt_next, )
    tl.debug_barrier()  # the adjoints the next chunk wrote are visible to every thread
    if HAS_Z:
        ys = _run_outputs(tiles, A_ptr, ckpt_ptr, ckpt_row + c * N, B_ptr, C_ptr, b_base,
                          c_base, d, d_mask, Dv, z_ptr, L, N, HAS_D, ACC, FAST_EXP, T)
        gated = ()
        for k in tl.static_range(K):
            offs, m = tiles[k][2], tiles[k][1]
            zz = tl.load(z_ptr + offs, mask=m, other=0.0).to(ACC)
            sig = _sigmoid(zz)
            dz = dys[k] * ys[k] * sig * (1.0 + zz * (1.0 - sig))
            tl.store(dz_ptr + offs, dz.to(dz_ptr.dtype.element_ty), mask=m)
            gated = gated + (dys[k] * zz * sig, )
        dys = gated
    dus = ()
    ddts = ()
    for k in tl.static_range(K):
        if HAS_D:
            dus = dus + (Dv[:, None, None] * dys[k], )
            dD_acc += _sum(_sum(dys[k] * tiles[k][3], axis=2), axis=1)
        else:
            dus = dus + (_zeros_like(dys[k]), )
        ddts = ddts + (_zeros_like(dys[k]), )
    adj_in = g_row + (c % 2) * N
    adj_out = g_row + ((c + 1) % 2) * N
    for n in range(N):
        A_n = _state_A(A_ptr, d, d_mask, n, N, ACC)
        A2 = (A_n * _LOG2E)[:, None, None]
        h0_n = tl.load(ckpt_ptr + ckpt_row + c * N + n, mask=d_mask, other=0.0)
        g_n = tl.load(gcarry_ptr + adj_in + n, mask=d_mask, other=0.0)
        states, _h = _run_states(tiles, A2, h0_n, _run_rows(B_ptr, b_base, n, L, tiles, ACC),
                                 FAST_EXP, T)
        Cs = _run_rows(C_ptr, c_base, n, L, tiles, ACC)
        adj, g_first = _run_adjoints(tiles, dts_next, dys, Cs, A2, g_n, FAST_EXP, T)
        tl.store(gcarry_ptr + (adj_out + n)[:, None] + j, g_first, mask=first_run)
        dA_n = _zeros_like(dys[0])  # summed over the tiles, then over the steps once
        new_dus = ()
        new_ddts = ()
        for k in tl.static_range(K):
            t, uu, dt, dtu = tiles[k][0], tiles[k][3], tiles[k][4], tiles[k][6]
            Bn, inp, hs = states[k]
            gs = adj[k]
            # masked channels have gs = hs = 0, so these sums over the block are exact
            _add_grad(dB_ptr + db_base + n * L + t, _sum(gs * dtu, axis=0, keep_dims=True),
                      steps_in[k], DETERMINISTIC)
            _add_grad(dC_ptr + dc_base + n * L + t, _sum(hs * dys[k], axis=0, keep_dims=True),
                      steps_in[k], DETERMINISTIC)
            g_b = gs * Bn
            g_ah = gs * (hs - inp)  # g_t * a_t * h_{t-1}
            dA_n += g_ah * dt
            new_dus = new_dus + (dus[k] + dt * g_b, )
            new_ddts = new_ddts + (ddts[k] + uu * g_b + g_ah * A_n[:, None, None], )
        dus = new_dus
        ddts = new_ddts
        # this chunk's part of dA (summed by the wrapper: no atomics)
        tl.store(dA_ptr + ((b * DIM + d) * NCHUNK + c) * N + n,
                 _sum(_sum(dA_n, axis=2), axis=1), mask=d_mask)
    for k in tl.static_range(K):
        dbias_acc += _sum(_store_input_grads(dus[k], ddts[k], tiles[k][5], tiles[k][1],
                                             tiles[k][2], du_ptr, ddelta_ptr, SOFTPLUS),
                          axis=1)
    return dD_acc, dbias_acc


@triton.jit
def scan_bwd_runs_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
                         ckpt_ptr, gcarry_ptr, dout_ptr, du_ptr, ddelta_ptr, dA_ptr, dB_ptr,
                         dC_ptr, dD_ptr, dbias_ptr, dz_ptr, L, DIM, DG, N, NCHUNK, SLOTS, GB,
                         GC, HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                         SOFTPLUS: tl.constexpr, ACC: tl.constexpr, FAST_EXP: tl.constexpr,
                         DETERMINISTIC: tl.constexpr, EVEN_D: tl.constexpr,
                         BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr, RUN: tl.constexpr):
    """:func:`scan_bwd_statewise_kernel` with the runs of :func:`scan_fwd_runs_kernel`; the
    last chunk first, the only one with time masks."""
    (b, d, d_mask, bias, Dv, row, b_base, c_base, db_base, dc_base, ckpt_row,
     g_row) = _bwd_program(D_ptr, bias_ptr, L, DIM, DG, N, SLOTS, GB, GC, HAS_D, HAS_BIAS, ACC,
                           DETERMINISTIC, BLOCK_D, EVEN_D)
    dD_acc, dbias_acc = _runs_bwd_chunk(
        NCHUNK - 1, _zeros((BLOCK_D, ), ACC), _zeros((BLOCK_D, ), ACC), u_ptr, delta_ptr, A_ptr,
        B_ptr, C_ptr, z_ptr, ckpt_ptr, gcarry_ptr, dout_ptr, du_ptr, ddelta_ptr, dA_ptr, dB_ptr,
        dC_ptr, dz_ptr, b, d, d_mask, bias, Dv, row, b_base, c_base, db_base, dc_base, ckpt_row,
        g_row, L, DIM, N, NCHUNK, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, ACC, FAST_EXP, DETERMINISTIC,
        BLOCK_L, RUN, True)
    for cc in range(1, NCHUNK):
        dD_acc, dbias_acc = _runs_bwd_chunk(
            NCHUNK - 1 - cc, dD_acc, dbias_acc, u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, z_ptr,
            ckpt_ptr, gcarry_ptr, dout_ptr, du_ptr, ddelta_ptr, dA_ptr, dB_ptr, dC_ptr, dz_ptr, b,
            d, d_mask, bias, Dv, row, b_base, c_base, db_base, dc_base, ckpt_row, g_row, L, DIM,
            N, NCHUNK, HAS_D, HAS_Z, HAS_BIAS, SOFTPLUS, ACC, FAST_EXP, DETERMINISTIC, BLOCK_L,
            RUN, False)
    tl.store(dD_ptr + b * DIM + d, dD_acc, mask=d_mask)
    tl.store(dbias_ptr + b * DIM + d, dbias_acc, mask=d_mask)
