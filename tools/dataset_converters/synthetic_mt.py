"""Write a synthetic NYUDv2, PASCAL-Context or Cityscapes multi-task dataset in the real layout.

Examples::

    python tools/dataset_converters/synthetic_mt.py nyud data/NYUDv2 --train 20 --val 10
    python tools/dataset_converters/synthetic_mt.py pascal data/PASCALContext \
        --train 20 --val 10 --seed 1 --size 120 160
    python tools/dataset_converters/synthetic_mt.py cityscapes data/cityscapes \
        --train 20 --val 10 --size 256 512

NYUD and PASCAL images are ray-cast from random 3D scenes (see ``mmmt/testing/``),
Cityscapes street scenes are drawn in 2D (``mmmt/testing/synthetic_cityscapes.py``); the output
is identical for identical arguments.
"""
import argparse
import sys
import time

from mmmt.utils.errors import UserInputError, run_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate a synthetic multi-task dataset (NYUDv2, PASCAL-Context or '
        'Cityscapes layout).')
    parser.add_argument('dataset', choices=['nyud', 'pascal', 'cityscapes'],
                        help='which layout to write')
    parser.add_argument('out_dir', help='dataset root to create, e.g. data/NYUDv2')
    parser.add_argument('--train', type=int, default=20, help='number of train images')
    parser.add_argument('--val', type=int, default=10, help='number of val (test) images')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--size', type=int, nargs=2, metavar=('H', 'W'), default=None,
        help='image size (default: 425 560 for nyud, 375 500 for pascal, 1024 2048 for '
        'cityscapes; pascal images are randomly portrait (W, H) with probability 0.3)')
    parser.add_argument('--quiet', action='store_true', help='no progress output')
    parser.add_argument('--force', action='store_true',
                        help='replace OUT_DIR when it holds a synthetic dataset written by this '
                        'tool (the new one is built beside it and swapped in when complete, so '
                        'an interrupted run leaves the old one); a folder with other files is '
                        'never replaced')
    args = parser.parse_args(argv)
    if args.train < 0 or args.val < 0 or args.train + args.val == 0:
        parser.error('--train and --val must be >= 0 and not both 0')
    if args.size is not None and min(args.size) < 8:
        parser.error('--size must be at least 8 8')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    # after parsing: --help answers at once
    from mmmt.testing import generate
    from mmmt.utils.progress import ProgressBar
    start = time.time()
    bar = None

    def progress(done: int, total: int, img_id: str) -> None:
        nonlocal bar
        if bar is None:  # only once the output folder was accepted
            bar = ProgressBar(total, file=sys.stderr, description='images')
        bar.update()

    try:
        splits = generate(args.dataset, args.out_dir, args.train, args.val, seed=args.seed,
                          size=args.size, progress=None if args.quiet else progress,
                          overwrite=args.force)
    except (FileExistsError, NotADirectoryError) as e:  # the output folder: the user's choice
        raise UserInputError(str(e)) from None
    if bar is not None:
        bar.finish()
    print(f'Wrote {args.dataset} to {args.out_dir}: {len(splits["train"])} train, '
          f'{len(splits["val"])} val images in {time.time() - start:.1f}s')
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
