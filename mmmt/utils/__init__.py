from .mmcv_compat import install_mmcv_ext_placeholder, mmcv_has_compiled_ops
from .setup_env import register_all_modules

__all__ = [
    'install_mmcv_ext_placeholder', 'mmcv_has_compiled_ops',
    'register_all_modules'
]
