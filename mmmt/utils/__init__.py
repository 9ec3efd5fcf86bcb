"""Utilities of mmmt.

The names are loaded on first use (PEP 562): the command-line tools import
:mod:`mmmt.utils.cli` to parse their arguments before torch is imported, so that ``--help`` and
argument errors answer at once and the thread settings of :func:`configure_cpu_threads` reach
OpenMP before it starts.
"""
from mmmt import _package_check  # noqa: F401  # isort: skip  (first: names the clone-folder trap)
import importlib
from typing import Any

#: Public name -> submodule that defines it.
_EXPORTS = {
    'TRUST_ENV': 'checkpoint',
    'UntrustedCheckpointError': 'checkpoint',
    'CheckpointMismatchError': 'checkpoint',
    'checkpoint_allowlist': 'checkpoint',
    'load_checkpoint_file': 'checkpoint',
    'check_model_weights': 'checkpoint',
    'load_model_weights': 'checkpoint',
    'register_safe_checkpoint_loaders': 'checkpoint',
    'add_runner_args': 'cli',
    'parse_runner_args': 'cli',
    'load_runner_config': 'cli',
    'build_runner': 'cli',
    'isolate_run': 'cli',
    'claim_log_stamp': 'cli',
    'shutdown_distributed': 'cli',
    'set_data_root': 'cli',
    'merge_cfg_options': 'cli',
    'LazyDictAction': 'cli',
    'configure_cpu_threads': 'threads',
    'replace_sync_bn': 'dist_utils',
    'setup_cpu_distributed': 'dist_utils',
    'ATOMIC_BACKEND': 'fileio',
    'AtomicLocalBackend': 'fileio',
    'atomic_write': 'fileio',
    'PIL_READ_FORMATS': 'image_formats',
    'install_mmcv_ext_placeholder': 'mmcv_compat',
    'mmcv_has_compiled_ops': 'mmcv_compat',
    'register_all_modules': 'setup_env',
    'CHECKPOINT_ERRORS': 'checkpoint',
    'CorruptCheckpointError': 'checkpoint',
    'checkpoint_getattr': 'checkpoint',
    'checkpoint_step': 'checkpoint',
    'existing_training_outputs': 'checkpoint',
    'later_checkpoints': 'checkpoint',
    'find_resume_checkpoint': 'checkpoint',
    'is_complete_checkpoint': 'checkpoint',
    'describe_non_finite': 'checkpoint',
    'non_finite_tensors': 'checkpoint',
    'trusted': 'checkpoint',
    'warn_misspelled_keys': 'cli',
    'CPU_DIST_TIMEOUT': 'dist_utils',
    'check_launcher_env': 'dist_utils',
    'cpu_dist_cfg': 'dist_utils',
    'enable_tta': 'tta',
    'UserInputError': 'errors',
    'InputFileNotFoundError': 'errors',
    'UnknownNameError': 'errors',
    'DuplicateNameError': 'errors',
    'InvalidOptionError': 'errors',
    'RunStopped': 'errors',
    'run_main': 'errors',
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(f'.{_EXPORTS[name]}', __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
