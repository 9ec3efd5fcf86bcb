"""Structured-edge non-maximum suppression as SEISM's current PNG reader applies it.

SEISM's ``read_one_cont_png`` has, since February 2016, thinned every predicted boundary map
with the non-maximum suppression of Dollar & Zitnick's Structured Edge toolbox before
thresholding it (docs/metrics.md). For an edge map ``E`` in [0, 1] (the 8-bit PNG read as
``single(v) / 255``):

1. orientation: ``S = convTri(E, 4)`` (:func:`conv_tri`); ``[Ox, Oy] = grad(S)``,
   ``Oxx = grad_x(Ox)``, ``[Oxy, Oyy] = grad(Oy)`` (central differences inside, one-sided at the
   border); ``O = mod(atan(Oyy * sign(-Oxy) / (Oxx + 1e-5)), pi)`` (:func:`seism_orientation`);
2. suppression (:func:`structured_edge_nms`): a pixel of value ``e`` is set to 0 when the
   bilinearly interpolated value of ``E`` at ``(x, y) +- d (cos O, sin O)``, ``d = 1..r``, exceeds
   ``m e``; then the ``s`` pixels nearest each border are attenuated linearly.

Everything is computed in float32, as the toolbox does, and vectorised over the image. The
orientation formula is the toolbox's, kept as is although it is exact only for edges whose
normal is a multiple of 45 degrees (for a ridge with normal angle ``phi`` it gives
``atan(tan(phi)^2)`` in the first quadrant) and degenerates to 0 where ``Oxy`` is exactly 0,
e.g. along a perfectly horizontal line; docs/metrics.md discusses the consequences.
"""
from typing import Tuple

import numpy as np
from scipy import ndimage

__all__ = ['triangle_kernel', 'conv_tri', 'seism_orientation', 'structured_edge_nms',
           'seism_nms']


def triangle_kernel(radius: int) -> np.ndarray:
    """The 1-D triangle filter ``[1, 2, ..., r + 1, ..., 2, 1] / (r + 1)^2`` (sums to 1)."""
    radius = int(radius)
    if radius < 1:
        raise ValueError(f'triangle filter radius must be an integer >= 1, got {radius}')
    ramp = np.arange(1, radius + 2, dtype=np.float64)
    return np.concatenate([ramp, ramp[-2::-1]]) / float((radius + 1)**2)


def conv_tri(image: np.ndarray, radius: int = 4) -> np.ndarray:
    """Dollar's ``convTri(I, r)`` for an integer radius: separable triangle smoothing.

    The toolbox pads the image symmetrically with the border sample repeated (MATLAB
    ``padarray(I, [r r], 'symmetric')``, ``d c b a | a b c d``), which is SciPy's
    ``mode='reflect'``; its fast running-sum implementation has the same boundary handling.

    Args:
        image (np.ndarray): (H, W) map.
        radius (int): Filter radius ``r`` (the 1-D filter has ``2 r + 1`` taps).

    Returns:
        np.ndarray: (H, W) float32 smoothed map.
    """
    kernel = triangle_kernel(radius).astype(np.float32)
    out = np.asarray(image, dtype=np.float32)
    for axis in (0, 1):
        out = ndimage.correlate1d(out, kernel, axis=axis, mode='reflect')
    return out


def _gradient(image: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``[Gx, Gy]`` as MATLAB ``gradient``: central differences, one-sided at the border."""
    g_y, g_x = np.gradient(image)
    return g_x, g_y


def seism_orientation(edges: np.ndarray, radius: int = 4) -> np.ndarray:
    """Edge orientation of the Structured Edge toolbox, in [0, pi).

    ``O`` is the angle, measured from the x axis (columns) towards the y axis (rows, downwards),
    of the direction along which :func:`structured_edge_nms` compares neighbours.

    Args:
        edges (np.ndarray): (H, W) edge map, H and W >= 2.
        radius (int): Radius of the triangle smoothing (4 in SEISM).

    Returns:
        np.ndarray: (H, W) float32 angles.
    """
    edges = np.asarray(edges, dtype=np.float32)
    if edges.ndim != 2 or min(edges.shape) < 2:
        raise ValueError(f'the orientation needs a 2-D map of at least 2x2, got {edges.shape}')
    o_x, o_y = _gradient(conv_tri(edges, radius))
    o_xx, _ = _gradient(o_x)
    o_xy, o_yy = _gradient(o_y)
    with np.errstate(divide='ignore', invalid='ignore'):
        angle = np.arctan(o_yy * np.sign(-o_xy) / (o_xx + np.float32(1e-5)))
    # 0/0 (only when Oxx is exactly -1e-5 and Oyy * sign(-Oxy) is 0) has no direction.
    angle = np.nan_to_num(angle, nan=0.0)
    return np.mod(angle, np.float32(np.pi)).astype(np.float32)


def _interp(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` at (x, y), clamped as the toolbox clamps them.

    Coordinates are clipped to ``[0, W - 1.001]`` x ``[0, H - 1.001]``, so a sample on the last
    column or row mixes in 0.1 % of its inner neighbour (a property of the toolbox kept here).
    """
    h, w = image.shape
    x = np.clip(x, 0, np.float32(w - 1.001))
    y = np.clip(y, 0, np.float32(h - 1.001))
    x0 = x.astype(np.intp)
    y0 = y.astype(np.intp)
    dx0 = x - x0
    dy0 = y - y0
    dx1 = 1 - dx0
    dy1 = 1 - dy0
    return (image[y0, x0] * dx1 * dy1 + image[y0, x0 + 1] * dx0 * dy1 +
            image[y0 + 1, x0] * dx1 * dy0 + image[y0 + 1, x0 + 1] * dx0 * dy0)


def structured_edge_nms(edges: np.ndarray,
                        orientation: np.ndarray,
                        radius: int = 1,
                        border: int = 5,
                        multiplier: float = 1.01) -> np.ndarray:
    """Non-maximum suppression along ``orientation`` plus a border ramp (``edgesNms``).

    Args:
        edges (np.ndarray): (H, W) edge map, H and W >= 2.
        orientation (np.ndarray): (H, W) comparison direction in radians (see
            :func:`seism_orientation`).
        radius (int): Neighbours at distances 1..radius on both sides are compared (r).
        border (int): Width of the linear attenuation at each image border (s); the k-th pixel
            from a border (k = 0 .. s - 1) is multiplied by k / s. Clipped to half the image.
        multiplier (float): A pixel survives only if ``multiplier * e`` is not smaller than
            any compared neighbour (m; 1.01 makes the suppression slightly conservative).

    Returns:
        np.ndarray: (H, W) float32 suppressed map.
    """
    edges = np.asarray(edges, dtype=np.float32)
    if edges.ndim != 2 or min(edges.shape) < 2:
        raise ValueError(f'the NMS needs a 2-D map of at least 2x2, got {edges.shape}')
    orientation = np.asarray(orientation, dtype=np.float32)
    if orientation.shape != edges.shape:
        raise ValueError(f'orientation {orientation.shape} != edge map {edges.shape}')
    h, w = edges.shape
    out = edges.copy()
    rows, cols = np.nonzero(edges)
    if rows.size:
        value = edges[rows, cols] * np.float32(multiplier)
        cos_o = np.cos(orientation[rows, cols])
        sin_o = np.sin(orientation[rows, cols])
        xs = cols.astype(np.float32)
        ys = rows.astype(np.float32)
        suppress = np.zeros(rows.size, dtype=bool)
        for d in range(-int(radius), int(radius) + 1):
            if d:
                step = np.float32(d)
                suppress |= value < _interp(edges, xs + step * cos_o, ys + step * sin_o)
        out[rows[suppress], cols[suppress]] = 0
    s = min(int(border), w // 2, h // 2)
    if s > 0:
        ramp = np.arange(s, dtype=np.float32) / np.float32(s)
        col_w = np.ones(w, dtype=np.float32)
        row_w = np.ones(h, dtype=np.float32)
        col_w[:s] = ramp
        col_w[w - s:] = ramp[::-1]
        row_w[:s] = ramp
        row_w[h - s:] = ramp[::-1]
        out = out * col_w[None, :]
        out = out * row_w[:, None]
    return out


def seism_nms(edges: np.ndarray,
              radius: int = 1,
              border: int = 5,
              multiplier: float = 1.01,
              smooth_radius: int = 4) -> np.ndarray:
    """SEISM's suppression of one edge map: orientation, then :func:`structured_edge_nms`.

    Args:
        edges (np.ndarray): (H, W) edge map in [0, 1] (SEISM: ``single(png) / 255``).
        radius, border, multiplier: See :func:`structured_edge_nms` (SEISM: 1, 5, 1.01).
        smooth_radius (int): Triangle radius of the orientation estimate (SEISM: 4).

    Returns:
        np.ndarray: (H, W) float32 suppressed map.
    """
    edges = np.asarray(edges, dtype=np.float32)
    return structured_edge_nms(edges, seism_orientation(edges, smooth_radius), radius, border,
                               multiplier)
