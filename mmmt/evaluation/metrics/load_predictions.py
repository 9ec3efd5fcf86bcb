"""Read the prediction files of ``tools/test.py --out`` without running code from them."""
import os.path as osp
import pickle
from typing import Any, Dict, List

import numpy as np

from mmmt.utils.errors import InputFileNotFoundError, UserInputError

__all__ = ['load_predictions', 'PREDICTION_PICKLE_GLOBALS']

#: The only globals a predictions pickle may name: what pickle uses to rebuild numpy arrays,
#: dtypes and scalars (protocols 2-5; numpy 1.x ``numpy.core`` and 2.x ``numpy._core``) and
#: ``_codecs.encode`` (protocol 2's bytes). None of them runs code of the file's choosing.
PREDICTION_PICKLE_GLOBALS = frozenset({
    ('numpy', 'dtype'),
    ('numpy', 'ndarray'),
    ('numpy.core.multiarray', '_reconstruct'),
    ('numpy._core.multiarray', '_reconstruct'),
    ('numpy.core.multiarray', 'scalar'),
    ('numpy._core.multiarray', 'scalar'),
    ('numpy.core.numeric', '_frombuffer'),
    ('numpy._core.numeric', '_frombuffer'),
    ('_codecs', 'encode'),
})


class _RefusedGlobal(pickle.UnpicklingError):
    """The file names a global outside :data:`PREDICTION_PICKLE_GLOBALS`."""


class _PredictionUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`PREDICTION_PICKLE_GLOBALS` (Python's documented
    way to restrict globals; torch's weights-only loader reads only torch's own format)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in PREDICTION_PICKLE_GLOBALS:
            raise _RefusedGlobal(f'{module}.{name}')
        # numpy's own dtype/ndarray __setstate__ trust the file (a crafted dtype state turns
        # file bytes into object pointers): the checkpoint loader's checking stand-ins instead
        from mmmt.utils.checkpoint import numpy_stand_ins
        return numpy_stand_ins().get((module, name)) or super().find_class(module, name)


def _check_records(records: Any, path: str) -> None:
    """Stop with the first thing that is not the layout ``DumpMultiTaskPredictions`` writes."""
    what = ('a list of dicts, each with "pred": a dict task -> numpy array (the layout of '
            'tools/test.py --out)')
    if not isinstance(records, list):
        raise UserInputError(f'{path}: expected {what}, got {type(records).__name__}')
    for i, record in enumerate(records):
        pred = record.get('pred') if isinstance(record, dict) else None
        if not isinstance(pred, dict) or not all(
                isinstance(k, str) and isinstance(v, np.ndarray) for k, v in pred.items()):
            raise UserInputError(f'{path}: record {i} is not a dict with "pred"; expected {what}')


def load_predictions(path: str) -> List[Dict[str, Any]]:
    """The records of a ``tools/test.py --out`` file, read safely.

    The file is a pickle (as mmengine's ``DumpResults`` writes), and a pickle can run any code
    while it loads. This reader builds only numpy arrays and Python's plain containers,
    numbers and strings, so a crafted file is refused instead of run; for a file of your own
    that holds other objects, use :func:`pickle.load`.

    Args:
        path (str): The ``.pkl`` file.

    Returns:
        list[dict]: One dict per image: ``img_id``, ``img_path``, ``ori_shape`` (and
        ``flip``/``flip_direction`` when present) and ``pred``, task -> array in
        :func:`~mmmt.structures.pred_to_array`'s layout.

    Raises:
        InputFileNotFoundError: ``path`` is not a file.
        UserInputError: The file is not a pickle, names anything beyond numpy arrays, or does
            not have the layout above. The message names the file.
    """
    if not osp.isfile(path):
        raise InputFileNotFoundError(f'predictions file not found: {path}')
    from mmmt.utils.checkpoint import RefusedNumpyState, plain_numpy
    try:
        with open(path, 'rb') as f:  # read as it unpickles: no second copy of the file
            records = plain_numpy(_PredictionUnpickler(f).load())
    except RefusedNumpyState as e:
        raise UserInputError(f'{path}: {e}; a tools/test.py --out file never holds that, so '
                             'it was refused without using it') from e
    except _RefusedGlobal as e:
        raise UserInputError(
            f'{path} names {e}, which a tools/test.py --out file never holds (only numpy '
            'arrays); refused without running it, since loading a pickle can run code. For a '
            'file you trust, use pickle.load') from e
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError) as e:
        raise UserInputError(f'{path} is not a readable pickle (truncated or another format: '
                             f'{type(e).__name__}: {e})') from e
    _check_records(records, path)
    return records
