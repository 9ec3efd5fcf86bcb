"""Plot training curves and summarise training time from mmengine's JSON logs.

Examples::

    # losses of two runs (scalars.json is in <work_dir>/<timestamp>/vis_data/)
    python tools/analysis_tools/analyze_logs.py plot_curve run_a/scalars.json run_b/scalars.json \
        --keys loss raw_semseg raw_depth --legend a b --out losses.png
    # validation metrics over training
    python tools/analysis_tools/analyze_logs.py plot_curve scalars.json \
        --keys semseg/mIoU edge/odsF --out val.png
    python tools/analysis_tools/analyze_logs.py cal_train_time scalars.json

Training records are plotted against ``iter``, validation records (keys with a ``/``) against
``step``. Every key must occur in every log: a missing key is reported with the keys the log
has. The picture is written atomically and never over an existing file unless ``--force``.
"""
import argparse
import io
import os.path as osp
import sys
from typing import Dict, List

import numpy as np

from mmmt.utils.analysis import read_json_lines
from mmmt.utils.errors import run_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Analyze mmengine JSON logs')
    sub = parser.add_subparsers(dest='command', required=True)
    plot = sub.add_parser('plot_curve', help='plot keys of one or more logs over iterations')
    plot.add_argument('logs', nargs='+', help='scalars.json (or <timestamp>.json) files')
    plot.add_argument('--keys', nargs='+', default=['loss'], help='what to plot')
    plot.add_argument('--legend', nargs='+', help='one name per log (default: the file path)')
    plot.add_argument('--title', help='figure title')
    plot.add_argument('--out', required=True, help='output picture (.png, .pdf, .svg)')
    plot.add_argument('--force', action='store_true', help='overwrite --out')
    time_ = sub.add_parser('cal_train_time', help='average time per training iteration')
    time_.add_argument('logs', nargs='+', help='scalars.json files')
    time_.add_argument('--include-first', action='store_true',
                       help='include the first logged interval (warm-up, data loader start)')
    args = parser.parse_args(argv)
    if args.command == 'plot_curve' and args.legend and len(args.legend) != len(args.logs):
        parser.error(f'--legend needs {len(args.logs)} names, got {len(args.legend)}')
    return args


def load_log(path: str) -> List[dict]:
    """The records of a JSON-lines log; an empty log is an error."""
    records = read_json_lines(path)
    if not records:
        raise SystemExit(f'{path} has no records')
    return records


def available_keys(records: List[dict]) -> List[str]:
    """The plottable keys of a log."""
    return sorted({k for r in records for k in r} - {'iter', 'step', 'epoch'})


def series(records: List[dict], key: str, path: str) -> Dict[str, np.ndarray]:
    """x (iteration) and y of ``key``; validation keys use ``step``, training keys ``iter``."""
    x_key = 'step' if '/' in key else 'iter'
    points = [(r[x_key], r[key]) for r in records if key in r and x_key in r]
    if not points:
        raise SystemExit(f'{path} has no {key!r}; it has: {", ".join(available_keys(records))}')
    x, y = zip(*points)
    return dict(x=np.asarray(x, dtype=np.float64), y=np.asarray(y, dtype=np.float64))


def plot_curve(args) -> None:
    import matplotlib
    matplotlib.use('Agg')  # no display needed
    import matplotlib.pyplot as plt

    from mmmt.utils.fileio import atomic_write, removed_leftovers_note
    if osp.exists(args.out) and not args.force:
        raise SystemExit(f'{args.out} exists; pass --force to overwrite it')
    logs = [load_log(p) for p in args.logs]
    legends = args.legend or args.logs
    # a key missing from some logs is plotted for the others and named, not a refusal
    present = {key: [i for i, records in enumerate(logs)
                     if any(key in r for r in records)] for key in args.keys}
    for key, found in present.items():
        for i in sorted(set(range(len(logs))) - set(found)):
            print(f'not plotted: {key!r} is not in {args.logs[i]} (it has: '
                  f'{", ".join(available_keys(logs[i]))})', file=sys.stderr)
    keys = [key for key in args.keys if present[key]]
    if not keys:
        raise SystemExit(f'none of {", ".join(args.keys)} is in the log(s)')
    fig, axes = plt.subplots(len(keys), 1, figsize=(8, 3 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        for i in present[key]:
            records, path, name = logs[i], args.logs[i], legends[i]
            data = series(records, key, path)
            ax.plot(data['x'], data['y'], label=name, marker='o' if data['x'].size < 20 else None)
        ax.set_ylabel(key)
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
        if len(logs) > 1:
            ax.legend()
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=osp.splitext(args.out)[1][1:] or 'png', dpi=100)
    plt.close(fig)
    note = removed_leftovers_note(osp.dirname(osp.abspath(args.out)))
    if note:
        print(note)
    try:  # not a plain replace: the file may have appeared since the check above
        atomic_write(buffer.getvalue(), args.out, overwrite=args.force)
    except FileExistsError:
        raise SystemExit(f'{args.out} exists; pass --force to overwrite it') from None
    print(f'{", ".join(keys)} of {len(logs)} log(s) plotted to {args.out}')


def cal_train_time(args) -> None:
    for path in args.logs:
        data = series(load_log(path), 'time', path)
        times = data['y'] if args.include_first else data['y'][1:]
        if times.size == 0:
            raise SystemExit(f'{path}: only one logged interval; use --include-first')
        slowest, fastest = int(np.argmax(times)), int(np.argmin(times))
        offset = 0 if args.include_first else 1
        print(f'{path}\n  average {times.mean():.4f} s/iter (std {times.std():.4f}) over '
              f'{times.size} logged intervals\n'
              f'  slowest at iter {int(data["x"][slowest + offset])}: {times[slowest]:.4f} s, '
              f'fastest at iter {int(data["x"][fastest + offset])}: {times[fastest]:.4f} s')


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.command == 'plot_curve':
        plot_curve(args)
    else:
        cal_train_time(args)


if __name__ == '__main__':
    sys.exit(run_main(main))
