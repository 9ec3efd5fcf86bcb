"""Refuse to run when ``mmmt`` resolved to a folder that is not the package.

With mmmt installed in editable mode (``pip install -e``, what ``make venv`` does), Python run
from the folder that *contains* the clone finds the clone folder ``mmmt/`` first. It has no
``__init__.py``, so it becomes an empty namespace package; the editable finder still serves
the subpackages, but the package's ``__init__`` never runs and the first symptom is an unrelated
error deep inside mmseg (``No module named 'mmcv._ext'``). Every mmmt subpackage imports this
module first, so the mistake is named instead.
"""
import os.path as osp
import sys

__all__ = []


def _check() -> None:
    package = sys.modules.get('mmmt')
    if package is None or getattr(package, '__file__', None):
        return
    found = ', '.join(getattr(package, '__path__', [])) or '?'
    real = osp.dirname(osp.abspath(__file__))
    raise ImportError(
        f'`mmmt` was imported from {found}, a folder without __init__.py, instead of the mmmt '
        f'package ({real}). This happens when Python runs in the folder that contains the clone '
        'of the repository: its folder `mmmt/` hides the installed package. Run from inside '
        'the clone or from any other folder (see docs/installation.md).')


_check()
