from .checkpoint import (TRUST_ENV, UntrustedCheckpointError, checkpoint_allowlist,
                         load_checkpoint_file, register_safe_checkpoint_loaders)
from .dist_utils import setup_cpu_distributed
from .mmcv_compat import install_mmcv_ext_placeholder, mmcv_has_compiled_ops
from .setup_env import register_all_modules

__all__ = [
    'install_mmcv_ext_placeholder', 'mmcv_has_compiled_ops', 'register_all_modules',
    'TRUST_ENV', 'UntrustedCheckpointError', 'checkpoint_allowlist', 'load_checkpoint_file',
    'register_safe_checkpoint_loaders', 'setup_cpu_distributed'
]
