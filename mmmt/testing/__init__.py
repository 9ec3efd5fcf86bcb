"""Test and demo helpers that are not part of the runtime: the synthetic dataset generator.

:func:`generate` writes a synthetic NYUDv2 or PASCAL-Context multi-task dataset in the real
layout, rendered from random 3D scenes. It is split into scene building
(:mod:`.synthetic_scenes`), ray casting (:mod:`.synthetic_render`) and the dataset writers
(:mod:`.synthetic_writers`). Used by ``tools/dataset_converters/synthetic_mt.py``, ``make demo``
and the tests. The Cityscapes layout has its own writer,
:mod:`.synthetic_cityscapes` (2D street scenes, imported by path).
"""
from .synthetic_render import Material, Prim, Render, raycast
from .synthetic_scenes import render_nyud_scene, render_pascal_scene
from .synthetic_writers import generate, generate_nyud, generate_pascal, savemat_deterministic

__all__ = [
    'generate', 'generate_nyud', 'generate_pascal', 'savemat_deterministic',
    'render_nyud_scene', 'render_pascal_scene', 'raycast', 'Material', 'Prim', 'Render'
]
