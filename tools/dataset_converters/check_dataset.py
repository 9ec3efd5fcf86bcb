"""Check a downloaded (or generated) multi-task dataset: every file of every split is decoded.

Examples::

    python tools/dataset_converters/check_dataset.py nyud data/NYUDv2
    python tools/dataset_converters/check_dataset.py pascal data/PASCALContext --workers 4
    python tools/dataset_converters/check_dataset.py cityscapes data/cityscapes
    python tools/dataset_converters/check_dataset.py nyud data/NYUDv2 --splits val \
        --tasks semseg depth
    # a dataset of one's own: the datasets of a config's train/val dataloaders
    python tools/dataset_converters/check_dataset.py configs/my_indoor.py [DATA_ROOT]

Each sample goes through the training loaders (``LoadMultiTaskImage`` and
``LoadMultiTaskAnnotations``), so anything that would stop or silently distort training is found
up front: missing or unreadable files, label values outside the class range, depth maps with
NaN/inf or negative values, and annotations whose size differs from their image (the loaders
resize those with a warning). Every problem is listed with its file; the exit status is 1 for
an error (with ``--strict`` also for size mismatches and non-standard split sizes, which are
otherwise warnings).
"""
import argparse
import sys
import time

from mmmt.utils.cli import check_config_file
from mmmt.utils.errors import run_main

#: The layouts of mmmt.datasets.LAYOUTS, written out so that --help needs no import of mmmt
#: (which imports torch).
LAYOUT_NAMES = ('cityscapes', 'nyud', 'pascal')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Decode every file of a multi-task dataset and report all problems.')
    parser.add_argument('dataset', help=f'which layout ({", ".join(LAYOUT_NAMES)}), or a config '
                        'file (.py) whose <split>_dataloader datasets are checked')
    parser.add_argument('data_root', nargs='?',
                        help="dataset root, e.g. data/NYUDv2 (with a config: replaces its "
                        "datasets' data_root)")
    parser.add_argument('--splits', nargs='+', default=['train', 'val'], help='splits to check')
    parser.add_argument('--tasks', nargs='+', help='tasks to check (default: all of the layout)')
    parser.add_argument('--workers', type=int, default=1, help='worker processes')
    parser.add_argument('--max-listed', type=int, default=20,
                        help='problems listed per split and kind (all are counted)')
    parser.add_argument('--strict', action='store_true',
                        help='also fail on size mismatches and non-standard split sizes')
    args = parser.parse_args(argv)
    args.is_config = args.dataset.endswith('.py')
    if not args.is_config and args.dataset not in LAYOUT_NAMES:
        parser.error(f'dataset: expected one of {", ".join(LAYOUT_NAMES)} or a config file '
                     f'(.py), got {args.dataset!r}')
    if not args.is_config and args.data_root is None:
        parser.error(f'{args.dataset}: give the dataset root, e.g. data/NYUDv2')
    if args.workers < 1:
        parser.error('--workers must be >= 1')
    if args.max_listed < 0:
        parser.error('--max-listed must be >= 0')
    return args


def print_items(split: str, kind: str, items: list, max_listed: int) -> None:
    if not items:
        return
    print(f'{split}: {len(items)} {kind}:')
    for item in items[:max_listed]:
        print(f'  {item}')
    if len(items) > max_listed:
        print(f'  ... and {len(items) - max_listed} more')


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.is_config:
        check_config_file(args.dataset)  # a missing config: one line, before the imports
    from mmmt.datasets import STANDARD_SPLIT_SIZES, check_config_split, check_split
    start = time.time()
    failed = False
    for split in args.splits:
        try:
            if args.is_config:
                report = check_config_split(args.dataset, split, args.data_root, args.tasks,
                                            args.workers)
            else:
                report = check_split(args.dataset, args.data_root, split, args.tasks,
                                     args.workers)
        except (FileNotFoundError, ValueError) as e:  # no or empty split list, unknown task
            print(f'{split}: {e}')
            failed = True
            continue
        print(f'{split}: {report["size"]} samples, tasks {report["tasks"]}')
        standard = STANDARD_SPLIT_SIZES.get(args.dataset, {}).get(split)
        off_size = standard is not None and report['size'] != standard
        if off_size:
            print(f'{split}: {"error" if args.strict else "warning"}: {report["size"]} samples, '
                  f'the standard split has {standard}'
                  + (' (--strict makes this an error)' if not args.strict else ''))
            failed |= args.strict
        print_items(split, 'errors', report['errors'], args.max_listed)
        print_items(split, 'warnings', report['warnings'], args.max_listed)
        failed |= bool(report['errors']) or (args.strict and bool(report['warnings']))
        if not report['errors'] and not report['warnings'] and not (off_size and args.strict):
            print(f'{split}: OK')
    where = f' at {args.data_root}' if args.data_root else ''
    print(f'{"FAILED" if failed else "OK"}: {args.dataset}{where} '
          f'({time.time() - start:.1f}s)')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(run_main(main))
