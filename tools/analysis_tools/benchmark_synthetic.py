"""Time the synthetic dataset generator (``mmmt.testing.generate``).

The unit tests check what the generator writes, not how fast: timings on a shared machine are
noise there. This prints the figure a unit test used to assert (20 PASCAL-layout images of
120x160, which it allowed 10 s).

Example::

    python tools/analysis_tools/benchmark_synthetic.py pascal --train 16 --val 4 --size 120 160
"""
import argparse
import json
import sys
import tempfile
import time

from mmmt.utils.errors import UserInputError, run_main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('dataset', choices=['nyud', 'pascal'])
    parser.add_argument('--train', type=int, default=16, help='training images')
    parser.add_argument('--val', type=int, default=4, help='validation images')
    parser.add_argument('--size', type=int, nargs=2, default=(120, 160), metavar=('H', 'W'))
    parser.add_argument('--repeat', type=int, default=3, help='timed runs (the best is shown)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.repeat < 1 or args.train + args.val < 1:
        raise UserInputError('--repeat and the number of images must be >= 1')
    from mmmt.testing import generate  # imports torch: not before --help
    times = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as root:  # written to a scratch folder, then dropped
            start = time.perf_counter()
            generate(args.dataset, root, args.train, args.val, seed=args.seed, size=args.size)
            times.append(time.perf_counter() - start)
    num = args.train + args.val
    print(json.dumps(dict(dataset=args.dataset, images=num, size=list(args.size),
                          best_s=round(min(times), 3),
                          per_image_s=round(min(times) / num, 4))))
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
