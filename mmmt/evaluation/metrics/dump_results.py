"""Dump raw predictions to a pickle file, atomically and without overwriting."""
import pickle

from mmengine.evaluator import DumpResults
from mmengine.logging import print_log

from mmmt.registry import METRICS
from mmmt.utils.fileio import atomic_write


@METRICS.register_module()
class SafeDumpResults(DumpResults):
    """mmengine's :class:`~mmengine.evaluator.DumpResults`, written safely.

    The parent writes straight into ``out_file_path`` and silently replaces an existing file.
    Here the pickle is written to a temporary file and linked into place only if the name is
    still free, so a user's earlier results are never overwritten and an interrupted run
    leaves no truncated file.

    Args:
        out_file_path (str): Destination, ending in ``.pkl`` or ``.pickle``.
        collect_device (str): 'cpu' or 'gpu'. Defaults to 'cpu'.
        collect_dir (str, optional): Directory for collecting results across ranks on the CPU.
    """

    def compute_metrics(self, results: list) -> dict:
        try:
            atomic_write(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL),
                         self.out_file_path, overwrite=False)
        except FileExistsError as exc:
            raise FileExistsError(
                f'{self.out_file_path} exists; remove it or choose another --out') from exc
        print_log(f'Predictions of {len(results)} images written to {self.out_file_path}.',
                  logger='current')
        return {}
