"""Per-task metric functions in plain NumPy/SciPy (no torch, no mmengine)."""
from .boundary import (DEFAULT_EDGE_PROTOCOL, DEFAULT_EDGE_THRESHOLDS, EDGE_PROTOCOLS,
                       SEISM_HED_THRESHOLDS, SEISM_HED_VOC_THRESHOLDS, BoundaryMatcher,
                       boundary_metrics, boundary_pr_counts, check_boundary_options,
                       correspond_pixels, disk_offsets, edge_nms, edge_protocol, quantize_to_uint8,
                       resolve_edge_thresholds, seg2bmap, thin_binary)
from .delta_m import DELTA_M_METRICS, NYUD_SINGLE_TASK_BASELINES, delta_m
from .depth import DEPTH_SUM_KEYS, depth_metrics, depth_sums
from .edge_png import center_crop, save_edge_png
from .normals import (NORMALS_HIST_BIN, NORMALS_THRESHOLDS, normal_angles, normals_metrics,
                      normals_stats)
from .saliency import SAL_THRESHOLDS, legacy_effective_thresholds, saliency_counts, saliency_metrics
from .segmentation import segmentation_counts, segmentation_metrics
from .seism_nms import conv_tri, seism_nms, seism_orientation, structured_edge_nms

__all__ = [
    'DEFAULT_EDGE_PROTOCOL', 'DEFAULT_EDGE_THRESHOLDS', 'EDGE_PROTOCOLS', 'SEISM_HED_THRESHOLDS',
    'SEISM_HED_VOC_THRESHOLDS', 'BoundaryMatcher', 'boundary_metrics', 'boundary_pr_counts',
    'check_boundary_options',
    'correspond_pixels', 'disk_offsets', 'edge_nms', 'edge_protocol', 'quantize_to_uint8',
    'resolve_edge_thresholds', 'seg2bmap', 'thin_binary', 'conv_tri', 'seism_nms',
    'seism_orientation', 'structured_edge_nms',
    'DELTA_M_METRICS', 'NYUD_SINGLE_TASK_BASELINES', 'delta_m', 'DEPTH_SUM_KEYS',
    'depth_metrics', 'depth_sums', 'center_crop', 'save_edge_png', 'NORMALS_HIST_BIN',
    'NORMALS_THRESHOLDS', 'normal_angles', 'normals_metrics', 'normals_stats',
    'SAL_THRESHOLDS', 'legacy_effective_thresholds', 'saliency_counts', 'saliency_metrics',
    'segmentation_counts', 'segmentation_metrics'
]
