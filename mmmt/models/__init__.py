from mmmt import _package_check  # noqa: F401,I001  (names the clone-folder trap)
from .backbones import *  # noqa: F401,F403
from .data_preprocessors import *  # noqa: F401,F403
from .decode_heads import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403
from .backbones import __all__ as _backbones_all
from .data_preprocessors import __all__ as _dp_all
from .decode_heads import __all__ as _head_all
from .layers import __all__ as _layers_all
from .losses import __all__ as _losses_all
from .segmentors import __all__ as _seg_all

__all__ = _backbones_all + _dp_all + _head_all + _layers_all + _losses_all + _seg_all
