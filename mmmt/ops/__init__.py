from mmmt import _package_check  # noqa: F401  # isort: skip  (first: names the clone-folder trap)
from .selective_scan import BACKEND_ENV, available_backends, selective_scan_fn
from .selective_scan_cpu import selective_scan_cpu
from .selective_scan_torch import selective_scan_torch

__all__ = [
    'selective_scan_fn', 'selective_scan_torch', 'selective_scan_cpu', 'available_backends',
    'BACKEND_ENV'
]
