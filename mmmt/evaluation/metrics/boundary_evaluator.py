"""The boundary-detection adapter of :class:`MultiTaskMetric`: SEISM's odsF, oisF and AP
(docs/metrics.md), evaluated in worker processes."""
import os.path as osp
from typing import Any, Dict, Optional

import numpy as np

from mmmt.structures import IGNORE_INDEX
from mmmt.utils.fileio import path_in_folder
from ..functional import (DEFAULT_EDGE_PROTOCOL, boundary_metrics, boundary_pr_counts,
                          check_boundary_options, edge_protocol, resolve_edge_thresholds,
                          save_edge_png)
from ..functional.utils import single_channel_map
from .base_task_evaluator import TaskEvaluator

__all__ = ['BoundaryEvaluator']


def _sample_id(meta: Dict[str, Any]) -> Optional[str]:
    for key in ('img_id', 'sample_id', 'image_id', 'id'):
        if meta.get(key) is not None:
            return str(meta[key])
    path = meta.get('img_path')
    if path:
        return osp.splitext(osp.basename(str(path)))[0]
    return None


def _boundary_payload(prob: np.ndarray, gt: np.ndarray, kwargs: dict) -> Optional[np.ndarray]:
    """(4, K) counts as int32 (a 2**31-pixel image would be needed to overflow)."""
    counts = boundary_pr_counts(prob, gt, **kwargs)
    return None if counts is None else counts.astype(np.int32)


class BoundaryEvaluator(TaskEvaluator):
    """Boundary detection: odsF, oisF and AP in the SEISM way (docs/metrics.md), percent.

    ``protocol`` picks the settings (docs/metrics.md); ``thresholds``, ``nms`` and ``gt_mode``
    left at None take the protocol's value, any other value overrides it:

    * ``'seism'``: the 101 thresholds of SEISM's ``HED.txt``, ``nms='seism'``,
      ``gt_mode='seg2bmap_thin'``;
    * ``'seism-2016-01'``: 99 thresholds 0.01 ... 0.99, no suppression, ``gt_mode='thin'``.

    Args:
        task (str): Task name.
        max_dist (float): Matching tolerance as a fraction of the image diagonal: 0.011 for
            NYUD-v2 (default), 0.0075 for PASCAL-Context.
        protocol (str): ``'seism'`` (default: SEISM's current reader, structured-edge
            non-maximum suppression) or ``'seism-2016-01'`` (mmmt's earlier protocol, no
            suppression).
        thresholds: Threshold set, see
            :func:`~mmmt.evaluation.functional.resolve_edge_thresholds`.
        quantize (bool): Evaluate the 8-bit PNG values SEISM reads. Defaults to True.
        nms (bool | str, optional): ``'seism'``, ``'canny'`` (True) or False, see
            :func:`~mmmt.evaluation.functional.boundary_pr_counts`.
        thin_pred (bool): Thin every binarised prediction (SEISM: True).
        gt_mode (str, optional): ``'seg2bmap_thin'``, ``'thin'``, ``'raw'`` or ``'seg2bmap'``,
            see :func:`~mmmt.evaluation.functional.boundary_pr_counts`.
        gt_threshold (float): Ground-truth pixels > this are boundaries. Defaults to 0.
        evaluate (bool): Compute the metrics; False only writes PNGs (fast). Defaults to True.
        save_dir (str, optional): Write each prediction as ``<save_dir>/<image id>.png``
            (``trunc(255 * prob)``, cropped to ``ori_shape``) for the MATLAB SEISM toolbox.
        overwrite (bool): Replace existing PNGs. Defaults to False (existing files are kept and
            counted in a warning).
        nproc (int): Worker processes for the per-image evaluation (1 = in-process).
        mp_start_method (str): Start method of the workers. Defaults to 'spawn'.
        ignore_index (float): Ignore value. Defaults to 255.
    """

    kind = 'boundary'

    def __init__(self,
                 task: str,
                 max_dist: float = 0.011,
                 protocol: str = DEFAULT_EDGE_PROTOCOL,
                 thresholds: Any = None,
                 quantize: bool = True,
                 nms: Any = None,
                 thin_pred: bool = True,
                 gt_mode: Optional[str] = None,
                 gt_threshold: float = 0.0,
                 evaluate: bool = True,
                 save_dir: Optional[str] = None,
                 overwrite: bool = False,
                 nproc: int = 1,
                 mp_start_method: str = 'spawn',
                 ignore_index: Optional[float] = IGNORE_INDEX) -> None:
        super().__init__(task, ignore_index)
        settings = edge_protocol(protocol)
        self.protocol = protocol
        if thresholds is not None:
            settings['thresholds'] = thresholds
        if nms is not None:
            settings['nms'] = nms
        if gt_mode is not None:
            settings['gt_mode'] = gt_mode
        self.thresholds = resolve_edge_thresholds(settings['thresholds'])
        self.eval_kwargs = dict(
            thresholds=self.thresholds,
            max_dist=float(max_dist),
            quantize=bool(quantize),
            nms=settings['nms'],
            thin_pred=bool(thin_pred),
            gt_mode=settings['gt_mode'],
            gt_threshold=float(gt_threshold),
            ignore_index=ignore_index)
        # Fail at construction, not in a worker, on a bad nms or gt_mode.
        check_boundary_options(settings['nms'], settings['gt_mode'])
        self.evaluate = evaluate
        self.save_dir = save_dir
        self.overwrite = overwrite
        self.nproc = int(nproc)
        self.mp_start_method = mp_start_method
        self._pool = None
        self.num_skipped_existing = 0
        self.num_saved = 0

    @property
    def wants_pred_without_gt(self) -> bool:
        """Predictions without ground truth are still exported as PNGs."""
        return self.save_dir is not None

    def _executor(self):
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor
            ctx = multiprocessing.get_context(self.mp_start_method)
            self._pool = ProcessPoolExecutor(self.nproc, mp_context=ctx)
        return self._pool

    def close(self) -> None:
        """Shut the worker pool down (it is re-created on demand)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_pool'] = None
        return state

    def process(self, pred, gt, meta):
        prob = single_channel_map(pred, 'edge prediction', np.float32)
        if self.save_dir is not None:
            self._save(prob, meta)
        if not self.evaluate or gt is None:
            return None
        gt2d = single_channel_map(gt, 'edge ground truth', np.float32)
        if self.nproc > 1:
            return self._executor().submit(_boundary_payload, prob, gt2d, self.eval_kwargs)
        return _boundary_payload(prob, gt2d, self.eval_kwargs)

    def _save(self, prob: np.ndarray, meta: Dict[str, Any]) -> None:
        name = _sample_id(meta)
        if name is None:
            name = f'{self.num_saved + self.num_skipped_existing:06d}'
        path = path_in_folder(self.save_dir, name, '.png')  # a name from the data
        if save_edge_png(prob, path, meta.get('ori_shape'), overwrite=self.overwrite):
            self.num_saved += 1
        else:
            self.num_skipped_existing += 1

    def compute(self, payloads):
        payloads = [p for p in payloads if p is not None]
        if not self.evaluate or not payloads:
            return {}
        res = boundary_metrics(payloads, self.thresholds)
        self._last = res
        return dict(odsF=100 * res['odsF'], oisF=100 * res['oisF'], AP=100 * res['AP'])

    def summary(self, payloads, metrics):
        parts = []
        res = getattr(self, '_last', None)
        if res is not None and metrics:
            parts.append(f"{self.task}: ODS threshold {res['ods_threshold']:.3f}, precision "
                         f"{100 * res['ods_precision']:.2f}, recall "
                         f"{100 * res['ods_recall']:.2f} over {res['num_images']} images "
                         f"(protocol {self.protocol!r}, {self.thresholds.size} thresholds, "
                         f"nms {self.eval_kwargs['nms']}, gt {self.eval_kwargs['gt_mode']}, "
                         f"maxDist {self.eval_kwargs['max_dist']})")
        if self.save_dir is not None:
            parts.append(f'{self.task}: wrote {self.num_saved} PNGs to {self.save_dir}')
            if self.num_skipped_existing:
                parts.append(f'{self.task}: WARNING kept {self.num_skipped_existing} existing '
                             'PNGs (set overwrite=True to replace them)')
        return '\n'.join(parts) or None
