"""The GPU check's results against the Triton scan's acceptance targets, from the files
``tools/analysis_tools/gpu_check.sh`` writes (run by it as its last step).

Targets (docs/benchmarks_gpu.md): at the Swin-L stage-3 shape, the default Triton kernels'
forward+backward at least 50x faster than the PyTorch CUDA scan and their forward within 3x of
the memory roofline; in a whole Swin-L NYUD training step, the scan under 25% of the time. Also:
whether every CUDA backend matched the CPU scan, and the fastest launch sizes of the sweep,
forward+backward and forward (with the forward's multiple of the roofline: a size that meets
that target where the default does not is a candidate default).

Example::

    python tools/analysis_tools/gpu_check_summary.py work_dirs/gpu_check
"""
import argparse
import glob
import json
import os.path as osp
import sys
from typing import Dict, List, Optional

from mmmt.utils.cli import check_output_file, write_output_file
from mmmt.utils.errors import UserInputError, run_main

STAGE3 = 'swin-l stage 3'
TARGETS = dict(speedup=50.0, fwd_vs_roofline=3.0, train_scan_share=0.25)


def _read(path: str) -> Optional[dict]:
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _stage3(rows: List[dict], impl: str) -> Optional[dict]:
    return next((r for r in rows if r['shape'] == STAGE3 and r['impl'] == impl), None)


def summarise(out_dir: str, default_kernel: str = 'runs') -> Dict[str, dict]:
    """One entry per target and fact: ``value``, ``target`` (if any), ``ok`` (True, False,
    or None where the file or the number is missing) and ``source``."""
    res: Dict[str, dict] = {}
    parity = _read(osp.join(out_dir, 'parity.json'))
    res['parity'] = dict(value=None if parity is None else parity['ok'],
                         ok=None if parity is None else bool(parity['ok']),
                         source='parity.json')
    scan = _read(osp.join(out_dir, 'benchmark_scan.json'))
    rows = scan['rows'] if scan else []
    triton = _stage3(rows, f'triton-{default_kernel}')
    torch_row = _stage3(rows, 'torch')
    torch_train, torch_source = (torch_row or {}).get('train_s'), 'benchmark_scan.json'
    if torch_train is None and parity:  # --quick skips slow fwd+bwd: the parity step timed it
        torch_train = next((r.get('gpu_fwd_bwd_s') for r in parity['rows']
                            if r['shape'] == STAGE3 and r['cuda'] == 'torch'), None)
        torch_source = 'parity.json (one run)'
    triton_train = (triton or {}).get('train_s')
    speedup = torch_train / triton_train if torch_train and triton_train else None
    res['stage3_fwd_bwd_speedup_vs_torch'] = dict(
        value=speedup, target=TARGETS['speedup'],
        ok=None if speedup is None else speedup >= TARGETS['speedup'],
        triton_s=triton_train, torch_s=torch_train,
        source=f'benchmark_scan.json (triton-{default_kernel}), torch from {torch_source}')
    roof = (triton or {}).get('fwd_vs_roofline')
    res['stage3_fwd_vs_roofline'] = dict(
        value=roof, target=TARGETS['fwd_vs_roofline'],
        ok=None if roof is None else roof <= TARGETS['fwd_vs_roofline'],
        fwd_s=(triton or {}).get('fwd_s'), source='benchmark_scan.json')
    for prec in ('fp32', 'bf16'):
        step = _read(osp.join(out_dir, f'benchmark_swin-l_nyud_triton_{prec}.json'))
        share = None if step is None else step.get('train_scan_share')
        res[f'train_scan_share_{prec}'] = dict(
            value=share, target=TARGETS['train_scan_share'],
            ok=None if share is None else share < TARGETS['train_scan_share'],
            train_s=None if step is None else step.get('train_s'),
            peak_mem=None if step is None else step.get('train_peak_mem'),
            source=f'benchmark_swin-l_nyud_triton_{prec}.json')
    sweep = (_read(osp.join(out_dir, 'triton_sweep.json')) or {}).get('rows', [])
    for name, key in (('sweep_fastest', 'train_s'), ('sweep_fastest_forward', 'fwd_s')):
        timed = [r for r in sweep if r.get(key)]
        best = min(timed, key=lambda r: r[key]) if timed else {}
        res[name] = dict(value=best.get('impl'), train_s=best.get('train_s'),
                         fwd_s=best.get('fwd_s'), fwd_vs_roofline=best.get('fwd_vs_roofline'),
                         ok=None, source='triton_sweep.json')
    return res


def format_summary(res: Dict[str, dict]) -> str:
    def show(v):
        if v is None:
            return 'missing'
        return f'{v:.3g}' if isinstance(v, float) else str(v)

    lines = ['| check | value | target | result | from |', '|---|---|---|---|---|']
    for name, r in res.items():
        verdict = {True: 'met', False: 'NOT met', None: 'unknown'}[r['ok']]
        value = show(r['value'])
        if name.startswith('sweep_'):  # facts, no target: what each size took
            verdict = ''
            if r['value'] is not None:
                value += (f": fwd {show(r['fwd_s'])} s ({show(r['fwd_vs_roofline'])}x the "
                          f"roofline), fwd+bwd {show(r['train_s'])} s")
        target = show(r['target']) if 'target' in r else ''
        lines.append(f"| {name} | {value} | {target} | {verdict} | {r['source']} |")
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out_dir', help='the folder gpu_check.sh wrote ($OUT)')
    parser.add_argument('--kernel', default='runs',
                        help='the Triton kernel pair the targets apply to (the default one)')
    parser.add_argument('--force', action='store_true',
                        help='replace the summary.{json,md} of an earlier summary '
                        '(gpu_check.sh passes it: they are its own)')
    args = parser.parse_args(argv)
    outputs = [osp.join(args.out_dir, name) for name in ('summary.json', 'summary.md')]
    for path in outputs:
        check_output_file(path, args.force, option=None)
    if not glob.glob(osp.join(args.out_dir, '*.json')):
        raise UserInputError(f'{args.out_dir}: no results of gpu_check.sh (*.json) here')
    res = summarise(args.out_dir, args.kernel)
    text = format_summary(res)
    print(text)
    write_output_file(json.dumps(res, indent=1), outputs[0], args.force, option=None)
    write_output_file(text + '\n', outputs[1], args.force, option=None)
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
