"""Ray casting of the synthetic scenes: primitives, materials and the per-pixel renderer.

A scene is a list of :class:`Prim` (axis-aligned planes, yaw-rotated boxes, spheres), each with
a semantic class, an instance id, optionally a PASCAL-Part part name, and a :class:`Material`
(class-dependent base colour, procedural texture in surface coordinates). :func:`raycast` shoots
one ray per pixel (vectorised numpy, pinhole camera) and returns, from the nearest hit, the
shaded image and the label, instance, part, depth and normal maps (:class:`Render`), all
consistent with one another. Scene building is in :mod:`mmmt.testing.synthetic_scenes`.
"""
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

__all__ = ['Material', 'Prim', 'Render', 'raycast', 'rot_y']

EPS = 1e-4


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


def rot_y(yaw: float) -> np.ndarray:
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
    rt = rot_y(p.params['yaw']).T
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
        r = rot_y(p.params['yaw'])
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
    r_cam = rot_y(yaw) @ r_pitch
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
