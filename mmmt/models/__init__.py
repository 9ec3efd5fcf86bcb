"""mmmt's models: backbones, data preprocessors, decode heads, layers, losses, segmentors.

mmseg's model package imports ``mmcv.ops``, which needs the compiled ``mmcv._ext``; with
mmcv-lite this package first installs the raising placeholder of
:mod:`mmmt.utils.mmcv_compat` (a no-op beside a full mmcv), so ``custom_imports=['mmmt.models']``
is enough for an mmseg config to use mmmt's heads under mmcv-lite.
"""
from mmmt import _package_check  # noqa: F401  # isort: skip  (first: names the clone-folder trap)
from mmmt.utils.mmcv_compat import install_mmcv_ext_placeholder

install_mmcv_ext_placeholder()

from .backbones import *  # noqa: F401,F403,E402
from .backbones import __all__ as _backbones_all  # noqa: E402
from .data_preprocessors import *  # noqa: F401,F403,E402
from .data_preprocessors import __all__ as _dp_all  # noqa: E402
from .decode_heads import *  # noqa: F401,F403,E402
from .decode_heads import __all__ as _head_all  # noqa: E402
from .layers import *  # noqa: F401,F403,E402
from .layers import __all__ as _layers_all  # noqa: E402
from .losses import *  # noqa: F401,F403,E402
from .losses import __all__ as _losses_all  # noqa: E402
from .segmentors import *  # noqa: F401,F403,E402
from .segmentors import __all__ as _seg_all  # noqa: E402

__all__ = _backbones_all + _dp_all + _head_all + _layers_all + _losses_all + _seg_all
