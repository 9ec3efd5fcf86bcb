"""A synthetic Cityscapes (semseg + disparity) in the real file layout.

Each image is a street scene drawn in 2D from a random layout: sky and buildings above the
horizon, road, sidewalk and terrain below, cars and persons standing on the ground, poles,
traffic signs and vegetation, some void regions (the ego vehicle, "static" clutter, rail
track). The files follow :class:`~mmmt.datasets.CityscapesMultiTaskDataset` in kind (names,
formats and encodings):

- ``leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png``: RGB, a colour per class
  with shading and noise;
- ``gtFine/.../*_gtFine_labelIds.png``: raw label ids (uint8), void ones included;
- ``disparity/.../*_disparity.png``: uint16 ``256 d + 1`` of a ground-plane disparity ``d``
  (objects take the disparity of their foot point, buildings a small one, the sky a spurious
  small one as stereo matchers give), 0 in holes (no match).

Output is a pure function of the seed (each image has its own
``SeedSequence([seed, 2, index])``). Nothing here needs the 3D renderer of
``mmmt.testing.synthetic_render``.
"""
import os
import os.path as osp
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np
from PIL import Image

from mmmt.datasets.cityscapes import (CITYSCAPES_LABEL_TO_TRAIN_ID, CITYSCAPES_PALETTE,
                                      CITYSCAPES_SKY_LABEL_ID)
from .synthetic_writers import staged_out_dir

__all__ = ['render_cityscapes_scene', 'generate_cityscapes', 'encode_disparity', 'CITIES']

#: Cities of each split (a subset of the real ones).
CITIES = dict(train=('aachen', 'bochum'), val=('frankfurt', ))

# raw label ids used by the scenes (cityscapesScripts' labels.py)
ROAD, SIDEWALK, BUILDING, POLE, SIGN, VEGETATION, TERRAIN = 7, 8, 11, 17, 20, 21, 22
SKY, PERSON, CAR = CITYSCAPES_SKY_LABEL_ID, 24, 26
EGO_VEHICLE, STATIC, RAIL_TRACK = 1, 4, 10
_VOID_COLOURS = {EGO_VEHICLE: (20, 20, 20), STATIC: (110, 90, 60), RAIL_TRACK: (230, 150, 140)}


def _colour(label_id: int) -> np.ndarray:
    train_id = CITYSCAPES_LABEL_TO_TRAIN_ID.get(label_id)
    rgb = CITYSCAPES_PALETTE[train_id] if train_id is not None else _VOID_COLOURS.get(
        label_id, (0, 0, 0))
    return np.asarray(rgb, dtype=np.float64)


def render_cityscapes_scene(rng: np.random.Generator,
                            size: Tuple[int, int]) -> Dict[str, np.ndarray]:
    """One street scene.

    Returns:
        dict: ``image`` uint8 (H, W, 3) RGB, ``label_ids`` uint8 (H, W) raw label ids,
        ``disparity`` float32 (H, W) pixels (0 = no match).
    """
    h, w = size
    u = rng.uniform
    horizon = int(h * u(0.35, 0.5))
    # ground-plane disparity grows linearly below the horizon: ~100 px at the bottom of a
    # 1024-row image, scaled with the image height
    slope = u(90.0, 110.0) / 1024.0 * h / max(1, h - horizon)
    rows = np.arange(h, dtype=np.float64)[:, None]
    ground = np.clip((rows - horizon) * slope, 0.0, None) * np.ones((1, w))

    label = np.full((h, w), SKY, np.uint8)
    disp = np.full((h, w), u(0.2, 1.5) * h / 1024.0)  # spurious stereo matches in the sky
    # buildings along the horizon
    x = 0
    while x < w:
        bw = int(w * u(0.08, 0.25))
        top = int(horizon - h * u(0.1, 0.35))
        label[max(0, top):horizon, x:x + bw] = BUILDING
        disp[max(0, top):horizon, x:x + bw] = u(2.0, 8.0) * h / 1024.0
        x += bw + int(w * u(0.0, 0.05))
    # ground: road in the middle, sidewalks, terrain at the borders
    label[horizon:] = ROAD
    disp[horizon:] = ground[horizon:]
    vv, uu = np.mgrid[0:h, 0:w]
    t = np.clip((vv - horizon) / max(1, h - horizon), 0, 1)
    centre = w * u(0.4, 0.6)
    half_road = w * (0.05 + 0.45 * t)
    side = (np.abs(uu - centre) > half_road) & (vv >= horizon)
    label[side] = SIDEWALK
    label[side & (np.abs(uu - centre) > half_road + w * 0.15 * (0.3 + t))] = TERRAIN
    if rng.random() < 0.5:  # a rail track on the road (void; id 10, the reference's "sky")
        rail = (np.abs(uu - centre - half_road * 0.3) < w * 0.02 * (0.2 + t)) & (vv > horizon)
        label[rail] = RAIL_TRACK
    # vegetation, poles and signs standing on the sidewalk
    for _ in range(rng.integers(1, 4)):
        cx, bottom = int(u(0, w)), int(u(horizon + 1, h * 0.9))
        r = int(max(2, (bottom - horizon) * u(0.3, 0.6)))
        yy, xx = np.ogrid[:h, :w]
        blob = ((yy - (bottom - r)) ** 2 + (xx - cx) ** 2 <= r * r) & (yy < bottom)
        label[blob], disp[blob] = VEGETATION, ground[min(bottom, h - 1), 0]
    for _ in range(rng.integers(1, 3)):
        cx, bottom = int(u(0, w)), int(u(horizon + 2, h))
        pw, ph = max(1, int(w * 0.006)), int((bottom - horizon) * u(1.5, 2.5))
        label[max(0, bottom - ph):bottom, cx:cx + pw] = POLE
        disp[max(0, bottom - ph):bottom, cx:cx + pw] = ground[bottom - 1, 0]
        sh = max(2, int(ph * 0.15))
        label[max(0, bottom - ph):max(0, bottom - ph) + sh, cx - 2 * pw:cx + 3 * pw] = SIGN
        disp[max(0, bottom - ph):max(0, bottom - ph) + sh, cx - 2 * pw:cx + 3 * pw] = \
            ground[bottom - 1, 0]
    # cars and persons on the ground, farthest first (nearer ones occlude them)
    objects = [(CAR if rng.random() < 0.7 else PERSON, int(u(horizon + 2, h)))
               for _ in range(rng.integers(1, 6))]
    for kind, bottom in sorted(objects, key=lambda o: o[1]):
        scale = (bottom - horizon) / max(1, h - horizon)
        ow = int(w * (0.25 if kind == CAR else 0.05) * scale) + 1
        oh = int(h * (0.3 if kind == CAR else 0.45) * scale) + 1
        cx = int(u(0, w - ow))
        label[max(0, bottom - oh):bottom, cx:cx + ow] = kind
        disp[max(0, bottom - oh):bottom, cx:cx + ow] = ground[bottom - 1, 0]
    if rng.random() < 0.3:  # static clutter
        cy, cx = int(u(horizon, h)), int(u(0, w))
        label[cy:cy + max(1, h // 20), cx:cx + max(1, w // 30)] = STATIC
    if rng.random() < 0.5:  # the ego vehicle's bonnet
        label[int(h * 0.92):] = EGO_VEHICLE

    img = np.zeros((h, w, 3))
    for label_id in np.unique(label):
        img[label == label_id] = _colour(int(label_id))
    shade = 0.75 + 0.25 * np.clip(1.0 - np.abs(vv - horizon) / h, 0, 1)
    img = img * shade[..., None] + rng.normal(0.0, 4.0, img.shape)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)

    disp = disp.astype(np.float32)
    for _ in range(rng.integers(0, 4)):  # holes: no stereo match
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        ry, rx = max(1, int(h * u(0.02, 0.08))), max(1, int(w * u(0.02, 0.08)))
        disp[((vv - cy) / ry) ** 2 + ((uu - cx) / rx) ** 2 <= 1] = 0.0
    disp[label == EGO_VEHICLE] = 0.0
    return dict(image=img, label_ids=label, disparity=disp)


def encode_disparity(disparity: np.ndarray) -> np.ndarray:
    """Float disparity (0 = none) as the uint16 values of ``*_disparity.png``: ``256 d + 1``."""
    raw = np.where(disparity > 0, np.rint(disparity * 256.0) + 1, 0)
    return np.clip(raw, 0, np.iinfo(np.uint16).max).astype(np.uint16)


def generate_cityscapes(out_dir: str, n_train: int, n_val: int, seed: int = 0,
                        size: Tuple[int, int] = (1024, 2048),
                        progress: Optional[Callable[[int, int, str], None]] = None,
                        overwrite: bool = False) -> Dict[str, List[str]]:
    """Write a synthetic Cityscapes (``leftImg8bit/``, ``gtFine/``, ``disparity/``).

    Args:
        out_dir: The dataset root to create.
        n_train, n_val: Number of images per split.
        seed: Random seed; the output is a function of it.
        size: (H, W) of every image (the real data is 1024x2048).
        progress: Called as ``progress(done, total, id)`` after each image.
        overwrite: Replace ``out_dir`` if it holds a dataset of this generator (see
            :func:`~mmmt.testing.synthetic_writers.staged_out_dir`). Defaults to False
            (``FileExistsError`` if not empty).

    Returns:
        dict: ``{'train': ids, 'val': ids}``, ids as ``<city>/<city>_<seq>_<frame>``.
    """
    with staged_out_dir(out_dir, overwrite) as root:
        return _write_cityscapes(root, n_train, n_val, seed, size, progress)


def _write_cityscapes(out_dir: str, n_train: int, n_val: int, seed: int,
                      size: Tuple[int, int],
                      progress: Optional[Callable[[int, int, str], None]]
                      ) -> Dict[str, List[str]]:
    plan = [('train', i) for i in range(n_train)] + [('val', i) for i in range(n_val)]
    splits: Dict[str, List[str]] = dict(train=[], val=[])
    for index, (split, i) in enumerate(plan):
        city = CITIES[split][i % len(CITIES[split])]
        stem = f'{city}_{i // len(CITIES[split]):06d}_{19 + 10 * index:06d}'
        scene = render_cityscapes_scene(
            np.random.default_rng(np.random.SeedSequence([int(seed), 2, index])), tuple(size))
        files = dict(leftImg8bit=('_leftImg8bit.png', scene['image']),
                     gtFine=('_gtFine_labelIds.png', scene['label_ids']),
                     disparity=('_disparity.png', encode_disparity(scene['disparity'])))
        for folder, (suffix, arr) in files.items():
            sub = osp.join(out_dir, folder, split, city)
            os.makedirs(sub, exist_ok=True)
            path = osp.join(sub, stem + suffix)
            if arr.dtype == np.uint16:  # cv2 writes 16-bit grayscale PNGs as they are
                if not cv2.imwrite(path, arr):
                    raise OSError(f'cannot write {path}')
            else:
                Image.fromarray(arr).save(path, format='PNG')
        splits[split].append(f'{city}/{stem}')
        if progress is not None:
            progress(index + 1, len(plan), f'{city}/{stem}')
    return {k: sorted(v) for k, v in splits.items()}
