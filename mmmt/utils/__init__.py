from .checkpoint import (CHECKPOINT_ERRORS, TRUST_ENV, CheckpointMismatchError,
                         CorruptCheckpointError, UntrustedCheckpointError, check_model_weights,
                         checkpoint_allowlist, checkpoint_getattr, existing_training_outputs,
                         find_resume_checkpoint, is_complete_checkpoint, load_checkpoint_file,
                         describe_non_finite, load_model_weights, non_finite_tensors,
                         register_safe_checkpoint_loaders, trusted)
from .cli import (CfgOptionsAction, add_runner_args, build_runner, load_runner_config,
                  parse_runner_args, shutdown_distributed, warn_misspelled_keys)
from .dist_utils import (CPU_DIST_TIMEOUT, check_launcher_env, cpu_dist_cfg, replace_sync_bn,
                         setup_cpu_distributed)
from .fileio import ATOMIC_BACKEND, AtomicLocalBackend, atomic_write
from .mmcv_compat import install_mmcv_ext_placeholder, mmcv_has_compiled_ops
from .setup_env import register_all_modules
from .tta import enable_tta

__all__ = [
    'install_mmcv_ext_placeholder', 'mmcv_has_compiled_ops', 'register_all_modules',
    'TRUST_ENV', 'UntrustedCheckpointError', 'CheckpointMismatchError', 'CorruptCheckpointError',
    'CHECKPOINT_ERRORS', 'trusted', 'checkpoint_getattr', 'checkpoint_allowlist',
    'load_checkpoint_file', 'is_complete_checkpoint', 'existing_training_outputs',
    'find_resume_checkpoint', 'non_finite_tensors', 'describe_non_finite', 'check_model_weights',
    'load_model_weights',
    'register_safe_checkpoint_loaders', 'setup_cpu_distributed', 'replace_sync_bn',
    'cpu_dist_cfg', 'check_launcher_env', 'CPU_DIST_TIMEOUT',
    'add_runner_args', 'CfgOptionsAction', 'warn_misspelled_keys',
    'parse_runner_args', 'load_runner_config', 'build_runner', 'shutdown_distributed',
    'atomic_write', 'AtomicLocalBackend', 'ATOMIC_BACKEND', 'enable_tta'
]
