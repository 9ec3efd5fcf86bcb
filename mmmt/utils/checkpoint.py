"""Checkpoint loading that never runs arbitrary pickled code unless asked to.

``torch.load`` unpickles, and unpickling a file from an untrusted source can execute code. Since
torch 2.6 ``torch.load`` defaults to ``weights_only=True``, but mmengine 0.10.7 does not pass
``weights_only`` and its resume checkpoints hold a ``HistoryBuffer`` and numpy arrays, so
``--resume`` fails with ``Unsupported global``.

:func:`load_checkpoint_file` loads with ``weights_only=True`` and an allow-list of exactly the
non-tensor types that mmengine/OpenMMLab checkpoints contain (mmengine's ``HistoryBuffer``,
numpy arrays, dtypes and scalars; numpy's names resolve to stand-ins that accept only plain,
unstructured dtypes, because numpy's own ``__setstate__`` lets a crafted state turn file bytes
into object pointers). Anything else is refused with an error that names the file and the way
to trust it: the ``--trust-checkpoint`` flag of mmmt's tools, or the environment variable
``MMMT_TRUST_CHECKPOINTS=1``.

:func:`register_safe_checkpoint_loaders` installs this loader for local paths, http(s) URLs and
model-zoo names (``torchvision://``, ``open-mmlab://``, ``mmcls://``) in mmengine's
``CheckpointLoader``, which ``load_from``, ``--resume`` and ``init_cfg`` with
``type='Pretrained'`` all go through.
"""
import contextlib
import glob
import hashlib
import math
import os
import os.path as osp
import pickle
import re
import tempfile
import threading
import zipfile
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np
import torch

from .errors import InputFileNotFoundError, UserInputError, name_some

__all__ = [
    'TRUST_ENV', 'UntrustedCheckpointError', 'CheckpointMismatchError', 'CorruptCheckpointError',
    'CHECKPOINT_ERRORS', 'trusted', 'checkpoint_allowlist', 'checkpoint_getattr',
    'load_checkpoint_file', 'is_complete_checkpoint', 'checkpoint_step',
    'existing_training_outputs', 'later_checkpoints', 'find_resume_checkpoint', 'ABANDONED_RECORD',
    'record_abandoned_checkpoints', 'abandoned_checkpoints', 'non_finite_tensors',
    'describe_non_finite', 'check_model_weights', 'load_model_weights', 'load_from_local_safe',
    'RefusedNumpyState', 'numpy_stand_ins', 'checkpoint_frombuffer', 'plain_numpy',
    'DOWNLOAD_SUBDIR', 'http_download_path', 'load_from_http_safe', 'MODEL_ZOO_PREFIXES',
    'load_from_model_zoo_safe', 'STORAGE_PREFIXES', 'load_from_storage_safe', 'load_from_pavi_safe',
    'register_safe_checkpoint_loaders'
]

#: Set to 1 to allow full unpickling of every checkpoint (only for files you trust).
TRUST_ENV = 'MMMT_TRUST_CHECKPOINTS'


class UntrustedCheckpointError(RuntimeError):
    """A checkpoint needs full unpickling, which was not allowed."""


class CheckpointMismatchError(ValueError):
    """A checkpoint's weights do not fit the model they are loaded into."""


class CorruptCheckpointError(ValueError):
    """A file is empty, truncated or not a PyTorch checkpoint at all."""


#: What the tools turn into a one-line error (no traceback) when a checkpoint cannot be used.
CHECKPOINT_ERRORS = (UntrustedCheckpointError, CheckpointMismatchError, CorruptCheckpointError)


def trusted() -> bool:
    """Whether ``MMMT_TRUST_CHECKPOINTS`` allows full unpickling (``--trust-checkpoint``)."""
    return os.environ.get(TRUST_ENV, '').strip().lower() in ('1', 'true', 'yes')


def _getattr_pairs() -> List[Tuple[type, frozenset]]:
    """The (class, attributes) that genuine checkpoints fetch with ``getattr``.

    Pickle protocol 2 (``torch.save``'s) stores a function by its qualified name, and one whose
    name is ``Class.method`` as ``getattr(Class, 'method')``. In mmengine checkpoints that is
    only the message hub's ``HistoryBuffer`` statistics (``_statistics_methods``, saved with
    every buffer); numpy arrays, dtypes and scalars, the converters' outputs and mmpretrain's
    Swin state dicts use no ``getattr`` at all (inspected with ``pickletools``).
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    return [(HistoryBuffer, frozenset(('min', 'max', 'current', 'mean')))]


def checkpoint_getattr(obj: Any, name: Any, *default: Any) -> Any:
    """``getattr`` for the weights-only unpickler: only the pairs of :func:`_getattr_pairs`.

    The real ``getattr`` on the allow-list reaches any object from an allowed one (the builtins
    module through ``getattr.__self__``, a module's globals through ``func.__globals__``), from
    which a crafted file can plant and call ``eval``. Registered under the name
    ``builtins.getattr`` that pickles reference.

    Raises:
        UntrustedCheckpointError: Any other attribute, or a default value.
    """
    for cls, names in _getattr_pairs():
        if obj is cls and isinstance(name, str) and name in names and not default:
            return getattr(cls, name)
    what = 'getattr' if obj is checkpoint_getattr else getattr(obj, '__qualname__',
                                                               type(obj).__name__)
    raise UntrustedCheckpointError(
        f'refused getattr({what}, {name!r}): genuine checkpoints only fetch '
        + ', '.join(f'{c.__name__}.{n}' for c, ns in _getattr_pairs() for n in sorted(ns))
        + ' this way; this file reaches for other objects, as files crafted to run code do')


#: numpy dtype kinds a checkpoint may hold: bool, integers, floats, complex, fixed strings.
_NUMPY_KINDS = frozenset('biufcSU')


class RefusedNumpyState(UntrustedCheckpointError):
    """A pickle's numpy content is not what numpy writes for a plain array, dtype or scalar."""


def _refuse_numpy(what: str) -> RefusedNumpyState:
    return RefusedNumpyState(
        f'refused {what}: mmmt\'s safe loaders take numpy content only as arrays and scalars of '
        'bool, number and fixed-length string types, as numpy pickles them (a hand-made numpy '
        'state can make numpy use bytes of the file as memory addresses)')


def _plain_dtype(spec: Any, byteorder: Any = '=') -> np.dtype:
    """The dtype ``spec`` names, built by numpy itself, if it is a plain (unstructured) type."""
    try:
        dtype = np.dtype(spec) if isinstance(spec, str) else None
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in _NUMPY_KINDS or dtype.fields is not None \
            or dtype.subdtype is not None or dtype.hasobject or dtype.metadata is not None \
            or not (isinstance(byteorder, str) and byteorder in ('<', '>', '|', '=')):
        raise _refuse_numpy(f'numpy.dtype({spec!r}) with byte order {byteorder!r}')
    return dtype.newbyteorder(byteorder) if byteorder in ('<', '>') else dtype


class _CheckpointDtype:
    """What ``numpy.dtype`` is while a checkpoint is unpickled without trust.

    numpy pickles a dtype as ``dtype(spec, False, True)`` followed by ``__setstate__`` with its
    byte order, fields, item size and flags. Applied to a real dtype, a crafted state makes
    numpy treat raw bytes of the file as object pointers or read past an array's buffer (a
    crash, or worse, from a file ``weights_only=True`` accepts). This stand-in keeps only the
    spec and the byte order, refuses any other state, and :meth:`resolve` always rebuilds the
    dtype from them with numpy's own constructor. :func:`load_checkpoint_file` replaces it by
    that dtype in the loaded checkpoint.
    """

    __slots__ = ('spec', 'byteorder')

    def __init__(self, spec: Any, align: Any = False, copy: Any = True) -> None:
        self.spec, self.byteorder = spec, '='
        self.resolve()

    def __setstate__(self, state: Any) -> None:
        # numpy's state: (version, byteorder, subarray, names, fields, elsize, alignment,
        # flags[, metadata]); a plain type has no subarray, names, fields or metadata
        if not (isinstance(state, tuple) and len(state) in (8, 9) and state[0] in (3, 4)
                and all(item is None for item in state[2:5] + state[8:])):
            raise _refuse_numpy(f'numpy dtype state {state!r:.200}')
        self.byteorder = state[1]
        if state[5] not in (-1, self.resolve().itemsize):
            raise _refuse_numpy(f'numpy.dtype({self.spec!r}) of {state[5]!r} bytes')

    def resolve(self) -> np.dtype:
        """The dtype, rebuilt and checked again (attributes may have been set since)."""
        return _plain_dtype(self.spec, self.byteorder)

    def __reduce__(self):
        return self.resolve().__reduce__()


class _CheckpointArray(np.ndarray):
    """What ``numpy.ndarray`` is while a checkpoint is unpickled without trust.

    Made only by :func:`_checkpoint_reconstruct` (as numpy's pickles make arrays); its
    ``__setstate__`` takes only a :class:`_CheckpointDtype` and exactly the bytes that shape and
    dtype need. :func:`load_checkpoint_file` turns it into a plain ``np.ndarray``.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> '_CheckpointArray':
        # numpy pickles arrays with _reconstruct, never by calling ndarray(shape, dtype, buffer)
        raise _refuse_numpy('numpy.ndarray(...) called from the file')

    def __setstate__(self, state: Any) -> None:
        # numpy's state: (version, shape, dtype, is_fortran, raw bytes)
        if not (isinstance(state, tuple) and len(state) == 5
                and isinstance(state[2], _CheckpointDtype)):
            raise _refuse_numpy(f'numpy array state {state!r:.200}')
        version, shape, dtype, fortran, raw = state
        dtype = dtype.resolve()
        if not (version == 1 and type(fortran) is bool and type(shape) is tuple
                and all(type(n) is int and n >= 0 for n in shape)
                and isinstance(raw, (bytes, bytearray))
                and len(raw) == math.prod(shape) * dtype.itemsize):
            raise _refuse_numpy(f'numpy array of shape {shape!r:.100} and dtype {dtype} from '
                                f'{type(raw).__name__} data')
        np.ndarray.__setstate__(self, (version, shape, dtype, fortran, raw))

    def __reduce__(self):
        return self.view(np.ndarray).__reduce__()


def _numpy_pickle_functions() -> Tuple[Any, Any]:
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    return _reconstruct, scalar


def _checkpoint_reconstruct(cls: Any, shape: Any, dtype: Any) -> _CheckpointArray:
    """numpy's ``_reconstruct`` for the empty array that ``__setstate__`` then fills."""
    if cls is not _CheckpointArray or shape != (0, ) or dtype not in (b'b', 'b'):
        raise _refuse_numpy(f'numpy _reconstruct({getattr(cls, "__name__", cls)!r:.50}, '
                            f'{shape!r:.50}, {dtype!r:.50})')
    return _numpy_pickle_functions()[0](_CheckpointArray, (0, ), b'b')


def _checkpoint_scalar(dtype: Any, data: Any) -> np.generic:
    """numpy's ``scalar`` for a plain dtype and exactly its item size of bytes."""
    real = dtype.resolve() if isinstance(dtype, _CheckpointDtype) else None
    if real is None or not isinstance(data, bytes) or len(data) != real.itemsize:
        raise _refuse_numpy(f'numpy scalar of {type(dtype).__name__} from '
                            f'{type(data).__name__} data')
    return _numpy_pickle_functions()[1](real, data)


def checkpoint_frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any,
                          axis_order: Any = None) -> np.ndarray:
    """numpy's ``_frombuffer`` (arrays in pickle protocol 5) for a plain dtype.

    ``order`` 'K' with ``axis_order`` (a permutation of the axes) is how numpy pickles a
    transposed array. Also used by :func:`mmmt.evaluation.load_predictions`, as are the other
    stand-ins of :func:`numpy_stand_ins`.
    """
    real = dtype.resolve() if isinstance(dtype, _CheckpointDtype) else None
    if real is None or not isinstance(buffer, (bytes, bytearray)) \
            or order not in ('C', 'F', 'K', 'A') \
            or type(shape) is not tuple or not all(type(n) is int and n >= 0 for n in shape) \
            or len(buffer) != math.prod(shape) * real.itemsize \
            or not (axis_order is None or (type(axis_order) is tuple
                                           and sorted(axis_order) == list(range(len(shape))))):
        raise _refuse_numpy(f'numpy _frombuffer of {type(dtype).__name__} and shape '
                            f'{shape!r:.100} from {type(buffer).__name__} data')
    array = np.frombuffer(buffer, dtype=real)
    if order == 'K' and axis_order is not None:
        return array.reshape(shape, order='C').transpose(axis_order)
    return array.reshape(shape, order=order)


def numpy_stand_ins() -> dict:
    """``{(module, name): stand-in}`` for the numpy globals of numpy 1 and 2 pickles.

    For a restricted unpickler of any kind; what it loads goes through :func:`plain_numpy`.
    """
    names = {('numpy', 'dtype'): _CheckpointDtype, ('numpy', 'ndarray'): _CheckpointArray}
    for module in ('numpy._core', 'numpy.core'):
        names[(f'{module}.multiarray', '_reconstruct')] = _checkpoint_reconstruct
        names[(f'{module}.multiarray', 'scalar')] = _checkpoint_scalar
        names[(f'{module}.numeric', '_frombuffer')] = checkpoint_frombuffer
    return names


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()``: how pickle protocol 2 writes ``b''`` (the raw data of an empty array).

    Other bytes are written as ``_codecs.encode(text, 'latin1')``; ``bytes(n)`` would allocate
    n bytes on the file's say.
    """
    if args:
        raise UntrustedCheckpointError(f'refused bytes{args!r:.50}: genuine checkpoints only '
                                       'call bytes() for an empty bytes object')
    return b''


#: Why a HistoryBuffer's table of statistics from a file is refused.
_REFUSED_STATISTICS = (
    'refused a HistoryBuffer state that changes the statistics (min, max, current, mean) '
    'HistoryBuffers compute: genuine checkpoints hold only their defaults, a crafted one could '
    'make every later mean a max')


def _plain_numpy(obj: Any, done: dict) -> Any:
    """``obj`` with the unpickling stand-ins replaced by numpy arrays and dtypes.

    Containers are changed in place (tuples and sets are rebuilt); the ``__dict__`` of an
    allow-listed object (``HistoryBuffer``) is walked as a dict. ``done`` maps the id of each
    object seen to its result, so that shared and self-referencing objects stay so.

    Raises:
        UntrustedCheckpointError: An object has a ``_statistics_methods`` of its own (which
            hides HistoryBuffer's table of statistics, see :func:`_keep_history_statistics`).
    """
    if isinstance(obj, (torch.Tensor, str, bytes, int, float)) or obj is None:
        return obj
    if id(obj) in done:
        return done[id(obj)]
    done[id(obj)] = obj
    if isinstance(obj, _CheckpointArray):
        done[id(obj)] = obj.view(np.ndarray)
    elif isinstance(obj, _CheckpointDtype):
        done[id(obj)] = obj.resolve()
    elif isinstance(obj, dict):
        for key, value in list(obj.items()):
            obj[key] = _plain_numpy(value, done)
    elif isinstance(obj, list):
        obj[:] = [_plain_numpy(value, done) for value in obj]
    elif type(obj) in (tuple, set, frozenset):
        done[id(obj)] = type(obj)(_plain_numpy(value, done) for value in obj)
    elif isinstance(getattr(obj, '__dict__', None), dict):
        if '_statistics_methods' in obj.__dict__:
            raise UntrustedCheckpointError(_REFUSED_STATISTICS)
        _plain_numpy(obj.__dict__, done)
    return done[id(obj)]


def plain_numpy(obj: Any) -> Any:
    """``obj``, loaded with :func:`numpy_stand_ins`, with numpy's own arrays and dtypes."""
    return _plain_numpy(obj, {})


def checkpoint_allowlist() -> List[Any]:
    """The classes and functions that may appear in an mmengine checkpoint.

    numpy's names (``numpy.dtype``, ``numpy.ndarray`` and the ``_reconstruct`` and ``scalar``
    of ``numpy._core.multiarray``, or ``numpy.core.multiarray`` in numpy 1 files) resolve to
    checking stand-ins, never to numpy's own objects, whose ``__setstate__`` trusts the file:
    see :class:`_CheckpointDtype`.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    return [
        HistoryBuffer, (checkpoint_getattr, 'builtins.getattr'),
        (_CheckpointDtype, 'numpy.dtype'), (_CheckpointArray, 'numpy.ndarray'),
        (_empty_bytes, 'builtins.bytes'),
        # numpy 2 pickles name numpy._core, numpy 1 (every checkpoint saved before 2024) numpy.core
        *[(stand_in, f'{module}.{name}') for (module, name), stand_in in numpy_stand_ins().items()
          if name in ('_reconstruct', 'scalar')]
    ]


#: Messages of torch's weights-only unpickler that mean "a type outside the allow-list", as
#: opposed to bytes that are no pickle at all.
_UNTRUSTED_MARKERS = ('Unsupported global', 'unsupported GLOBAL', 'Can only build',
                      'Can only create new object', 'unrecognized function')


def _check_container(filename: str) -> None:
    """Refuse empty, truncated and non-checkpoint files before unpickling anything."""
    size = osp.getsize(filename)
    if size == 0:
        raise CorruptCheckpointError(f'{filename} is empty (0 bytes), not a checkpoint')
    with open(filename, 'rb') as f:
        head = f.read(4)
    if head.startswith(b'PK'):
        if not zipfile.is_zipfile(filename):
            raise CorruptCheckpointError(
                f'{filename} is a truncated or damaged checkpoint ({size} bytes; its zip '
                'directory is missing): an interrupted download or save? Download or save it '
                'again')
    elif not head.startswith(b'\x80'):
        raise CorruptCheckpointError(
            f'{filename} is not a PyTorch checkpoint (expected a torch.save zip archive or a '
            f'pickle; it starts with {head!r})')


#: realpath -> (inode, size, mtime, ctime in ns) of the file whose records were last found
#: whole: any write or replacement of the file changes the identity (ctime cannot be set back).
_LAST_VERIFIED: dict = {}


def _check_records(filename: str) -> None:
    """Refuse a zip checkpoint one of whose records differs from its stored CRC-32.

    ``torch.load`` does not verify the checksums ``torch.save`` writes: a flipped byte in
    the tensor data (a disk or transfer error) loaded as a silently wrong weight. It reads
    the file once more (whose pages are then cached for the load that follows), except for
    the file it last verified when that is unchanged since. A stored CRC of 0 is a file saved
    with ``torch.serialization.set_crc32_options(False)`` and is not checked.
    """
    stat = os.stat(filename)
    identity = (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    if _LAST_VERIFIED.get(osp.realpath(filename)) == identity:
        return  # --resume verified it a moment ago (find_resume_checkpoint), then loads it
    with zipfile.ZipFile(filename) as archive:
        for info in archive.infolist():
            if info.CRC == 0 and info.file_size:
                continue
            try:
                with archive.open(info) as record:
                    while record.read(1 << 24):  # zipfile compares the CRC at the end
                        pass
            except zipfile.BadZipFile as e:
                raise CorruptCheckpointError(
                    f'{filename} is damaged: its record {info.filename} does not match the '
                    'checksum stored with it; a disk or transfer error? Download or save it '
                    'again') from e
    _LAST_VERIFIED.clear()  # one entry: what a resume checks and loads next; no growth
    _LAST_VERIFIED[osp.realpath(filename)] = identity


#: What torch wraps around its weights-only unpickler's own sentence (torch >= 2.6).
_TORCH_ADVICE = ('Weights only load failed', 'Check the documentation of torch.load')


def _unpickler_detail(text: str) -> str:
    """The sentence of torch's weights-only unpickler in ``text``, with a refused global as
    ``it names <module.name>``.

    torch wraps that sentence in advice to re-run ``torch.load`` with ``weights_only=False``
    (the unsafe load mmmt refuses) or to call ``add_safe_globals`` (which mmmt's loader
    overrides), and puts it after the advice when the module is one torch blocks (``posix``,
    ``subprocess``: exactly what crafted files name).
    """
    paragraphs = [p.strip() for p in text.split('WeightsUnpickler error:')[-1].split('\n\n')]
    own = [p for p in paragraphs if p and not p.startswith(_TORCH_ADVICE)]
    line = own[0].splitlines()[0].strip() if own else ''
    refused = re.search(r'\bGLOBAL (\S+)', line)
    return f'it names {refused.group(1)}' if refused else line[:200]


def _describe_failure(filename: str, error: BaseException) -> Exception:
    """Turn an error of ``torch.load`` into one naming the file and what to do."""
    if isinstance(error, RefusedNumpyState):
        return UntrustedCheckpointError(
            f'{filename}: {error}. If the file is genuine (e.g. it holds datetime or structured '
            'arrays) and you trust its source, pass --trust-checkpoint to the mmmt tool, or set '
            f'{TRUST_ENV}=1.')
    if isinstance(error, UntrustedCheckpointError):
        return UntrustedCheckpointError(f'{filename}: {error}')
    text = str(error)
    if isinstance(error, pickle.UnpicklingError) and any(m in text for m in _UNTRUSTED_MARKERS):
        detail = _unpickler_detail(text)
        return UntrustedCheckpointError(
            f'{filename}: refused to unpickle objects that are not tensors or known mmengine/'
            f'numpy types ({detail}). Loading it fully can execute code stored in the file. '
            'If you trust its source, pass --trust-checkpoint to the mmmt tool, or set '
            f'{TRUST_ENV}=1.')
    if 'TorchScript archive' in text:
        # torch.load refuses these with weights_only; trusting would return a ScriptModule
        return CorruptCheckpointError(
            f'{filename} is a TorchScript archive (torch.jit.save), not a checkpoint of weights: '
            'save the state_dict of the model with torch.save and load that')
    detail = _unpickler_detail(text) or 'no details'
    return CorruptCheckpointError(
        f'{filename} is not a readable checkpoint ({type(error).__name__}: {detail}): '
        'truncated, damaged or not written by torch.save. Download or save it again')


_SAFE_GLOBALS_LOCK = threading.Lock()


@contextlib.contextmanager
def _only_these_safe_globals(allowed: List[Any]) -> Iterator[None]:
    """torch's weights-only allow-list is exactly ``allowed`` inside (restored on exit).

    ``torch.serialization.safe_globals`` only adds to a process-wide set that others extend
    at import: ``torch.distributed`` (imported by mmengine) adds every builtin exception and
    ``traceback.FrameSummary``, whose constructor reads the source line of any file a pickle
    names (``/dev/zero`` exhausts the memory, a FIFO blocks, a secret file's line ends up in
    the checkpoint that ``publish_model.py`` writes for publication).
    """
    serialization = torch.serialization
    with _SAFE_GLOBALS_LOCK:  # two loads in threads must not restore each other's set
        previous = serialization.get_safe_globals()
        serialization.clear_safe_globals()
        serialization.add_safe_globals(allowed)
        try:
            yield
        finally:
            serialization.clear_safe_globals()
            serialization.add_safe_globals(previous)


@contextlib.contextmanager
def _keep_history_statistics() -> Iterator[None]:
    """Refuse a load that changes ``HistoryBuffer``'s class-wide table of statistics.

    ``HistoryBuffer.__setstate__`` adds the file's ``statistics_methods`` to the table that
    every HistoryBuffer of the process uses; through the allowed ``getattr(HistoryBuffer,
    'max')`` a crafted file could map ``mean`` to ``max`` for the rest of the run. Genuine
    files only add the four defaults (min, max, current, mean) where they are missing.

    Raises:
        UntrustedCheckpointError: The table changed otherwise; it is restored first.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    table = HistoryBuffer._statistics_methods
    before = dict(table)
    defaults = {name: getattr(HistoryBuffer, name) for name in ('min', 'max', 'current', 'mean')}
    allowed = {**defaults, **before}
    missing = object()
    try:
        yield
    finally:
        changed = [k for k, v in table.items() if allowed.get(k, missing) is not v]
        if changed:
            table.clear()
            table.update(before)
    if changed:
        raise UntrustedCheckpointError(_REFUSED_STATISTICS)


def load_checkpoint_file(filename: str,
                         map_location: Optional[Any] = None,
                         trust: Optional[bool] = None,
                         mmap: bool = False) -> Any:
    """Load a checkpoint file, refusing unknown pickled globals unless trusted.

    Args:
        filename (str): Path of the checkpoint.
        map_location: As for :func:`torch.load`.
        trust (bool, optional): Allow full unpickling. Defaults to the value of the environment
            variable ``MMMT_TRUST_CHECKPOINTS``.
        mmap (bool): Map the tensors' data from the file instead of reading it (``torch.load``'s
            ``mmap``), for a caller that needs only the meta: a Swin-L checkpoint is 3.7 GB. A
            file in torch's legacy (non-zip) format, which cannot be mapped, is read whole.
            Defaults to False.

    Raises:
        InputFileNotFoundError: The file does not exist (a ``FileNotFoundError``).
        CorruptCheckpointError: The file is empty, truncated, damaged (a record that does
            not match its CRC-32; not checked with ``mmap``) or not a checkpoint.
        UntrustedCheckpointError: The file holds objects outside the allow-list.
    """
    if not osp.isfile(filename):
        raise InputFileNotFoundError(f'checkpoint file not found: {filename}')
    _check_container(filename)
    full = trust if trust is not None else trusted()
    is_zip = zipfile.is_zipfile(filename)
    mmap = mmap and is_zip
    if is_zip and not mmap:  # a mapped load reads only the meta
        _check_records(filename)
    try:
        if full:
            return torch.load(filename, map_location=map_location, weights_only=False,
                              mmap=mmap)
        with _only_these_safe_globals(checkpoint_allowlist()), _keep_history_statistics():
            checkpoint = torch.load(filename, map_location=map_location, weights_only=True,
                                    mmap=mmap)
        return plain_numpy(checkpoint)
    # TypeError, AttributeError, IndexError: an allow-listed class or function called with what
    # torch.save never writes (wrong arguments, a BUILD before its __init__)
    except (pickle.UnpicklingError, UntrustedCheckpointError, EOFError, RuntimeError,
            KeyError, ValueError, TypeError, AttributeError, IndexError,
            zipfile.BadZipFile) as e:
        unreadable = isinstance(e, (EOFError, pickle.UnpicklingError, zipfile.BadZipFile)) \
            or 'PytorchStreamReader' in str(e)
        if full and not unreadable:
            raise  # a trusted file's own code failed: its traceback is the useful part
        raise _describe_failure(filename, e) from e


def is_complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a non-empty checkpoint whose container is whole and undamaged.

    A ``torch.save`` zip archive ends with its directory, so a truncated one fails
    :func:`zipfile.is_zipfile`, and a damaged one has a record that does not match its CRC-32
    (this reads the whole file); a legacy pickle (first byte 0x80) is accepted as it is.
    """
    if not osp.isfile(path) or osp.getsize(path) == 0:
        return False
    with open(path, 'rb') as f:
        legacy = f.read(1) == b'\x80'
    if legacy:
        return True
    if not zipfile.is_zipfile(path):
        return False
    try:
        _check_records(path)
    except CorruptCheckpointError:
        return False
    return True


_STEP = re.compile(r'(iter|epoch)_(\d+)\.pth$')


def checkpoint_step(path: str) -> Optional[Tuple[str, int]]:
    """``('iter', N)`` / ``('epoch', N)`` from a CheckpointHook name (``iter_N.pth``,
    ``epoch_N.pth``), read from the name only; None for any other name."""
    match = _STEP.search(osp.basename(path))
    return None if match is None else (match.group(1), int(match.group(2)))


def existing_training_outputs(work_dir: str) -> List[str]:
    """The checkpoints (``*.pth``) and ``last_checkpoint`` of an earlier run in ``work_dir``."""
    if not osp.isdir(work_dir):
        return []
    return sorted(name for name in os.listdir(work_dir)
                  if name.endswith('.pth') or name == 'last_checkpoint')


def later_checkpoints(folder: str, kind: str, step: int) -> List[str]:
    """The names of ``folder``'s ``<kind>_N.pth`` checkpoints (``kind``: 'iter' or 'epoch')
    with N above ``step``, by N."""
    later = []
    for name in existing_training_outputs(folder):
        other = checkpoint_step(name)
        if other is not None and other[0] == kind and other[1] > step:
            later.append((other[1], name))
    return [name for _, name in sorted(later)]


#: The work dir's record of the checkpoints a resume of an earlier one left behind.
ABANDONED_RECORD = 'abandoned_checkpoints.json'


def _identity(path: str) -> List[int]:
    """(inode, size, mtime in ns): a checkpoint saved over under the same name (a new file,
    renamed into place) gets another."""
    stat = os.stat(path)
    return [stat.st_ino, stat.st_size, stat.st_mtime_ns]


def record_abandoned_checkpoints(work_dir: str, paths: List[str]) -> None:
    """Record ``paths`` (later checkpoints than the one a training resumed from) as another
    branch of training, so that :func:`find_resume_checkpoint` never falls back to one of
    them; a file saved over later under the same name is this run's again."""
    import json

    from .fileio import atomic_write
    record = {p: _identity(p) for p in abandoned_checkpoints(work_dir)}
    record.update({osp.abspath(p): _identity(p) for p in paths})
    atomic_write(json.dumps(record, indent=1) + '\n', osp.join(work_dir, ABANDONED_RECORD))


def _abandoned_record(work_dir: str) -> dict:
    """The record :func:`record_abandoned_checkpoints` keeps: path -> identity."""
    import json
    record_file = osp.join(work_dir, ABANDONED_RECORD)
    if not osp.isfile(record_file):
        return {}
    try:
        with open(record_file, encoding='utf-8') as f:
            return json.load(f)
    except ValueError as e:
        raise CorruptCheckpointError(f'{record_file} is not the JSON record mmmt writes ({e}); '
                                     'delete it or repair it') from None


def abandoned_checkpoints(work_dir: str) -> List[str]:
    """The checkpoints recorded by :func:`record_abandoned_checkpoints` that are unchanged."""
    return sorted(p for p, identity in _abandoned_record(work_dir).items()
                  if osp.isfile(p) and _identity(p) == identity)


def _saved_after_the_pointer(pointer: str, named: str, work_dir: str) -> Optional[str]:
    """The newest complete checkpoint of ``named``'s kind with a later step than it, written
    after ``pointer`` was, and not of an abandoned branch; None if there is none (as usual).

    mmengine saves ``iter_N.pth`` first and rewrites ``last_checkpoint`` after: a run killed
    between the two leaves the pointer one checkpoint behind, and resuming from it would
    repeat that work and later replace the newer file.
    """
    step = checkpoint_step(named)
    if step is None:
        return None
    since = os.stat(pointer).st_mtime_ns
    abandoned = set(abandoned_checkpoints(work_dir))
    later = [p for p in glob.glob(osp.join(glob.escape(osp.dirname(named) or '.'),
                                           f'{step[0]}_*.pth'))
             if (checkpoint_step(p) or ('', -1))[1] > step[1] and osp.abspath(p) not in abandoned
             and os.stat(p).st_mtime_ns > since]
    later.sort(key=lambda p: checkpoint_step(p)[1], reverse=True)
    return next((p for p in later if is_complete_checkpoint(p)), None)


def _relocated(named: str, folder: str, work_dir: str) -> Optional[Tuple[str, set]]:
    """For a pointer naming ``named`` in another folder than the checkpoint folder ``folder``
    while ``folder`` holds a file of that name (a copied or moved work dir: mmengine writes
    absolute paths): that file, and the checkpoints of ``folder`` that are copies of the
    abandoned ones the record names in the original folder. Else None.

    The record was copied with the files; their identities (inode, time) are the copy's, so
    the copies are matched by name.
    """
    if not named or osp.realpath(osp.dirname(osp.abspath(named))) == osp.realpath(folder):
        return None
    local = osp.join(folder, osp.basename(named))
    if not osp.isfile(local):
        return None
    original = osp.realpath(osp.dirname(osp.abspath(named)))
    copied = {osp.abspath(osp.join(folder, osp.basename(p)))
              for p in _abandoned_record(work_dir)
              if osp.realpath(osp.dirname(p)) == original}
    if osp.abspath(local) in copied | set(abandoned_checkpoints(work_dir)):
        return None
    return local, copied


def find_resume_checkpoint(work_dir: str, checkpoint_dir: Optional[str] = None
                           ) -> Tuple[Optional[str], Optional[str]]:
    """The checkpoint ``--resume`` continues from, and a note when it is not the usual one.

    Normally the file named in ``work_dir/last_checkpoint``. If that pointer is missing, empty
    (a full disk), names a deleted file (a crash during rotation), a truncated one or one
    whose checksums do not match (:func:`is_complete_checkpoint`), the
    newest complete ``iter_N.pth``/``epoch_N.pth`` of the work dir (and of the pointer's
    directory) is used instead, and the note says so; checkpoints of an abandoned branch
    (later ones that a resume of an earlier checkpoint left, see
    :func:`record_abandoned_checkpoints`) are never taken, and the note names them. A pointer
    naming a file of another folder than the checkpoint folder while that holds one of that
    name (a copied or moved work dir) resolves to the folder's file, with a note.

    Args:
        work_dir (str): The work dir (``last_checkpoint``, the abandoned record).
        checkpoint_dir (str, optional): Where the checkpoints are saved when not in the work
            dir (``default_hooks.checkpoint.out_dir``: ``<out_dir>/<work dir name>``).

    Returns:
        tuple: (path or None when there is nothing to resume, note or None).

    Raises:
        CorruptCheckpointError: There are checkpoints, but none is complete.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    folder = checkpoint_dir or work_dir
    named, copied_abandoned = '', set()
    if osp.isfile(pointer):
        with open(pointer, encoding='utf-8', errors='replace') as f:
            named = f.read().strip()
        moved = _relocated(named, folder, work_dir)
        if moved is not None:
            # a copied or moved work dir: its pointer still names the original folder's file,
            # and resuming there took the original run's newer checkpoints once that run went
            # on. The copy's file times say nothing of the order of saves: taken as named.
            local, copied_abandoned = moved
            note = (f'--resume: {pointer} names {named}, in another folder (the work dir was '
                    f"copied or moved?); resuming from this work dir's {local}")
            if is_complete_checkpoint(local):
                return local, note
            named = local
        if named and moved is None and is_complete_checkpoint(named):
            newer = _saved_after_the_pointer(pointer, named, work_dir)
            if newer is None:
                return named, None
            return newer, (f'--resume: {pointer} names {named}, but {newer} was saved after it '
                           '(the run stopped between saving it and updating the pointer); '
                           f'resuming from {newer}')
    folders = dict.fromkeys([work_dir, folder] + ([osp.dirname(named)] if named else []))
    candidates = [p for d in folders if osp.isdir(d) for p in glob.glob(osp.join(d, '*.pth'))
                  if checkpoint_step(p)]
    candidates.sort(key=lambda p: (checkpoint_step(p)[1], osp.getmtime(p)), reverse=True)
    if not osp.isfile(pointer) and not candidates:
        return None, f'--resume: no checkpoint in {work_dir}; training starts from scratch'
    if not osp.isfile(pointer):
        problem = 'does not exist'
    elif not named:
        problem = 'is empty'
    elif not osp.exists(named):
        problem = f'names {named}, which does not exist'
    else:
        problem = f'names {named}, which is incomplete or damaged'
    abandoned = set(abandoned_checkpoints(work_dir)) | copied_abandoned
    skipped = [p for p in candidates if osp.abspath(p) in abandoned]
    # the newest complete one: each check reads a whole file (3.7 GB for Swin-L), so older
    # ones are not read once it is found
    complete = next((p for p in candidates if p not in skipped and is_complete_checkpoint(p)),
                    None)
    other_branch = (f' (not {name_some(skipped)}: of a training abandoned by a resume of an '
                    f'earlier checkpoint or a new training there, {ABANDONED_RECORD})'
                    ) if skipped else ''
    if complete is None and skipped and len(skipped) == len(candidates):
        # a new training (--force) stopped before its first save: nothing of it to resume
        return None, (f'--resume: {pointer} {problem}, and the checkpoints in '
                      f'{", ".join(folders)} are all of an abandoned training{other_branch}; '
                      'training starts from scratch')
    if complete is None:
        raise CorruptCheckpointError(
            f'--resume: {pointer} {problem}, and no complete checkpoint is in '
            f'{", ".join(folders)} (found: {", ".join(candidates) or "none"}){other_branch}')
    return complete, (f'--resume: {pointer} {problem}; resuming from the newest complete '
                      f'checkpoint, {complete}{other_branch}')


def non_finite_tensors(state: dict) -> List[str]:
    """Names of the floating-point tensors of ``state`` holding NaN or inf, with counts."""
    bad = []
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            count = int((~torch.isfinite(value)).sum())
            if count:
                bad.append(f'{name} ({count} of {value.numel()})')
    return bad


def describe_non_finite(bad: List[str], total: int, source: str) -> str:
    """One message for :func:`non_finite_tensors`' result.

    Args:
        bad (list[str]): What :func:`non_finite_tensors` returned (non-empty).
        total (int): The number of tensors checked.
        source (str): How to name the checkpoint (usually its path).
    """
    return (f'{source}: {len(bad)} of its {total} tensors hold NaN/inf values (e.g. '
            f'{name_some(bad)}); the model it gives predicts garbage. Was it saved after '
            'training diverged?')


#: Names that only the reference implementation's decoder uses (see reference_keys.py).
_REFERENCE_NAME_PARTS = ('expand_layers.', 'concat_layers.', 'final_expand_layers.')


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
                        f'({name_some(missing)})')
    if unexpected:
        problems.append(f'{len(unexpected)} of its weights are not in the model '
                        f'({name_some(unexpected)})')
    if reshaped:
        problems.append(f'{len(reshaped)} have other shapes, checkpoint vs model '
                        f'({name_some(reshaped)})')
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

    Args:
        model (nn.Module): The model (or a wrapper of it, e.g. DDP).
        checkpoint: A loaded checkpoint: a dict with ``state_dict`` (mmengine), or a state
            dict.
        source (str): How to name the checkpoint in error messages (usually its path).

    Raises:
        CheckpointMismatchError: Weights are missing, unexpected or of another shape.

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


#: Subfolder of torch hub's checkpoint folder that mmmt downloads checkpoints into.
DOWNLOAD_SUBDIR = 'mmmt_downloads'


def http_download_path(url: str, model_dir: Optional[str] = None) -> str:
    """Where :func:`load_from_http_safe` downloads ``url``: ``<model_dir>/mmmt_downloads/
    <hash of the URL>/<file name>``, ``model_dir`` defaulting to torch hub's ``checkpoints``.

    Not torch hub's folder itself: torch.hub/torchvision load a file found there by name with
    full unpickling (``load_state_dict_from_url`` defaults to ``weights_only=False``, and
    checks no hash once the file exists), so a refused file downloaded under an attacker's
    chosen name (``resnet50-0676ba61.pth``) would run its code in the next program that asks
    torchvision for those weights. The hash keeps two URLs of one file name apart.
    """
    from torch.hub import get_dir
    model_dir = model_dir or osp.join(get_dir(), 'checkpoints')
    name = osp.basename(url.split('?')[0].split('#')[0]) or 'checkpoint.pth'
    key = hashlib.sha256(url.encode('utf-8')).hexdigest()[:16]
    return osp.join(model_dir, DOWNLOAD_SUBDIR, key, name)


def load_from_http_safe(filename: str, map_location=None, model_dir=None, progress=None):
    """Load a checkpoint URL through :func:`load_checkpoint_file`.

    A file of the URL's name already in torch hub's folder (``model_dir``), put there by hand
    for an offline machine or by mmengine/torch, is read as mmengine would; mmmt never writes
    there but downloads into :func:`http_download_path`.
    """
    from torch.hub import download_url_to_file, get_dir
    model_dir = model_dir or osp.join(get_dir(), 'checkpoints')
    shared = osp.join(model_dir, osp.basename(filename.split('?')[0]))
    if osp.isfile(shared):
        return load_checkpoint_file(shared, map_location)
    cached = http_download_path(filename, model_dir)
    if not osp.isfile(cached):
        os.makedirs(osp.dirname(cached), exist_ok=True)
        download_url_to_file(filename, cached, progress=bool(progress))  # atomic (temp + move)
    return load_checkpoint_file(cached, map_location)


#: mmengine's prefixes that name a model of one of its tables of URLs.
MODEL_ZOO_PREFIXES = ('torchvision://', 'modelzoo://', 'open-mmlab://', 'openmmlab://',
                      'mmcls://')


def load_from_model_zoo_safe(filename: str, map_location=None):
    """Load ``torchvision://NAME`` (``modelzoo://``), ``open-mmlab://NAME`` (``openmmlab://``)
    or ``mmcls://NAME`` through :func:`load_from_http_safe` / :func:`load_checkpoint_file`.

    The name is looked up in mmengine's tables of model URLs, as mmengine does (including a
    user's ``$MMENGINE_HOME/open_mmlab.json``). mmengine's own loaders of these prefixes call
    its ``load_from_http`` directly, not the loader registered for http(s): the file went into
    torch hub's folder under its URL's name and was read by ``torch.load`` with torch's
    process-wide allow-list, whose ``traceback.FrameSummary`` reads any file a pickle names.
    """
    from mmengine.runner import checkpoint as mm
    prefix, name = filename.split('://', 1)
    if prefix in ('torchvision', 'modelzoo'):
        table = mm.get_torchvision_models()
    elif prefix == 'mmcls':
        table = mm.get_mmcls_models()
    else:
        name = mm.get_deprecated_model_names().get(name, name)
        table = mm.get_external_models()
    if name not in table:
        raise UserInputError(f'{filename}: mmengine knows no {prefix}:// model {name!r}')
    url = table[name]
    if url.startswith(('http://', 'https://')):
        checkpoint = load_from_http_safe(url, map_location)
    else:  # open-mmlab names may map to a file under mmengine's home
        checkpoint = load_checkpoint_file(osp.join(mm._get_mmengine_home(), url), map_location)
    return mm._process_mmcls_checkpoint(checkpoint) if prefix == 'mmcls' else checkpoint


#: mmengine's patterns of object-storage URLs (its ``load_from_ceph``).
STORAGE_PREFIXES = (r'(\S+\:)?s3://', r'(\S+\:)?petrel://')


def _load_fetched(fetch, filename: str, map_location=None):
    """:func:`load_checkpoint_file` of what ``fetch(path)`` writes into a temporary file,
    with ``filename`` (the URL) named in its errors instead of the temporary path."""
    with tempfile.TemporaryDirectory(prefix='mmmt_checkpoint_') as folder:
        path = osp.join(folder, osp.basename(filename.rstrip('/')) or 'checkpoint.pth')
        fetch(path)
        try:
            return load_checkpoint_file(path, map_location)
        except (UntrustedCheckpointError, CorruptCheckpointError) as e:
            raise type(e)(str(e).replace(path, filename)) from e.__cause__


def load_from_storage_safe(filename: str, map_location=None, backend: str = 'petrel'):
    """Load ``s3://`` / ``petrel://`` checkpoints through :func:`load_checkpoint_file`.

    mmengine's own loader of these URLs calls ``torch.load`` on the fetched bytes with
    torch's process-wide allow-list (see :func:`load_from_model_zoo_safe`).
    """
    from mmengine.fileio import get_file_backend
    storage = get_file_backend(filename, backend_args={'backend': backend})

    def fetch(path: str) -> None:
        with open(path, 'wb') as f:
            f.write(storage.get(filename))

    return _load_fetched(fetch, filename, map_location)


def load_from_pavi_safe(filename: str, map_location=None):
    """Load ``pavi://`` checkpoints (OpenMMLab's model cloud) through
    :func:`load_checkpoint_file`; mmengine's own loader fully unpickles them."""
    try:
        from pavi import modelcloud
    except ImportError as e:
        raise ImportError(f'{filename}: loading pavi:// checkpoints needs the pavi package '
                          '(pip install pavi)') from e
    model = modelcloud.get(filename[len('pavi://'):])
    return _load_fetched(model.download, filename, map_location)


def register_safe_checkpoint_loaders() -> None:
    """Route mmengine's checkpoint loading of local files, http(s) URLs, model-zoo names
    (:data:`MODEL_ZOO_PREFIXES`), object storage (:data:`STORAGE_PREFIXES`) and ``pavi://``
    through the safe loader."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(
        prefixes=STORAGE_PREFIXES, loader=load_from_storage_safe, force=True)
    CheckpointLoader.register_scheme(prefixes='pavi://', loader=load_from_pavi_safe, force=True)
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local_safe, force=True)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'), loader=load_from_http_safe, force=True)
    CheckpointLoader.register_scheme(
        prefixes=MODEL_ZOO_PREFIXES, loader=load_from_model_zoo_safe, force=True)
