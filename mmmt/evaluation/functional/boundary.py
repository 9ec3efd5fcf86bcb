"""Boundary (edge) detection evaluation in the BSDS / SEISM style, in NumPy and SciPy.

The protocol the MTMamba, InvPT and ATRC papers report (``odsF``) is the SEISM toolbox run on the
8-bit PNGs the model wrote (docs/metrics.md). Per image and per threshold ``t``:

1. the PNG value ``v = trunc(255 * p)`` is read back as ``v / 255`` and binarised with ``> t``;
2. the binary map is thinned to one-pixel-wide curves (MATLAB ``bwmorph(..., 'thin', Inf)``,
   the Guo-Hall parallel thinning algorithm); SEISM applies no non-maximum suppression;
3. predicted and ground-truth boundary pixels are put in one-to-one correspondence when they lie
   within ``max_dist * sqrt(H^2 + W^2)`` pixels of each other (Martin, Fowlkes & Malik, PAMI
   2004); every matched ground-truth pixel counts for recall, every matched predicted pixel for
   precision, and no pixel is matched twice;
4. the counts ``cntR, sumR, cntP, sumP`` are kept per image and threshold; ``odsF`` sums them
   over the dataset before taking the best threshold, ``oisF`` picks the best threshold per
   image, ``AP`` integrates the dataset precision-recall curve as SEISM's ``general_ap`` does.

The correspondence here is an exact maximum-cardinality bipartite matching (a unit-capacity
maximum flow solved with Dinic's algorithm, :func:`scipy.sparse.csgraph.maximum_flow`) on the
graph whose edges join pixels within the tolerance. BSDS's ``correspondPixels`` solves a min-cost
assignment with expensive outlier nodes, which yields a maximum-cardinality matching up to its
sparse-graph approximations; the counts therefore agree up to those approximations.

Everything in this module is pure NumPy/SciPy: no MATLAB, no compiled extension.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix, csr_array
from scipy.sparse.csgraph import maximum_flow

__all__ = [
    'DEFAULT_EDGE_THRESHOLDS', 'SEISM_HED_VOC_THRESHOLDS', 'thin_binary',
    'seg2bmap', 'edge_nms', 'disk_offsets', 'BoundaryMatcher',
    'correspond_pixels', 'quantize_to_uint8', 'boundary_pr_counts',
    'boundary_metrics', 'resolve_edge_thresholds'
]

#: 99 uniform thresholds 0.01, 0.02, ..., 0.99 (the default of Piotr Dollar's ``edgesEvalImg``
#: and, as far as could be checked, of SEISM's ``parameters/HED.txt``; see docs/metrics.md).
DEFAULT_EDGE_THRESHOLDS = np.round(np.arange(1, 100) * 0.01, 2)

#: SEISM's ``parameters/HED_VOC_Khoreva.txt``: 0.001, 0.01, ..., 0.99, 0.999 (101 values).
SEISM_HED_VOC_THRESHOLDS = np.concatenate(
    [[0.001], np.round(np.arange(1, 100) * 0.01, 2), [0.999]])

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


def edge_nms(prob: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Non-maximum suppression of an edge probability map across the edge (Canny style).

    Optional pre-processing (SEISM itself applies none; see :func:`boundary_pr_counts`). The
    direction across the edge at each pixel is the gradient direction of the Gaussian-smoothed
    map (on either flank of a ridge it points towards the crest); a pixel is kept when its value
    is not smaller than the bilinearly interpolated values one pixel away on both sides along
    that direction. Pixels where the smoothed gradient vanishes (crests, flat areas) are kept.

    Args:
        prob (np.ndarray): (H, W) edge probabilities.
        sigma (float): Gaussian scale (pixels) used to estimate the direction.

    Returns:
        np.ndarray: (H, W) float64 map, suppressed pixels set to 0.
    """
    prob = np.asarray(prob, dtype=np.float64)
    smooth = ndimage.gaussian_filter(prob, sigma) if sigma > 0 else prob
    g_y, g_x = np.gradient(smooth)
    norm = np.hypot(g_x, g_y)
    flat = norm <= 1e-12
    norm = np.where(flat, 1.0, norm)
    n_x, n_y = g_x / norm, g_y / norm
    rows, cols = np.indices(prob.shape, dtype=np.float64)
    keep = np.ones(prob.shape, dtype=bool)
    for sign in (1.0, -1.0):
        neighbour = ndimage.map_coordinates(
            prob, [rows + sign * n_y, cols + sign * n_x], order=1, mode='nearest')
        keep &= prob >= neighbour - 1e-12
    return np.where(keep | flat, prob, 0.0)


def disk_offsets(radius: float) -> Tuple[np.ndarray, np.ndarray]:
    """Integer (dy, dx) offsets with ``dy^2 + dx^2 <= radius^2``."""
    r = int(np.floor(radius + 1e-9))
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    inside = dy * dy + dx * dx <= radius * radius + 1e-9
    return dy[inside].astype(np.intp), dx[inside].astype(np.intp)


class BoundaryMatcher:
    """One-to-one matching of predicted boundary pixels against a fixed ground truth.

    The ground truth of an image does not change across thresholds, so its neighbourhoods are
    indexed once: a sparse (H*W, n_gt) matrix whose row ``i`` lists the ground-truth pixels within
    ``radius`` of pixel ``i``. A prediction then only gathers its rows and solves a maximum matching
    on that (n_pred, n_gt) graph.

    Args:
        gt (np.ndarray): (H, W) bool ground-truth boundary map.
        radius (float): Matching tolerance in pixels (inclusive).
    """

    def __init__(self, gt: np.ndarray, radius: float) -> None:
        gt = np.asarray(gt, dtype=bool)
        self.shape = gt.shape
        self.radius = float(radius)
        h, w = gt.shape
        gy, gx = np.nonzero(gt)
        self.gt_flat = gy * w + gx
        self.num_gt = int(gy.size)
        dy, dx = disk_offsets(self.radius)
        yy = (gy[:, None] + dy[None, :]).reshape(-1)
        xx = (gx[:, None] + dx[None, :]).reshape(-1)
        col = np.repeat(np.arange(self.num_gt, dtype=np.int64), dy.size)
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        rows = (yy * w + xx)[inside]
        col = col[inside]
        table = coo_matrix((np.ones(rows.size, dtype=np.int8), (rows, col)),
                           shape=(h * w, max(self.num_gt, 1))).tocsr()
        table.sort_indices()
        self._indptr = table.indptr.astype(np.int64)
        self._indices = table.indices

    def match(self, pred: np.ndarray,
              return_pairs: bool = False) -> Union[int, Tuple[int, np.ndarray, np.ndarray]]:
        """Maximum one-to-one matching of ``pred`` boundary pixels to the ground truth.

        Args:
            pred (np.ndarray): (H, W) bool predicted boundary map.
            return_pairs (bool): Also return the matched pairs as flat pixel indices.

        Returns:
            int | tuple: The number of matched pairs, and with ``return_pairs`` the flat indices
            of the matched predicted pixels and of their ground-truth partners.
        """
        pred = np.asarray(pred, dtype=bool)
        if pred.shape != self.shape:
            raise ValueError(f'prediction shape {pred.shape} != ground-truth shape '
                             f'{self.shape}')
        empty = np.zeros(0, dtype=np.int64)
        p_flat = np.flatnonzero(pred)
        if p_flat.size == 0 or self.num_gt == 0:
            return (0, empty, empty) if return_pairs else 0
        starts = self._indptr[p_flat]
        lengths = self._indptr[p_flat + 1] - starts
        near = lengths > 0
        p_flat, starts, lengths = p_flat[near], starts[near], lengths[near]
        if p_flat.size == 0:
            return (0, empty, empty) if return_pairs else 0
        n = p_flat.size
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        gather = np.arange(indptr[-1], dtype=np.int64) - np.repeat(
            indptr[:-1] - starts, lengths)
        cols = self._indices[gather]
        # Keep only the ground-truth pixels some prediction can reach.
        used_mask = np.zeros(self.num_gt, dtype=bool)
        used_mask[cols] = True
        used = np.flatnonzero(used_mask)
        remap = np.cumsum(used_mask, dtype=np.int64) - 1
        m = used.size
        # Unit-capacity flow network: source -> predicted pixels -> ground-truth pixels -> sink.
        # Dinic's algorithm finds a maximum matching in O(E sqrt(V)) on such networks (SciPy's
        # Hopcroft-Karp implementation can be orders of magnitude slower on the long
        # alternating paths that boundaries drawn side by side produce).
        num_nodes = n + m + 2
        sink = num_nodes - 1
        net_indptr = np.empty(num_nodes + 1, dtype=np.int64)
        net_indptr[0] = 0
        net_indptr[1:n + 2] = n + indptr
        net_indptr[n + 2:n + m + 2] = n + indptr[-1] + 1 + np.arange(m)
        net_indptr[num_nodes] = net_indptr[num_nodes - 1]
        net_indices = np.concatenate([
            np.arange(1, n + 1, dtype=np.int64), n + 1 + remap[cols],
            np.full(m, sink, dtype=np.int64)
        ]).astype(np.int32)
        network = csr_array(
            (np.ones(net_indices.size, dtype=np.int32), net_indices, net_indptr),
            shape=(num_nodes, num_nodes))
        result = maximum_flow(network, 0, sink, method='dinic')
        count = int(result.flow_value)
        if not return_pairs:
            return count
        flow = csr_array(result.flow)[1:n + 1].tocoo()
        pair = (flow.data > 0) & (flow.col > n) & (flow.col < sink)
        pred_rows = flow.row[pair]
        gt_cols = used[flow.col[pair] - n - 1]
        order = np.argsort(pred_rows, kind='stable')
        return (count, p_flat[pred_rows[order]].astype(np.int64),
                self.gt_flat[gt_cols[order]].astype(np.int64))


def correspond_pixels(pred: np.ndarray, gt: np.ndarray,
                      radius: float) -> Tuple[np.ndarray, np.ndarray]:
    """BSDS-style correspondence maps of two boundary maps.

    Args:
        pred (np.ndarray): (H, W) bool predicted boundaries.
        gt (np.ndarray): (H, W) bool ground-truth boundaries.
        radius (float): Tolerance in pixels.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(match_pred, match_gt)``, (H, W) int64 maps holding for
        each matched pixel ``1 +`` the flat index of its partner in the other map, 0 elsewhere.
    """
    matcher = BoundaryMatcher(gt, radius)
    _, p_idx, g_idx = matcher.match(pred, return_pairs=True)
    match_pred = np.zeros(pred.size, dtype=np.int64)
    match_gt = np.zeros(pred.size, dtype=np.int64)
    match_pred[p_idx] = g_idx + 1
    match_gt[g_idx] = p_idx + 1
    return match_pred.reshape(pred.shape), match_gt.reshape(pred.shape)


def quantize_to_uint8(prob: np.ndarray) -> np.ndarray:
    """What writing ``prob`` as an 8-bit PNG does: ``trunc(255 * prob)``, clipped to [0, 255]."""
    prob = np.nan_to_num(np.asarray(prob, dtype=np.float64), nan=0.0)
    return np.clip(np.floor(prob * 255.0), 0, 255).astype(np.uint8)


def resolve_edge_thresholds(
        thresholds: Union[None, int, str, Sequence[float]]) -> np.ndarray:
    """Turn a threshold option into an ascending float64 array.

    Args:
        thresholds: None (``DEFAULT_EDGE_THRESHOLDS``), an int ``K`` (``K`` uniform thresholds
            ``1/(K+1) ... K/(K+1)``, the ``edgesEvalImg`` convention), ``'seism_hed_voc'``, or an
            explicit sequence.

    Returns:
        np.ndarray: Sorted thresholds.
    """
    if thresholds is None:
        out = DEFAULT_EDGE_THRESHOLDS
    elif isinstance(thresholds, str):
        if thresholds.lower() != 'seism_hed_voc':
            raise ValueError(f'unknown threshold set {thresholds!r}')
        out = SEISM_HED_VOC_THRESHOLDS
    elif isinstance(thresholds, (int, np.integer)):
        k = int(thresholds)
        if k < 1:
            raise ValueError('the number of thresholds must be >= 1')
        out = np.linspace(1.0 / (k + 1), 1.0 - 1.0 / (k + 1), k)
    else:
        out = np.asarray(list(thresholds), dtype=np.float64)
    out = np.asarray(out, dtype=np.float64)
    if out.ndim != 1 or out.size == 0:
        raise ValueError('thresholds must be a non-empty 1-D sequence')
    if np.any(np.diff(out) <= 0):
        raise ValueError('thresholds must be strictly increasing')
    return out.copy()


def _gt_boundaries(gt: np.ndarray, valid: np.ndarray, gt_mode: str,
                   gt_threshold: float) -> np.ndarray:
    positive = (gt > gt_threshold) & valid
    if gt_mode == 'thin':
        return thin_binary(positive)
    if gt_mode == 'raw':
        return positive
    if gt_mode == 'seg2bmap':
        return seg2bmap(positive.astype(np.uint8)) & valid
    raise ValueError(f"gt_mode must be 'thin', 'raw' or 'seg2bmap', got {gt_mode!r}")


def boundary_pr_counts(pred: np.ndarray,
                       gt: np.ndarray,
                       thresholds: Optional[Sequence[float]] = None,
                       max_dist: float = 0.011,
                       quantize: bool = True,
                       nms: bool = False,
                       thin_pred: bool = True,
                       gt_mode: str = 'thin',
                       gt_threshold: float = 0.0,
                       ignore_index: Optional[float] = 255) -> Optional[np.ndarray]:
    """Boundary precision/recall counts of one image at every threshold.

    Args:
        pred (np.ndarray): (H, W) boundary probabilities in [0, 1].
        gt (np.ndarray): (H, W) ground truth: > ``gt_threshold`` = boundary,
            ``ignore_index`` = ignored (no prediction or ground truth counted there).
        thresholds (Sequence[float], optional): Ascending thresholds; a pixel is positive when
            its (quantised) value is strictly greater. Defaults to ``DEFAULT_EDGE_THRESHOLDS``.
        max_dist (float): Tolerance as a fraction of the image diagonal (SEISM: 0.011 NYUD,
            0.0075 PASCAL-Context).
        quantize (bool): Evaluate ``trunc(255 * pred) / 255`` as SEISM does when it reads the
            8-bit PNG (default True).
        nms (bool): Apply :func:`edge_nms` before thresholding (not part of SEISM; default False).
        thin_pred (bool): Thin each binarised prediction (SEISM: True).
        gt_mode (str): ``'thin'`` (binarise, then thin; default), ``'raw'`` (binarise only) or
            ``'seg2bmap'`` (boundaries of the binarised map as a label image, what SEISM does with
            the NYUD edge PNGs).
        gt_threshold (float): Ground-truth binarisation threshold (strict ``>``).
        ignore_index (float, optional): Ignore value in ``gt``; None for none.

    Returns:
        np.ndarray | None: (4, K) int64 rows ``cntR, sumR, cntP, sumP`` (matched ground-truth
        pixels, ground-truth pixels, matched predicted pixels, predicted pixels), or None when
        every ground-truth pixel is ignored.
    """
    thresholds = resolve_edge_thresholds(thresholds)
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    pred = np.squeeze(pred)
    gt = np.squeeze(gt)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f'pred {pred.shape} and gt {gt.shape} must be equal 2-D shapes')
    valid = np.isfinite(gt)
    if ignore_index is not None:
        valid &= gt != ignore_index
    if not valid.any():
        return None
    h, w = gt.shape
    gt_b = _gt_boundaries(gt, valid, gt_mode, gt_threshold)
    num_gt = int(gt_b.sum())
    radius = max_dist * float(np.hypot(h, w))
    matcher = BoundaryMatcher(gt_b, radius)

    score = edge_nms(pred) if nms else np.nan_to_num(pred, nan=0.0)
    score = np.where(valid, score, 0.0)
    k = thresholds.size
    counts = np.zeros((4, k), dtype=np.int64)
    counts[1] = num_gt
    if quantize:
        levels = quantize_to_uint8(score)
        # v / 255 > t  <=>  v > floor_level(t), with the comparison done in float64 as MATLAB's
        # im2double(png) > t does.
        all_levels = np.arange(256, dtype=np.float64) / 255.0
        cut = np.array([int(np.sum(all_levels <= t)) - 1 for t in thresholds])
        top = int(levels.max())
        cache: Dict[int, Tuple[int, int]] = {}
        for i, c in enumerate(cut):
            if c >= top:
                continue  # nothing above the threshold
            if c not in cache:
                binary = levels > c if c >= 0 else valid.copy()
                cache[c] = _match_counts(binary, matcher, thin_pred)
            counts[0, i], counts[3, i] = cache[c]
    else:
        top_value = float(score.max())
        for i, t in enumerate(thresholds):
            if t >= top_value:
                continue
            counts[0, i], counts[3, i] = _match_counts(score > t, matcher, thin_pred)
    counts[2] = counts[0]  # one ground truth: matched pairs count for both sides
    return counts


def _match_counts(binary: np.ndarray, matcher: BoundaryMatcher,
                  thin_pred: bool) -> Tuple[int, int]:
    if thin_pred:
        binary = thin_binary(binary)
    num_pred = int(np.count_nonzero(binary))
    if num_pred == 0:
        return 0, 0
    return matcher.match(binary), num_pred


def _seism_pr(cnt_r: np.ndarray, sum_r: np.ndarray, cnt_p: np.ndarray,
              sum_p: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F with SEISM's conventions for empty maps.

    No ground truth: recall 1, precision 0. No prediction (but ground truth): recall 0,
    precision 1. F = 2PR / (P + R), 0 when P + R = 0.
    """
    cnt_r, sum_r, cnt_p, sum_p = (np.asarray(a, dtype=np.float64)
                                  for a in (cnt_r, sum_r, cnt_p, sum_p))
    no_gt = sum_r == 0
    no_pred = (sum_p == 0) & ~no_gt
    regular = ~no_gt & ~no_pred
    recall = np.where(no_gt, 1.0, 0.0)
    precision = np.where(no_pred, 1.0, 0.0)
    recall = np.where(regular, cnt_r / np.where(regular, sum_r, 1.0), recall)
    precision = np.where(regular, cnt_p / np.where(regular, sum_p, 1.0), precision)
    denom = precision + recall
    f = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1.0), 0.0)
    return precision, recall, f


def _seism_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """SEISM's ``general_ap``: mean of the linearly interpolated precision at recall 0:0.01:1.

    Recall values are de-duplicated (first occurrence kept), the curve is interpolated linearly
    in recall, sample points outside the observed recall range are dropped, and the sum of the
    remaining samples is divided by 100.
    """
    _, first = np.unique(recall, return_index=True)
    if first.size < 2:
        return 0.0
    r = recall[first]
    p = precision[first]
    order = np.argsort(r)
    r, p = r[order], p[order]
    grid = np.linspace(0.0, 1.0, 101)
    inside = (grid >= r[0] - 1e-12) & (grid <= r[-1] + 1e-12)
    return float(np.interp(grid[inside], r, p).sum() / 100.0)


def boundary_metrics(counts: Union[np.ndarray, Sequence[np.ndarray]],
                     thresholds: Optional[Sequence[float]] = None) -> Dict[str, float]:
    """ODS F, OIS F and AP (fractions in [0, 1]) from per-image counts.

    Args:
        counts: (N, 4, K) array or a sequence of (4, K) arrays from :func:`boundary_pr_counts`.
        thresholds (Sequence[float], optional): The thresholds used, for reporting the ODS one.

    Returns:
        dict: ``odsF``, ``oisF``, ``AP``, ``ods_precision``, ``ods_recall``,
        ``ods_threshold`` (NaN when ``thresholds`` is not given), ``num_images``.
    """
    counts = np.asarray(list(counts) if not isinstance(counts, np.ndarray) else counts,
                        dtype=np.int64)
    if counts.ndim != 3 or counts.shape[1] != 4:
        raise ValueError(f'counts must be (N, 4, K), got {counts.shape}')
    n, _, k = counts.shape
    total = counts.sum(axis=0)
    precision, recall, f = _seism_pr(*total)
    best = int(np.argmax(f))
    # OIS: best threshold per image, then the counts at those thresholds summed.
    _, _, f_img = _seism_pr(counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3])
    pick = np.argmax(f_img, axis=1)
    chosen = counts[np.arange(n), :, pick]  # (N, 4)
    _, _, f_ois = _seism_pr(*chosen.sum(axis=0))
    ods_threshold = float('nan')
    if thresholds is not None:
        thresholds = np.asarray(thresholds, dtype=np.float64)
        if thresholds.size != k:
            raise ValueError('thresholds do not match the counts')
        ods_threshold = float(thresholds[best])
    return dict(
        odsF=float(f[best]),
        oisF=float(f_ois),
        AP=_seism_ap(precision, recall),
        ods_precision=float(precision[best]),
        ods_recall=float(recall[best]),
        ods_threshold=ods_threshold,
        num_images=int(n))
