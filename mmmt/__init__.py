"""mmmt: multi-task dense scene understanding with Mamba decoders, for OpenMMLab."""
from .utils.mmcv_compat import install_mmcv_ext_placeholder

# Must run before anything imports mmseg: with mmcv-lite (no compiled ops) mmseg's model package
# would fail to import. A no-op when the full mmcv is installed (see mmmt/utils/mmcv_compat.py).
install_mmcv_ext_placeholder()

from .version import __version__  # noqa: E402

# torch and mmengine are not imported here, so that the tools can parse their arguments (and
# set OpenMP's thread settings) first; the safe checkpoint loaders are installed by
# mmmt.registry, which every registry build and every mmmt model module imports.

__all__ = ['__version__']
