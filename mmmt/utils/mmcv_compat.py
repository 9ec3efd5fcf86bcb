"""Let mmsegmentation import beside ``mmcv-lite``.

``mmcv-lite`` is mmcv without its compiled extension ``mmcv._ext``. mmsegmentation 1.2.2 imports
``mmcv.ops`` at module level in a few files (``point_sample``, the focal loss, SAN, mask
classification), so ``import mmseg.models`` fails with ``No module named 'mmcv._ext'`` although
no mmmt component needs a compiled mmcv op.

:func:`install_mmcv_ext_placeholder` registers a placeholder ``mmcv._ext`` module, **only when
the real extension cannot be found** (a full mmcv is never touched). Every attribute of the
placeholder is a function that raises a :class:`RuntimeError` naming the op and how to get it, so
a config that really needs a compiled op fails loudly at the call instead of silently.
"""
import importlib.machinery
import importlib.util
import sys
import types
from typing import Callable

__all__ = ['install_mmcv_ext_placeholder', 'mmcv_has_compiled_ops']

_PLACEHOLDER_NAME = 'mmcv._ext'


class _MissingMMCVExtension(types.ModuleType):
    """Stand-in for ``mmcv._ext`` whose attributes raise when they are called."""

    is_mmmt_placeholder = True

    def __getattr__(self, name: str) -> Callable:
        if name.startswith('__') and name.endswith('__'):
            raise AttributeError(name)

        def _missing_op(*args, **kwargs):
            raise RuntimeError(
                f'The mmcv op `{name}` needs the compiled mmcv extension, but only mmcv-lite '
                'is installed. Install the full package instead: '
                '`pip uninstall -y mmcv-lite && pip install mmcv==2.1.0` '
                '(see docs/installation.md).')

        _missing_op.__name__ = name
        return _missing_op


def mmcv_has_compiled_ops() -> bool:
    """Whether the real compiled ``mmcv._ext`` is importable."""
    module = sys.modules.get(_PLACEHOLDER_NAME)
    if module is not None:
        return not getattr(module, 'is_mmmt_placeholder', False)
    # look for the extension inside mmcv's folder without importing mmcv (whose __init__
    # imports torch): `import mmmt` stays light enough for the tools' --help
    try:
        spec = importlib.util.find_spec('mmcv')
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    return importlib.machinery.PathFinder.find_spec(
        '_ext', list(spec.submodule_search_locations)) is not None


def install_mmcv_ext_placeholder() -> bool:
    """Register the placeholder ``mmcv._ext`` if (and only if) the real one is absent.

    Returns:
        bool: True if the placeholder is in use after the call.

    Raises:
        ModuleNotFoundError: No mmcv is installed at all (mmseg, mmpretrain and mmmt's models
            and transforms all import it). It is not an install requirement of mmmt, so that
            installing mmmt never replaces a full mmcv: the message says what to install.
    """
    if _PLACEHOLDER_NAME in sys.modules:
        return getattr(sys.modules[_PLACEHOLDER_NAME], 'is_mmmt_placeholder', False)
    try:
        found = importlib.util.find_spec('mmcv') is not None
    except ValueError:  # an mmcv module without a spec: imported some other way, leave it
        return False
    if not found:
        raise ModuleNotFoundError(
            'mmmt needs mmcv, which is not installed: `pip install mmcv-lite==2.1.0` (pure '
            'Python, enough for mmmt) or the full `mmcv==2.1.0` (compiled ops). mmmt does not '
            'install it itself so that it never replaces a full mmcv; see '
            'docs/installation.md.', name='mmcv')
    if mmcv_has_compiled_ops():
        return False
    placeholder = _MissingMMCVExtension(_PLACEHOLDER_NAME)
    # mmengine and importlib look at ``__spec__``; a real ModuleSpec keeps them working.
    placeholder.__spec__ = importlib.machinery.ModuleSpec(_PLACEHOLDER_NAME, loader=None)
    sys.modules[_PLACEHOLDER_NAME] = placeholder
    return True
