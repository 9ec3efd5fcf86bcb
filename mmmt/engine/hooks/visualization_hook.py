"""The hook that draws validation/test predictions (``tools/test.py --show-dir``)."""
import os.path as osp
from typing import Any, Optional, Sequence

import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmseg.engine.hooks import SegVisualizationHook

from mmmt.registry import HOOKS

__all__ = ['MultiTaskVisualizationHook']


@HOOKS.register_module()
class MultiTaskVisualizationHook(SegVisualizationHook):
    """Draw every ``interval``-th validation/test sample with the current visualizer.

    mmseg's ``SegVisualizationHook`` with two differences: the window / file name uses the
    sample's ``img_id`` when present (``<mode>_<img_id>``), and a sample whose image cannot be
    read (no ``img_path``, e.g. synthetic data) is still drawn, on a black background.

    Args:
        draw (bool): Whether to draw at all. ``tools/test.py --show-dir`` turns it on.
            Defaults to False.
        interval (int): Draw every ``interval``-th iteration. Defaults to 50.
        show (bool): Show the drawings in a window instead of storing them. Defaults to False.
        wait_time (float): Seconds to wait when showing. Defaults to 0.
        backend_args (dict, optional): File backend arguments for reading images.
    """

    def __init__(self,
                 draw: bool = False,
                 interval: int = 50,
                 show: bool = False,
                 wait_time: float = 0.,
                 backend_args: Optional[dict] = None) -> None:
        # mmseg warns whenever draw is False, which is mmmt's default, not a mistake
        super().__init__(True, interval, show, wait_time, backend_args)
        self.draw = draw

    def _read_image(self, sample: Any) -> Optional[np.ndarray]:
        img_path = sample.get('img_path', None)
        if not img_path:
            return None
        img_bytes = fileio.get(img_path, backend_args=self.backend_args)
        return mmcv.imfrombytes(img_bytes, channel_order='rgb')

    def _after_iter(self,
                    runner,
                    batch_idx: int,
                    data_batch: dict,
                    outputs: Sequence[Any],
                    mode: str = 'val') -> None:
        if self.draw is False or mode == 'train':
            return
        if not self.every_n_inner_iters(batch_idx, self.interval):
            return
        for output in outputs:
            img_id = output.get('img_id', None)
            img_path = output.get('img_path', None)
            if img_id is None:
                img_id = osp.basename(img_path) if img_path else f'{batch_idx}'
            self._visualizer.add_datasample(
                f'{mode}_{img_id}',
                self._read_image(output),
                data_sample=output,
                show=self.show,
                wait_time=self.wait_time,
                # runner.iter would build the train loop (and its dataset) in a test-only run;
                # test pictures are named by img_id alone (no step in the file name)
                step=runner.iter if mode == 'val' else 0)
