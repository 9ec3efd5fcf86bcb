"""Visualization: the multi-task visualizer used by ``--show-dir`` and the inferencer."""
from .multi_task_visualizer import TASK_DRAW_TYPES, MultiTaskVisualizer, default_palette
# the hook lives in mmmt.engine.hooks; importable from here too, where it used to be
from mmmt.engine.hooks import MultiTaskVisualizationHook

__all__ = [
    'MultiTaskVisualizer', 'MultiTaskVisualizationHook', 'default_palette', 'TASK_DRAW_TYPES'
]
