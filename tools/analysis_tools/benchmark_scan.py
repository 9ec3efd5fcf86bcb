"""Benchmark every available selective-scan backend against the sequential recurrence.

For the three decoder-stage shapes of Swin-L MTMamba on NYUDv2 (448x576 input; SS2D scans
4 directions x d_inner channels, N = 16, B/C grouped by direction, delta_softplus, D and
delta_bias as SS2D passes them) plus one small shape, it times the forward pass and the forward
plus backward pass of

- ``sequential``: the reference recurrence as a per-step PyTorch loop (the algorithm of
  mamba-ssm's ``selective_scan_ref``: all decays and inputs are formed up front, then one
  ``x = deltaA[:, :, i] * x + deltaB_u[:, :, i]`` step per position), written here;
- every backend of :func:`mmmt.ops.selective_scan_fn` available on the device (``torch``,
  ``cpp`` on the CPU, ``cuda`` where mamba-ssm is installed),

and reports speed-ups against ``sequential`` measured in the same run, and the largest errors of
each implementation's output and input gradients against a float64 oracle (the same recurrence
in float64) on the first ``--err-length`` positions.

Examples::

    python tools/analysis_tools/benchmark_scan.py            # full run (several minutes on CPU)
    python tools/analysis_tools/benchmark_scan.py --quick    # about a minute
    python tools/analysis_tools/benchmark_scan.py --device cuda --json work_dirs/scan.json
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

# the shapes: (name, channels = 4 directions x d_inner, (H, W) of the scanned map)
SHAPES = [
    ('small', 4 * 96, (14, 18)),
    ('swin-l stage 1', 4 * 1536, (28, 36)),
    ('swin-l stage 2', 4 * 768, (56, 72)),
    ('swin-l stage 3', 4 * 384, (112, 144)),
]
N_STATE = 16
GROUPS = 4
GRAD_NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# the sequential reference


def scan_sequential(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """The per-step recurrence (mamba-ssm's ``selective_scan_ref`` algorithm), re-written.

    Decays ``exp(delta * A)`` and inputs ``delta * B * u`` are formed for all positions at once,
    then the state is updated one position at a time. B/C groups are applied by viewing the
    channels as (groups, channels per group) instead of copying B/C per channel. ``unbind`` gives
    the per-step slices one autograd node, so the backward pass stays linear in L.
    """
    dtype_in = u.dtype
    compute = torch.float64 if dtype_in == torch.float64 else torch.float32
    u, delta, A = u.to(compute), delta.to(compute), A.to(compute)
    if delta_bias is not None:
        delta = delta + delta_bias.to(compute)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, length = u.shape
    n = A.shape[1]
    B = (B if B.dim() == 4 else B.unsqueeze(1)).to(compute)
    C = (C if C.dim() == 4 else C.unsqueeze(1)).to(compute)
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
    out = y if D is None else y + u * D.to(compute)[:, None]
    if z is not None:
        out = out * F.silu(z.to(compute))
    return out.to(dtype_in)


# ------------------------------------------------------------------------------------------------


def make_inputs(channels: int, length: int, device, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Inputs distributed as SS2D feeds them at initialisation."""
    g = torch.Generator().manual_seed(seed)
    dt = torch.exp(
        torch.rand(channels, generator=g) * (torch.log(torch.tensor(0.1)) -
                                             torch.log(torch.tensor(1e-3))) +
        torch.log(torch.tensor(1e-3))).clamp(min=1e-4)
    x = dict(
        u=torch.randn(1, channels, length, generator=g),
        delta=torch.randn(1, channels, length, generator=g) * 0.1,
        A=-torch.arange(1, N_STATE + 1, dtype=torch.float32).repeat(channels, 1),
        B=torch.randn(1, GROUPS, N_STATE, length, generator=g),
        C=torch.randn(1, GROUPS, N_STATE, length, generator=g),
        D=torch.ones(channels),
        delta_bias=dt + torch.log(-torch.expm1(-dt)),
    )
    return {k: v.to(device) for k, v in x.items()}


def cpu_name() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def backend_fn(name: str) -> Callable:
    from mmmt.ops import selective_scan_fn

    def fn(**kw):
        old = os.environ.get('MMMT_SCAN_BACKEND')
        os.environ['MMMT_SCAN_BACKEND'] = name
        try:
            return selective_scan_fn(**kw)
        finally:
            if old is None:
                del os.environ['MMMT_SCAN_BACKEND']
            else:
                os.environ['MMMT_SCAN_BACKEND'] = old

    return fn


def sync(device) -> None:
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()


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


def forward_step(fn, x) -> Callable[[], None]:

    def step():
        with torch.no_grad():
            fn(**x, delta_softplus=True)

    return step


def train_step(fn, x, grad_out) -> Callable[[], None]:
    leaves = {k: v.detach().clone().requires_grad_(k in GRAD_NAMES) for k, v in x.items()}

    def step():
        for v in leaves.values():
            v.grad = None
        out = fn(**leaves, delta_softplus=True)
        out.backward(grad_out)

    return step


def outputs_and_grads(fn, x, grad_out):
    leaves = {k: v.detach().clone().requires_grad_(k in GRAD_NAMES) for k, v in x.items()}
    out = fn(**leaves, delta_softplus=True)
    out.backward(grad_out.to(out.dtype))
    return out.detach(), {k: leaves[k].grad for k in GRAD_NAMES}


def rel_err(a, b) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-30)).item()


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


def main(argv: Optional[List[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='one timed run per measurement, the sequential reference timed on '
                        'at most --ref-length positions and scaled to L (its cost is linear in '
                        'L; marked ~), errors on 256 positions')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--repeat', type=int, default=None, help='timed runs per measurement')
    parser.add_argument('--ref-length', type=int, default=2048,
                        help='with --quick: positions for timing the sequential reference')
    parser.add_argument('--err-length', type=int, default=None,
                        help='positions for the float64 error check (default 1024, 256 quick)')
    parser.add_argument('--shapes', nargs='+', default=None,
                        help='subset of shape names (e.g. small "swin-l stage 3")')
    parser.add_argument('--backends', nargs='+', default=None, help='subset of the backends')
    parser.add_argument('--no-backward', action='store_true', help='forward only')
    parser.add_argument('--no-reference', action='store_true',
                        help='skip the sequential reference (no speed-ups)')
    parser.add_argument('--json', default=None, help='also write the results here')
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    repeat = args.repeat or (1 if args.quick else 3)
    err_len = args.err_length or (256 if args.quick else 1024)
    min_total = 0.2 if args.quick else 1.0  # seconds of timed runs for the fast backends
    slow = 2.0 if args.quick else 10.0  # a first run slower than this is the measurement
    skipped = []

    from mmmt.ops import available_backends
    log('checking backends (the first use of the C++ scan compiles it) ...')
    backends = [b for b in available_backends()
                if not (b == 'cpp' and device.type != 'cpu')
                and not (b == 'cuda' and device.type != 'cuda')]
    if args.backends:
        backends = [b for b in backends if b in args.backends]
    impls = {b: backend_fn(b) for b in backends}
    shapes = [s for s in SHAPES if not args.shapes or s[0] in args.shapes]

    machine = dict(
        device=(torch.cuda.get_device_name(device) if device.type == 'cuda' else
                f'{cpu_name()}, {os.cpu_count()} CPUs'),
        threads=torch.get_num_threads(), torch=torch.__version__,
        cpu_capability=torch.backends.cpu.get_cpu_capability(), python=platform.python_version())
    log(f'device: {machine["device"]}; torch {machine["torch"]} '
        f'({machine["cpu_capability"]}), {machine["threads"]} threads; backends: {backends}')

    rows = []
    for name, channels, (h, w) in shapes:
        length = h * w
        x = make_inputs(channels, length, device)
        g = torch.Generator().manual_seed(1)
        grad_out = torch.randn(1, channels, length, generator=g).to(device)
        log(f'\n== {name}: {channels} channels, L = {h}x{w} = {length}, N = {N_STATE}')

        ref = dict(fwd=None, train=None, extrapolated=False)
        if not args.no_reference:
            ref_len = min(length, args.ref_length) if args.quick else length
            ref['extrapolated'] = ref_len < length
            xr = {k: (v[..., :ref_len] if v.dim() >= 3 else v) for k, v in x.items()}
            scale = length / ref_len
            log(f'  sequential forward on {ref_len} positions ...')
            ref['fwd'] = time_runs(forward_step(scan_sequential, xr), device, 1, 0) * scale
            log(f'    {fmt_time(ref["fwd"], ref["extrapolated"])}')
            if not args.no_backward:
                log('  sequential forward+backward ...')
                ref['train'] = time_runs(
                    train_step(scan_sequential, xr, grad_out[..., :ref_len]), device, 1,
                    0) * scale
                log(f'    {fmt_time(ref["train"], ref["extrapolated"])}')
            del xr

        # errors against the float64 oracle on the first err_len positions (the scan is causal)
        el = min(length, err_len)
        xe = {k: (v[..., :el] if v.dim() >= 3 else v) for k, v in x.items()}
        x64 = {k: v.double().cpu() for k, v in xe.items()}
        log(f'  float64 oracle on {el} positions ...')
        oracle_out, oracle_grads = outputs_and_grads(scan_sequential, x64,
                                                     grad_out[..., :el].double().cpu())

        def errors(fn):
            out, grads = outputs_and_grads(fn, xe, grad_out[..., :el])
            return rel_err(out, oracle_out), max(
                rel_err(grads[k], oracle_grads[k]) for k in GRAD_NAMES)

        rows.append(dict(shape=name, channels=channels, length=length, hw=f'{h}x{w}',
                         impl='sequential', fwd_s=ref['fwd'], train_s=ref['train'],
                         extrapolated=ref['extrapolated'], fwd_err=None, grad_err=None))
        fe, ge = errors(scan_sequential)
        rows[-1].update(fwd_err=fe, grad_err=ge)

        for b, fn in impls.items():
            log(f'  {b}: forward ...')
            fwd = time_runs(forward_step(fn, x), device, repeat, 1, min_total, slow)
            train = None
            if args.quick and fwd > 1.0:
                log(f'    {fmt_time(fwd)}; forward+backward skipped (--quick, slow backend)')
                skipped.append(f'{b} at {name}')
            elif not args.no_backward:
                log(f'    {fmt_time(fwd)}; forward+backward ...')
                train = time_runs(train_step(fn, x, grad_out), device, repeat, 1, min_total, slow)
            fe, ge = errors(fn)
            log(f'    {fmt_time(train)}; errors {fe:.1e} / {ge:.1e}')
            rows.append(dict(shape=name, channels=channels, length=length, hw=f'{h}x{w}',
                             impl=b, fwd_s=fwd, train_s=train, extrapolated=False, fwd_err=fe,
                             grad_err=ge))
        # the reference's numbers of this shape, for the ratios
        for r in rows:
            if r['shape'] == name:
                r['fwd_speedup'] = (ref['fwd'] / r['fwd_s'] if ref['fwd'] and r['fwd_s']
                                    else None)
                r['train_speedup'] = (ref['train'] / r['train_s']
                                      if ref['train'] and r['train_s'] else None)
        del x, xe, x64

    table = format_table(rows, machine, err_len)
    if skipped:
        table += ('\n\n--quick: forward+backward not timed for backends whose forward took over '
                  '1 s: ' + ', '.join(skipped) + '.')
    print(table)
    result = dict(machine=machine, rows=rows, argv=sys.argv[1:] if argv is None else argv,
                  err_length=err_len, quick=args.quick)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return result


def format_table(rows, machine, err_len) -> str:
    def ratio(v):
        return '-' if v is None else f'{v:.0f}x' if v >= 10 else f'{v:.1f}x'

    def err(v):
        return '-' if v is None else f'{v:.1e}'

    lines = [
        f'device: {machine["device"]}, {machine["threads"]} threads, torch {machine["torch"]}'
        f' ({machine["cpu_capability"]})',
        '',
        '| shape | channels | L | implementation | forward | vs sequential | forward+backward '
        f'| vs sequential | max rel. err. out (L<={err_len}) | max rel. err. grads |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        lines.append(
            f'| {r["shape"]} | {r["channels"]} | {r["hw"]} | {r["impl"]} '
            f'| {fmt_time(r["fwd_s"], r["extrapolated"])} | {ratio(r.get("fwd_speedup"))} '
            f'| {fmt_time(r["train_s"], r["extrapolated"])} | {ratio(r.get("train_speedup"))} '
            f'| {err(r["fwd_err"])} | {err(r["grad_err"])} |')
    if any(r['extrapolated'] for r in rows):
        lines.append('')
        lines.append('~: the sequential reference was timed on a prefix of the sequence and '
                     'scaled linearly to L (--quick). At large L this understates its time (its '
                     'per-step slices are strided over a (channels, L, N) tensor), so these '
                     'ratios are conservative; the full run times the whole sequence.')
    return '\n'.join(lines)


if __name__ == '__main__':
    main()
