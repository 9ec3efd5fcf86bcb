"""Just-in-time build and cache of the C++ CPU selective scan (``csrc/selective_scan_cpu.cpp``).

The extension is compiled with :func:`torch.utils.cpp_extension.load` on first use and registers
the operators ``torch.ops.mmmt_scan.fwd`` / ``torch.ops.mmmt_scan.bwd``.

Caching. The library lives in ``$MMMT_EXT_DIR/<name>/`` if ``MMMT_EXT_DIR`` is set, else in
PyTorch's per-user extension directory (``$TORCH_EXTENSIONS_DIR`` or
``~/.cache/torch_extensions/py<ver>_<cuda>/``). ``<name>`` is ``mmmt_scan_<isa>_<hash>``: the
hash covers the source text, the compiler flags, the compiler (``$CXX``) and the PyTorch
version, so an edited kernel or a new PyTorch gets a fresh build and never a stale library. A
process that finds the library already built loads it directly, without invoking ninja.

Instruction set. ``-march=native`` would tie a cached library to the CPU that built it and crash
(SIGILL) on an older CPU sharing the same home directory or container image. Instead the ISA
level is PyTorch's own runtime CPU capability (:func:`torch.backends.cpu.get_cpu_capability`,
which honours ``ATEN_CPU_CAPABILITY``): ``AVX512`` -> ``-mavx512f/bw/vl/dq -mavx2 -mfma``,
``AVX2`` -> ``-mavx2 -mfma``, anything else -> the compiler's baseline. The level is part of the
name, so machines of different levels keep separate builds in one cache directory. No
``-ffast-math``: the kernel's exp/softplus are written to vectorise without it.

Concurrency. Builders serialise on a ``filelock.FileLock`` next to the build directory (an OS
lock, released if a process dies; ``filelock`` comes with PyTorch), and re-check for a
finished library once they hold it, so parallel test workers or DDP ranks build once and the
rest wait and load.

Ownership. The library is loaded into the process, which runs its initialisers, and its name is
predictable (the hash covers public inputs only). In an extension directory other users can
write to (``MMMT_EXT_DIR`` or ``TORCH_EXTENSIONS_DIR`` under ``/tmp`` on a shared machine), one
of them could plant it before the first build, or swap it in a folder of theirs. So the library
and every folder above it must belong to this user (or root) and be writable by no one else,
except sticky folders such as ``/tmp``; otherwise nothing is built or loaded there and the
scan falls back to PyTorch, naming the folder (see :func:`build_error`).
"""
import hashlib
import os
import os.path as osp
import platform
import shutil
import stat
import sys
import threading
from typing import Any, List, Optional, Tuple

import torch
from filelock import FileLock

__all__ = [
    'load_scan_ops', 'scan_ops_or_none', 'build_error', 'disabled', 'EXT_DIR_ENV', 'DISABLE_ENV'
]

#: Environment variable: root directory for the compiled extension (default: PyTorch's).
EXT_DIR_ENV = 'MMMT_EXT_DIR'
#: Environment variable: set to 1 to never build or use the C++ scan.
DISABLE_ENV = 'MMMT_DISABLE_CPP_SCAN'

SOURCE = osp.join(osp.dirname(osp.abspath(__file__)), 'csrc', 'selective_scan_cpu.cpp')

_lock = threading.Lock()
_ops: Optional[Any] = None
_error: Optional[str] = None


def disabled() -> bool:
    """Whether :data:`DISABLE_ENV` is set (to anything but 0/false/no)."""
    return os.environ.get(DISABLE_ENV, '').strip().lower() not in ('', '0', 'false', 'no')


def isa_flags() -> Tuple[str, List[str]]:
    """(tag, compiler flags) for the SIMD level PyTorch itself uses on this CPU."""
    try:
        cap = torch.backends.cpu.get_cpu_capability()
    except Exception:  # very old torch
        cap = 'DEFAULT'
    if platform.machine().lower() in ('x86_64', 'amd64'):
        if cap == 'AVX512':
            return 'avx512', ['-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mavx2',
                              '-mfma', '-mf16c']
        if cap == 'AVX2':
            return 'avx2', ['-mavx2', '-mfma', '-mf16c']
    return 'base', []


def _cflags() -> Tuple[str, List[str]]:
    tag, flags = isa_flags()
    return tag, ['-O3', '-fopenmp', *flags]


def _root_dir() -> str:
    root = os.environ.get(EXT_DIR_ENV) or os.environ.get('TORCH_EXTENSIONS_DIR')
    if root:
        return osp.abspath(osp.expanduser(root))
    try:
        base = osp.realpath(torch._appdirs.user_cache_dir(appname='torch_extensions'))
    except Exception:
        base = osp.expanduser(osp.join('~', '.cache', 'torch_extensions'))
    if getattr(torch.version, 'hip', None):
        acc = 'rocm' + torch.version.hip.replace('.', '')
    elif torch.version.cuda:
        acc = 'cu' + torch.version.cuda.replace('.', '')
    else:
        acc = 'cpu'
    return osp.join(base, f'py{sys.version_info.major}{sys.version_info.minor}_{acc}')


def extension_name() -> str:
    """``mmmt_scan_<isa>_<hash>``: the library's name and build folder (see the module doc)."""
    tag, cflags = _cflags()
    h = hashlib.sha256()
    with open(SOURCE, 'rb') as f:
        h.update(f.read())
    for part in (cflags, torch.__version__, os.environ.get('CXX', 'c++'), sys.version):
        h.update(repr(part).encode())
    return f'mmmt_scan_{tag}_{h.hexdigest()[:12]}'


def _check_private(path: str) -> None:
    """Refuse ``path`` if a user other than this one or root could have written or replaced it
    (see Ownership in the module doc): it, or the nearest existing folder above it, and every
    folder up to the root must be owned by this user or root, and not writable by others
    unless sticky.

    Raises:
        PermissionError: Naming the first such file or folder and its owner.
    """
    if not hasattr(os, 'getuid'):  # Windows: no POSIX owners and modes
        return
    uid = os.getuid()
    current = osp.realpath(path)
    while True:
        try:
            info = os.stat(current)
        except FileNotFoundError:  # not built yet: its folders are what can be planted
            info = None
        if info is not None:
            open_to_all = info.st_mode & stat.S_IWOTH and not (
                stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX)
            if info.st_uid not in (uid, 0) or open_to_all:
                why = (f'is owned by uid {info.st_uid}' if info.st_uid not in (uid, 0) else
                       'is writable by every user')
                raise PermissionError(
                    f'not loading the C++ selective scan from {path}: {current} {why}, so '
                    'another user could have put a library there that would run as you. Set '
                    f'{EXT_DIR_ENV} to a folder of your own (or unset it and '
                    'TORCH_EXTENSIONS_DIR for the per-user default)')
        parent = osp.dirname(current)
        if parent == current:
            return
        current = parent


def _registered() -> bool:
    try:
        return hasattr(torch.ops.mmmt_scan, 'fwd')
    except Exception:
        return False


def _build(name: str, build_dir: str, verbose: bool) -> None:
    import logging
    _, cflags = _cflags()
    # importing cpp_extension logs "No CUDA runtime is found" on CPU machines: not our concern
    log = logging.getLogger('torch.utils.cpp_extension')
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        log.setLevel(level)
    print(f'mmmt: compiling the C++ selective scan into {build_dir} (once, ~15 s)',
          file=sys.stderr, flush=True)
    os.makedirs(build_dir, exist_ok=True)
    path = os.environ.get('PATH', '')
    ninja_dir = _pip_ninja_dir()
    if ninja_dir:
        os.environ['PATH'] = ninja_dir + os.pathsep + path
    try:
        cpp_extension.load(
            name=name,
            sources=[SOURCE],
            extra_cflags=cflags,
            extra_ldflags=['-fopenmp'],
            build_directory=build_dir,
            with_cuda=False,
            is_python_module=False,
            verbose=verbose)
    finally:
        if ninja_dir:
            os.environ['PATH'] = path


def _pip_ninja_dir() -> Optional[str]:
    """The bin directory of the ``ninja`` pip package when no ninja is on ``PATH``, else None.

    torch runs ``ninja`` from ``PATH``; the pip package (a runtime requirement) puts it in the
    environment's bin directory, which is not on ``PATH`` when that venv is not activated.
    """
    if shutil.which('ninja') is not None:
        return None
    try:
        import ninja
    except ImportError:
        return None
    return getattr(ninja, 'BIN_DIR', None)


def load_scan_ops(verbose: bool = False) -> Any:
    """Build (if needed) and load the extension; return ``torch.ops.mmmt_scan``. Raises on
    failure (no compiler, no ninja, compile error)."""
    global _ops
    with _lock:
        if _ops is not None:
            return _ops
        if _registered():  # loaded by someone else in this process
            _ops = torch.ops.mmmt_scan
            return _ops
        name = extension_name()
        build_dir = osp.join(_root_dir(), name)
        so_path = osp.join(build_dir, name + '.so')
        _check_private(so_path)  # before anything is written there
        if not osp.exists(so_path):
            os.makedirs(osp.dirname(build_dir), exist_ok=True)
            with FileLock(build_dir + '.lock'):
                if not osp.exists(so_path):
                    _build(name, build_dir, verbose)
        if not _registered():
            _check_private(so_path)  # the built file, and its folders as they are now
            torch.ops.load_library(so_path)
        _ops = torch.ops.mmmt_scan
        return _ops


def scan_ops_or_none() -> Optional[Any]:
    """The operators, or None when disabled or when building failed (the reason is kept in
    :func:`build_error`; a failed build is not retried in this process)."""
    global _error
    if disabled():
        return None
    if _ops is not None:
        return _ops
    if _error is not None:
        return None
    try:
        return load_scan_ops()
    except Exception as e:  # noqa: BLE001 -- any failure means "no C++ scan here"
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        _error = f'{type(e).__name__}: {lines[-1] if lines else ""}'[:300]
        return None


def build_error() -> Optional[str]:
    """Why :func:`scan_ops_or_none` found no operators in this process, or None."""
    return _error
