"""Binary boundary morphology of the BSDS / SEISM protocol: Guo-Hall thinning and seg2bmap."""
from typing import List, Tuple

import numpy as np

__all__ = ['thin_binary', 'seg2bmap']

# Neighbours x1..x8 of a pixel p, counter-clockwise from east, as (row, col) offsets with row 0
# at the top of the image:   x4 x3 x2
#                            x5 p  x1
#                            x6 x7 x8
_NEIGHBOURS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0),
               (1, 1))


def _guo_hall_luts() -> Tuple[np.ndarray, np.ndarray]:
    """Deletion look-up tables of the two Guo-Hall sub-iterations.

    Bit ``i`` of the table index is neighbour ``x(i+1)``. Conditions (Guo & Hall, CACM 1989,
    algorithm A1, in the notation of Lam, Lee & Suen, PAMI 1992):

    * ``C(p) = 1`` with ``C(p) = sum_i [not x(2i-1) and (x(2i) or x(2i+1))]`` (one 8-connected
      foreground run around ``p``, so deleting ``p`` keeps connectivity);
    * ``2 <= min(N1, N2) <= 3`` with ``N1 = sum_k [x(2k-1) or x(2k)]`` and
      ``N2 = sum_k [x(2k) or x(2k+1)]`` (``p`` is not an end point and not interior);
    * first sub-iteration: ``(x2 or x3 or not x8) and x1`` is false;
      second sub-iteration: ``(x6 or x7 or not x4) and x5`` is false.
    """
    first = np.zeros(256, dtype=bool)
    second = np.zeros(256, dtype=bool)
    for code in range(256):
        bits = [(code >> i) & 1 for i in range(8)]

        def x(k: int, bits=bits) -> int:
            return bits[(k - 1) % 8]

        c = sum((not x(2 * i - 1)) and (x(2 * i) or x(2 * i + 1))
                for i in range(1, 5))
        n1 = sum(x(2 * k - 1) or x(2 * k) for k in range(1, 5))
        n2 = sum(x(2 * k) or x(2 * k + 1) for k in range(1, 5))
        deletable = c == 1 and 2 <= min(n1, n2) <= 3
        first[code] = deletable and not ((x(2) or x(3) or not x(8)) and x(1))
        second[code] = deletable and not ((x(6) or x(7) or not x(4)) and x(5))
    return first, second


_THIN_LUTS = _guo_hall_luts()


def thin_binary(mask: np.ndarray) -> np.ndarray:
    """Thin a binary image to one-pixel-wide curves (MATLAB ``bwmorph(bw, 'thin', Inf)``).

    The Guo-Hall two-sub-iteration parallel thinning, iterated until nothing changes; the output
    equals :func:`skimage.morphology.thin` (tested). Instead of rescanning the whole image in each
    sub-iteration, only pixels whose 8-neighbourhood changed since they were last examined with
    the same sub-iteration rule are re-examined, so the cost is proportional to the number of
    border and deleted pixels rather than to ``image size x iterations``.

    Args:
        mask (np.ndarray): (H, W) array, non-zero = foreground.

    Returns:
        np.ndarray: (H, W) bool array, the thinned foreground.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f'thin_binary expects a 2-D mask, got shape {mask.shape}')
    h, w = mask.shape
    if not mask.any():
        return np.zeros((h, w), dtype=bool)
    wp = w + 2
    padded = np.zeros((h + 2, wp), dtype=np.uint8)
    padded[1:-1, 1:-1] = mask
    flat = padded.reshape(-1)
    offsets = np.array([dy * wp + dx for dy, dx in _NEIGHBOURS], dtype=np.intp)

    # First candidates: foreground pixels with at least one background 8-neighbour (a pixel with
    # all eight neighbours set is never deletable: min(N1, N2) = 4).
    interior = padded[1:-1, 1:-1].copy()
    for dy, dx in _NEIGHBOURS:
        interior &= padded[1 + dy:h + 1 + dy, 1 + dx:w + 1 + dx]
    border = np.zeros_like(padded)
    border[1:-1, 1:-1] = padded[1:-1, 1:-1] & (interior ^ 1)
    first_candidates = np.flatnonzero(border)

    stamp = np.full(flat.size, -1, dtype=np.intp)
    deleted: List[np.ndarray] = []
    candidates = first_candidates
    step = 0
    while True:
        if candidates.size:
            code = flat[candidates + offsets[0]].copy()
            for i in range(1, 8):
                code |= flat[candidates + offsets[i]] << i
            gone = candidates[_THIN_LUTS[step & 1][code]]
            flat[gone] = 0
        else:
            gone = candidates
        deleted.append(gone)
        step += 1
        if step == 1:
            # The second rule has not looked at any pixel yet.
            candidates = first_candidates
            continue
        if deleted[-1].size == 0 and deleted[-2].size == 0:
            break
        # A pixel's verdict under a rule can only change if a neighbour was deleted since that
        # rule last examined it, i.e. during the last two sub-iterations.
        recent = np.concatenate(deleted[-2:])
        deleted = deleted[-2:]
        candidates = (recent[:, None] + offsets[None, :]).reshape(-1)
        candidates = candidates[flat[candidates] != 0]
        if candidates.size:
            order = np.arange(candidates.size)
            stamp[candidates] = order
            candidates = candidates[stamp[candidates] == order]
    return padded[1:-1, 1:-1].astype(bool)


def seg2bmap(labels: np.ndarray) -> np.ndarray:
    """Boundary map of a label image as in the BSDS benchmark (used by SEISM for ground truth).

    A pixel is a boundary pixel when its label differs from its east, south or south-east
    neighbour; in the last row only the east neighbour and in the last column only the south
    neighbour is compared; the bottom-right pixel is never a boundary. The boundaries are one
    pixel wide and lie half a pixel towards the origin from the true label transitions.

    Args:
        labels (np.ndarray): (H, W) label image.

    Returns:
        np.ndarray: (H, W) bool boundary map.
    """
    labels = np.asarray(labels)
    h, w = labels.shape
    east = np.zeros_like(labels)
    south = np.zeros_like(labels)
    south_east = np.zeros_like(labels)
    east[:, :-1] = labels[:, 1:]
    south[:-1, :] = labels[1:, :]
    south_east[:-1, :-1] = labels[1:, 1:]
    bmap = (labels != east) | (labels != south) | (labels != south_east)
    bmap[-1, :] = labels[-1, :] != east[-1, :]
    bmap[:, -1] = labels[:, -1] != south[:, -1]
    bmap[-1, -1] = False
    return bmap
