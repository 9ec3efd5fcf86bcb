"""mmmt: multi-task dense scene understanding with Mamba decoders, for OpenMMLab."""
from .utils.mmcv_compat import install_mmcv_ext_placeholder

# Must run before anything imports mmseg: with mmcv-lite (no compiled ops) mmseg's model package
# would fail to import. A no-op when the full mmcv is installed (see mmmt/utils/mmcv_compat.py).
install_mmcv_ext_placeholder()

from .version import __version__  # noqa: E402

__all__ = ['__version__']
