"""Visualization: the multi-task visualizer used by ``--show-dir`` and the inferencer."""
from mmmt import _package_check  # noqa: F401,I001  (names the clone-folder trap)
from .multi_task_visualizer import (MultiTaskLocalVisBackend, MultiTaskVisualizer,
                                    default_palette, normals_key)
# the hook lives in mmmt.engine.hooks; importable from here too, where it used to be
from mmmt.engine.hooks import MultiTaskVisualizationHook

__all__ = [
    'MultiTaskVisualizer', 'MultiTaskVisualizationHook', 'MultiTaskLocalVisBackend',
    'default_palette', 'normals_key'
]
