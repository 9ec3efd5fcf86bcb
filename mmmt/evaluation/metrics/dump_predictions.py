"""Dump the per-task predictions of a test run to a pickle file (``tools/test.py --out``)."""
import pickle
from typing import Any, Dict, Sequence

import numpy as np
import torch
from mmengine.evaluator import DumpResults
from mmengine.logging import print_log

from mmmt.registry import METRICS
from mmmt.structures import pred_to_array
from mmmt.utils.fileio import atomic_write, write_first_free

__all__ = ['DumpMultiTaskPredictions', 'META_KEYS']

#: Metainfo kept with each image's predictions.
META_KEYS = ('img_id', 'img_path', 'ori_shape', 'flip', 'flip_direction')


def _field_data(value: Any) -> Any:
    """The tensor of a ``PixelData`` field, whether still an element or already a dict."""
    if isinstance(value, dict):
        return value.get('data')
    return getattr(value, 'data', value)


def _to_array(x: torch.Tensor) -> np.ndarray:
    """:func:`~mmmt.structures.pred_to_array` (the inferencer's layout) with its own memory.

    The copy matters: predictions are views into the batch's logits, and pickling a tensor
    view stores its whole storage (the logits of every task and image of the batch).
    """
    arr = pred_to_array(x)
    return arr if arr.dtype != np.float32 else arr.copy()  # class maps are new arrays


@METRICS.register_module()
class DumpMultiTaskPredictions(DumpResults):
    """Write each test image's predictions to a pickle file, safely.

    Each image gives one dict: the metainfo of :data:`META_KEYS` and ``pred``, a dict
    task -> numpy array at the original image size, as the inferencer returns them: class maps
    (H, W) uint8 0-based class indices, depth (H, W) float32 metres, normals (H, W, 3) unit
    vectors, boundary and saliency probabilities (H, W) float32. Logits and ground truth are
    left out (at NYUD size the semseg logits alone are 41 MB per image).

    Unlike mmengine's ``DumpResults``, the file is written to a temporary name and linked into
    place only if the name is still free: earlier results are never overwritten and an
    interrupted run leaves no truncated file. If the name is taken by then, the predictions go
    to the first free ``<name>_<k>.pkl`` and ``FileExistsError`` names both files.

    Args:
        out_file_path (str): Destination, ending in ``.pkl`` or ``.pickle``.
        overwrite (bool): Replace an existing file (``tools/test.py --out F --force``), still
            atomically. Defaults to False.
        collect_device (str): 'cpu' or 'gpu'. Defaults to 'cpu'.
        collect_dir (str, optional): Directory for collecting results across ranks on the CPU.
    """

    # it returns no metrics, but without a prefix mmengine's BaseMetric warns "The prefix is
    # not set in metric class DumpMultiTaskPredictions" in every tools/test.py --out run
    default_prefix = 'dump'

    def __init__(self, out_file_path: str, overwrite: bool = False, **kwargs) -> None:
        super().__init__(out_file_path, **kwargs)
        self.overwrite = overwrite

    def process(self, data_batch: Any, data_samples: Sequence[Dict]) -> None:
        for sample in data_samples:
            if not isinstance(sample, dict):
                sample = sample.to_dict()
            record = {k: sample[k] for k in META_KEYS if k in sample}
            record['pred'] = {
                key[len('pred_'):]: _to_array(_field_data(value))
                for key, value in sample.items() if key.startswith('pred_')
            }
            self.results.append(record)

    def compute_metrics(self, results: list) -> dict:
        # streamed into the file: pickle.dumps would hold a second copy of every prediction
        # (~20 GB for a PASCAL-Context test set) at the end of the run
        def write(f):
            pickle.dump(results, f, protocol=pickle.HIGHEST_PROTOCOL)

        try:
            atomic_write(write, self.out_file_path, overwrite=self.overwrite)
        except FileExistsError as exc:
            # tools/test.py refuses an existing --out before testing, so the file appeared
            # during the run (e.g. a second run with the same --out): it is kept, and the
            # hours of this run's predictions are not thrown away either
            kept = self._write_beside(write)
            raise FileExistsError(
                f'{self.out_file_path} exists (remove it or choose another --out); the '
                f'predictions of this run were written to {kept} instead') from exc
        print_log(f'Predictions of {len(results)} images written to {self.out_file_path}.',
                  logger='current')
        return {}

    def _write_beside(self, write) -> str:
        """Write with ``write`` to the first free ``<name>_<k>.<ext>``; return that path."""
        return write_first_free(write, self.out_file_path, first_suffix=1)
