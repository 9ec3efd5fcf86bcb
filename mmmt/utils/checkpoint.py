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
    'TRUST_ENV', 'UntrustedCheckpointError', 'checkpoint_allowlist', 'load_checkpoint_file',
    'register_safe_checkpoint_loaders'
]

#: Set to 1 to allow full unpickling of every checkpoint (only for files you trust).
TRUST_ENV = 'MMMT_TRUST_CHECKPOINTS'


class UntrustedCheckpointError(RuntimeError):
    """A checkpoint needs full unpickling, which was not allowed."""


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
