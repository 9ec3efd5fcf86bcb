"""Helpers of the model converters (``tools/model_converters/``): safe loading, state_dict
extraction and atomic writing of checkpoints."""
import contextlib
import os.path as osp
from typing import Any, Iterator, Optional

# torch, mmengine and the checkpoint helpers are imported by the functions that need them, so
# that the converters answer --help at once

__all__ = [
    'load_source', 'check_destination', 'save_atomic', 'extract_state_dict', 'source_layout_errors'
]


def load_source(path: str, trust: bool = False) -> Any:
    """Load a checkpoint with ``weights_only=True`` (plus mmengine's known types) unless
    ``trust`` is set; see :func:`mmmt.utils.load_checkpoint_file`."""
    from . import CHECKPOINT_ERRORS, load_checkpoint_file
    try:
        return load_checkpoint_file(path, map_location='cpu', trust=True if trust else None)
    except CHECKPOINT_ERRORS as e:  # the message names the file and what to do
        raise SystemExit(str(e)) from None


@contextlib.contextmanager
def source_layout_errors(path: str) -> Iterator[None]:
    """A ``KeyError`` of the key mapping inside (a name the source layout does not have: the
    file is a checkpoint of another kind) becomes a one-line error naming ``path``."""
    try:
        yield
    except KeyError as e:
        raise SystemExit(f'{path}: {e.args[0]}') from None


def check_destination(path: str, force: bool) -> None:
    """Refuse to overwrite ``path`` unless ``force``, and a ``path`` that cannot be written
    (a folder, a file above it, not writable: :func:`~mmmt.utils.fileio.output_path_problem`)."""
    from .fileio import output_path_problem
    problem = output_path_problem(path)
    if problem:
        raise SystemExit(problem)
    if osp.exists(path) and not force:
        raise SystemExit(f'{path} exists; pass --force to overwrite it')


def save_atomic(obj: Any, path: str, force: bool = False) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place.

    A crash or a full disk never leaves a truncated ``path`` behind.
    """
    import torch

    from . import atomic_write
    check_destination(path, force)
    try:
        atomic_write(lambda f: torch.save(obj, f), path, overwrite=force)
    except FileExistsError:  # appeared meanwhile
        raise SystemExit(f'{path} exists; pass --force to overwrite it') from None


def extract_state_dict(ckpt: Any, keys=('model', 'state_dict')) -> Optional[dict]:
    """The state_dict inside a checkpoint dict (the first of ``keys`` present), or the dict
    itself if it already maps names to tensors."""
    if not isinstance(ckpt, dict):
        raise SystemExit(f'expected a checkpoint dict, got {type(ckpt).__name__}')
    for key in keys:
        if key in ckpt and isinstance(ckpt[key], dict):
            return ckpt[key]
    import torch
    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt
    raise SystemExit(f'no state_dict found under {list(keys)} (top-level keys: '
                     f'{list(ckpt)[:10]})')
