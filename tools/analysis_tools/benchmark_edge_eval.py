"""Time the pure-Python boundary evaluation (odsF / oisF / AP) on synthetic images.

Ground truth: one-pixel boundaries of a random Voronoi partition (25-55 regions) cut by a few
random straight creases. Prediction: what a trained boundary head tends to output -- the ground
truth smoothly warped by a few pixels and blurred into ridges several pixels wide, of varying
strength, with some boundaries missed, spurious texture responses and a noisy background -- as
probabilities in [0, 1] (odsF around 70-80, like real NYUD-v2 models). Every image is evaluated
exactly as ``MultiTaskMetric`` does (99 thresholds, 8-bit quantisation, thinning, one-to-one
matching within ``max_dist`` of the diagonal).

Example::

    python tools/analysis_tools/benchmark_edge_eval.py --num 100 --size 448 576 --nproc 2
"""
import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Tuple

import numpy as np
from scipy import ndimage

from mmmt.evaluation.functional import (boundary_metrics, boundary_pr_counts,
                                        resolve_edge_thresholds, seg2bmap, thin_binary)


def synthesize(seed: int, size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """One (prediction, ground truth) pair of float32 (H, W) maps."""
    rng = np.random.default_rng(seed)
    h, w = size
    num_sites = int(rng.integers(25, 55))
    site_ids = np.zeros((h, w), dtype=np.int64)
    site_ids.flat[rng.choice(h * w, num_sites, replace=False)] = np.arange(1, num_sites + 1)
    # Voronoi regions: the id of the nearest site, via the distance transform's indices.
    _, (iy, ix) = ndimage.distance_transform_edt(site_ids == 0, return_indices=True)
    labels = site_ids[iy, ix]
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(int(rng.integers(2, 6))):  # creases inside regions
        a, b, c = rng.normal(size=3)
        labels = labels * 2 + ((a * yy + b * xx + c * (h + w) / 4) > 0)
    gt = thin_binary(seg2bmap(labels))

    # Prediction: warped, blurred, partly missed ground truth plus clutter.
    def smooth_noise(scale: float) -> np.ndarray:
        n = ndimage.gaussian_filter(rng.standard_normal((h, w)), scale)
        return n / (n.std() + 1e-12)

    strength = 1.0 / (1.0 + np.exp(-1.5 * smooth_noise(20)))  # weak and strong boundaries
    missed = smooth_noise(15) > 1.0  # about 16 % of the boundaries not detected
    ridge = gt * strength * ~missed
    warp = [yy + 1.5 * smooth_noise(30), xx + 1.5 * smooth_noise(30)]  # +-2..3 px drift
    ridge = ndimage.map_coordinates(ridge.astype(np.float64), warp, order=1)
    pred = ndimage.gaussian_filter(ridge, float(rng.uniform(1.2, 2.0))) * 5.0
    texture = np.clip(smooth_noise(1.5) - 1.0, 0, None) * (smooth_noise(12) > 0.3)
    pred = pred + 0.6 * texture + 0.15 * np.abs(smooth_noise(4))
    pred = 1.0 / (1.0 + np.exp(-(7 * pred - 4.0)))  # sigmoid-like squashing
    return pred.astype(np.float32), gt.astype(np.float32)


def _evaluate(args) -> Tuple[np.ndarray, float, float]:
    seed, size, kwargs = args
    pred, gt = synthesize(seed, size)
    start, cpu_start = time.perf_counter(), time.process_time()
    counts = boundary_pr_counts(pred, gt, **kwargs)
    return counts, time.perf_counter() - start, time.process_time() - cpu_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--num', type=int, default=100, help='number of images')
    parser.add_argument('--size', type=int, nargs=2, default=(448, 576), metavar=('H', 'W'))
    parser.add_argument('--max-dist', type=float, default=0.011,
                        help='tolerance, fraction of the diagonal (NYUD 0.011, PASCAL 0.0075)')
    parser.add_argument('--thresholds', type=int, default=99, help='number of thresholds')
    parser.add_argument('--nproc', type=int, default=1, help='worker processes')
    parser.add_argument('--nms', action='store_true', help='apply non-maximum suppression')
    args = parser.parse_args()

    thresholds = resolve_edge_thresholds(None if args.thresholds == 99 else args.thresholds)
    kwargs = dict(thresholds=thresholds, max_dist=args.max_dist, nms=args.nms)
    size = tuple(args.size)
    print(f'synthesising {args.num} images of {size[0]}x{size[1]} (not timed) ...', flush=True)
    jobs = [(seed, size, kwargs) for seed in range(args.num)]
    # Synthesis runs inside the workers but outside the per-image timing; the wall clock includes
    # it (and whatever else runs on the machine), so both are reported.
    start = time.perf_counter()
    if args.nproc > 1:
        ctx = multiprocessing.get_context('spawn')
        with ProcessPoolExecutor(args.nproc, mp_context=ctx) as pool:
            results = list(pool.map(_evaluate, jobs, chunksize=1))
    else:
        results = [_evaluate(job) for job in jobs]
    wall = time.perf_counter() - start
    counts = [r[0] for r in results]
    eval_wall = sum(r[1] for r in results)
    eval_cpu = sum(r[2] for r in results)
    res = boundary_metrics(counts, thresholds)
    workers = max(args.nproc, 1)
    try:
        load = ', load average %.2f %.2f %.2f' % os.getloadavg()
    except OSError:
        load = ''
    print(f'cpu cores: {os.cpu_count()}{load}; worker processes: {workers}; '
          f'python {sys.version.split()[0]}')
    print(f'per image: {1000 * eval_cpu / args.num:.0f} ms CPU, '
          f'{1000 * eval_wall / args.num:.0f} ms elapsed ({len(thresholds)} thresholds, '
          f'max_dist {args.max_dist}{", nms" if args.nms else ""})')
    print(f'evaluation of {args.num} images: {eval_cpu:.1f} s CPU -> {eval_cpu / workers:.1f} s '
          f'on {workers} free core(s), i.e. {args.num * workers / eval_cpu:.2f} images/s')
    print(f'measured wall clock: {wall:.1f} s ({args.num / wall:.2f} images/s) including '
          'synthesis, process start-up and any other load on the machine')
    print(f"odsF {100 * res['odsF']:.2f}  oisF {100 * res['oisF']:.2f}  AP {100 * res['AP']:.2f} "
          f"(ODS threshold {res['ods_threshold']:.2f})")


if __name__ == '__main__':
    main()
