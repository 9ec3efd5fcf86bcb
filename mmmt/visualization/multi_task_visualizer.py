"""A visualizer that draws every task of a multi-task prediction in one grid image."""
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.dist import master_only
from mmengine.structures import BaseDataElement
from mmengine.visualization import Visualizer

from mmmt.registry import VISUALIZERS
from mmmt.structures import IGNORE_INDEX, get_task, meta_for_task, ordered_tasks
from mmmt.utils.fileio import atomic_write

__all__ = ['MultiTaskVisualizer', 'default_palette']

_COLORMAPS = {
    'plasma': cv2.COLORMAP_PLASMA,
    'magma': cv2.COLORMAP_MAGMA,
    'inferno': cv2.COLORMAP_INFERNO,
    'viridis': cv2.COLORMAP_VIRIDIS,
    'jet': cv2.COLORMAP_JET,
    'turbo': cv2.COLORMAP_TURBO,
    'gray': None,
}


def default_palette(num_classes: int = 256, seed: int = 2024) -> np.ndarray:
    """A fixed (num_classes, 3) uint8 RGB palette of well-separated random colours."""
    rng = np.random.default_rng(seed)
    return rng.integers(40, 256, size=(num_classes, 3)).astype(np.uint8)


def _palette_from_meta(meta: Optional[dict], task: str) -> Optional[np.ndarray]:
    value = meta_for_task(meta, task, 'palette')
    return None if value is None else np.asarray(value, dtype=np.uint8).reshape(-1, 3)


def _to_numpy(value: Any) -> Optional[np.ndarray]:
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = value.get('data')
    elif isinstance(value, BaseDataElement):
        value = value.data
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return None if value is None else np.asarray(value)


def _get(sample: Any, name: str) -> Any:
    if sample is None:
        return None
    if isinstance(sample, Mapping):
        return sample.get(name)
    return getattr(sample, name) if name in sample else None


def _checkerboard(h: int, w: int, cell: int = 4) -> np.ndarray:
    yy, xx = np.indices((h, w))
    board = ((yy // cell + xx // cell) % 2).astype(np.uint8)
    grey = np.where(board[..., None] == 1, 170, 70).astype(np.uint8)
    return np.repeat(grey, 3, axis=2)


@VISUALIZERS.register_module()
class MultiTaskVisualizer(Visualizer):
    """Draw the input image and every task's ground truth and prediction as one grid.

    The grid has one row for ground truth (when drawn and present) and one for predictions;
    the columns are the input image followed by the tasks (order: semseg, depth, human_parts,
    sal, normals, edge, then others). Every panel is ``H x W`` (the input image size) below a
    ``title_height``-pixel title strip, so the grid is ``rows * (H + title_height)`` by
    ``(1 + num_tasks) * W`` pixels.

    Styles: segmentation maps in the dataset palette (``dataset_meta['<task>_palette']``, or
    ``palette`` for semseg / ``part_palette`` for human_parts), else a fixed default palette;
    depth through a colour map over a range shared by ground truth and prediction, with a colour
    bar and its limits in metres; normals as RGB ``(n + 1) / 2``; boundary and saliency
    probabilities in grey (or a colour map). Ignored ground-truth pixels (255) are drawn as a
    grey checkerboard.

    Works with mmseg's ``SegVisualizationHook`` unchanged (it calls :meth:`add_datasample` with
    the RGB image read from ``img_path``), e.g. ``tools/test.py --show-dir``.

    Args:
        name (str): Instance name.
        image (np.ndarray, optional): Image to draw on (unused by :meth:`add_datasample`).
        vis_backends (list[dict], optional): Visual backends (e.g. ``LocalVisBackend``).
        save_dir (str, optional): Folder of the backends' files.
        tasks (Sequence[str], optional): Tasks to draw, in order. Default: every task found.
        task_types (dict, optional): Drawing style by task name, overriding the ``draw`` of
            the task's definition (``mmmt.structures.TASKS``): ``'segmentation'``,
            ``'depth'``, ``'normals'`` or ``'probability'``.
        depth_range (tuple[float, float], optional): Fixed depth colour range in metres.
            Default: the 1st-99th percentile of the valid ground truth (else the prediction).
        depth_cmap (str): Depth colour map: plasma (default), magma, inferno, viridis, jet,
            turbo or gray.
        prob_cmap (str): Colour map of boundary/saliency probabilities (default gray).
        title_height (int): Height of the title strip above each panel (0 for none).
        ignore_index (int): Ignore value of the ground truth. Defaults to 255.
    """

    def __init__(self,
                 name: str = 'visualizer',
                 image: Optional[np.ndarray] = None,
                 vis_backends: Optional[List[dict]] = None,
                 save_dir: Optional[str] = None,
                 tasks: Optional[Sequence[str]] = None,
                 task_types: Optional[Dict[str, str]] = None,
                 depth_range: Optional[Tuple[float, float]] = None,
                 depth_cmap: str = 'plasma',
                 prob_cmap: str = 'gray',
                 title_height: int = 20,
                 ignore_index: int = IGNORE_INDEX,
                 **kwargs) -> None:
        super().__init__(name=name, image=image, vis_backends=vis_backends, save_dir=save_dir,
                         **kwargs)
        for cmap in (depth_cmap, prob_cmap):
            if cmap not in _COLORMAPS:
                raise ValueError(f'unknown colour map {cmap!r}; choose from {sorted(_COLORMAPS)}')
        self.tasks = list(tasks) if tasks is not None else None
        self.task_types = dict(task_types or {})
        self.depth_range = tuple(depth_range) if depth_range is not None else None
        self.depth_cmap = depth_cmap
        self.prob_cmap = prob_cmap
        self.title_height = int(title_height)
        self.ignore_index = ignore_index

    # ------------------------------------------------------------------------------ drawing --
    def _task_list(self, data_sample: Any) -> List[str]:
        if self.tasks is not None:
            return list(self.tasks)
        if isinstance(data_sample, Mapping):
            keys = list(data_sample.keys())
        else:
            keys = list(data_sample.keys()) if data_sample is not None else []
        found = []
        for key in keys:
            for prefix in ('gt_', 'pred_'):
                if key.startswith(prefix):
                    task = key[len(prefix):]
                    if task not in found and task not in ('sem_seg', 'instances'):
                        found.append(task)
        return ordered_tasks(found)

    def _draw_type(self, task: str, data: np.ndarray) -> str:
        if task in self.task_types:
            return self.task_types[task]
        spec = get_task(task)
        if spec is not None:
            return spec.draw
        if data.ndim == 3 and data.shape[0] == 3:
            return 'normals'
        if np.issubdtype(data.dtype, np.integer):
            return 'segmentation'
        return 'probability'

    def _colormap(self, values01: np.ndarray, cmap: str) -> np.ndarray:
        gray = np.clip(np.nan_to_num(values01) * 255.0, 0, 255).astype(np.uint8)
        if _COLORMAPS[cmap] is None:
            return np.repeat(gray[..., None], 3, axis=2)
        return cv2.applyColorMap(gray, _COLORMAPS[cmap])[..., ::-1].copy()

    def _segmentation(self, task: str, labels: np.ndarray, ignore: np.ndarray) -> np.ndarray:
        palette = _palette_from_meta(self.dataset_meta, task)
        if palette is None or len(palette) == 0:
            palette = default_palette()
        labels = labels.astype(np.int64)
        safe = np.clip(labels, 0, None) % len(palette)
        out = palette[safe]
        out[labels < 0] = 0
        return out

    def _depth(self, depth: np.ndarray, vrange: Tuple[float, float]) -> np.ndarray:
        lo, hi = vrange
        panel = self._colormap((depth - lo) / max(hi - lo, 1e-6), self.depth_cmap)
        return self._depth_legend(panel, vrange)

    def _depth_legend(self, panel: np.ndarray, vrange: Tuple[float, float]) -> np.ndarray:
        h, w = panel.shape[:2]
        bar_w = max(8, int(w * 0.4))
        bar_h = max(4, min(10, h // 12))
        x0, y1 = 4, h - 4
        y0 = y1 - bar_h
        if y0 < 0 or bar_w + 8 > w:
            return panel
        ramp = np.linspace(0, 1, bar_w)[None, :].repeat(bar_h, 0)
        panel[y0:y1, x0:x0 + bar_w] = self._colormap(ramp, self.depth_cmap)
        cv2.rectangle(panel, (x0 - 1, y0 - 1), (x0 + bar_w, y1), (255, 255, 255), 1)
        scale = max(0.3, min(0.45, h / 600))
        for text, x in ((f'{vrange[0]:.2f}m', x0), (f'{vrange[1]:.2f}m', x0 + bar_w)):
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            x = int(min(max(x - tw // 2, 0), w - tw))
            y = max(th + 1, y0 - 3)
            cv2.putText(panel, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3,
                        cv2.LINE_AA)
            cv2.putText(panel, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                        1, cv2.LINE_AA)
        return panel

    def _depth_range(self, gt: Optional[np.ndarray], pred: Optional[np.ndarray]
                     ) -> Tuple[float, float]:
        if self.depth_range is not None:
            return float(self.depth_range[0]), float(self.depth_range[1])
        for source, is_gt in ((gt, True), (pred, False)):
            if source is None:
                continue
            values = source[np.isfinite(source)]
            if is_gt:
                values = values[(values != self.ignore_index) & (values > 0)]
            if values.size:
                lo, hi = np.percentile(values, [1, 99])
                if hi <= lo:
                    hi = lo + 1.0
                return float(lo), float(hi)
        return 0.0, 1.0

    def _panel(self, task: str, data: np.ndarray, is_gt: bool,
               depth_range: Tuple[float, float]) -> np.ndarray:
        kind = self._draw_type(task, data)
        if kind == 'normals':
            n = data[:3].astype(np.float64)
            ignore = (n == self.ignore_index).all(0) if is_gt else np.zeros(n.shape[1:], bool)
            norm = np.sqrt((n * n).sum(0, keepdims=True))
            n = np.where(norm > 0, n / np.maximum(norm, 1e-12), 0)
            panel = np.clip(np.rint((n.transpose(1, 2, 0) + 1) * 127.5), 0, 255).astype(np.uint8)
        else:
            plane = data.reshape(data.shape[-2:]) if data.ndim == 3 else data
            ignore = (plane == self.ignore_index) if is_gt else np.zeros(plane.shape, bool)
            if kind == 'segmentation':
                panel = self._segmentation(task, plane, ignore)
            elif kind == 'depth':
                panel = self._depth(plane.astype(np.float64), depth_range)
            else:
                panel = self._colormap(plane.astype(np.float64), self.prob_cmap)
        panel = np.ascontiguousarray(panel)
        if ignore.any():
            panel[ignore] = _checkerboard(*ignore.shape)[ignore]
        return panel

    def _titled(self, panel: np.ndarray, title: str) -> np.ndarray:
        if self.title_height <= 0:
            return panel
        h, w = panel.shape[:2]
        strip = np.zeros((self.title_height, w, 3), dtype=np.uint8)
        scale = max(0.3, min(0.6, self.title_height / 32))
        cv2.putText(strip, title, (3, self.title_height - 6), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
        return np.concatenate([strip, panel], axis=0)

    def draw_multi_task(self,
                        image: Optional[np.ndarray],
                        data_sample: Any,
                        draw_gt: bool = True,
                        draw_pred: bool = True) -> np.ndarray:
        """Build the grid image (RGB uint8) of one sample.

        Args:
            image (np.ndarray, optional): (H, W, 3) RGB image; a black panel of the maps' size
                when None.
            data_sample: :class:`MultiTaskDataSample` or its ``to_dict()`` form.
            draw_gt (bool): Draw the ground-truth row.
            draw_pred (bool): Draw the prediction row.

        Returns:
            np.ndarray: The grid.
        """
        tasks = self._task_list(data_sample)
        maps: Dict[Tuple[str, str], np.ndarray] = {}
        for task in tasks:
            for which in ('gt', 'pred'):
                arr = _to_numpy(_get(data_sample, f'{which}_{task}'))
                if arr is not None:
                    maps[(which, task)] = arr
        if image is None:
            shapes = [a.shape[-2:] for a in maps.values()]
            h, w = shapes[0] if shapes else (64, 64)
            image = np.zeros((h, w, 3), dtype=np.uint8)
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        image = image[..., :3].astype(np.uint8)
        h, w = image.shape[:2]

        rows = []
        if draw_gt and any(k[0] == 'gt' for k in maps):
            rows.append('gt')
        if draw_pred and any(k[0] == 'pred' for k in maps):
            rows.append('pred')
        if not rows:
            rows = ['pred']
        grid_rows = []
        for which in rows:
            cells = [self._titled(image.copy(), 'image')]
            for task in tasks:
                arr = maps.get((which, task))
                if arr is None:
                    panel = np.zeros((h, w, 3), dtype=np.uint8)
                    title = f'{task} {which}: none'
                else:
                    drange = self._depth_range(maps.get(('gt', task)), maps.get(('pred', task)))
                    panel = self._panel(task, arr, which == 'gt', drange)
                    title = f"{task} {'GT' if which == 'gt' else 'pred'}"
                    if panel.shape[:2] != (h, w):
                        panel = cv2.resize(panel, (w, h), interpolation=cv2.INTER_NEAREST)
                cells.append(self._titled(panel, title))
            grid_rows.append(np.concatenate(cells, axis=1))
        return np.concatenate(grid_rows, axis=0)

    @master_only
    def add_datasample(self,
                       name: str,
                       image: Optional[np.ndarray],
                       data_sample: Any = None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       step: int = 0) -> np.ndarray:
        """Draw a sample, then show it, write it to ``out_file`` or hand it to the backends.

        Same signature and behaviour as mmseg's ``SegLocalVisualizer.add_datasample``.

        Args:
            name (str): Image name (the backends' file name stem).
            image (np.ndarray): (H, W, 3) RGB image.
            data_sample: :class:`MultiTaskDataSample` (or dict) with ``gt_<task>`` and/or
                ``pred_<task>`` fields.
            draw_gt (bool): Draw ground truth. Defaults to True.
            draw_pred (bool): Draw predictions. Defaults to True.
            show (bool): Display the image in a window. Defaults to False.
            wait_time (float): Seconds to wait when showing. Defaults to 0.
            out_file (str, optional): Write the image here instead of the backends.
            step (int): Global step for the backends. Defaults to 0.

        Returns:
            np.ndarray: The drawn RGB grid.
        """
        drawn = self.draw_multi_task(image, data_sample, draw_gt, draw_pred)
        self.set_image(drawn)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            ok, buf = cv2.imencode(os.path.splitext(out_file)[1] or '.png', drawn[..., ::-1])
            if not ok:
                raise IOError(f'could not encode a picture for {out_file}')
            # temporary file + rename: an interrupted run leaves no half-written picture
            atomic_write(buf.tobytes(), out_file, fsync=False)
        else:
            self.add_image(name, drawn, step)
        return drawn
