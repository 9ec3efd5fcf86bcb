"""Evaluation: the multi-task metric and the per-task metric functions.

Never imports ``mmmt.models`` or ``mmmt.datasets``.
"""
from mmmt import _package_check  # noqa: F401  # isort: skip  (first: names the clone-folder trap)
from .functional import *  # noqa: F401,F403
from .functional import __all__ as _functional_all
from .metrics import *  # noqa: F401,F403
from .metrics import __all__ as _metrics_all

__all__ = list(_functional_all) + list(_metrics_all)
