"""Time the pure-Python boundary evaluation (odsF / oisF / AP) on synthetic images.

Ground truth: one-pixel boundaries of a random Voronoi partition (25-55 regions) cut by a few
random straight creases. Prediction: what a trained boundary head tends to output -- the ground
truth smoothly warped by a few pixels and blurred into ridges several pixels wide, of varying
strength, with some boundaries missed, spurious texture responses and a noisy background -- as
probabilities in [0, 1] (odsF around 70-80, like real NYUD-v2 models). Every image is evaluated
exactly as ``MultiTaskMetric`` does, by default with SEISM's current protocol (8-bit
quantisation, structured-edge NMS, 101 thresholds, thinning, thinned seg2bmap ground truth,
one-to-one matching within ``max_dist`` of the diagonal).

``--compare`` evaluates the same predictions under each protocol and with one setting of the
SEISM protocol changed at a time, and prints the effect of each on odsF, oisF and AP.

``--stages`` then evaluates the first images again in this process and splits the CPU time of
the main setting into suppression, thinning and matching; it also thins every map a second time
with ``skimage.morphology.thin`` (the reference algorithm) and reports the ratio and whether the
outputs are identical.

Examples::

    python tools/analysis_tools/benchmark_edge_eval.py --num 100 --size 448 576 --nproc 2
    python tools/analysis_tools/benchmark_edge_eval.py --num 30 --compare --nproc 2
    python tools/analysis_tools/benchmark_edge_eval.py --num 10 --stages
"""
import argparse
import contextlib
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, Iterator, List, Optional, Tuple

from mmmt.utils.errors import run_main

#: mmmt.evaluation.functional's EDGE_PROTOCOLS and DEFAULT_EDGE_PROTOCOL, written out so that
#: --help needs no import of mmmt.evaluation (which imports torch).
PROTOCOL_NAMES = ('seism', 'seism-2016-01')
DEFAULT_PROTOCOL_NAME = 'seism'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--num', type=int, default=100, help='number of images')
    parser.add_argument('--size', type=int, nargs=2, default=(448, 576), metavar=('H', 'W'))
    parser.add_argument('--max-dist', type=float, default=0.011,
                        help='tolerance, fraction of the diagonal (NYUD 0.011, PASCAL 0.0075)')
    parser.add_argument('--protocol', default=DEFAULT_PROTOCOL_NAME, choices=PROTOCOL_NAMES,
                        help='boundary protocol')
    parser.add_argument('--thresholds', type=int, default=None,
                        help="number of uniform thresholds (default: the protocol's)")
    parser.add_argument('--nms', choices=('seism', 'canny', 'none'), default=None,
                        help="non-maximum suppression (default: the protocol's)")
    parser.add_argument('--gt-mode', default=None,
                        help="ground-truth boundaries, e.g. thin (default: the protocol's)")
    parser.add_argument('--compare', action='store_true',
                        help='also evaluate the same images under the other settings')
    parser.add_argument('--nproc', type=int, default=1, help='worker processes')
    parser.add_argument('--stages', action='store_true',
                        help='also split the time of the first images (at most 10, in this '
                        'process) into suppression, thinning and matching, and compare the '
                        'thinning with skimage.morphology.thin')
    return parser.parse_args(argv)


if __name__ == '__main__':
    parse_args()  # --help and argument errors before torch is imported

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from mmmt.evaluation.functional import (DEFAULT_EDGE_THRESHOLDS, boundary_metrics,  # noqa: E402
                                        boundary_pr_counts, edge_protocol, resolve_edge_thresholds,
                                        seg2bmap, thin_binary)


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


def variants(protocol: str, max_dist: float, thresholds: Optional[int], nms: Optional[str],
             gt_mode: Optional[str], compare: bool) -> List[Tuple[str, dict]]:
    """(name, boundary_pr_counts keyword arguments) of every evaluation to run per image."""

    def settings(name: str, **changes) -> dict:
        kw = edge_protocol(name)
        kw.update({k: v for k, v in changes.items() if v is not None})
        kw['thresholds'] = resolve_edge_thresholds(kw['thresholds'])
        kw['max_dist'] = max_dist
        return kw

    main = settings(protocol, thresholds=thresholds, gt_mode=gt_mode,
                    nms=None if nms is None else (False if nms == 'none' else nms))
    runs = [(protocol, main)]
    if compare:
        runs += [
            ('seism, no NMS', settings('seism', nms=False)),
            ('seism, Canny-style NMS', settings('seism', nms='canny')),
            ('seism, 99 thresholds', settings('seism', thresholds=DEFAULT_EDGE_THRESHOLDS)),
            ("seism, gt_mode 'thin'", settings('seism', gt_mode='thin')),
            ('seism-2016-01', settings('seism-2016-01')),
        ]
    return runs


def _evaluate(args) -> List[Tuple[np.ndarray, float, float]]:
    seed, size, runs = args
    pred, gt = synthesize(seed, size)
    out = []
    for _, kwargs in runs:
        start, cpu_start = time.perf_counter(), time.process_time()
        counts = boundary_pr_counts(pred, gt, **kwargs)
        out.append((counts, time.perf_counter() - start, time.process_time() - cpu_start))
    return out


STAGE_IMAGES = 10


@contextlib.contextmanager
def stage_timers(totals: Dict[str, float]) -> Iterator[None]:
    """Add the CPU time of each stage of ``boundary_pr_counts`` to ``totals`` while active.

    The functions the evaluation calls are wrapped where it looks them up, so what is timed is
    the shipped code path itself, not a copy of it. ``totals`` gets ``suppression``,
    ``thinning`` (prediction and ground truth), ``matching``, and ``skimage_thinning`` with
    ``thinning_differences`` for the same maps thinned by ``skimage.morphology.thin``.
    """
    from skimage.morphology import thin as skimage_thin

    from mmmt.evaluation.functional import boundary

    def timed(name, fn):

        def wrapper(*args, **kwargs):
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[name] += time.process_time() - start

        return wrapper

    def thin_and_compare(mask: np.ndarray) -> np.ndarray:
        start = time.process_time()
        out = originals['thin_binary'](mask)
        totals['thinning'] += time.process_time() - start
        start = time.process_time()
        reference = skimage_thin(mask)
        totals['skimage_thinning'] += time.process_time() - start
        totals['thinning_differences'] += int(np.count_nonzero(reference != out))
        return out

    originals = dict(seism_nms=boundary.seism_nms, edge_nms=boundary.edge_nms,
                     thin_binary=boundary.thin_binary)
    match = boundary.BoundaryMatcher.match
    boundary.seism_nms = timed('suppression', boundary.seism_nms)
    boundary.edge_nms = timed('suppression', boundary.edge_nms)
    boundary.thin_binary = thin_and_compare
    boundary.BoundaryMatcher.match = timed('matching', match)
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(boundary, name, fn)
        boundary.BoundaryMatcher.match = match


def time_stages(name: str, kwargs: dict, num: int, size: Tuple[int, int]) -> None:
    """Print the stage split of one setting over the first ``num`` images."""
    totals = dict.fromkeys(('suppression', 'thinning', 'matching', 'skimage_thinning',
                            'thinning_differences'), 0.0)
    whole = 0.0
    for seed in range(num):
        pred, gt = synthesize(seed, size)
        with stage_timers(totals):
            start = time.process_time()
            boundary_pr_counts(pred, gt, **kwargs)
            whole += time.process_time() - start
    # the skimage comparison runs inside the timed call: leave it out of the evaluation's time
    whole = max(whole - totals['skimage_thinning'], 1e-9)
    other = whole - totals['suppression'] - totals['thinning'] - totals['matching']
    parts = ', '.join(f'{stage} {1000 * totals[stage] / num:.0f} ms '
                      f'({100 * totals[stage] / whole:.0f} %)'
                      for stage in ('suppression', 'thinning', 'matching'))
    print(f'[{name}] stages, CPU per image over {num} image(s) in this process: {parts}, '
          f'the rest {1000 * other / num:.0f} ms, in all {1000 * whole / num:.0f} ms')
    differences = int(totals['thinning_differences'])
    print(f'[{name}] thinning of the same maps: mmmt {totals["thinning"]:.2f} s CPU, '
          f'skimage.morphology.thin {totals["skimage_thinning"]:.2f} s CPU '
          f'({totals["skimage_thinning"] / max(totals["thinning"], 1e-9):.1f}x); '
          + ('identical output' if differences == 0 else
             f'{differences} pixel(s) differ'))


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)

    runs = variants(args.protocol, args.max_dist, args.thresholds, args.nms, args.gt_mode,
                    args.compare)
    size = tuple(args.size)
    print(f'synthesising {args.num} images of {size[0]}x{size[1]} (not timed) ...', flush=True)
    jobs = [(seed, size, runs) for seed in range(args.num)]
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
    workers = max(args.nproc, 1)
    try:
        load = ', load average %.2f %.2f %.2f' % os.getloadavg()
    except OSError:
        load = ''
    print(f'cpu cores: {os.cpu_count()}{load}; worker processes: {workers}; '
          f'python {sys.version.split()[0]}')
    for r, (name, kwargs) in enumerate(runs):
        counts = [res[r][0] for res in results]
        eval_wall = sum(res[r][1] for res in results)
        eval_cpu = sum(res[r][2] for res in results)
        metrics = boundary_metrics(counts, kwargs['thresholds'])
        print(f"[{name}] per image: {1000 * eval_cpu / args.num:.0f} ms CPU, "
              f"{1000 * eval_wall / args.num:.0f} ms elapsed ({len(kwargs['thresholds'])} "
              f"thresholds, nms {kwargs['nms']}, gt {kwargs['gt_mode']}, "
              f"max_dist {args.max_dist})")
        print(f'[{name}] evaluation of {args.num} images: {eval_cpu:.1f} s CPU -> '
              f'{eval_cpu / workers:.1f} s on {workers} free core(s), i.e. '
              f'{args.num * workers / eval_cpu:.2f} images/s')
        print(f"[{name}] odsF {100 * metrics['odsF']:.2f}  oisF {100 * metrics['oisF']:.2f}  "
              f"AP {100 * metrics['AP']:.2f} (ODS threshold {metrics['ods_threshold']:.3f})")
    print(f'measured wall clock: {wall:.1f} s ({args.num / wall:.2f} images/s) including '
          'synthesis, process start-up, every setting evaluated and any other load on the '
          'machine')
    if args.stages:
        time_stages(*runs[0], min(args.num, STAGE_IMAGES), size)


if __name__ == '__main__':
    run_main(main)
