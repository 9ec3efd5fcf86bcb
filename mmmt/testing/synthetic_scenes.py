"""Random NYUDv2-like indoor and PASCAL-like outdoor scenes, rendered to task maps.

:func:`render_nyud_scene` and :func:`render_pascal_scene` build a random scene from object
builders (furniture, persons made of head/hair/neck/torso/arm/hand/leg/foot parts, animals,
vehicles, ...), ray-cast it (:mod:`mmmt.testing.synthetic_render`) and derive the dataset's
task maps: NYUD 40-class labels, depth with Kinect-like holes, camera-frame normals, instance
boundaries; PASCAL-Context labels and their VOC classes, saliency of the VOC objects, and the
PASCAL-Part objects of persons (some carry no part annotation).

The PASCAL-Context ids used for background surfaces (ground, wall, sky, tree) are arbitrary
choices inside / outside the 170 normals classes; only the VOC classes' ids
(:data:`~mmmt.datasets.class_names.VOC_CONTEXT_IDS`) are meaningful.

About 400 lines in one module: the object builders and the two scene compositions share the
class tables, materials and placement helpers, and are only used together.
"""
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np

from mmmt.datasets.class_names import (NYUD_CLASSES, PASCAL_NORMALS_VALID_CONTEXT_IDS,
                                       PERSON_CLASS_ID, VOC_CLASSES, VOC_CONTEXT_IDS)
from .synthetic_render import Material, Prim, raycast, rot_y

__all__ = ['render_nyud_scene', 'render_pascal_scene']

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
    r = rot_y(yaw)
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
    p = rot_y(cam_yaw) @ np.array([x, 0.0, z])
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
