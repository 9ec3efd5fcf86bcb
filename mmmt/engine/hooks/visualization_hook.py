"""The hook that draws validation/test predictions (``tools/test.py --show-dir``)."""
import os.path as osp
from typing import Any, Optional, Sequence

import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmengine.dataset import DefaultSampler
from mmengine.dist import get_world_size
from mmseg.engine.hooks import SegVisualizationHook

from mmmt.registry import HOOKS
from mmmt.utils.errors import UserInputError
from mmmt.utils.fileio import sample_id_problem

__all__ = ['MultiTaskVisualizationHook']


@HOOKS.register_module()
class MultiTaskVisualizationHook(SegVisualizationHook):
    """Draw every ``interval``-th validation/test sample with the current visualizer.

    mmseg's ``SegVisualizationHook`` with three differences: the window / file name uses the
    sample's ``img_id`` when present (``<mode>_<img_id>``), a sample whose image cannot be
    read (no ``img_path``, e.g. synthetic data) is still drawn, on a black background, and
    under DDP each rank draws its own samples (mmseg draws rank 0's alone) but not the
    images the sampler repeats to give every rank as many (:meth:`num_real_samples`), so
    each image is drawn once.

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
        for output in outputs[:self.num_real_samples(runner, mode, batch_idx, len(outputs))]:
            img_id = output.get('img_id', None)
            img_path = output.get('img_path', None)
            if img_id is None:
                img_id = osp.basename(img_path) if img_path else f'{batch_idx}'
            problem = sample_id_problem(str(img_id))
            if problem:  # the picture is saved as <folder>/<mode>_<img_id>.png
                raise UserInputError(f'sample id {img_id!r} {problem}: its picture would not '
                                     'lie inside the visualization folder')
            self._visualizer.add_datasample(
                f'{mode}_{img_id}',
                self._read_image(output),
                data_sample=output,
                show=self.show,
                wait_time=self.wait_time,
                # runner.iter would build the train loop (and its dataset) in a test-only run;
                # test pictures are named by img_id alone (no step in the file name)
                step=runner.iter if mode == 'val' else 0)

    @staticmethod
    def num_real_samples(runner, mode: str, batch_idx: int, batch_len: int) -> int:
        """How many of this rank's batch ``batch_idx`` (``batch_len`` samples) are not padding.

        mmengine's ``DefaultSampler`` (``round_up=True``) repeats the first images of the
        dataset so that each of N ranks gets as many, and rank ``r``'s ``k``-th sample is the
        ``k * N + r``-th of that padded order; the evaluator drops the repeats (it keeps the
        first ``len(dataset)`` results of that order), and so does the drawing, or a test of 3
        images on 2 ranks would write one picture twice (the second refused as an existing
        file). Other samplers (no repeats known): every sample.
        """
        if get_world_size() == 1:
            return batch_len  # nothing repeated; the loops are not looked at
        loop = runner.val_loop if mode == 'val' else runner.test_loop
        loader = loop.dataloader
        sampler = getattr(loader, 'sampler', None)
        batch_size = getattr(loader, 'batch_size', None)
        if not isinstance(sampler, DefaultSampler) or not sampler.round_up or not batch_size:
            return batch_len
        first = batch_idx * batch_size
        size = len(sampler.dataset)
        return sum((first + k) * sampler.world_size + sampler.rank < size
                   for k in range(batch_len))
