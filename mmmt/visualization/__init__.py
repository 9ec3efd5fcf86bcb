"""Visualization: the multi-task visualizer used by ``--show-dir`` and the inferencer."""
from .multi_task_visualizer import MultiTaskVisualizer, default_palette
from .visualization_hook import MultiTaskVisualizationHook

__all__ = ['MultiTaskVisualizer', 'MultiTaskVisualizationHook', 'default_palette']
