"""A visualizer that draws every task of a multi-task prediction in one grid image.

Over 400 lines on purpose: the grid's layout (panel sizes, titles, legends, keys, previews) is
one piece of state shared by every task's drawing, and mmengine's ``Visualizer`` interface is
one class; splitting the drawing of each task into modules would pass that state around.
"""
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement
from mmengine.visualization import LocalVisBackend, Visualizer
from mmengine.visualization.vis_backend import force_init_env

from mmmt.registry import VISBACKENDS, VISUALIZERS
from mmmt.structures import IGNORE_INDEX, get_task, meta_for_task, ordered_tasks
from mmmt.utils.fileio import atomic_write, keep_existing_files, write_first_free

__all__ = ['MultiTaskVisualizer', 'MultiTaskLocalVisBackend', 'default_palette', 'normals_key']

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


def _classes_from_meta(meta: Optional[dict], task: str) -> Optional[Sequence[str]]:
    """Class names of a segmentation task from the dataset meta (see ``meta_for_task``)."""
    value = meta_for_task(meta, task, 'classes')
    return value if value and all(isinstance(v, str) for v in value) else None


def normals_key(size: int) -> np.ndarray:
    """A (size, size, 3) disc: at each point the colour of the normal pointing that way.

    In the camera frame of mmmt's datasets (x right, y up, z towards the camera), which the
    panels show as RGB ``(n + 1) / 2``: the centre is a normal facing the camera, the top one
    pointing up (a floor is drawn in the colour of the disc's top).
    """
    c = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(c, -c)  # picture rows go down, y goes up
    z = np.sqrt(np.clip(1 - x * x - y * y, 0, None))
    disc = np.clip(np.rint((np.stack([x, y, z], 2) + 1) * 127.5), 0, 255).astype(np.uint8)
    disc[x * x + y * y > 1] = 0
    return disc


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


@VISBACKENDS.register_module()
class MultiTaskLocalVisBackend(LocalVisBackend):
    """mmengine's ``LocalVisBackend`` with pictures named after the sample, written atomically.

    ``LocalVisBackend`` names every picture ``<name>_<step>.png``; a test run (step 0, names
    ``test_<img_id>``) gets ``<name>.png`` instead, a validation during training
    ``<name>_iter<step>.png``. Scalars are saved as by ``LocalVisBackend``; the config as well,
    but a different ``config.py`` already there is kept (:meth:`add_config`).

    Args:
        save_dir (str): As for ``LocalVisBackend``; its other arguments are passed on.
        overwrite (bool): Whether a picture (or config.py) may replace an existing file of its name
            (``tools/test.py --force`` sets it). By default each picture is written
            exclusively: one that exists, also if it appeared during the run (a second run
            into the same ``--show-dir``), is kept and ``FileExistsError`` names it. Defaults
            to False.
    """

    def __init__(self, save_dir: str, *args, overwrite: bool = False, **kwargs) -> None:
        super().__init__(save_dir, *args, **kwargs)
        self.overwrite = overwrite

    @force_init_env
    def add_config(self, config: Config, **kwargs) -> None:
        """Save ``config`` as ``<save_dir>/config.py``, keeping a different one already there.

        ``LocalVisBackend`` replaces the file: runs sharing a ``save_dir`` (two ``tools/test.py``
        runs with one ``--show-dir``, or runs started in the same second in one work dir)
        would lose the earlier run's copy. The same text is not written again; a different
        one goes to the first free ``config_<k>.py`` (with ``overwrite``: over the file).
        """
        text = config.pretty_text
        path = self._config_save_file
        if os.path.isfile(path):
            with open(path, encoding='utf-8', errors='replace') as f:
                if f.read() == text:
                    return
        if self.overwrite:
            atomic_write(text, path, fsync=False)
            return
        written = write_first_free(text, path, fsync=False)
        if written != path:
            print_log(f'{path} holds another run\'s config; this run\'s is saved as {written}',
                      logger='current')

    @force_init_env
    def add_image(self, name: str, image: np.ndarray, step: int = 0, **kwargs) -> None:
        """Write the RGB uint8 ``image`` under ``<save_dir>/vis_image/``."""
        file = f'{name}.png' if not step else f'{name}_iter{step}.png'
        ok, buf = cv2.imencode('.png', np.ascontiguousarray(image[..., ::-1]))
        if not ok:
            raise IOError(f'could not encode the picture {file}')
        os.makedirs(self._img_save_dir, exist_ok=True)
        # no check at the start here (training's validations write as they go): the file
        # may also have been there before
        with keep_existing_files('Choose another --show-dir or pass --force (vis_backends: '
                                 'overwrite=True)', maybe_before=True):
            atomic_write(buf.tobytes(), os.path.join(self._img_save_dir, file),
                         overwrite=self.overwrite, fsync=False)


@VISUALIZERS.register_module()
class MultiTaskVisualizer(Visualizer):
    """Draw the input image and every task's ground truth and prediction as one grid.

    The grid has one row for ground truth (when drawn and present) and one for predictions;
    the columns are the input image followed by the tasks (order: semseg, depth, human_parts,
    sal, normals, edge, then others). Every panel has the input image's aspect ratio, drawn at
    :meth:`display_size` (small inputs enlarged, huge ones shrunk to a preview) below a title
    strip; with ``legend`` a strip under the grid names the classes shown (from
    ``dataset_meta['classes']`` / ``['part_classes']``) and how normals are coloured, and each
    normals panel carries a key disc in its corner. With ``min_panel_size=0``,
    ``max_panel_size=None`` and ``legend=False`` the grid is ``rows * (H + title_height)`` by
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
        title_height (int): Smallest height of the title strip above each panel (0 for
            none); it grows with the panel (1/12 of its height) so that titles stay readable
            on large pictures.
        ignore_index (int): Ignore value of the ground truth. Defaults to 255.
        min_panel_size (int): Panels whose longer side is shorter are enlarged by a whole
            factor (nearest neighbour: every label pixel stays a block) to at least this.
            0 = native size. Defaults to 256.
        max_panel_size (int, optional): Panels whose longer side is longer are shrunk to it
            (a preview: a 4000x3000 photo gives a picture of a few MB, not 50 MB; the
            predictions themselves keep their full size). None = native size. Defaults to 800.
        legend (bool): Add a strip under the grid naming the classes shown (names from
            ``dataset_meta``) and how normals are coloured. Defaults to True.
        legend_max_classes (int): Most classes listed per segmentation task (the largest by
            area). Defaults to 12.
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
                 min_panel_size: int = 256,
                 max_panel_size: Optional[int] = 800,
                 legend: bool = True,
                 legend_max_classes: int = 12,
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
        self.min_panel_size = int(min_panel_size)
        self.max_panel_size = int(max_panel_size) if max_panel_size else None
        if self.max_panel_size is not None and self.max_panel_size < self.min_panel_size:
            raise ValueError(f'max_panel_size ({max_panel_size}) must not be smaller than '
                             f'min_panel_size ({min_panel_size})')
        self.legend = bool(legend)
        self.legend_max_classes = int(legend_max_classes)

    # mmengine's Visualizer reads and sets ``dataset_meta`` on rank 0 only (None on the other
    # ranks), but under DDP every rank draws its share of the test images (add_datasample):
    # without the metainfo their pictures would lose the dataset's palette and class names
    @property
    def dataset_meta(self) -> Optional[dict]:
        """Optional[dict]: Meta info of the dataset, on every rank."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: Optional[dict]) -> None:
        self._dataset_meta = dataset_meta

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
        return self._colormap((depth - lo) / max(hi - lo, 1e-6), self.depth_cmap)

    def _depth_legend(self, panel: np.ndarray, vrange: Tuple[float, float]) -> np.ndarray:
        h, w = panel.shape[:2]
        bar_w = max(8, int(w * 0.4))
        bar_h = max(4, h // 24)
        x0, y1 = 4, h - 4
        y0 = y1 - bar_h
        if y0 < 0 or bar_w + 8 > w:
            return panel
        ramp = np.linspace(0, 1, bar_w)[None, :].repeat(bar_h, 0)
        panel[y0:y1, x0:x0 + bar_w] = self._colormap(ramp, self.depth_cmap)
        cv2.rectangle(panel, (x0 - 1, y0 - 1), (x0 + bar_w, y1), (255, 255, 255), 1)
        scale = max(0.3, h / 600)
        for text, x in ((f'{vrange[0]:.2f}m', x0), (f'{vrange[1]:.2f}m', x0 + bar_w)):
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            x = int(min(max(x - tw // 2, 0), w - tw))
            y = max(th + 1, y0 - 3)
            thick = max(1, int(round(scale * 2)))
            cv2.putText(panel, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                        thick + 2, cv2.LINE_AA)
            cv2.putText(panel, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                        thick, cv2.LINE_AA)
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

    def display_size(self, h: int, w: int) -> Tuple[int, int]:
        """The size a panel of an ``h x w`` image is drawn at (see ``min_panel_size`` and
        ``max_panel_size``)."""
        longer = max(h, w)
        if self.min_panel_size and longer < self.min_panel_size:
            factor = -(-self.min_panel_size // longer)  # whole factor: label pixels as blocks
            return h * factor, w * factor
        if self.max_panel_size and longer > self.max_panel_size:
            scale = self.max_panel_size / longer
            return max(1, int(round(h * scale))), max(1, int(round(w * scale)))
        return h, w

    @staticmethod
    def _resize(panel: np.ndarray, size: Tuple[int, int], smooth: bool) -> np.ndarray:
        if panel.shape[:2] == tuple(size):
            return panel
        if smooth and size[0] < panel.shape[0]:
            interpolation = cv2.INTER_AREA
        elif smooth:
            interpolation = cv2.INTER_LINEAR
        else:
            interpolation = cv2.INTER_NEAREST  # label maps: no invented classes
        return cv2.resize(panel, (size[1], size[0]), interpolation=interpolation)

    @classmethod
    def _shrink(cls, data: np.ndarray, size: Tuple[int, int], kind: str) -> np.ndarray:
        """A (H, W) or (C, H, W) map shrunk to ``size`` (smaller in both sides) by
        :meth:`_resize`: label maps by nearest neighbour (no invented classes), the others
        by area averaging."""
        if kind == 'normals':
            planes = np.ascontiguousarray(data[:3].transpose(1, 2, 0), dtype=np.float32)
            return cls._resize(planes, size, smooth=True).transpose(2, 0, 1)
        plane = data.reshape(data.shape[-2:]) if data.ndim == 3 else data
        if kind == 'segmentation':
            if plane.dtype not in (np.uint8, np.uint16, np.int16):
                plane = plane.astype(np.int32)  # what cv2 resizes of wider integers
            return cls._resize(plane, size, smooth=False)
        return cls._resize(plane.astype(np.float32), size, smooth=True)

    def _panel(self, task: str, data: np.ndarray, is_gt: bool,
               depth_range: Tuple[float, float],
               size: Optional[Tuple[int, int]] = None) -> np.ndarray:
        kind = self._draw_type(task, data)
        if (size is not None and not is_gt and size[0] < data.shape[-2]
                and size[1] < data.shape[-1]):
            # the preview of a large prediction: shrink the map before colouring it, so that
            # the full-size panel and its float64 steps never exist (740 MB more for a
            # 4000x3000 photo); ground truth keeps its full-size ignore mask
            data = self._shrink(data, size, kind)
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
        if size is not None:
            panel = np.ascontiguousarray(
                self._resize(panel, size, smooth=kind in ('depth', 'probability')))
        # keys are drawn at the display size, so that they stay legible
        if kind == 'depth':
            panel = self._depth_legend(panel, depth_range)
        elif kind == 'normals' and self.legend:
            side = max(12, min(panel.shape[:2]) // 5)
            if side + 4 <= min(panel.shape[:2]):
                disc = normals_key(side)
                y0, x0 = panel.shape[0] - side - 2, panel.shape[1] - side - 2
                inside = disc.any(2)
                panel[y0:y0 + side, x0:x0 + side][inside] = disc[inside]
                cv2.circle(panel, (x0 + side // 2, y0 + side // 2), side // 2, (255, 255, 255),
                           1, cv2.LINE_AA)
        return panel

    def _text_height(self, panel_h: int) -> int:
        """Height of a line of text for panels ``panel_h`` high: 1/12 of it, at least
        ``title_height``."""
        return max(self.title_height, int(round(panel_h / 12)))

    @staticmethod
    def _put_text(img: np.ndarray, text: str, x: int, line_h: int) -> int:
        """Write ``text`` on a ``line_h``-high strip from ``x``; returns the x after it."""
        scale = max(0.3, line_h / 34)
        thick = max(1, int(round(line_h / 28)))
        (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        cv2.putText(img, text, (x, int(line_h * 0.72)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thick, cv2.LINE_AA)
        return x + tw

    def _titled(self, panel: np.ndarray, title: str) -> np.ndarray:
        if self.title_height <= 0:
            return panel
        h, w = panel.shape[:2]
        line_h = self._text_height(h)
        strip = np.zeros((line_h, w, 3), dtype=np.uint8)
        self._put_text(strip, title, max(3, line_h // 8), line_h)
        return np.concatenate([strip, panel], axis=0)

    def legend_entries(self, task: str, maps: Sequence[np.ndarray]
                       ) -> List[Tuple[int, str, np.ndarray]]:
        """(class index, name, RGB colour) of the classes shown in ``maps``, largest first
        (at most ``legend_max_classes``; ignored pixels are not a class)."""
        counts = np.zeros(0, dtype=np.int64)
        for labels in maps:
            labels = np.asarray(labels).reshape(-1).astype(np.int64)
            labels = labels[(labels >= 0) & (labels != self.ignore_index)]
            found = np.bincount(labels)
            if found.size > counts.size:
                found[:counts.size] += counts
                counts = found
            else:
                counts[:found.size] += found
        names = _classes_from_meta(self.dataset_meta, task) or []
        palette = _palette_from_meta(self.dataset_meta, task)
        if palette is None or len(palette) == 0:
            palette = default_palette()
        order = [int(i) for i in np.argsort(-counts, kind='stable') if counts[i] > 0]
        return [(i, names[i] if i < len(names) else str(i), palette[i % len(palette)])
                for i in order[:self.legend_max_classes]]

    def _legend(self, tasks: Sequence[str], maps: Dict[Tuple[str, str], np.ndarray],
                width: int, panel_h: int) -> Optional[np.ndarray]:
        """The strip under the grid: classes shown per segmentation task, the normals key."""
        line_h = self._text_height(panel_h)
        lines: List[List[Tuple[Optional[np.ndarray], str]]] = []
        for task in tasks:
            arrays = [a for (_, t), a in maps.items() if t == task]
            if not arrays:
                continue
            kind = self._draw_type(task, arrays[0])
            if kind == 'segmentation':
                # a class without a name is named by its index: shown once ('0', not '0 0')
                entries = [(colour, f'{i} {name}' if name != str(i) else name)
                           for i, name, colour in self.legend_entries(task, arrays)]
                lines.append([(None, f'{task}:')] + entries)
            elif kind == 'normals':
                lines.append([(None, f'{task}: RGB = (n + 1) / 2, x right, y up, z towards '
                               'the camera (the disc in the corner)')])
        if not lines:
            return None
        rows = []
        for entries in lines:  # wrapped to the grid's width
            row = np.zeros((line_h, width, 3), np.uint8)
            x = pad = max(3, line_h // 6)
            for colour, text in entries:
                (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX,
                                             max(0.3, line_h / 34), 1)
                need = tw + (line_h if colour is not None else 0) + 2 * pad
                if x + need > width and x > pad:
                    rows.append(row)
                    row = np.zeros((line_h, width, 3), np.uint8)
                    x = pad
                if colour is not None:
                    s = int(line_h * 0.6)
                    y0 = (line_h - s) // 2
                    row[y0:y0 + s, x:x + s] = colour
                    x += s + pad // 2
                x = self._put_text(row, text, x, line_h) + 2 * pad
            rows.append(row)
        return np.concatenate(rows, axis=0)

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
        undrawable: Dict[Tuple[str, str], Tuple[int, str]] = {}  # -> (channels, style)
        for task in tasks:
            for which in ('gt', 'pred'):
                arr = _to_numpy(_get(data_sample, f'{which}_{task}'))
                if arr is None:
                    continue
                channels = arr.shape[0] if arr.ndim == 3 else 1
                kind = self._draw_type(task, arr)
                # the styles draw one plane, or three (normals); e.g. a 2-channel flow task
                # gets a titled empty panel instead of a crash
                if channels != (3 if kind == 'normals' else 1):
                    undrawable[(which, task)] = (channels, kind)
                else:
                    maps[(which, task)] = arr
        if image is None:
            shapes = [a.shape[-2:] for a in maps.values()]
            h, w = shapes[0] if shapes else (64, 64)
            image = np.zeros((h, w, 3), dtype=np.uint8)
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        image = image[..., :3].astype(np.uint8)
        size = self.display_size(*image.shape[:2])
        image = self._resize(image, size, smooth=True)

        rows = []
        given = {which for which, _ in list(maps) + list(undrawable)}
        if draw_gt and 'gt' in given:
            rows.append('gt')
        if draw_pred and 'pred' in given:
            rows.append('pred')
        if not rows:
            rows = ['pred']
        grid_rows = []
        for which in rows:
            cells = [self._titled(image.copy(), 'image')]
            for task in tasks:
                arr = maps.get((which, task))
                if arr is None:
                    panel = np.zeros(size + (3, ), dtype=np.uint8)
                    title = f'{task} {which}: none'
                    if (which, task) in undrawable:
                        channels, kind = undrawable[(which, task)]
                        title = f'{task} {which}: {channels} channels, not drawn ({kind} style)'
                else:
                    drange = self._depth_range(maps.get(('gt', task)), maps.get(('pred', task)))
                    panel = self._panel(task, arr, which == 'gt', drange, size)
                    title = f"{task} {'GT' if which == 'gt' else 'pred'}"
                cells.append(self._titled(panel, title))
            grid_rows.append(np.concatenate(cells, axis=1))
        grid = np.concatenate(grid_rows, axis=0)
        if self.legend:
            shown = {k: v for k, v in maps.items() if k[0] in rows}
            legend = self._legend(tasks, shown, grid.shape[1], size[0])
            if legend is not None:
                grid = np.concatenate([grid, legend], axis=0)
        return grid

    def add_datasample(self,
                       name: str,
                       image: Optional[np.ndarray],
                       data_sample: Any = None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       step: int = 0,
                       overwrite: bool = False) -> np.ndarray:
        """Draw a sample, then show it, write it to ``out_file`` or hand it to the backends.

        Same signature as mmseg's ``SegLocalVisualizer.add_datasample``. Unlike it (rank 0
        only), every rank of a distributed test draws and saves its own samples (each test
        image is on one rank), to ``out_file`` or, on ranks other than 0, to the backends that
        write a file per picture (``LocalVisBackend``s); the others (TensorBoard, W&B) record
        rank 0's samples, and only rank 0 shows them.

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
            overwrite (bool): Whether an existing ``out_file`` may be replaced (mmseg's
                does replace it). Defaults to False: ``FileExistsError``, the file is kept.

        Returns:
            np.ndarray: The drawn RGB grid.
        """
        drawn = self.draw_multi_task(image, data_sample, draw_gt, draw_pred)
        self.set_image(drawn)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)  # rank 0 only
        if out_file is not None:
            ok, buf = cv2.imencode(os.path.splitext(out_file)[1] or '.png', drawn[..., ::-1])
            if not ok:
                raise IOError(f'could not encode a picture for {out_file}')
            # temporary file + rename: an interrupted run leaves no half-written picture
            atomic_write(buf.tobytes(), out_file, overwrite=overwrite, fsync=False)
        elif is_main_process():
            self.add_image(name, drawn, step)
        else:
            # Visualizer.add_image is rank 0 only: a distributed test used to save half of
            # the pictures. A file per picture cannot clash with rank 0's; a run log could
            for backend in self._vis_backends.values():
                if isinstance(backend, LocalVisBackend):
                    backend.add_image(name, drawn, step)
        return drawn
