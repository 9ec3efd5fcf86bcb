"""Deprecated: the synthetic dataset generator moved to :mod:`mmmt.testing`.

Kept so that ``from mmmt.datasets.synthetic import generate`` keeps working; it warns once.
"""
import warnings

from mmmt.testing import (generate, generate_nyud, generate_pascal, render_nyud_scene,
                          render_pascal_scene, savemat_deterministic)

__all__ = [
    'generate_nyud', 'generate_pascal', 'generate', 'render_nyud_scene', 'render_pascal_scene',
    'savemat_deterministic'
]

warnings.warn('mmmt.datasets.synthetic moved to mmmt.testing; import it from there',
              DeprecationWarning, stacklevel=2)
