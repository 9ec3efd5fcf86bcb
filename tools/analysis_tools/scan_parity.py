"""Every selective-scan backend of a device against the CPU scan: output and every input
gradient, at the Swin-L NYUD stage shapes (step 3 of ``tools/analysis_tools/gpu_check.sh``).

The reference is the C++ CPU kernel (the PyTorch scan where it cannot be built), itself checked
against a float64 oracle by the tests. Each backend runs SS2D-like inputs
(``mmmt.utils.analysis.scan_inputs``) in float32, and the Triton kernels (one row per kernel pair:
``triton-runs``, ``triton-statewise``, ``triton-tile``) also with bfloat16 activations and float32
parameters, as under AMP; those rows (named ``...:bfloat16``) only have to agree to bfloat16
rounding. Each row also has the time of one forward+backward after a warm-up run; a backend
that raises (a kernel that does not compile, out of memory) gives a row with its error.

Examples::

    python tools/analysis_tools/scan_parity.py --device cuda --json parity.json
    python tools/analysis_tools/scan_parity.py --device cuda --shapes small --backends triton
"""
import argparse
import json
import sys
import time
import warnings
from typing import List, Optional

from mmmt.utils.cli import add_json_output_args, check_output_file, write_output_file
from mmmt.utils.errors import run_main

# the tolerances of a row: float32 inputs, and bfloat16 activations against float32 ones
TOLERANCES = {False: (1e-4, 1e-3), True: (3e-2, 5e-2)}  # (output, gradients)


def main(argv: Optional[List[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cuda', help='the device of the backends checked')
    parser.add_argument('--shapes', nargs='+', default=None,
                        help='shape names of benchmark_scan.py (default: all four)')
    parser.add_argument('--size', nargs=3, type=int, default=None,
                        metavar=('CHANNELS', 'H', 'W'),
                        help='one other shape instead (channels divisible by 4)')
    parser.add_argument('--backends', nargs='+', default=None,
                        help='backends to check (default: triton, cuda, torch where '
                        'available; "triton" is every kernel pair)')
    parser.add_argument('--no-bf16', action='store_true',
                        help='skip the Triton rows with bfloat16 activations')
    add_json_output_args(parser, 'rows')
    args = parser.parse_args(argv)
    check_output_file(args.json, args.force)  # not after minutes of measuring

    import torch

    from mmmt.ops import available_backends, selective_scan_fn
    from mmmt.utils.analysis import (SCAN_GRAD_NAMES, SCAN_SHAPES, forced_scan_backend, rel_err,
                                     scan_backend_names, scan_inputs, scan_outputs_and_grads,
                                     select_scan_backends)
    device = torch.device(args.device)

    def run(backend, x, grad_out, dtype=None):
        with forced_scan_backend(backend):
            out, grads = scan_outputs_and_grads(selective_scan_fn, x, grad_out, dtype)
        if out.is_cuda:
            torch.cuda.synchronize(out.device)
        return out.cpu(), {k: v.cpu() for k, v in grads.items()}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        backends = available_backends()
    print('backends:', backends, [str(m.message) for m in caught], flush=True)
    reference = 'cpp' if 'cpp' in backends else 'torch'
    names = scan_backend_names(b for b in ('triton', 'cuda', 'torch')
                               if b == 'torch' or b in backends)
    if args.backends:
        names = select_scan_backends(names, args.backends)
    variants = [(b, None) for b in names] + [
        (b, torch.bfloat16) for b in names if b.startswith('triton') and not args.no_bf16]
    if args.size:
        channels, h, w = args.size
        shapes = [(f'{channels} channels, {h}x{w}', channels, (h, w))]
    else:
        shapes = [s for s in SCAN_SHAPES if not args.shapes or s[0] in args.shapes]
    if not shapes or not variants:
        parser.error(f'nothing to check: shapes {args.shapes}, backends {args.backends} '
                     f'(available: {names})')

    rows = []
    for name, channels, (h, w) in shapes:
        x = scan_inputs(channels, h * w, 'cpu')
        g = torch.randn(1, channels, h * w, generator=torch.Generator().manual_seed(1))
        t0 = time.perf_counter()
        ref, ref_grads = run(reference, x, g)
        t_ref = time.perf_counter() - t0
        for backend, dtype in variants:
            label = backend if dtype is None else f'{backend}:{str(dtype)[6:]}'
            xd = {k: v.to(device) for k, v in x.items()}
            try:
                run(backend, xd, g.to(device), dtype)  # warm-up (compiles the Triton kernels)
                t0 = time.perf_counter()
                out, grads = run(backend, xd, g.to(device), dtype)
                seconds = time.perf_counter() - t0
            except Exception as e:  # noqa: BLE001 -- a failing backend is a result too
                error = f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'
                rows.append(dict(shape=name, channels=channels, length=h * w, cpu=reference,
                                 cuda=label, ok=False, error=error))
                print(f'{name:15s} {reference:>5s} vs {label:25s}  FAILED: {error}', flush=True)
                if device.type == 'cuda':
                    torch.cuda.empty_cache()
                continue
            row = dict(shape=name, channels=channels, length=h * w, cpu=reference, cuda=label,
                       out_rel_err=rel_err(out, ref),
                       grad_rel_err={k: rel_err(grads[k], ref_grads[k]) for k in SCAN_GRAD_NAMES},
                       cpu_fwd_bwd_s=t_ref, gpu_fwd_bwd_s=seconds)
            out_tol, grad_tol = TOLERANCES[dtype is not None]
            row['ok'] = (row['out_rel_err'] < out_tol and
                         max(row['grad_rel_err'].values()) < grad_tol)
            rows.append(row)
            print(f"{name:15s} {reference:>5s} vs {label:25s}  out {row['out_rel_err']:.1e}  "
                  f"grads {max(row['grad_rel_err'].values()):.1e}  fwd+bwd {reference} "
                  f"{t_ref:.3f} s / {device.type} {seconds * 1e3:.1f} ms"
                  f"{'' if row['ok'] else '  MISMATCH'}", flush=True)
    ok = all(r['ok'] for r in rows)
    result = dict(backends=list(backends), ok=ok, rows=rows,
                  gpu=torch.cuda.get_device_name(device) if device.type == 'cuda' else
                  str(device))
    if args.json:  # into a folder made if missing (not a traceback after the whole comparison)
        write_output_file(json.dumps(result, indent=1), args.json, args.force)
    print('PARITY', 'OK' if ok else 'MISMATCH')
    return result


if __name__ == '__main__':
    sys.exit(0 if run_main(main)['ok'] else 1)
