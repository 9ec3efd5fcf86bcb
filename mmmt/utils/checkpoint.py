"""Checkpoint loading that never runs arbitrary pickled code unless asked to.

``torch.load`` unpickles, and unpickling a file from an untrusted source can execute code. Since
torch 2.6 ``torch.load`` defaults to ``weights_only=True``, but mmengine 0.10.7 does not pass
``weights_only`` and its resume checkpoints hold a ``HistoryBuffer`` and numpy arrays, so
``--resume`` fails with ``Unsupported global``.

:func:`load_checkpoint_file` loads with ``weights_only=True`` and an allow-list of exactly the
non-tensor types that mmengine/OpenMMLab checkpoints contain (mmengine's ``HistoryBuffer``,
numpy arrays, dtypes and scalars). Anything else is refused with an error that names the file
and the way to trust it: the ``--trust-checkpoint`` flag of mmmt's tools, or the environment
variable ``MMMT_TRUST_CHECKPOINTS=1``.

:func:`register_safe_checkpoint_loaders` installs this loader for local paths and http(s) URLs
in mmengine's ``CheckpointLoader``, which ``load_from``, ``--resume`` and ``init_cfg`` with
``type='Pretrained'`` all go through.
"""
import os
import os.path as osp
import pickle
from typing import Any, List, Optional

import numpy as np
import torch

__all__ = [
    'TRUST_ENV', 'UntrustedCheckpointError', 'CheckpointMismatchError', 'checkpoint_allowlist',
    'load_checkpoint_file', 'check_model_weights', 'load_model_weights',
    'register_safe_checkpoint_loaders'
]

#: Set to 1 to allow full unpickling of every checkpoint (only for files you trust).
TRUST_ENV = 'MMMT_TRUST_CHECKPOINTS'


class UntrustedCheckpointError(RuntimeError):
    """A checkpoint needs full unpickling, which was not allowed."""


class CheckpointMismatchError(ValueError):
    """A checkpoint's weights do not fit the model they are loaded into."""


def _trusted() -> bool:
    return os.environ.get(TRUST_ENV, '').strip().lower() in ('1', 'true', 'yes')


def checkpoint_allowlist() -> List[Any]:
    """The classes and functions that may appear in an mmengine checkpoint."""
    from mmengine.logging.history_buffer import HistoryBuffer
    # numpy pickles some scalars and dtypes through ``getattr``; the weights-only unpickler still
    # refuses to call anything that is not itself on the allow-list, so this exposes no callable.
    allowed = [HistoryBuffer, np.ndarray, np.dtype, getattr]
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    allowed += [_reconstruct, scalar]
    # the concrete dtype classes of numpy >= 1.25 (np.dtypes.Float64DType, ...)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith('DType')]
    return allowed


def load_checkpoint_file(filename: str,
                         map_location: Optional[Any] = None,
                         trust: Optional[bool] = None) -> Any:
    """Load a checkpoint file, refusing unknown pickled globals unless trusted.

    Args:
        filename (str): Path of the checkpoint.
        map_location: As for :func:`torch.load`.
        trust (bool, optional): Allow full unpickling. Defaults to the value of the environment
            variable ``MMMT_TRUST_CHECKPOINTS``.

    Raises:
        FileNotFoundError: The file does not exist.
        UntrustedCheckpointError: The file holds objects outside the allow-list.
    """
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file not found: {filename}')
    if trust if trust is not None else _trusted():
        return torch.load(filename, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(checkpoint_allowlist()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UntrustedCheckpointError(
            f'{filename}: refused to unpickle objects that are not tensors or known mmengine/'
            f'numpy types ({str(e).splitlines()[0][:200]}). Loading it fully can execute code '
            'stored in the file. If you trust its source, pass --trust-checkpoint to the mmmt '
            f'tool, or set {TRUST_ENV}=1.') from e


#: Names that only the reference implementation's decoder uses (see reference_keys.py).
_REFERENCE_NAME_PARTS = ('expand_layers.', 'concat_layers.', 'final_expand_layers.')


def _examples(names: List[str], n: int = 3) -> str:
    return ', '.join(names[:n]) + (f' ... ({len(names)} in all)' if len(names) > n else '')


def check_model_weights(model: torch.nn.Module, checkpoint: Any, source: str) -> dict:
    """Check that a checkpoint's weights fit ``model`` exactly, or say what does not fit.

    mmengine's ``load_from`` loads non-strictly and only logs missing keys, so testing a
    checkpoint of another layout (e.g. the reference implementation's, or a PASCAL model with a
    NYUD config) would silently evaluate a randomly initialised model. Here any missing,
    unexpected or differently shaped tensor is an error naming examples of each, with the
    converter to use when the names are the reference implementation's.

    Args:
        model (nn.Module): The model (a DDP wrapper is unwrapped).
        checkpoint: The loaded checkpoint: a dict with ``state_dict`` (mmengine), or a state
            dict. A ``module.`` prefix (DDP) is removed.
        source (str): The checkpoint's file name, for messages.

    Returns:
        dict: The state dict, with names as the model's.

    Raises:
        CheckpointMismatchError: The weights do not fit the model.
    """
    from mmengine.model import is_model_wrapper
    if is_model_wrapper(model):
        model = model.module
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(
            f'{source}: expected a checkpoint dict, got {type(checkpoint).__name__}')
    state = checkpoint.get('state_dict', checkpoint)
    state = {k[7:] if k.startswith('module.') else k: v for k, v in state.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}' for k in own
                if k in state and hasattr(state[k], 'shape') and state[k].shape != own[k].shape]
    if not (missing or unexpected or reshaped):
        return state
    problems = []
    if missing:
        problems.append(f'{len(missing)} weights of the model are not in it '
                        f'({_examples(missing)})')
    if unexpected:
        problems.append(f'{len(unexpected)} of its weights are not in the model '
                        f'({_examples(unexpected)})')
    if reshaped:
        problems.append(f'{len(reshaped)} have other shapes, checkpoint vs model '
                        f'({_examples(reshaped)})')
    nested = checkpoint.get('model')
    names = list(state) + (list(nested) if isinstance(nested, dict) else [])
    hint = ''
    if isinstance(nested, dict) or any(p in k for k in names for p in _REFERENCE_NAME_PARTS):
        hint = (' It looks like a checkpoint of the reference implementation: convert it with '
                'python tools/model_converters/mtmamba2mmmt.py SRC DST --config CONFIG.')
    elif reshaped and not (missing or unexpected):
        hint = ' Is it a model of another dataset (other tasks or class counts)?'
    raise CheckpointMismatchError(
        f'{source} does not fit the model of this config: ' + '; '.join(problems) + '.' + hint)


def load_model_weights(model: torch.nn.Module, checkpoint: Any, source: str) -> dict:
    """:func:`check_model_weights`, then load the weights strictly.

    Returns:
        dict: The checkpoint's ``meta`` (empty if none).
    """
    from mmengine.model import is_model_wrapper
    state = check_model_weights(model, checkpoint, source)
    (model.module if is_model_wrapper(model) else model).load_state_dict(state, strict=True)
    return checkpoint.get('meta') or {}


# mmengine logs 'Loads checkpoint by <name[10:]> backend', i.e. the name after 'load_from_'
def load_from_local_safe(filename: str, map_location=None):
    return load_checkpoint_file(osp.expanduser(filename), map_location)


def load_from_http_safe(filename: str, map_location=None, model_dir=None, progress=None):
    # Download into torch hub's cache like mmengine does, then load through the safe loader.
    from torch.hub import download_url_to_file, get_dir
    model_dir = model_dir or osp.join(get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    cached = osp.join(model_dir, osp.basename(filename.split('?')[0]))
    if not osp.exists(cached):
        download_url_to_file(filename, cached, progress=bool(progress))
    return load_checkpoint_file(cached, map_location)


def register_safe_checkpoint_loaders() -> None:
    """Route mmengine's local and http(s) checkpoint loading through the safe loader."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local_safe, force=True)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'), loader=load_from_http_safe, force=True)
