"""Synthetic NYUDv2 / PASCAL-Context multi-task data, rendered from random 3D scenes.

Each image is ray-cast (vectorised numpy, one ray per pixel, pinhole camera) from a random
scene of axis-aligned planes, yaw-rotated boxes and spheres. Every primitive carries a semantic
class, an instance id, optionally a PASCAL-Part part name, and a material (class-dependent base
colour, procedural texture in surface coordinates). From the nearest hit of each ray come, all
consistent with one another:

- the image: Lambert shading of the textured albedo (directional light + ambient), a slight
  blur and sensor noise;
- semantic labels (NYUD 40 classes / PASCAL-Context ids and their VOC classes);
- depth (camera z), with invalid holes set to 0 like Kinect data (NYUD);
- surface normals in the camera frame (x right, y up, z towards the viewer);
- boundaries (NYUD: instance boundaries; PASCAL: derived by the loader from the LabelMap);
- saliency (PASCAL: the VOC objects, softened);
- human parts (PASCAL: persons built from head/hair/neck/torso/arm/hand/leg/foot primitives,
  written as a PASCAL-Part ``anno`` struct; some persons carry no part annotation).

The files follow the real layouts byte for byte in kind (names, formats, value encodings,
split lists, ``.mat`` variables), see :class:`~mmmt.datasets.NYUDv2MultiTaskDataset` and
:class:`~mmmt.datasets.PascalContextMultiTaskDataset`. Output is a pure function of the seed:
each image uses its own ``SeedSequence([seed, dataset, index])`` and the ``.mat`` headers carry a
fixed text instead of a creation time. The PASCAL-Context ids used for background surfaces
(ground, wall, sky, tree) are arbitrary choices inside / outside the 170 normals classes; only
the VOC classes' ids (:data:`VOC_CONTEXT_IDS`) are meaningful.

Not written (not read by the loaders): NYUD has no extra files; PASCAL has no ``edge/*.png``,
no ``ImageSets/Parts`` JSON cache and no ``db_info/``.
"""
import io
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from .class_names import (NYUD_CLASSES, PASCAL_NORMALS_VALID_CONTEXT_IDS, PERSON_CLASS_ID,
                          VOC_CLASSES, VOC_CONTEXT_IDS)

__all__ = [
    'generate_nyud', 'generate_pascal', 'generate', 'render_nyud_scene', 'render_pascal_scene',
    'savemat_deterministic'
]

EPS = 1e-4
_NY = {n: i + 1 for i, n in enumerate(NYUD_CLASSES)}  # NYUD PNG value of each class name
_VOC = {n: i for i, n in enumerate(VOC_CLASSES)}

# Background PASCAL-Context ids (arbitrary, see the module docstring).
CTX_GROUND = (181, 183)  # inside the 170 normals classes
CTX_WALL = 260  # inside
CTX_SKY = 360  # outside
CTX_TREE = 420  # outside
assert all(c in PASCAL_NORMALS_VALID_CONTEXT_IDS for c in CTX_GROUND + (CTX_WALL, ))
assert all(c not in PASCAL_NORMALS_VALID_CONTEXT_IDS for c in (CTX_SKY, CTX_TREE))
assert not set(CTX_GROUND + (CTX_WALL, CTX_SKY, CTX_TREE)) & set(VOC_CONTEXT_IDS)


# --------------------------------------------------------------------------------------------
# Scene description and ray casting
# --------------------------------------------------------------------------------------------
@dataclass
class Material:
    """Albedo (RGB in [0, 1]) and a procedural texture evaluated in surface coordinates."""
    colour: np.ndarray
    texture: str = 'plain'  # plain | stripes | checker | noise
    freq: float = 4.0
    amp: float = 0.2
    phase: Tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)

    def albedo(self, uv: np.ndarray) -> np.ndarray:
        """(n, 3) albedo at surface coordinates ``uv`` (n, 2) in metres."""
        u, v = uv[:, 0], uv[:, 1]
        p0, p1, a, b = self.phase
        if self.texture == 'stripes':
            t = 0.5 + 0.5 * np.sin(2 * np.pi * self.freq * u + p0 + 0.6 * np.sin(3 * v + p1))
        elif self.texture == 'checker':
            t = ((np.floor(self.freq * u) + np.floor(self.freq * v)) % 2).astype(np.float64)
        elif self.texture == 'noise':
            t = 0.5 + 0.25 * np.sin(self.freq * (a * u + b * v) + p0) \
                + 0.25 * np.sin(self.freq * 1.7 * (b * u - a * v) + p1)
        else:
            t = np.full(u.shape, 0.5)
        shade = 1.0 - self.amp + self.amp * t
        return np.clip(self.colour[None, :] * shade[:, None], 0.0, 1.0)


@dataclass
class Prim:
    """A primitive: ``plane`` (axis, coord, sign), ``box`` (centre, half, yaw) or ``sphere``."""
    kind: str
    params: dict
    label: int  # semantic label (NYUD PNG value / PASCAL-Context id)
    inst: int  # instance id (0 = none)
    material: Material
    part: Optional[str] = None
    depth_valid: bool = True
    decals: List[dict] = field(default_factory=list)  # planes only


def _rot_y(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _bounding_sphere(p: Prim) -> Tuple[np.ndarray, float]:
    if p.kind == 'box':
        return p.params['centre'], float(np.linalg.norm(p.params['half']))
    return p.params['centre'], float(p.params['radius'])


def _intersect(p: Prim, o: np.ndarray, d: np.ndarray, dd: np.ndarray) -> np.ndarray:
    """Ray parameter t of the first hit (inf where none); rays ``o + t d``.

    ``d`` is (3, n) (one row per axis, which keeps numpy fast) and ``dd`` its squared norms.
    Boxes and spheres are first culled with their bounding sphere, then tested exactly.
    """
    n = d.shape[1]
    t = np.full(n, np.inf)
    if p.kind == 'plane':
        a, c = p.params['axis'], p.params['coord']
        with np.errstate(divide='ignore', invalid='ignore'):
            tt = (c - o[a]) / d[a]
        ok = np.isfinite(tt) & (tt > EPS)
        t[ok] = tt[ok]
        return t
    centre, radius = _bounding_sphere(p)
    oc = o - centre
    b = oc[0] * d[0] + oc[1] * d[1] + oc[2] * d[2]
    cc = float(oc @ oc) - radius**2
    disc = b * b - dd * cc
    idx = np.nonzero(disc > 0)[0]
    if idx.size == 0:
        return t
    if p.kind == 'sphere':
        tt = (-b[idx] - np.sqrt(disc[idx])) / dd[idx]
        ok = tt > EPS
        t[idx[ok]] = tt[ok]
        return t
    rt = _rot_y(p.params['yaw']).T
    ol = rt @ oc
    ds = d[:, idx]
    dl = rt @ ds
    h = p.params['half']
    tn = np.full(idx.size, -np.inf)
    tf = np.full(idx.size, np.inf)
    for ax in range(3):
        da = dl[ax]
        with np.errstate(divide='ignore', invalid='ignore'):
            inv = 1.0 / np.where(np.abs(da) < 1e-12, 1e-12, da)
        t1 = (-h[ax] - ol[ax]) * inv
        t2 = (h[ax] - ol[ax]) * inv
        np.maximum(tn, np.minimum(t1, t2), out=tn)
        np.minimum(tf, np.maximum(t1, t2), out=tf)
    ok = (tf >= tn) & (tn > EPS)
    t[idx[ok]] = tn[ok]
    return t


def _surface(p: Prim, o: np.ndarray, d: np.ndarray, t: np.ndarray):
    """World normals (n, 3) and surface coordinates (n, 2) at the hits ``o + t d``."""
    x = o[None, :] + t[:, None] * d
    if p.kind == 'plane':
        a = p.params['axis']
        nrm = np.zeros_like(x)
        nrm[:, a] = p.params['sign']
        other = [i for i in range(3) if i != a]
        return nrm, x[:, other]
    if p.kind == 'box':
        r = _rot_y(p.params['yaw'])
        xl = (x - p.params['centre']) @ r
        q = np.abs(xl) / p.params['half']
        ax = np.argmax(q, axis=1)
        nl = np.zeros_like(xl)
        nl[np.arange(len(ax)), ax] = np.sign(xl[np.arange(len(ax)), ax])
        # surface coordinates: the two local coordinates other than the face axis
        uv = np.where(ax[:, None] == 0, xl[:, [2, 1]],
                      np.where(ax[:, None] == 1, xl[:, [0, 2]], xl[:, [0, 1]]))
        return nl @ r.T, uv
    nrm = (x - p.params['centre']) / p.params['radius']
    uv = np.stack([np.arctan2(nrm[:, 0], nrm[:, 2]), np.arcsin(np.clip(nrm[:, 1], -1, 1))],
                  axis=1) * p.params['radius']
    return nrm, uv


@dataclass
class Render:
    """Per-pixel outputs of :func:`raycast`."""
    image: np.ndarray  # uint8 (H, W, 3)
    label: np.ndarray  # int64 (H, W), 0 where no hit
    inst: np.ndarray  # int64 (H, W), 0 where no hit
    part: np.ndarray  # object (H, W) part names or None
    depth: np.ndarray  # float32 (H, W), 0 where no hit / invalid
    normals: np.ndarray  # float32 (H, W, 3) camera frame, unit
    hit: np.ndarray  # bool (H, W)


def raycast(prims: Sequence[Prim], size: Tuple[int, int], cam_pos: np.ndarray, yaw: float,
            pitch: float, focal: float, light: np.ndarray, rng: np.random.Generator,
            background: Optional[Tuple[int, Material]] = None, ambient: float = 0.45,
            noise_std: float = 2.0) -> Render:
    """Ray-cast the primitives from a pinhole camera (x right, y up, z forward).

    Args:
        prims: The scene.
        size: (H, W) of the image.
        cam_pos: Camera centre in the world (y up).
        yaw, pitch: Camera rotation (radians; positive pitch looks down).
        focal: Focal length in pixels.
        light: Direction towards the light (world, unit).
        rng: Generator for the sensor noise.
        background: (label, material) of rays that hit nothing (e.g. sky).
        ambient: Ambient light fraction.
        noise_std: Std of the additive sensor noise (0..255 scale).
    """
    h, w = size
    vv, uu = np.mgrid[0:h, 0:w]
    dc = np.stack([(uu + 0.5 - w / 2) / focal, -(vv + 0.5 - h / 2) / focal,
                   np.ones((h, w))], axis=-1).reshape(-1, 3)
    cp, sp = np.cos(pitch), np.sin(pitch)
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    r_cam = _rot_y(yaw) @ r_pitch
    d = dc @ r_cam.T
    o = np.asarray(cam_pos, dtype=np.float64)

    dt = np.ascontiguousarray(d.T)
    dd = np.einsum('ij,ij->j', dt, dt)
    ts = np.stack([_intersect(p, o, dt, dd) for p in prims], axis=0)
    win = np.argmin(ts, axis=0)
    tmin = ts[win, np.arange(d.shape[0])]
    hit = np.isfinite(tmin)

    n = d.shape[0]
    label = np.zeros(n, np.int64)
    inst = np.zeros(n, np.int64)
    part = np.full(n, None, dtype=object)
    depth = np.zeros(n, np.float64)
    nrm_w = np.zeros((n, 3))
    alb = np.zeros((n, 3))
    valid = np.ones(n, bool)
    for k, p in enumerate(prims):
        idx = np.nonzero(hit & (win == k))[0]
        if idx.size == 0:
            continue
        nk, uv = _surface(p, o, d[idx], tmin[idx])
        nrm_w[idx] = nk
        label[idx] = p.label
        inst[idx] = p.inst
        part[idx] = p.part
        alb[idx] = p.material.albedo(uv)
        valid[idx] = p.depth_valid
        for dec in p.decals:
            inside = ((uv[:, 0] >= dec['u'][0]) & (uv[:, 0] <= dec['u'][1]) &
                      (uv[:, 1] >= dec['v'][0]) & (uv[:, 1] <= dec['v'][1]))
            sel = idx[inside]
            label[sel] = dec['label']
            inst[sel] = dec['inst']
            alb[sel] = dec['material'].albedo(uv[inside])
            valid[sel] = dec.get('depth_valid', True)
    depth[hit] = tmin[hit]  # camera z, since the camera-frame direction has z = 1
    miss = ~hit
    if background is not None and miss.any():
        label[miss] = background[0]
        alb[miss] = background[1].albedo(dc[miss, :2] * 3.0)
    lam = np.clip(nrm_w @ light, 0.0, None)
    shade = np.where(hit, ambient + (1.0 - ambient) * lam, 1.0)
    img = alb * shade[:, None] * 255.0
    img = img.reshape(h, w, 3)
    img = cv2.GaussianBlur(img, (0, 0), 0.6)
    img = img + rng.normal(0.0, noise_std, img.shape)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)

    nrm_c = nrm_w @ r_cam  # world -> camera frame (x right, y up, z forward)
    nrm_c[:, 2] *= -1  # z towards the viewer
    nrm_c[miss] = (0.0, 0.0, 1.0)
    depth[~valid] = 0.0
    return Render(image=img, label=label.reshape(h, w), inst=inst.reshape(h, w),
                  part=part.reshape(h, w), depth=depth.reshape(h, w).astype(np.float32),
                  normals=nrm_c.reshape(h, w, 3).astype(np.float32), hit=hit.reshape(h, w))


# --------------------------------------------------------------------------------------------
# Object builders (local frame: y up, the object stands on y = 0, faces -z)
# --------------------------------------------------------------------------------------------
def _class_colour(key: str, rng_seed: int = 0) -> np.ndarray:
    """A fixed base colour per class name (the same in every scene: learnable)."""
    seed = sum((i + 1) * ord(c) for i, c in enumerate(key)) + rng_seed
    r = np.random.default_rng(seed)
    hsv = np.array([[[r.integers(0, 180), r.integers(60, 220), r.integers(110, 240)]]],
                   dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64) / 255.0


_TEXTURES = {'floor': 'checker', 'wall': 'noise', 'ceiling': 'plain', 'bed': 'noise',
             'sofa': 'noise', 'table': 'stripes', 'desk': 'stripes', 'cabinet': 'stripes',
             'dresser': 'stripes', 'bookshelf': 'stripes', 'night stand': 'stripes',
             'chair': 'stripes', 'door': 'stripes', 'window': 'plain', 'picture': 'checker',
             'curtain': 'stripes', 'blinds': 'stripes', 'pillow': 'noise',
             'floor mat': 'checker', 'ground': 'noise', 'road': 'stripes', 'sky': 'plain'}


def _material(key: str, rng: np.random.Generator, texture: Optional[str] = None,
              jitter: float = 0.08) -> Material:
    colour = np.clip(_class_colour(key) + rng.normal(0, jitter, 3), 0.02, 1.0)
    tex = texture or _TEXTURES.get(key, ['noise', 'stripes', 'plain'][sum(map(ord, key)) % 3])
    return Material(colour=colour, texture=tex, freq=float(rng.uniform(2.0, 6.0)),
                    amp=float(rng.uniform(0.15, 0.35)),
                    phase=tuple(float(x) for x in rng.uniform(0, 2 * np.pi, 2)) +
                    tuple(float(x) for x in rng.uniform(0.5, 1.5, 2)))


def _box(c, half, part=None):
    return ('box', np.asarray(c, float), np.asarray(half, float), part)


def _sph(c, r, part=None):
    return ('sphere', np.asarray(c, float), float(r), part)


def _furniture(kind: str, rng: np.random.Generator) -> List[tuple]:
    u = rng.uniform
    if kind in ('table', 'desk', 'diningtable'):
        hw, hd, ht = u(0.4, 0.9), u(0.3, 0.6), u(0.65, 0.8)
        parts = [_box((0, ht - 0.025, 0), (hw, 0.025, hd))]
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(_box((sx * (hw - 0.05), (ht - 0.05) / 2, sz * (hd - 0.05)),
                                  (0.03, (ht - 0.05) / 2, 0.03)))
        return parts
    if kind == 'chair':
        s = u(0.2, 0.26)
        parts = [_box((0, 0.45, 0), (s, 0.03, s)), _box((0, 0.72, s - 0.02), (s, 0.25, 0.025))]
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(_box((sx * (s - 0.03), 0.21, sz * (s - 0.03)), (0.02, 0.21, 0.02)))
        return parts
    if kind == 'sofa':
        hw, hd = u(0.8, 1.2), u(0.4, 0.5)
        return [_box((0, 0.22, 0), (hw, 0.22, hd)), _box((0, 0.6, hd - 0.1), (hw, 0.3, 0.1)),
                _box((-hw + 0.1, 0.35, 0), (0.1, 0.35, hd)),
                _box((hw - 0.1, 0.35, 0), (0.1, 0.35, hd))]
    if kind == 'bed':
        hw, hd = u(0.7, 1.0), u(0.9, 1.1)
        return [_box((0, 0.25, 0), (hw, 0.25, hd))]
    if kind == 'lamp':
        hgt = u(1.2, 1.6)
        return [_box((0, hgt / 2, 0), (0.03, hgt / 2, 0.03)), _sph((0, hgt, 0), u(0.15, 0.22))]
    if kind in ('otherprop', 'bag', 'clutter'):
        r = u(0.12, 0.3)
        return [_sph((0, r, 0), r)]
    if kind == 'floor mat':
        return [_box((0, 0.01, 0), (u(0.5, 1.0), 0.01, u(0.4, 0.8)))]
    if kind == 'television':
        return [_box((0, 0.9, 0), (u(0.4, 0.6), u(0.25, 0.35), 0.04)),
                _box((0, 0.3, 0), (0.3, 0.3, 0.25))]
    # plain boxes: cabinet, dresser, bookshelf, night stand, box, otherfurniture
    dims = {'cabinet': (0.5, 0.9, 0.3), 'dresser': (0.6, 0.5, 0.3), 'bookshelf': (0.5, 1.0, 0.2),
            'night stand': (0.25, 0.3, 0.25), 'box': (0.2, 0.15, 0.2),
            'otherfurniture': (0.4, 0.4, 0.4)}.get(kind, (0.3, 0.3, 0.3))
    hw, hh, hd = (x * u(0.8, 1.25) for x in dims)
    return [_box((0, hh, 0), (hw, hh, hd))]


def _person(rng: np.random.Generator) -> List[tuple]:
    """A standing person facing -z; its left side is at +x (image right when facing us)."""
    parts = []
    for side, sx in (('l', 1), ('r', -1)):
        parts += [
            _box((sx * 0.1, 0.04, -0.05), (0.06, 0.04, 0.12), f'{side}foot'),
            _box((sx * 0.1, 0.29, 0), (0.06, 0.21, 0.06), f'{side}lleg'),
            _box((sx * 0.1, 0.7, 0), (0.08, 0.2, 0.08), f'{side}uleg'),
            _box((sx * 0.265, 1.3, 0), (0.05, 0.15, 0.05), f'{side}uarm'),
            _box((sx * 0.27, 1.015, -0.01), (0.045, 0.135, 0.045), f'{side}larm'),
            _sph((sx * 0.27, 0.84, -0.01), 0.05, f'{side}hand'),
        ]
    parts += [_box((0, 1.175, 0), (0.2, 0.275, 0.11), 'torso'),
              _box((0, 1.49, 0), (0.05, 0.04, 0.05), 'neck'),
              _sph((0, 1.62, 0), 0.11, 'head'),
              _sph((0, 1.665, 0.03), 0.104, 'hair')]
    return parts


def _animal(kind: str, rng: np.random.Generator) -> List[tuple]:
    s = {'cat': 0.3, 'dog': 0.45, 'sheep': 0.6, 'cow': 1.0, 'horse': 1.1}[kind] * rng.uniform(
        0.85, 1.15)
    leg = 0.45 * s
    parts = [_box((0, leg + 0.2 * s, 0), (0.45 * s, 0.2 * s, 0.18 * s)),
             _sph((0.55 * s, leg + 0.45 * s, 0), 0.16 * s)]
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts.append(_box((sx * 0.35 * s, leg / 2, sz * 0.12 * s),
                              (0.05 * s, leg / 2, 0.05 * s)))
    return parts


def _voc_object(kind: str, rng: np.random.Generator) -> List[tuple]:
    u = rng.uniform
    if kind in ('cat', 'dog', 'sheep', 'cow', 'horse'):
        return _animal(kind, rng)
    if kind in ('chair', 'diningtable', 'sofa'):
        return _furniture({'diningtable': 'table'}.get(kind, kind), rng)
    if kind == 'car':
        return [_box((0, 0.55, 0), (1.0, 0.35, 0.45)), _box((0.1, 1.05, 0), (0.55, 0.22, 0.42)),
                *[_sph((sx * 0.65, 0.3, sz * 0.42), 0.3) for sx in (-1, 1) for sz in (-1, 1)]]
    if kind in ('bus', 'train'):
        return [_box((0, 1.6, 0), (u(2.5, 4.0), 1.3, 1.2))]
    if kind == 'boat':
        return [_box((0, 0.35, 0), (1.4, 0.35, 0.5)), _box((0, 1.2, 0), (0.04, 0.8, 0.04))]
    if kind == 'aeroplane':
        y = u(2.5, 5.0)
        return [_box((0, y, 0), (2.5, 0.3, 0.3)), _box((0, y, 0), (0.5, 0.05, 2.2))]
    if kind == 'bird':
        y = u(0.1, 2.0)
        return [_sph((0, y + 0.12, 0), 0.12), _sph((0.13, y + 0.25, 0), 0.06)]
    if kind in ('bicycle', 'motorbike'):
        r = 0.33 if kind == 'bicycle' else 0.32
        return [_sph((-0.55, r, 0), r), _sph((0.55, r, 0), r),
                _box((0, 0.75, 0), (0.55, 0.1 if kind == 'motorbike' else 0.03, 0.05))]
    if kind == 'bottle':
        return [_box((0, 0.12, 0), (0.04, 0.12, 0.04)), _sph((0, 0.27, 0), 0.035)]
    if kind == 'pottedplant':
        return [_box((0, 0.15, 0), (0.15, 0.15, 0.15)), _sph((0, 0.5, 0), u(0.25, 0.35))]
    if kind == 'tvmonitor':
        return [_box((0, 0.9, 0), (0.35, 0.25, 0.03)), _box((0, 0.32, 0), (0.3, 0.32, 0.25))]
    return [_box((0, 0.3, 0), (0.3, 0.3, 0.3))]


def _place(shapes: List[tuple], pos: np.ndarray, yaw: float, label: int, inst: int,
           mats: Callable[[Optional[str]], Material], depth_valid: bool = True) -> List[Prim]:
    r = _rot_y(yaw)
    out = []
    for kind, c, size, part in shapes:
        centre = r @ c + pos
        mat = mats(part)
        if kind == 'box':
            out.append(Prim('box', dict(centre=centre, half=size, yaw=yaw), label, inst, mat,
                            part, depth_valid))
        else:
            out.append(Prim('sphere', dict(centre=centre, radius=size), label, inst, mat, part,
                            depth_valid))
    return out


def _spot(rng: np.random.Generator, cam_yaw: float, dist: Tuple[float, float],
          hfov_tan: float, cam_xz: Tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """A random floor point inside the horizontal field of view."""
    z = rng.uniform(*dist)
    x = rng.uniform(-0.85, 0.85) * z * hfov_tan
    p = _rot_y(cam_yaw) @ np.array([x, 0.0, z])
    return np.array([p[0] + cam_xz[0], 0.0, p[2] + cam_xz[1]])


# --------------------------------------------------------------------------------------------
# NYUD scenes
# --------------------------------------------------------------------------------------------
_NYUD_FURNITURE = ('cabinet', 'bed', 'chair', 'sofa', 'table', 'bookshelf', 'desk', 'dresser',
                   'night stand', 'box', 'otherfurniture', 'lamp', 'otherprop', 'bag',
                   'floor mat', 'television', 'clutter')
_NYUD_DECALS = ('window', 'picture', 'door', 'whiteboard', 'blinds', 'curtain', 'mirror')


def render_nyud_scene(rng: np.random.Generator, size: Tuple[int, int]) -> Dict[str, np.ndarray]:
    """One indoor scene: a room (floor, ceiling, 5 walls with doors/windows/pictures) with
    furniture and props.

    Returns:
        dict: ``image`` uint8 (H, W, 3) RGB, ``semseg`` uint8 (H, W) NYUD PNG values 0..40,
        ``depth`` float32 (H, W) metres (0 = invalid), ``normals`` float32 (H, W, 3) unit,
        ``edge`` uint8 (H, W) 0/255 instance boundaries.
    """
    h, w = size
    u = rng.uniform
    wl, wr, dz, hr = u(1.5, 3.0), u(1.5, 3.0), u(4.0, 7.0), u(2.5, 3.1)
    cam_h, yaw, pitch = u(1.2, 1.6), u(-0.35, 0.35), u(0.05, 0.3)
    focal = 0.85 * w
    hfov_tan = (w / 2) / focal
    prims: List[Prim] = []
    inst = [0]

    def new_inst() -> int:
        inst[0] += 1
        return inst[0]

    floor_tex = str(rng.choice(['checker', 'stripes']))
    wall_mat = _material('wall', rng)
    walls = [
        Prim('plane', dict(axis=1, coord=0.0, sign=1.0), _NY['floor'], new_inst(),
             _material('floor', rng, floor_tex)),
        Prim('plane', dict(axis=1, coord=hr, sign=-1.0), _NY['ceiling'], new_inst(),
             _material('ceiling', rng)),
        Prim('plane', dict(axis=0, coord=-wl, sign=1.0), _NY['wall'], new_inst(), wall_mat),
        Prim('plane', dict(axis=0, coord=wr, sign=-1.0), _NY['wall'], new_inst(), wall_mat),
        Prim('plane', dict(axis=2, coord=dz, sign=-1.0), _NY['wall'], new_inst(), wall_mat),
        Prim('plane', dict(axis=2, coord=-1.5, sign=1.0), _NY['wall'], new_inst(), wall_mat),
    ]
    # decals on the side and back walls: surface coords are the two non-axis world coords
    for wall in walls[2:5]:
        for _ in range(rng.integers(0, 3)):
            kind = str(rng.choice(_NYUD_DECALS))
            along = (-1.5, dz) if wall.params['axis'] == 0 else (-wl, wr)
            cw, ch = u(0.4, 1.2), u(0.4, 1.0)
            if kind == 'door':
                cw, ch, y0 = 0.45, 1.0, 0.0
            else:
                y0 = u(0.7, max(0.8, hr - 2 * ch - 0.2))
            c = u(along[0] + cw + 0.1, max(along[0] + cw + 0.2, along[1] - cw - 0.1))
            yr = (y0, y0 + 2 * ch)
            # plane surface coords: axis 0 -> (y, z); axis 2 -> (x, y)
            uvr = dict(u=yr, v=(c - cw, c + cw)) if wall.params['axis'] == 0 else \
                dict(u=(c - cw, c + cw), v=yr)
            wall.decals.append(dict(**uvr, label=_NY[kind], inst=new_inst(),
                                    material=_material(kind, rng),
                                    depth_valid=not (kind in ('window', 'mirror')
                                                     and rng.random() < 0.5)))
    prims += walls
    for _ in range(rng.integers(2, 7)):
        kind = str(rng.choice(_NYUD_FURNITURE))
        label = 0 if kind == 'clutter' else _NY[kind]
        pos = _spot(rng, yaw, (1.5, max(1.6, dz - 0.8)), hfov_tan)
        pos[0] = np.clip(pos[0], -wl + 0.6, wr - 0.6)
        shapes = _furniture(kind, rng)
        mat = _material(kind, rng)
        prims += _place(shapes, pos, float(u(-0.6, 0.6)), label, new_inst(), lambda _: mat)
        if kind == 'bed':  # pillows on the bed
            top = shapes[0][1][1] + shapes[0][2][1]
            pm = _material('pillow', rng)
            for sx in (-0.35, 0.35):
                prims += _place([_sph((sx, top + 0.08, 0.7), 0.16)], pos, 0.0, _NY['pillow'],
                                new_inst(), lambda _: pm)
    light = np.array([u(-0.5, 0.5), 1.0, u(-0.8, -0.2)])
    r = raycast(prims, (h, w), np.array([0.0, cam_h, 0.0]), yaw, pitch, focal,
                light / np.linalg.norm(light), rng)
    depth = r.depth.copy()
    # Kinect-like holes
    for _ in range(rng.integers(0, 3)):
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        ry, rx = max(1, int(h * u(0.02, 0.08))), max(1, int(w * u(0.02, 0.08)))
        yy, xx = np.ogrid[:h, :w]
        depth[((yy - cy) / ry)**2 + ((xx - cx) / rx)**2 <= 1] = 0.0
    semseg = r.label.astype(np.uint8)
    return dict(image=r.image, semseg=semseg, depth=depth.astype(np.float32),
                normals=r.normals, edge=_instance_edges(r.inst))


def _instance_edges(inst: np.ndarray) -> np.ndarray:
    """0/255 uint8 map of pixels whose right or lower neighbour belongs to another instance."""
    e = np.zeros(inst.shape, bool)
    e[:, :-1] |= inst[:, :-1] != inst[:, 1:]
    e[:-1, :] |= inst[:-1, :] != inst[1:, :]
    return (e * 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# PASCAL scenes
# --------------------------------------------------------------------------------------------
_PASCAL_OBJECTS = tuple(c for c in VOC_CLASSES[1:] if c != 'person')


def render_pascal_scene(rng: np.random.Generator, size: Tuple[int, int],
                        person_prob: float = 0.6, parts_prob: float = 0.8) -> Dict:
    """One outdoor/indoor-like scene: ground, sky, sometimes a wall and trees, VOC objects and
    sometimes persons.

    Returns:
        dict: ``image`` uint8 (H, W, 3) RGB, ``labelmap`` uint16 (H, W) Context ids,
        ``semseg`` uint8 (H, W) VOC labels (255 on some object borders), ``normals`` float32
        (H, W, 3), ``sal`` uint8 (H, W) soft saliency, ``objects`` list of dicts (``class_ind``,
        ``name``, ``mask`` uint8, ``parts`` list of (name, mask) or None) for the PASCAL-Part
        file.
    """
    h, w = size
    u = rng.uniform
    cam_h, yaw, pitch = u(1.2, 1.8), u(-0.3, 0.3), u(-0.05, 0.15)
    focal = 1.0 * max(h, w)
    hfov_tan = (w / 2) / focal
    inst = [0]

    def new_inst() -> int:
        inst[0] += 1
        return inst[0]

    ground = int(rng.choice(CTX_GROUND))
    prims: List[Prim] = [Prim('plane', dict(axis=1, coord=0.0, sign=1.0), ground, new_inst(),
                              _material(f'ground{ground}', rng))]
    if rng.random() < 0.5:
        prims.append(Prim('plane', dict(axis=2, coord=u(8.0, 20.0), sign=-1.0), CTX_WALL,
                          new_inst(), _material('wall', rng)))
    for _ in range(rng.integers(0, 3)):
        pos = _spot(rng, yaw, (8.0, 16.0), hfov_tan)
        rad = u(1.0, 2.5)
        tm = _material('tree', rng)
        prims += _place([_box((0, 1.0, 0), (0.15, 1.0, 0.15)), _sph((0, 2.0 + rad, 0), rad)],
                        pos, 0.0, CTX_TREE, new_inst(), lambda _: tm)
    objects = []  # (inst, voc class)
    n_obj = int(rng.integers(1, 4))
    for _ in range(n_obj):
        kind = str(rng.choice(_PASCAL_OBJECTS))
        cls = _VOC[kind]
        far = (6.0, 14.0) if kind in ('bus', 'train', 'aeroplane', 'boat') else (2.5, 9.0)
        pos = _spot(rng, yaw, far, hfov_tan)
        mat = _material(kind, rng)
        k = new_inst()
        prims += _place(_voc_object(kind, rng), pos, float(u(-np.pi, np.pi)),
                        VOC_CONTEXT_IDS[cls], k, lambda _: mat)
        objects.append((k, cls, None))
    if rng.random() < person_prob:
        for _ in range(int(rng.integers(1, 3))):
            pos = _spot(rng, yaw, (2.5, 7.0), hfov_tan)
            skin = _material('skin', rng, 'plain', jitter=0.05)
            shirt = _material(f'shirt{int(rng.integers(4))}', rng, 'stripes', jitter=0.15)
            pants = _material(f'pants{int(rng.integers(3))}', rng, 'noise', jitter=0.1)
            dark = _material('hair', rng, 'noise', jitter=0.03)

            def mats(part, skin=skin, shirt=shirt, pants=pants, dark=dark):
                if part in ('head', 'neck', 'lhand', 'rhand', 'llarm', 'rlarm'):
                    return skin
                if part in ('torso', 'luarm', 'ruarm'):
                    return shirt
                if part in ('hair', 'lfoot', 'rfoot'):
                    return dark
                return pants

            k = new_inst()
            prims += _place(_person(rng), pos, float(u(-0.7, 0.7)) + yaw,
                            VOC_CONTEXT_IDS[PERSON_CLASS_ID], k, mats)
            objects.append((k, PERSON_CLASS_ID, rng.random() < parts_prob))
    light = np.array([u(-0.6, 0.6), 1.0, u(-0.8, 0.2)])
    r = raycast(prims, (h, w), np.array([0.0, cam_h, 0.0]), yaw, pitch, focal,
                light / np.linalg.norm(light), rng,
                background=(CTX_SKY, _material('sky', rng, 'plain', jitter=0.05)))
    labelmap = r.label.astype(np.uint16)
    voc_of_ctx = np.zeros(int(labelmap.max()) + 1, np.uint8)
    for cls, ctx in enumerate(VOC_CONTEXT_IDS):
        if ctx < len(voc_of_ctx):
            voc_of_ctx[ctx] = cls
    semseg = voc_of_ctx[labelmap]
    obj_mask = semseg > 0
    if rng.random() < 0.5:  # VOC-style void border around objects
        inst_obj = np.where(obj_mask, r.inst, 0)
        semseg[_instance_edges(inst_obj) > 0] = 255
    sal = cv2.GaussianBlur(obj_mask.astype(np.float32) * 255.0, (0, 0), 1.5)
    sal = np.clip(np.rint(sal), 0, 255).astype(np.uint8)

    out_objects = []
    for k, cls, with_parts in objects:
        mask = (r.inst == k).astype(np.uint8)
        parts = None
        if cls == PERSON_CLASS_ID and with_parts:
            parts = []
            for name in dict.fromkeys(p for p in r.part[r.inst == k].tolist() if p):
                pm = ((r.inst == k) & (r.part == name)).astype(np.uint8)
                parts.append((name, pm))
        out_objects.append(dict(class_ind=cls, name=VOC_CLASSES[cls], mask=mask, parts=parts))
    return dict(image=r.image, labelmap=labelmap, semseg=semseg, normals=r.normals, sal=sal,
                objects=out_objects)


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------
_MAT_HEADER = b'MATLAB 5.0 MAT-file, written by mmmt.datasets.synthetic'


def savemat_deterministic(path: str, variables: dict) -> None:
    """``scipy.io.savemat`` (v5) with a fixed header text instead of the creation time."""
    import scipy.io
    buf = io.BytesIO()
    scipy.io.savemat(buf, variables, do_compression=True, oned_as='row')
    data = bytearray(buf.getvalue())
    data[:116] = _MAT_HEADER.ljust(116, b' ')
    with open(path, 'wb') as f:
        f.write(bytes(data))


def _parts_struct(objects: List[dict], img_id: str) -> np.ndarray:
    """The PASCAL-Part ``anno`` struct: (imname, objects(class, class_ind, mask, parts))."""
    obj_dtype = [('class', 'O'), ('class_ind', 'O'), ('mask', 'O'), ('parts', 'O')]
    part_dtype = [('part_name', 'O'), ('mask', 'O')]
    objs = np.zeros((1, len(objects)), dtype=obj_dtype)
    for i, o in enumerate(objects):
        if o['parts']:
            parts = np.zeros((1, len(o['parts'])), dtype=part_dtype)
            for j, (name, m) in enumerate(o['parts']):
                parts[0, j] = (name, m)
        else:
            parts = np.zeros((0, 0))
        objs[0, i] = (o['name'], np.array([[o['class_ind']]], dtype=np.uint8), o['mask'],
                      parts)
    anno = np.zeros((1, 1), dtype=[('imname', 'O'), ('objects', 'O')])
    anno[0, 0] = (f'{img_id}.jpg', objs)
    return anno


def _save_png(path: str, arr: np.ndarray) -> None:
    Image.fromarray(arr).save(path, format='PNG')


def _encode_normals(n: np.ndarray) -> np.ndarray:
    return np.clip(np.rint((n + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _image_rng(seed: int, dataset: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), dataset, index]))


def _split_ids(ids: List[str], n_train: int) -> Tuple[List[str], List[str]]:
    return sorted(ids[:n_train]), sorted(ids[n_train:])


def _write_split(path: str, ids: Sequence[str]) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(''.join(f'{i}\n' for i in ids))


def _progress_cb(progress, i, n, img_id):
    if progress is not None:
        progress(i + 1, n, img_id)


def _check_out_dir(out_dir: str, overwrite: bool) -> None:
    """Refuse to write into a non-empty folder unless asked: a synthetic dataset written over
    a real download (``data/NYUDv2``) would silently replace its files."""
    if not overwrite and osp.isdir(out_dir) and os.listdir(out_dir):
        raise FileExistsError(
            f'{out_dir} exists and is not empty; refusing to write a synthetic dataset into it '
            '(choose another folder, delete it, or pass overwrite=True / --force)')
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise NotADirectoryError(f'{out_dir} exists and is not a folder')


def generate_nyud(out_dir: str, n_train: int, n_val: int, seed: int = 0,
                  size: Tuple[int, int] = (425, 560),
                  progress: Optional[Callable[[int, int, str], None]] = None,
                  overwrite: bool = False) -> Dict[str, list]:
    """Write a synthetic NYUDv2 multi-task dataset (layout of reference-spec C.2).

    Args:
        out_dir: The dataset root to create (``images/``, ``segmentation/``, ``depth/``,
            ``normals/``, ``edge/``, ``gt_sets/{train,val}.txt``).
        n_train, n_val: Number of images per split.
        seed: Random seed; the output is a function of it.
        size: (H, W) of every image (the real data is 425x560).
        progress: Called as ``progress(done, total, id)`` after each image.
        overwrite: Write into ``out_dir`` even if it is not empty. Defaults to False
            (``FileExistsError``).

    Returns:
        dict: ``{'train': ids, 'val': ids}``.
    """
    _check_out_dir(out_dir, overwrite)
    n = n_train + n_val
    id_rng = _image_rng(seed, 0, 10**6)
    nums = id_rng.choice(np.arange(1, max(1449, n) + 1), size=n, replace=False)
    ids = [f'{int(k):04d}' for k in nums]
    for sub in ('images', 'segmentation', 'depth', 'normals', 'edge', 'gt_sets'):
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)
    for i, img_id in enumerate(ids):
        s = render_nyud_scene(_image_rng(seed, 0, i), tuple(size))
        _save_png(osp.join(out_dir, 'images', f'{img_id}.png'), s['image'])
        _save_png(osp.join(out_dir, 'segmentation', f'{img_id}.png'), s['semseg'])
        np.save(osp.join(out_dir, 'depth', f'{img_id}.npy'), s['depth'])
        _save_png(osp.join(out_dir, 'normals', f'{img_id}.png'), _encode_normals(s['normals']))
        _save_png(osp.join(out_dir, 'edge', f'{img_id}.png'), s['edge'])
        _progress_cb(progress, i, n, img_id)
    train, val = _split_ids(ids, n_train)
    _write_split(osp.join(out_dir, 'gt_sets', 'train.txt'), train)
    _write_split(osp.join(out_dir, 'gt_sets', 'val.txt'), val)
    return dict(train=train, val=val)


def generate_pascal(out_dir: str, n_train: int, n_val: int, seed: int = 0,
                    size: Tuple[int, int] = (375, 500), portrait_prob: float = 0.3,
                    person_prob: float = 0.6,
                    progress: Optional[Callable[[int, int, str], None]] = None,
                    overwrite: bool = False) -> Dict[str, list]:
    """Write a synthetic PASCAL-Context multi-task dataset (layout of reference-spec C.3).

    Args:
        out_dir: The dataset root to create (``JPEGImages/``, ``pascal-context/trainval/``,
            ``semseg/pascal-context/``, ``human_parts/``, ``normals_distill/``,
            ``sal_distill/``, ``ImageSets/Context/{train,val}.txt``).
        n_train, n_val: Number of images per split.
        seed: Random seed; the output is a function of it.
        size: (H, W) of a landscape image; with probability ``portrait_prob`` an image is
            (W, H) instead (PASCAL images vary in size and orientation).
        portrait_prob: See ``size``.
        person_prob: Probability that an image contains persons (80 % of which have parts).
        progress: Called as ``progress(done, total, id)`` after each image.
        overwrite: Write into ``out_dir`` even if it is not empty. Defaults to False
            (``FileExistsError``).

    Returns:
        dict: ``{'train': ids, 'val': ids}``.
    """
    _check_out_dir(out_dir, overwrite)
    n = n_train + n_val
    id_rng = _image_rng(seed, 1, 10**6)
    nums = id_rng.choice(np.arange(1, max(9000, n) + 1), size=n, replace=False)
    years = id_rng.integers(2008, 2011, size=n)
    ids = [f'{int(y)}_{int(k):06d}' for y, k in zip(years, nums)]
    dirs = dict(img='JPEGImages', ctx=osp.join('pascal-context', 'trainval'),
                seg=osp.join('semseg', 'pascal-context'), parts='human_parts',
                nrm='normals_distill', sal='sal_distill')
    for sub in dirs.values():
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)
    for i, img_id in enumerate(ids):
        rng = _image_rng(seed, 1, i)
        hw = tuple(size) if rng.random() >= portrait_prob else (size[1], size[0])
        s = render_pascal_scene(rng, hw, person_prob=person_prob)
        Image.fromarray(s['image']).save(
            osp.join(out_dir, dirs['img'], f'{img_id}.jpg'), format='JPEG', quality=90)
        savemat_deterministic(osp.join(out_dir, dirs['ctx'], f'{img_id}.mat'),
                              {'LabelMap': s['labelmap']})
        _save_png(osp.join(out_dir, dirs['seg'], f'{img_id}.png'), s['semseg'])
        savemat_deterministic(osp.join(out_dir, dirs['parts'], f'{img_id}.mat'),
                              {'anno': _parts_struct(s['objects'], img_id)})
        _save_png(osp.join(out_dir, dirs['nrm'], f'{img_id}.png'), _encode_normals(s['normals']))
        _save_png(osp.join(out_dir, dirs['sal'], f'{img_id}.png'), s['sal'])
        _progress_cb(progress, i, n, img_id)
    train, val = _split_ids(ids, n_train)
    _write_split(osp.join(out_dir, 'ImageSets', 'Context', 'train.txt'), train)
    _write_split(osp.join(out_dir, 'ImageSets', 'Context', 'val.txt'), val)
    return dict(train=train, val=val)


def generate(dataset: str, out_dir: str, n_train: int, n_val: int, seed: int = 0,
             size: Optional[Tuple[int, int]] = None, **kwargs) -> Dict[str, list]:
    """Dispatch to :func:`generate_nyud` (``'nyud'``) or :func:`generate_pascal`
    (``'pascal'``); ``size=None`` uses the dataset's default size."""
    if dataset == 'nyud':
        fn = generate_nyud
    elif dataset == 'pascal':
        fn = generate_pascal
    else:
        raise ValueError(f"dataset must be 'nyud' or 'pascal', got {dataset!r}")
    if size is not None:
        kwargs['size'] = tuple(int(s) for s in size)
    return fn(out_dir, n_train, n_val, seed=seed, **kwargs)
