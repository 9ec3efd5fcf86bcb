"""Errors the user can fix, and the one place where the command-line tools report them.

Every script of ``tools/`` runs its ``main`` through :func:`run_main`. A :class:`UserInputError`
(raised by the checks on a config field, an input file or an option, before the work starts)
or a tool's own ``raise SystemExit('message')`` then ends the run with one line on stderr,

    train.py: error: <message>

and exit status 2, as argparse does for a bad argument. Any other exception keeps Python's
traceback and status 1, so a bug (or a crash at iteration 500) is never reduced to a line.
``MMMT_DEBUG=1`` in the environment prints the traceback of the one-line errors as well (an
environment variable rather than an option: it reaches every tool, every rank under
``torchrun``/``srun`` and errors raised while the arguments are still being read).

:class:`UnknownNameError` (an unknown task, evaluator type, ...), :class:`DuplicateNameError` (a
name registered twice) and :class:`InvalidOptionError` (an option of the wrong kind) are
:class:`UserInputError` s that stay a ``KeyError``, a ``KeyError`` and a ``TypeError``.

mmengine's own ``KeyError`` for a ``type=`` that no registry knows (a misspelt class name, a
missing ``custom_imports``) is a config error too: :func:`run_main` reports it in one line,
with the closest registered names (:func:`registry_miss_message`). So is a ``TypeError`` for
an option that the class built from a config dict does not take (a misspelt key in the config
or in ``--cfg-options``, :func:`unknown_option_message`).

Only the standard library is imported here: the tools import this module before torch.
"""
import difflib
import inspect
import linecache
import os
import os.path as osp
import re
import sys
import traceback
from numbers import Integral, Real
from typing import Any, Callable, Iterable, List, NoReturn, Optional, TypeVar

__all__ = [
    'UserInputError', 'InputFileNotFoundError', 'UnknownNameError', 'DuplicateNameError',
    'InvalidOptionError', 'RunStopped', 'DEBUG_ENV', 'USAGE_STATUS', 'name_some',
    'did_you_mean', 'is_int', 'is_number', 'debug_enabled', 'format_error', 'registry_miss_message',
    'unknown_option_message', 'run_main'
]

#: Set to 1 to see the traceback of the errors :func:`run_main` reports in one line.
DEBUG_ENV = 'MMMT_DEBUG'
#: Exit status of a user-input error (argparse's status for a usage error).
USAGE_STATUS = 2

T = TypeVar('T')


class UserInputError(ValueError):
    """A config field, input file or option is wrong; the message names it and what was expected.

    Raise it only from checks that run before the work starts (reading the config, building
    the model and the datasets, opening the inputs): the tools print it as one line without a
    traceback. A problem found while the work runs (a bad label in the batch of iteration 500)
    stays a plain ``ValueError`` and keeps its traceback. A ``ValueError`` subclass, so that
    ``except ValueError`` and ``pytest.raises(ValueError)`` keep catching it.
    """


class InputFileNotFoundError(UserInputError, FileNotFoundError):
    """An input file or folder (a dataset's split list, a config) does not exist.

    Also a ``FileNotFoundError``, so that ``except FileNotFoundError`` keeps catching it.
    """


class _KeyInputError(UserInputError, KeyError):
    """The base of the user input errors that are also a ``KeyError``; ``str()`` is the message.

    ``KeyError`` quotes its argument (it expects the missing key, not a sentence): the quotes
    would end up in the tools' one-line report.
    """

    def __str__(self) -> str:
        # BaseException's rule (the message for one argument), not KeyError's repr of the key
        return BaseException.__str__(self)


class UnknownNameError(_KeyInputError):
    """A name the config gives is not registered or known (a task, an evaluator type, ...).

    Also a ``KeyError``, so that ``except KeyError`` and ``pytest.raises(KeyError)`` keep
    catching the lookups that raised ``KeyError`` before; unlike a ``KeyError``, ``str()`` is the
    message itself, without quotes.
    """


class DuplicateNameError(_KeyInputError):
    """A name is registered already with another definition (a config's ``custom_tasks``
    redefining a task).

    Also a ``KeyError``, like :class:`UnknownNameError`, and ``str()`` is the message itself.
    """


class InvalidOptionError(UserInputError, TypeError):
    """A config option or value is of the wrong kind: an option the class does not take, a
    value that is neither of the accepted types.

    Also a ``TypeError``, so that ``except TypeError`` and ``pytest.raises(TypeError)`` keep
    catching the checks that raised ``TypeError`` before.
    """


class RunStopped(SystemExit):
    """A check stopped the work after it had started, e.g. ``train.py`` on a non-finite loss;
    the message says where (the iteration, the images) and what to do.

    :func:`run_main` prints it as one line like a :class:`UserInputError` but with exit status
    1: the inputs passed every check. Without :func:`run_main` it behaves as
    ``SystemExit(message)`` (the message on stderr, status 1).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)


def name_some(names: List[str], n: int = 3) -> str:
    """The first ``n`` of ``names`` for a message, with the count when there are more."""
    return ', '.join(names[:n]) + (f' ... ({len(names)} in all)' if len(names) > n else '')


def did_you_mean(name: Any, options: Iterable[str], n: int = 1, cutoff: float = 0.6) -> str:
    """``did you mean 'x'?`` for the options closest to a mistyped ``name`` (up to ``n``, by
    :func:`difflib.get_close_matches` with ``cutoff``), or ``''`` when none is close: every
    "unknown name" message of mmmt words its hint this way."""
    close = difflib.get_close_matches(str(name), list(options), n=n, cutoff=cutoff)
    return f"did you mean {' or '.join(map(repr, close))}?" if close else ''


def is_int(value: Any) -> bool:
    """Whether a config value is an integer (Python's or numpy's), not a bool: ``True`` is an
    ``int`` to Python, and would pass for 1 in every count and size check."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether a config value is a real number (int or float, Python's or numpy's), not a
    bool."""
    return isinstance(value, Real) and not isinstance(value, bool)


def debug_enabled() -> bool:
    """Whether ``MMMT_DEBUG`` asks for tracebacks (set, and not 0/false/no/off)."""
    return os.environ.get(DEBUG_ENV, '').strip().lower() not in ('', '0', 'false', 'no', 'off')


def _rank_and_world() -> tuple:
    """(rank, world size) of this process: from the process group when one is up, else from
    the launcher's environment (torchrun, srun, mpirun), else (0, 1)."""
    dist = sys.modules.get('torch.distributed')  # not imported here: it would import torch
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except Exception:  # noqa: BLE001  (a broken process group must not hide the message)
        pass
    for rank_key, world_key in (('RANK', 'WORLD_SIZE'), ('SLURM_PROCID', 'SLURM_NTASKS'),
                                ('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE')):
        try:
            return int(os.environ[rank_key]), int(os.environ[world_key])
        except (KeyError, ValueError):
            continue
    return 0, 1


def format_error(prog: str, message: str) -> str:
    """``<prog>: error: <message>``; under a launcher with several processes the message is
    prefixed with ``[rank R/N]``.

    Every rank prints its own line: a check can fail on one rank only (its own files, its
    device), and a rank that stays silent would leave the launcher's summary (``exitcode: 2``)
    as the only trace. Checks on the config fail alike on every rank, hence N similar lines.
    """
    rank, world = _rank_and_world()
    where = f'[rank {rank}/{world}] ' if world > 1 else ''
    return f'{prog}: error: {where}{message}'


def _report(prog: str, message: str, status: int) -> NoReturn:
    if debug_enabled():
        traceback.print_exc()
    sys.stdout.flush()  # the progress printed so far comes before the error
    print(format_error(prog, message), file=sys.stderr, flush=True)
    raise SystemExit(status)


# mmengine's message (build_from_cfg, build_runner_from_cfg, build_scheduler_from_cfg)
_REGISTRY_MISS = re.compile(r'(?P<type>\S+) is not in the (?:(?P<scope>\w+)::)?'
                            r'(?P<registry>[\w ]+?) registry')


def _registered_names(registry_name: str) -> List[str]:
    """Every name registered in the registries called ``registry_name`` (mmengine's root
    and its children: mmmt, mmseg, mmpretrain, ...), as ``scope.Name`` outside mmmt."""
    root_module = sys.modules.get('mmengine.registry')  # imported by whoever built the config
    names = set()

    def walk(registry, depth=0):
        for name in getattr(registry, 'module_dict', {}):
            names.add(name if depth == 0 or registry.scope == 'mmmt' else
                      f'{registry.scope}.{name}')
        for child in getattr(registry, 'children', {}).values():
            walk(child, depth + 1)

    for value in vars(root_module).values() if root_module else ():
        if type(value).__name__ == 'Registry' and getattr(value, 'name', None) == registry_name:
            walk(value)
    return sorted(names)


def registry_miss_message(exc: BaseException) -> Optional[str]:
    """One line for mmengine's ``KeyError`` "X is not in the mmmt::model registry", with the
    closest registered names; None for any other exception.

    Args:
        exc (BaseException): The exception.

    Returns:
        str or None: The message, e.g. ``MTMambaHeadd is not in the mmmt::model registry; did
        you mean 'MTMambaHead'? ...``.
    """
    if not isinstance(exc, KeyError) or isinstance(exc, UserInputError) or not exc.args:
        return None
    match = _REGISTRY_MISS.search(str(exc.args[0]))
    if match is None:
        return None
    kind, scope, registry = match.group('type', 'scope', 'registry')
    where = f'{scope}::{registry}' if scope else registry
    hint = did_you_mean(kind, _registered_names(registry), n=3)
    hint = f'; {hint}' if hint else '.'
    return (f"type={kind!r} is not in the {where} registry{hint} A class of another OpenMMLab "
            "package takes its scope (type='mmseg.XXX'); a module of your own must be imported "
            "first (custom_imports = dict(imports=[...]) in the config)")


# Python's message for a keyword that the callee does not take; the callee is named by its
# qualified name from Python 3.10 (``AdamW.__init__``), as ``__init__`` alone before
_UNEXPECTED_KEYWORD = re.compile(r"^(?P<callee>[\w.<>]+)\(\) got an unexpected keyword "
                                 r"argument '(?P<key>\w+)'$")


def _failed_callee(frame: Any, qualname: str, call: str) -> Optional[Callable]:
    """The callable named ``qualname`` that ``frame`` was calling (the source text ``call``):
    a local or global of the frame (mmengine's ``build_from_cfg`` holds the class it builds in
    ``obj_cls``)."""
    owner = qualname[:-len('.__init__')] if qualname.endswith('.__init__') else qualname
    built = frame.f_locals.get('obj_cls')
    named = {**frame.f_globals, **frame.f_locals}
    if owner == '__init__':  # Python 3.9 names no class: the one built, or the one called
        if inspect.isclass(built):
            return built
        called = [v for k, v in named.items() if inspect.isclass(v) and k != 'obj_cls'
                  and re.search(rf'\b{re.escape(k)}\s*\(', call)]
        return called[0] if len(called) == 1 else None
    for value in [built, *named.values()]:
        if callable(value) and getattr(value, '__qualname__', None) == owner:
            return value
    return None


def unknown_option_message(exc: BaseException) -> Optional[str]:
    """One line for a ``TypeError`` "X() got an unexpected keyword argument 'k'" raised where
    keyword arguments are spread from a config dict (``obj_cls(**args)`` in mmengine's
    ``build_from_cfg``, ``DataLoader(**dataloader_cfg)`` in its Runner): the class, the key,
    the closest option it has and its options. None for any other exception, and for a call
    that names its keywords in the code (a bug, whose traceback is kept).

    Args:
        exc (BaseException): The exception.

    Returns:
        str or None: The message, e.g. ``AdamW has no option 'lrr' (a key of its dict in the
        config or --cfg-options); did you mean 'lr'? Its options: params, lr, ...``.
    """
    if not isinstance(exc, TypeError) or isinstance(exc, UserInputError) or \
            len(exc.args) != 1 or exc.__traceback__ is None:
        return None
    match = _UNEXPECTED_KEYWORD.match(str(exc.args[0]))
    if match is None:
        return None
    tb = exc.__traceback__
    while tb.tb_next is not None:  # the caller: Python raises this before entering the callee
        tb = tb.tb_next
    summary = traceback.extract_tb(tb)[-1]
    last = getattr(summary, 'end_lineno', None) or summary.lineno
    call = ''.join(linecache.getline(summary.filename, n)
                   for n in range(summary.lineno, last + 1))
    if '**' not in call:
        return None
    callee = _failed_callee(tb.tb_frame, match.group('callee'), call)
    key = match.group('key')
    try:
        parameters = inspect.signature(callee).parameters if callee is not None else None
    except (TypeError, ValueError):  # no signature (a builtin)
        parameters = None
    if parameters is None or key in parameters or any(
            p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return None  # not provably this callee's rejection of the key
    options = [n for n, p in parameters.items() if n != 'self' and p.kind is not p.VAR_POSITIONAL]
    hint = did_you_mean(key, options)
    hint = f'; {hint}' if hint else '.'
    return (f"{callee.__name__} has no option '{key}' (a key of its dict in the config or "
            f"--cfg-options){hint} Its options: {name_some(options, 12)}")


def run_main(main: Callable[[], T], prog: Optional[str] = None) -> T:
    """Run a tool's ``main()``; report the user's input errors in one line.

    Args:
        main (Callable[[], T]): The tool's entry point, called without arguments (it reads
            ``sys.argv``).
        prog (str, optional): The name in the message; by default the script's file name, as
            argparse names it.

    Returns:
        T: What ``main`` returned (e.g. the exit status of tools that ``sys.exit`` with it).

    Raises:
        SystemExit: status 2 after printing ``<prog>: error: <message>`` for a
            :class:`UserInputError`, a ``SystemExit`` with a message, mmengine's unknown
            ``type=`` (:func:`registry_miss_message`) or a config key that its class does not
            take (:func:`unknown_option_message`); status 1 for a :class:`RunStopped`.
            Other exceptions propagate unchanged (traceback, status 1).
    """
    prog = prog or osp.basename(sys.argv[0])
    try:
        return main()
    except UserInputError as e:
        _report(prog, str(e) or type(e).__name__, USAGE_STATUS)
    except SystemExit as e:
        if not isinstance(e.code, str):  # argparse's exits, sys.exit(status)
            raise
        _report(prog, e.code, 1 if isinstance(e, RunStopped) else USAGE_STATUS)
    except KeyError as e:
        message = registry_miss_message(e)
        if message is None:
            raise
        _report(prog, message, USAGE_STATUS)
    except TypeError as e:
        message = unknown_option_message(e)
        if message is None:
            raise
        _report(prog, message, USAGE_STATUS)
