"""One-to-one correspondence of boundary pixels within a tolerance (BSDS ``correspondPixels``).

The correspondence is an exact maximum-cardinality bipartite matching (a unit-capacity maximum
flow solved with Dinic's algorithm, :func:`scipy.sparse.csgraph.maximum_flow`) on the graph whose
edges join pixels within the tolerance; see docs/metrics.md.
"""
from typing import Tuple, Union

import numpy as np
from scipy.sparse import coo_matrix, csr_array
from scipy.sparse.csgraph import maximum_flow

__all__ = ['disk_offsets', 'BoundaryMatcher', 'correspond_pixels']


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
