"""Whole-model speed of an mmmt config: inference images/s, training-step time, and the share of
the time spent in the selective scan.

The model is built from the config (``MODELS.build(cfg.model)`` after
``mmmt.utils.register_all_modules()``) with random weights -- no checkpoint is loaded, none is
needed for timing -- and fed random images of ``--shape``.

- Inference: ``model(inputs, mode='tensor')`` under ``torch.no_grad()`` in eval mode.
- Training step: ``model(inputs, mode='tensor')`` in train mode, a synthetic loss (the sum of the
  mean of every task's logits), backward, and an AdamW step. The real task losses cost little
  next to the network, and need no labels this way.
- Scan share: every ``selective_scan_fn`` that mmmt's modules call is wrapped in a timer. On the
  CPU the timer costs nothing and runs during the timed iterations themselves; on a GPU it
  synchronises around each call, so it runs in a separate series. The scan's forward is timed
  inside the model; for the training step its backward is timed by replaying every recorded
  scan call of a step (same shapes and options, SS2D-like random values) outside the model, as
  forward+backward minus forward.

- Memory: on a GPU, the peak allocated during the timed training steps.

Examples::

    python tools/analysis_tools/benchmark.py configs/mtmamba_swin-t_nyud.py
    python tools/analysis_tools/benchmark.py configs/mtmamba_swin-l_nyud.py --device cuda \\
        --json work_dirs/benchmark.json
    # one scan backend, bfloat16 autocast
    python tools/analysis_tools/benchmark.py configs/mtmamba_swin-l_nyud.py --device cuda \\
        --scan-backend triton --amp bf16
"""
import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

from mmmt.utils.cli import (add_json_output_args, add_model_input_args, check_output_file,
                            write_output_file)
from mmmt.utils.errors import run_main


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_model_input_args(parser)
    parser.add_argument('--device', default=None,
                        help='e.g. cpu, cuda, cuda:1 (default: cuda if available, else cpu)')
    parser.add_argument('--iters', type=int, default=None,
                        help='timed iterations (default: 3 inference / 1 training step on CPU, '
                        '20 on GPU)')
    parser.add_argument('--warmup', type=int, default=None,
                        help='untimed iterations first (default: 1 inference / 0 training on '
                        'CPU, 5 on GPU)')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads')
    parser.add_argument('--no-train', action='store_true', help='inference only')
    parser.add_argument('--amp', nargs='?', const='default', choices=('default', 'fp16', 'bf16'),
                        default=None, help='autocast: to bfloat16 (CPU) / float16 (CUDA) '
                        'without a value, or to the dtype given')
    parser.add_argument('--scan-backend', default=None,
                        help='force a selective-scan backend (sets MMMT_SCAN_BACKEND): torch, '
                        'cpp, cuda, triton, or triton-<kernel>[:STEPS:TILE:WARPS[:prefetch]] for '
                        'one Triton kernel pair (runs, statewise, tile; sets '
                        'MMMT_TRITON_SCAN_KERNEL)')
    add_json_output_args(parser)
    args = parser.parse_args(argv)
    args.scan_env = {}  # the environment that forces --scan-backend
    if args.scan_backend:  # resolved here, so that a misspelt name is a usage error
        from mmmt.utils.analysis import scan_backend_env
        try:
            args.scan_env = scan_backend_env(args.scan_backend)
        except ValueError as e:
            parser.error(str(e))
    return args


if __name__ == '__main__':
    parse_args()  # --help and argument errors before torch is imported

import torch  # noqa: E402

from mmmt.utils.analysis import build_model, cpu_name, log, sync  # noqa: E402


class ScanTimer:
    """Wraps the ``selective_scan_fn`` seen by mmmt's modules; accumulates the time spent in it
    and records each call's shapes and options."""

    def __init__(self, device: torch.device, sync_calls: bool):
        self.device = device
        self.sync_calls = sync_calls
        self.active = True
        self.seconds = 0.0
        self.calls: List[dict] = []
        self._patched = []

    def reset(self) -> None:
        self.seconds = 0.0
        self.calls = []

    def __enter__(self):
        import mmmt.ops
        original = mmmt.ops.selective_scan_fn

        def timed(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                  return_last_state=False):
            if not self.active:
                return original(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                return_last_state)
            if self.sync_calls:
                sync(self.device)
            t0 = time.perf_counter()
            out = original(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                           return_last_state)
            if self.sync_calls:
                sync(self.device)
            self.seconds += time.perf_counter() - t0
            self.calls.append(dict(
                    u=tuple(u.shape), B=tuple(B.shape), C=tuple(C.shape), A=tuple(A.shape),
                    D=D is not None, z=z is not None, delta_bias=delta_bias is not None,
                    delta_softplus=delta_softplus, dtype=str(u.dtype).replace('torch.', ''),
                    bc_dtype=str(B.dtype).replace('torch.', '')))
            return out

        for name, mod in list(sys.modules.items()):
            if (name.startswith('mmmt.') and mod is not None
                    and getattr(mod, 'selective_scan_fn', None) is original):
                setattr(mod, 'selective_scan_fn', timed)
                self._patched.append((mod, original))
        if not self._patched:
            log('warning: no module of mmmt calls selective_scan_fn; scan share unknown')
        return self

    def __exit__(self, *exc):
        for mod, original in self._patched:
            setattr(mod, 'selective_scan_fn', original)
        return False


def replay_scans(calls: List[dict], device: torch.device, backward: bool) -> float:
    """Time every recorded scan call again outside the model (SS2D-like random values)."""
    from mmmt.ops import selective_scan_fn
    total = 0.0
    g = torch.Generator().manual_seed(0)
    for c in calls:
        dtype = getattr(torch, c['dtype'])
        bc_dtype = getattr(torch, c.get('bc_dtype', 'float32'))
        dim = c['u'][1]

        def r(*shape, scale=1.0):
            return (torch.randn(*shape, generator=g) * scale).to(device, dtype)

        x = dict(u=r(*c['u']), delta=r(*c['u'], scale=0.1),
                 A=-torch.arange(1, c['A'][1] + 1, dtype=torch.float32).repeat(dim, 1).to(device),
                 B=r(*c['B']).to(bc_dtype), C=r(*c['C']).to(bc_dtype))
        if c['D']:
            x['D'] = torch.ones(dim, device=device)
        if c['z']:
            x['z'] = r(*c['u'])
        if c['delta_bias']:
            x['delta_bias'] = torch.full((dim, ), -4.0, device=device)  # softplus ~ 0.018
        if backward:
            x = {k: v.requires_grad_(True) for k, v in x.items()}
        sync(device)
        t0 = time.perf_counter()
        out = selective_scan_fn(**x, delta_softplus=c['delta_softplus'])
        if backward:
            out.backward(torch.ones_like(out))
        sync(device)
        total += time.perf_counter() - t0
    return total


def time_loop(step: Callable[[], None], device: torch.device, iters: int, warmup: int,
              on_timed: Optional[Callable[[], None]] = None) -> List[float]:
    """Wall times of `iters` runs after `warmup` untimed ones; `on_timed` is called in between."""
    for _ in range(warmup):
        step()
    sync(device)
    if on_timed is not None:
        on_timed()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    check_output_file(args.json, args.force)  # not after minutes of measuring
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'

    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.update(args.scan_env)
    device = torch.device(args.device)
    gpu = device.type == 'cuda'
    iters = args.iters or (20 if gpu else 3)
    warmup = args.warmup if args.warmup is not None else (5 if gpu else 1)
    h, w = args.shape

    from mmmt.ops import available_backends
    from mmmt.ops.selective_scan import _pick_backend
    from mmmt.ops.selective_scan_triton import kernel_name
    log(f'building {args.config} ...')
    model = build_model(args.config, device)
    n_params = sum(p.numel() for p in model.parameters())
    inputs = torch.randn(args.batch_size, 3, h, w, device=device)
    probe = torch.zeros(1, 4, 2, device=device)
    backend = _pick_backend(probe, torch.zeros(1, 1, 4, 2, device=device),
                            torch.zeros(1, 1, 4, 2, device=device))
    amp_dtype = {'fp16': torch.float16, 'bf16': torch.bfloat16}.get(
        args.amp, torch.float16 if gpu else torch.bfloat16)
    autocast = (torch.autocast(device.type, dtype=amp_dtype) if args.amp else
                contextlib.nullcontext())
    info = dict(
        config=args.config, shape=[h, w], batch_size=args.batch_size, params=n_params,
        device=torch.cuda.get_device_name(device) if gpu else f'{cpu_name()}, '
        f'{os.cpu_count()} CPUs', threads=torch.get_num_threads(), torch=torch.__version__,
        scan_backend=backend, backends=list(available_backends()),
        triton_kernel=kernel_name() if backend == 'triton' else None,
        amp=str(amp_dtype).replace('torch.', '') if args.amp else None)
    kernels = f' ({info["triton_kernel"]} kernels)' if info['triton_kernel'] else ''
    log(f'{n_params / 1e6:.1f} M parameters; device {info["device"]}, {info["threads"]} '
        f'threads; scan backend {backend}{kernels}; input {args.batch_size}x3x{h}x{w}')

    def infer():
        with torch.no_grad(), autocast:
            model(inputs, mode='tensor')

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            out = model(inputs, mode='tensor')
            loss = sum(v.float().mean() for v in out.values())
        loss.backward()
        optimizer.step()

    result = dict(info)
    # On the CPU the timer costs nothing, so throughput and scan share come from the same runs;
    # on a GPU the timer synchronises around every scan call, so those runs are separate.
    model.eval()
    log(f'inference: {warmup} warm-up + {iters} timed iterations ...')
    with ScanTimer(device, sync_calls=gpu) as timer:
        timer.active = not gpu
        t = time_loop(infer, device, iters, warmup, on_timed=timer.reset)
        result['infer_s'] = statistics.median(t)
        result['infer_img_per_s'] = args.batch_size / result['infer_s']
        log(f'  {result["infer_s"] * 1e3:.0f} ms per batch, '
            f'{result["infer_img_per_s"]:.2f} img/s')
        if gpu:
            log('inference with the scan timed ...')
            timer.active = True
            t = time_loop(infer, device, iters, 0, on_timed=timer.reset)
        result['infer_scan_s'] = timer.seconds / len(t)
        result['infer_scan_calls'] = len(timer.calls) // len(t)
        result['infer_scan_share'] = timer.seconds / sum(t)
    log(f'  scan {result["infer_scan_s"] * 1e3:.0f} ms per batch '
        f'({100 * result["infer_scan_share"]:.1f}%) in {result["infer_scan_calls"]} calls')

    if not args.no_train:
        model.train()
        titers = args.iters or (iters if gpu else 1)
        twarm = warmup if gpu else (args.warmup or 0)
        log(f'training step: {twarm} warm-up + {titers} timed iterations ...')
        with ScanTimer(device, sync_calls=gpu) as timer:
            timer.active = not gpu
            if gpu:
                torch.cuda.reset_peak_memory_stats(device)
            t = time_loop(train, device, titers, twarm, on_timed=timer.reset)
            result['train_s'] = statistics.median(t)
            if gpu:
                result['train_peak_mem'] = torch.cuda.max_memory_allocated(device)
            log(f'  {result["train_s"] * 1e3:.0f} ms per step')
            if gpu:
                log('training step with the scan timed ...')
                timer.active = True
                t = time_loop(train, device, 1, 0, on_timed=timer.reset)
            fwd_scan = timer.seconds / len(t)
            calls = timer.calls[:len(timer.calls) // len(t)]
        log(f'replaying the {len(calls)} scan calls of a step, forward and forward+backward ...')
        replay_fwd = replay_scans(calls, device, backward=False)
        replay_both = replay_scans(calls, device, backward=True)
        bwd_scan = max(0.0, replay_both - replay_fwd)
        result['train_scan_fwd_s'] = fwd_scan
        result['train_scan_bwd_s'] = bwd_scan
        result['train_scan_share'] = (fwd_scan + bwd_scan) / statistics.mean(t)
        log(f'  scan forward {fwd_scan * 1e3:.0f} ms + backward (replayed) {bwd_scan * 1e3:.0f} '
            f'ms of {statistics.mean(t) * 1e3:.0f} ms ({100 * result["train_scan_share"]:.1f}%)')

    print(format_result(result))
    if args.json:
        write_output_file(json.dumps(result, indent=1), args.json, args.force)
    return result


def format_result(r: Dict) -> str:
    lines = [
        f'config: {r["config"]}  input: {r["batch_size"]}x3x{r["shape"][0]}x{r["shape"][1]}  '
        f'params: {r["params"] / 1e6:.1f} M' + (f'  amp {r["amp"]}' if r['amp'] else ''),
        f'device: {r["device"]}, {r["threads"]} threads, torch {r["torch"]}, '
        f'scan backend: {r["scan_backend"]}',
        '',
        '| measurement | time | throughput | scan share |',
        '|---|---|---|---|',
        f'| inference (per batch) | {r["infer_s"] * 1e3:.0f} ms | {r["infer_img_per_s"]:.2f} img/s '
        f'| {100 * r["infer_scan_share"]:.1f}% ({r["infer_scan_s"] * 1e3:.0f} ms in '
        f'{r["infer_scan_calls"]} calls) |',
    ]
    if 'train_s' in r:
        lines.append(
            f'| training step (fwd+bwd+AdamW) | {r["train_s"] * 1e3:.0f} ms '
            f'| {r["batch_size"] / r["train_s"]:.2f} img/s '
            f'| {100 * r["train_scan_share"]:.1f}% (fwd {r["train_scan_fwd_s"] * 1e3:.0f} ms, '
            f'bwd ~{r["train_scan_bwd_s"] * 1e3:.0f} ms) |')
    if r.get('train_peak_mem'):
        lines.append(f'\nPeak GPU memory allocated in the training steps: '
                     f'{r["train_peak_mem"] / 2**30:.2f} GiB.')
    return '\n'.join(lines)


if __name__ == '__main__':
    run_main(main)
