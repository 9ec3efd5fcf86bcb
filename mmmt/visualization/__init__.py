"""Visualization: the multi-task visualizer used by ``--show-dir`` and the inferencer."""
from mmmt import _package_check  # noqa: F401  # isort: skip  (first: names the clone-folder trap)
# the hook lives in mmmt.engine.hooks; importable from here too, where it used to be
from mmmt.engine.hooks import MultiTaskVisualizationHook
from .multi_task_visualizer import (MultiTaskLocalVisBackend, MultiTaskVisualizer, default_palette,
                                    normals_key)

__all__ = [
    'MultiTaskVisualizer', 'MultiTaskVisualizationHook', 'MultiTaskLocalVisBackend',
    'default_palette', 'normals_key'
]
