"""Benchmark every available selective-scan backend against the sequential recurrence.

For the three decoder-stage shapes of Swin-L MTMamba on NYUDv2 (448x576 input; SS2D scans
4 directions x d_inner channels, N = 16, B/C grouped by direction, delta_softplus, D and
delta_bias as SS2D passes them) plus one small shape, it times the forward pass and the forward
plus backward pass of

- ``sequential``: the reference recurrence as a per-step PyTorch loop, with the algorithm and
  memory layout of mamba-ssm's ``selective_scan_ref`` (B/C copied per channel; all decays and
  inputs formed up front, then one ``x = deltaA[:, :, i] * x + deltaB_u[:, :, i]`` step per
  position), written here -- the baseline of the speed-up columns;
- ``sequential-grouped``: the same loop reading B/C through a per-group view (about 2x faster
  on the CPU), to show how much of the gap a better PyTorch loop closes;
- every backend of :func:`mmmt.ops.selective_scan_fn` available on the device (``torch``,
  ``cpp`` on the CPU, ``triton`` and, where mamba-ssm is installed, ``cuda`` on a GPU; the
  Triton backend once per kernel pair: ``triton-runs``, ``triton-statewise``, ``triton-tile``),

and reports speed-ups against ``sequential`` measured in the same run, and the largest errors of
each implementation's output and input gradients against a float64 oracle (the same recurrence
in float64) on the first ``--err-length`` positions. On a GPU also each backend's peak memory
beyond its inputs in the forward+backward pass, and its times against the memory roofline of
the scan: the bytes it must read and write at least (forward: u, delta, B, C in, the output out;
forward+backward: those again, plus the output gradient in and du, d delta, dB, dC out) divided
by the GPU's peak memory bandwidth (from the memory clock and bus width, or
``--peak-bandwidth``).

Examples::

    python tools/analysis_tools/benchmark_scan.py            # full run (several minutes on CPU)
    python tools/analysis_tools/benchmark_scan.py --quick    # about a minute
    python tools/analysis_tools/benchmark_scan.py --device cuda --json work_dirs/scan.json
"""
from __future__ import annotations  # torch, imported after --help, in annotations
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

from mmmt.utils.cli import add_json_output_args, check_output_file, write_output_file
from mmmt.utils.errors import run_main

# set after the functions are defined: name -> reference implementation; the first one is the
# baseline of the speed-up columns
REFERENCES: Dict[str, Callable] = {}


# ------------------------------------------------------------------------------------------------
# the sequential reference


def _widened_inputs(u, delta, A, B, C, delta_bias, delta_softplus):
    """``u``, ``delta`` (bias added, softplus applied), ``A`` and ``B``/``C`` as (batch, G, N,
    L) in the compute dtype of both recurrences: float64 for float64 ``u``, else float32."""
    compute = torch.float64 if u.dtype == torch.float64 else torch.float32
    u, delta, A = u.to(compute), delta.to(compute), A.to(compute)
    if delta_bias is not None:
        delta = delta + delta_bias.to(compute)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    B = (B if B.dim() == 4 else B.unsqueeze(1)).to(compute)
    C = (C if C.dim() == 4 else C.unsqueeze(1)).to(compute)
    return u, delta, A, B, C


def _skip_and_gate(y, u, D, z):
    """The scan output ``y`` with the ``D * u`` skip and the ``silu(z)`` gate, in ``u``'s
    (compute) dtype."""
    out = y if D is None else y + u * D.to(u.dtype)[:, None]
    return out if z is None else out * F.silu(z.to(u.dtype))


def scan_sequential_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                        delta_softplus=False):
    """The per-step recurrence with mamba-ssm ``selective_scan_ref``'s algorithm and layout,
    re-written: grouped B/C repeated to one copy per channel, decays ``exp(delta * A)`` and
    inputs ``delta * B * u`` formed for all positions as (batch, D, L, N) tensors, then one
    ``x = deltaA[:, :, i] * x + deltaB_u[:, :, i]``, ``y_i = <x, C[:, :, :, i]>`` step per
    position. The per-step slices come from ``unbind`` (one autograd node instead of L index
    nodes whose backward would be quadratic in L); otherwise as in mamba-ssm.
    """
    dtype_in = u.dtype
    u, delta, A, B, C = _widened_inputs(u, delta, A, B, C, delta_bias, delta_softplus)
    batch, dim, length = u.shape
    B = B.repeat_interleave(dim // B.shape[1], dim=1)  # (batch, D, N, L)
    C = C.repeat_interleave(dim // C.shape[1], dim=1)
    delta_a = torch.exp(torch.einsum('bdl,dn->bdln', delta, A))
    delta_b_u = torch.einsum('bdl,bdnl,bdl->bdln', delta, B, u)
    x = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    for da, dbu, c in zip(delta_a.unbind(2), delta_b_u.unbind(2), C.unbind(3)):
        x = da * x + dbu
        ys.append(torch.einsum('bdn,bdn->bd', x, c))
    y = torch.stack(ys, dim=2)
    return _skip_and_gate(y, u, D, z).to(dtype_in)


def scan_sequential(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """The same per-step recurrence with B/C groups applied through a (groups, channels per
    group) view instead of per-channel copies: about twice as fast on the CPU as the reference
    layout (contiguous per-step slices). Also the float64 oracle of the error columns.
    """
    dtype_in = u.dtype
    u, delta, A, B, C = _widened_inputs(u, delta, A, B, C, delta_bias, delta_softplus)
    batch, dim, length = u.shape
    n = A.shape[1]
    groups = B.shape[1]
    assert C.shape[1] == groups, 'the reference needs B and C grouped alike'
    dg = dim // groups
    delta_g = delta.view(batch, groups, dg, length)
    u_g = u.view(batch, groups, dg, length)
    delta_a = torch.exp(torch.einsum('bghl,ghn->bghln', delta_g, A.view(groups, dg, n)))
    delta_b_u = torch.einsum('bghl,bgnl,bghl->bghln', delta_g, B, u_g)
    x = u.new_zeros(batch, groups, dg, n)
    ys = []
    for da, dbu, c in zip(delta_a.unbind(3), delta_b_u.unbind(3), C.unbind(3)):
        x = da * x + dbu
        ys.append(torch.einsum('bghn,bgn->bgh', x, c))
    y = torch.stack(ys, dim=-1).reshape(batch, dim, length)
    return _skip_and_gate(y, u, D, z).to(dtype_in)


REFERENCES.update({
    'sequential': scan_sequential_ref,
    'sequential-grouped': scan_sequential,
})

# ------------------------------------------------------------------------------------------------


def backend_fn(name: str) -> Callable:
    """The scan forced to backend `name` (``triton-<kernel>``: one Triton kernel pair)."""
    from mmmt.ops import selective_scan_fn
    scan_backend_env(name)  # a wrong name fails here, not in a worker

    def fn(**kw):
        with forced_scan_backend(name):
            return selective_scan_fn(**kw)

    return fn


def time_runs(step: Callable[[], None], device, repeat: int, warmup: int,
              min_total: float = 0.0, slow: float = float('inf')) -> float:
    """Median wall time in seconds of at least `repeat` runs (more, up to 50, until they add up
    to `min_total` seconds), after `warmup` untimed runs. A warm-up run that takes more than
    `slow` seconds is taken as the measurement (one-time costs are negligible by then)."""
    for i in range(warmup):
        t0 = time.perf_counter()
        step()
        sync(device)
        if i == 0 and time.perf_counter() - t0 > slow:
            return time.perf_counter() - t0
    times = []
    while len(times) < repeat or (sum(times) < min_total and len(times) < 50):
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def scan_bytes(channels: int, length: int, itemsize: int = 4) -> Dict[str, int]:
    """Bytes the scan must move at least at one benchmark shape (no z; A, D, delta_bias and
    the last state are negligible): forward 3 (channels x L) tensors and B, C; forward+backward
    8 (channels x L) tensors and 6 (groups x N x L)."""
    big, small = channels * length, SCAN_GROUPS * SCAN_STATES * length
    return dict(fwd=itemsize * (3 * big + 2 * small), train=itemsize * (8 * big + 6 * small))


def peak_bandwidth(device, override_gb_s: Optional[float] = None) -> Optional[float]:
    """Peak memory bandwidth in bytes/s: ``override_gb_s`` if given, else (CUDA) 2 x memory
    clock x bus width (double data rate), else None."""
    if override_gb_s:
        return override_gb_s * 1e9
    device = torch.device(device)
    if device.type != 'cuda':
        return None
    props = torch.cuda.get_device_properties(device)
    clock_khz = getattr(props, 'memory_clock_rate', 0)
    bus_bits = getattr(props, 'memory_bus_width', 0)
    return 2.0 * clock_khz * 1e3 * bus_bits / 8 if clock_khz and bus_bits else None


def peak_memory(step: Callable[[], None], device) -> Optional[int]:
    """Peak CUDA memory allocated by one run of `step` beyond what was allocated before it."""
    device = torch.device(device)
    if device.type != 'cuda':
        return None
    sync(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    sync(device)
    return torch.cuda.max_memory_allocated(device) - base


def forward_step(fn, x) -> Callable[[], None]:

    def step():
        with torch.no_grad():
            fn(**x, delta_softplus=True)

    return step


def train_step(fn, x, grad_out) -> Callable[[], None]:
    leaves = {k: v.detach().clone().requires_grad_(k in SCAN_GRAD_NAMES) for k, v in x.items()}

    def step():
        out = fn(**leaves, delta_softplus=True)
        out.backward(grad_out)
        # dropped here, not at the next start: peak_memory measures from what is allocated
        # before a run, and gradients still held from the run before (about the inputs' size)
        # were counted there and freed inside the measured run, hiding as much of its peak
        for v in leaves.values():
            v.grad = None

    return step


def fmt_time(sec: Optional[float], extrapolated: bool = False) -> str:
    if sec is None:
        return '-'
    if sec < 0.01:
        s = f'{sec * 1e3:.2f} ms'
    elif sec < 10:
        s = f'{sec * 1e3:.0f} ms'
    else:
        s = f'{sec:.1f} s'
    return ('~' + s) if extrapolated else s


def measure(impl: str, shape: str, opts: dict, what: str = 'both') -> dict:
    """Time one implementation at one shape: the forward pass (`what` 'fwd'), the forward plus
    backward pass ('train'), or both."""
    device = torch.device(opts['device'])
    name, channels, (h, w) = next(s for s in SCAN_SHAPES if s[0] == shape)
    length = h * w
    quick = opts['quick']
    repeat = opts['repeat'] or (1 if quick else 3)
    min_total = 0.2 if quick else 1.0  # seconds of timed runs for the fast implementations
    slow = 2.0 if quick else 10.0  # a first run slower than this is the measurement
    x = scan_inputs(channels, length, device)
    g = torch.Generator().manual_seed(1)
    grad_out = torch.randn(1, channels, length, generator=g).to(device)
    res = dict(fwd_s=None, train_s=None, extrapolated=False, skipped_train=False,
               peak_mem=None)
    do_fwd = what in ('fwd', 'both')
    do_train = what in ('train', 'both') and not opts['no_backward']
    if impl in REFERENCES:
        fn = REFERENCES[impl]
        ref_len = min(length, opts['ref_length']) if quick else length
        res['extrapolated'] = ref_len < length
        scale = length / ref_len
        x = {k: (v[..., :ref_len] if v.dim() >= 3 else v) for k, v in x.items()}
        grad_out = grad_out[..., :ref_len]
        # a warm-up run too, unless it is slow enough to be the measurement itself
        if do_fwd:
            log(f'  {impl} forward on {ref_len} positions ...')
            res['fwd_s'] = time_runs(forward_step(fn, x), device, 1, 1, 0, slow) * scale
            log(f'    {fmt_time(res["fwd_s"], res["extrapolated"])}')
        if do_train:
            log(f'  {impl} forward+backward on {ref_len} positions ...')
            res['train_s'] = time_runs(train_step(fn, x, grad_out), device, 1, 1, 0,
                                       slow) * scale
            log(f'    {fmt_time(res["train_s"], res["extrapolated"])}')
        return res
    fn = backend_fn(impl)
    if do_fwd:
        log(f'  {impl}: forward ...')
        res['fwd_s'] = time_runs(forward_step(fn, x), device, repeat, 1, min_total, slow)
        log(f'    {fmt_time(res["fwd_s"])}')
        if quick and res['fwd_s'] > 1.0:
            log('    forward+backward skipped (--quick, slow backend)')
            res['skipped_train'] = True
            do_train = False
    if do_train:
        log(f'  {impl}: forward+backward ...')
        step = train_step(fn, x, grad_out)
        res['train_s'] = time_runs(step, device, repeat, 1, min_total, slow)
        log(f'    {fmt_time(res["train_s"])}')
        res['peak_mem'] = peak_memory(step, device)
    return res


def measure_isolated(impl: str, shape: str, opts: dict, what: str = 'both') -> dict:
    """:func:`measure` in a fresh Python process, so that no implementation inherits another's
    memory state (after the sequential reference's multi-GB tensors, the allocator returns
    fresh, page-faulting memory for a while and everything measured next looks slower).
    A worker that dies (out of memory) gives no numbers instead of stopping the benchmark."""
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', impl, shape, what,
           '--device', opts['device'], '--ref-length', str(opts['ref_length'])]
    for flag, key in (('--threads', 'threads'), ('--repeat', 'repeat')):
        if opts[key]:
            cmd += [flag, str(opts[key])]
    cmd += ['--quick'] if opts['quick'] else []
    cmd += ['--no-backward'] if opts['no_backward'] else []
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # progress goes to stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('RESULT ')]
    if proc.returncode != 0 or not lines:
        log(f'    worker {impl} ({what}) at {shape} failed, exit {proc.returncode}'
            + (' (killed: out of memory?)' if proc.returncode in (-9, 137) else ''))
        return dict(fwd_s=None, train_s=None, extrapolated=False, skipped_train=False,
                    peak_mem=None, failed=what)
    return json.loads(lines[-1][len('RESULT '):])


def run_impl(run, impl: str, shape: str, opts: dict) -> dict:
    """Both measurements of an implementation; the references (large, slow) in two separate
    workers so that one that runs out of memory does not lose the other."""
    if impl not in REFERENCES or run is measure:
        return run(impl, shape, opts)
    res = run(impl, shape, opts, 'fwd')
    if not opts['no_backward']:
        train = run(impl, shape, opts, 'train')
        res['train_s'] = train['train_s']
        if train.get('failed'):
            res['failed'] = 'train'
    return res


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='one timed run per measurement, the sequential reference timed on '
                        'at most --ref-length positions and scaled to L (marked ~), the '
                        'forward+backward of backends slower than 1 s forward skipped, errors '
                        'on 256 positions')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--repeat', type=int, default=None, help='timed runs per measurement')
    parser.add_argument('--ref-length', type=int, default=2048,
                        help='with --quick: positions for timing the sequential reference')
    parser.add_argument('--err-length', type=int, default=None,
                        help='positions for the float64 error check (default 1024, 256 quick)')
    parser.add_argument('--shapes', nargs='+', default=None,
                        help='subset of shape names (e.g. small "swin-l stage 3")')
    parser.add_argument('--backends', nargs='+', default=None,
                        help='subset of the backends, in this order; "triton" is every Triton '
                        'kernel pair, "triton-statewise:128:256:1" one with other launch sizes '
                        '(NAME:STEPS:TILE:WARPS[:prefetch], see MMMT_TRITON_SCAN_KERNEL)')
    parser.add_argument('--no-backward', action='store_true', help='forward only')
    parser.add_argument('--no-reference', action='store_true',
                        help='skip the sequential reference (no speed-ups)')
    parser.add_argument('--in-process', action='store_true',
                        help='time everything in this process instead of one fresh process per '
                        'implementation and shape')
    parser.add_argument('--peak-bandwidth', type=float, default=None, metavar='GB/S',
                        help='peak memory bandwidth for the roofline columns (default: from '
                        'the CUDA device properties)')
    add_json_output_args(parser)
    parser.add_argument('--worker', nargs=3, metavar=('IMPL', 'SHAPE', 'WHAT'),
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == '__main__':
    parse_args()  # --help and argument errors before torch is imported

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from mmmt.utils.analysis import (SCAN_GRAD_NAMES, SCAN_GROUPS, SCAN_SHAPES,  # noqa: E402
                                 SCAN_STATES, cpu_name, forced_scan_backend, log, rel_err,
                                 scan_backend_env, scan_backend_names, scan_inputs,
                                 scan_outputs_and_grads, select_scan_backends, sync)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    check_output_file(args.json, args.force)  # not after minutes of measuring

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    opts = dict(device=args.device, quick=args.quick, repeat=args.repeat, threads=args.threads,
                ref_length=args.ref_length, no_backward=args.no_backward)
    if args.worker:
        impl, shape, what = args.worker
        print('RESULT ' + json.dumps(measure(impl, shape, opts, what)), flush=True)
        return {}
    err_len = args.err_length or (256 if args.quick else 1024)
    skipped, failed = [], []

    from mmmt.ops import available_backends
    log('checking backends (the first use of the C++ scan compiles it) ...')
    # the Triton interpreter (TRITON_INTERPRET=1) is far too slow for these shapes on the CPU
    backends = scan_backend_names(
        b for b in available_backends() if not (b == 'cpp' and device.type != 'cpu')
        and not (b in ('cuda', 'triton') and device.type != 'cuda'))
    if args.backends:
        backends = select_scan_backends(backends, args.backends)
    shapes = [s for s in SCAN_SHAPES if not args.shapes or s[0] in args.shapes]
    run = measure if args.in_process else measure_isolated

    machine = dict(
        device=(torch.cuda.get_device_name(device) if device.type == 'cuda' else
                f'{cpu_name()}, {os.cpu_count()} CPUs'),
        threads=torch.get_num_threads(), torch=torch.__version__,
        cpu_capability=torch.backends.cpu.get_cpu_capability(), python=platform.python_version(),
        peak_bandwidth=peak_bandwidth(device, args.peak_bandwidth))
    log(f'device: {machine["device"]}; torch {machine["torch"]} '
        f'({machine["cpu_capability"]}), {machine["threads"]} threads; backends: {backends}')

    rows = []
    for name, channels, (h, w) in shapes:
        length = h * w
        log(f'\n== {name}: {channels} channels, L = {h}x{w} = {length}, N = {SCAN_STATES}')
        impls = ([] if args.no_reference else list(REFERENCES)) + backends
        timings = {impl: run_impl(run, impl, name, opts) for impl in impls}

        # errors against the float64 oracle on the first err_len positions (the scan is causal)
        el = min(length, err_len)
        x = scan_inputs(channels, length, device)
        grad_out = torch.randn(1, channels, length,
                               generator=torch.Generator().manual_seed(1)).to(device)
        xe = {k: (v[..., :el] if v.dim() >= 3 else v) for k, v in x.items()}
        ge = grad_out[..., :el]
        x64 = {k: v.double().cpu() for k, v in xe.items()}
        log(f'  errors against the float64 oracle on {el} positions ...')
        oracle_out, oracle_grads = scan_outputs_and_grads(scan_sequential, x64, ge.double().cpu())
        # the baseline of the speed-ups: the faster of the sequential loops that completed
        ref = {}
        for key in ('fwd_s', 'train_s'):
            vals = [timings[r][key] for r in REFERENCES if r in timings and timings[r][key]]
            ref[key] = min(vals) if vals else None
        for impl in impls:
            out, grads = scan_outputs_and_grads(REFERENCES.get(impl) or backend_fn(impl), xe, ge)
            t = timings[impl]
            if t.get('skipped_train'):
                skipped.append(f'{impl} at {name}')
            if t.get('failed'):
                part = 'forward+backward' if t['failed'] == 'train' else 'forward'
                failed.append(f'{impl} ({part}) at {name}')
            rows.append(dict(
                shape=name, channels=channels, length=length, hw=f'{h}x{w}', impl=impl,
                fwd_s=t['fwd_s'], train_s=t['train_s'], extrapolated=t['extrapolated'],
                fwd_err=rel_err(out, oracle_out),
                grad_err=max(rel_err(grads[k], oracle_grads[k]) for k in SCAN_GRAD_NAMES),
                peak_mem=t.get('peak_mem'),
                **roofline(t, scan_bytes(channels, length), machine['peak_bandwidth']),
                fwd_speedup=(ref['fwd_s'] / t['fwd_s']
                             if ref.get('fwd_s') and t['fwd_s'] else None),
                train_speedup=(ref['train_s'] / t['train_s']
                               if ref.get('train_s') and t['train_s'] else None)))
            log(f'    {impl}: {rows[-1]["fwd_err"]:.1e} / {rows[-1]["grad_err"]:.1e}')
        del x, xe, x64

    table = format_table(rows, machine, err_len)
    if skipped:
        table += ('\n\n--quick: forward+backward not timed for backends whose forward took over '
                  '1 s: ' + ', '.join(skipped) + '.')
    if not args.in_process:
        table += ('\n\nEach implementation and shape was timed in a fresh process.')
    if failed:
        table += ('\nNot measured (the worker process died, out of memory): '
                  + ', '.join(failed) + '.')
    table += ('\nSpeed-ups are relative to the faster of the two sequential loops at that shape; '
              'errors are max |x - x64| / max |x64| against the float64 recurrence, for the '
              'output and over all input gradients.')
    print(table)
    result = dict(machine=machine, rows=rows, argv=sys.argv[1:] if argv is None else argv,
                  err_length=err_len, quick=args.quick)
    if args.json:  # into a folder made if missing
        write_output_file(json.dumps(result, indent=1), args.json, args.force)
    return result


def roofline(t: dict, nbytes: Dict[str, int], bandwidth: Optional[float]) -> dict:
    """Roofline times of the shape and a timing's multiples of them (None without a bandwidth
    or a timing)."""
    res = {}
    for key in ('fwd', 'train'):
        floor = nbytes[key] / bandwidth if bandwidth else None
        res[f'{key}_roofline_s'] = floor
        res[f'{key}_vs_roofline'] = (t[f'{key}_s'] / floor
                                     if floor and t[f'{key}_s'] else None)
    return res


def format_table(rows, machine, err_len) -> str:
    def ratio(v):
        return '-' if v is None else f'{v:.0f}x' if v >= 10 else f'{v:.1f}x'

    def err(v):
        return '-' if v is None else f'{v:.1e}'

    def mem(v):
        return '-' if v is None else f'{v / 2**20:.0f} MiB'

    def times(v):
        return '-' if v is None else f'{v:.1f}x'

    lines = [
        f'device: {machine["device"]}, {machine["threads"]} threads, torch {machine["torch"]}'
        f' ({machine["cpu_capability"]})',
        '',
        '| shape | channels | L | implementation | forward | vs sequential | forward+backward '
        f'| vs sequential | max rel. err. out (L<={err_len}) | max rel. err. grads '
        '| peak memory fwd+bwd | forward / roofline | fwd+bwd / roofline |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        lines.append(
            f'| {r["shape"]} | {r["channels"]} | {r["hw"]} | {r["impl"]} '
            f'| {fmt_time(r["fwd_s"], r["extrapolated"])} | {ratio(r.get("fwd_speedup"))} '
            f'| {fmt_time(r["train_s"], r["extrapolated"])} | {ratio(r.get("train_speedup"))} '
            f'| {err(r["fwd_err"])} | {err(r["grad_err"])} | {mem(r.get("peak_mem"))} '
            f'| {times(r.get("fwd_vs_roofline"))} | {times(r.get("train_vs_roofline"))} |')
    if machine.get('peak_bandwidth'):
        lines.append('')
        lines.append(
            f'Roofline: the bytes the scan must read and write at least, at '
            f'{machine["peak_bandwidth"] / 1e9:.0f} GB/s peak bandwidth; per shape: ' + ', '.join(
                f'{r["shape"]} {fmt_time(r["fwd_roofline_s"])} forward, '
                f'{fmt_time(r["train_roofline_s"])} fwd+bwd'
                for r in {r['shape']: r for r in rows}.values()) + '. Peak memory: allocated '
            'beyond the inputs during one forward+backward pass.')
    if any(r['extrapolated'] for r in rows):
        lines.append('')
        lines.append('~: the sequential reference was timed on a prefix of the sequence and '
                     'scaled linearly to L (--quick). At large L this understates its time (its '
                     'per-step slices are strided over a (channels, L, N) tensor), so these '
                     'ratios are conservative; the full run times the whole sequence.')
    return '\n'.join(lines)


if __name__ == '__main__':
    run_main(main)
