"""Atomic file writes for checkpoints and dumped results.

mmengine's ``LocalBackend.put`` opens the destination with ``'wb'`` and streams into it, so a
crash, a pre-emption or a full disk while a 1.2 GB Swin-L checkpoint is written leaves a
truncated ``iter_N.pth`` under the right name. Writing into a temporary file in the same
directory and renaming it into place (``os.replace`` is atomic on POSIX and Windows) means the
name only ever points at a complete file. The rename itself is an entry of the directory: on
ext4/xfs it reaches the disk when the directory is synced, so after a power loss a "saved"
checkpoint can be missing (or the old one back) unless the directory is fsynced too
(:func:`fsync_directory`, done by both functions here when ``fsync`` is on).

A file written exclusively (``overwrite=False``) that another run wrote first is kept, and the
run stops saying so: :func:`kept_file_message` words that once for every writer (the
inferencer, the vis backend, the tools), each giving its own way out.
"""
import contextlib
import os
import os.path as osp
import re
import secrets
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, List, Optional, Tuple, Union

from mmengine.fileio.backends import LocalBackend, register_backend

__all__ = ['atomic_write', 'move_exclusive', 'fsync_directory', 'AtomicLocalBackend',
           'ATOMIC_BACKEND', 'KeptFileError', 'kept_file_message', 'keep_existing_files',
           'write_first_free', 'output_path_problem', 'nearest_existing', 'sample_id_problem',
           'path_in_folder', 'stale_temporaries', 'remove_stale_temporaries', 'TEMPORARY_NAME',
           'removed_leftovers_note', 'locked_temporary']

#: Name under which :class:`AtomicLocalBackend` is registered with mmengine's file backends;
#: use it as ``backend_args=dict(backend=ATOMIC_BACKEND)`` (e.g. in ``CheckpointHook``).
ATOMIC_BACKEND = 'mmmt_atomic_local'


def atomic_write(data: Union[bytes, str, Callable[[BinaryIO], None]],
                 path: Union[str, Path],
                 encoding: str = 'utf-8',
                 overwrite: bool = True,
                 fsync: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    Args:
        data (bytes | str | callable): The content; ``str`` is encoded with ``encoding``; a
            callable is given the open binary file to write into (e.g.
            ``lambda f: torch.save(obj, f)``, which streams instead of building the bytes).
        path (str | Path): Destination; its directory is created if missing.
        encoding (str): Encoding of ``str`` data. Defaults to 'utf-8'.
        overwrite (bool): Whether an existing ``path`` may be replaced. If False and ``path``
            exists (also if it appeared while writing), ``FileExistsError`` is raised and
            nothing is changed. Defaults to True.
        fsync (bool): Flush the data to disk before the rename, so that the name never points
            at unwritten blocks after a power loss, and the folder after it, so that the rename
            itself survives one. Worth it for checkpoints; callers writing thousands of small
            files may skip it. Defaults to True.
    """
    path = os.fspath(path)
    if not overwrite and osp.exists(path):
        raise FileExistsError(f'{path} exists; refusing to overwrite it')
    directory, tmp, guard = _filled_temporary(path, data, encoding, fsync)
    try:
        if overwrite:
            os.replace(tmp, path)
        else:
            move_exclusive(tmp, path, fsync=False)  # synced once, below
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    finally:
        _release(guard)
    if fsync:
        fsync_directory(directory)


def fsync_directory(directory: Union[str, Path]) -> None:
    """Flush ``directory``'s entries (renames, new and removed names) to disk.

    POSIX only: elsewhere (Windows cannot open a folder as a file) nothing is done, and so on
    file systems that refuse to sync a folder (some network ones answer ``EINVAL``).
    """
    if os.name != 'posix':
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # not supported for folders here: the data itself was synced
        pass
    finally:
        os.close(fd)


#: The longest file name (in bytes) of the usual file systems (ext4, xfs, btrfs, NTFS, APFS).
_NAME_MAX = 255


#: The names :func:`_create_temporary` gives (8 random characters; mkstemp's, before), not
#: any hidden ``.tmp`` file a user or another tool keeps.
TEMPORARY_NAME = re.compile(r'\..+\.[a-z0-9_]{8}\.tmp\Z')


def _temporaries(directory: str, recursive: bool) -> List[str]:
    """The files of ``directory`` (and with ``recursive`` its sub-folders) named as
    :func:`_create_temporary` names them, sorted."""
    if not osp.isdir(directory):
        return []
    walk = os.walk(directory) if recursive else [(directory, [], os.listdir(directory))]
    return sorted(osp.join(root, name) for root, _, names in walk for name in names
                  if TEMPORARY_NAME.match(name) and osp.isfile(osp.join(root, name)))


def _remove_if_stale(path: str) -> Optional[int]:
    """Remove the temporary ``path`` if no write holds it; return its size, or None when it
    is kept (held, gone, or no flock here).

    Removed while this holds its lock: a writer that has just created it and waits for the
    lock (:func:`_create_locked_temporary`) then finds its name gone and takes another.
    """
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # renamed or removed meanwhile
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held = os.fstat(fd)
        if not osp.samestat(held, os.stat(path)):
            return None  # another file under the name now
        os.remove(path)
        return held.st_size
    except OSError:  # held: a write in progress (or no flock on this file system)
        return None
    finally:
        os.close(fd)  # also drops the lock


def stale_temporaries(directory: str, recursive: bool = False) -> List[str]:
    """The temporaries of atomic writes in ``directory`` that no running write holds: left by
    a killed one (a half-written prediction file can be gigabytes). For a look only: what
    removes them is :func:`remove_stale_temporaries`, which decides under the lock.

    A write holds its temporary's ``flock`` until the file has its name
    (:func:`_create_locked_temporary`); one whose lock is free is a leftover (or, for an
    instant, one whose writer is about to lock it). Where there is no flock, none is named
    (a running write cannot be told from a dead one there).

    Args:
        directory (str): The folder (nothing for one that does not exist).
        recursive (bool): Look into its sub-folders too. Defaults to False.

    Returns:
        list[str]: The paths, sorted.
    """
    try:
        import fcntl
    except ImportError:
        return []
    stale = []
    for path in _temporaries(directory, recursive):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            stale.append(path)
        except OSError:
            pass
        finally:
            os.close(fd)
    return stale


def _removed_stale(directory: str, recursive: bool) -> List[Tuple[str, int]]:
    removed = []
    for path in _temporaries(directory, recursive):
        size = _remove_if_stale(path)
        if size is not None:
            removed.append((path, size))
    return removed


def remove_stale_temporaries(directory: str, recursive: bool = False) -> List[str]:
    """Delete the temporaries of ``directory`` that no running write holds (see
    :func:`stale_temporaries`); return them (for the caller to name in one line).

    Args:
        directory (str): The folder (nothing for one that does not exist).
        recursive (bool): Its sub-folders too. Defaults to False.
    """
    return [path for path, _ in _removed_stale(directory, recursive)]


@contextlib.contextmanager
def locked_temporary(path: str) -> Iterator[Tuple[str, BinaryIO]]:
    """A new hidden temporary beside ``path``, open for writing and held as a running write
    (never taken for a leftover); removed at the end unless the caller moved it to its final
    name meanwhile. For a writer that needs the complete file before it can name it
    (``publish_model.py`` names it by its hash).

    Yields:
        tuple: (the temporary's path, its open binary file).
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp, guard = _create_locked_temporary(directory, osp.basename(path))
    try:
        with os.fdopen(fd, 'wb') as f:
            yield tmp, f
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
        _release(guard)


def removed_leftovers_note(*folders: Optional[str], recursive: bool = False) -> Optional[str]:
    """Remove the temporaries no running write holds in ``folders`` (None entries skipped)
    and say so in one line, or None when there were none: for the tools, at the start of a
    run that writes into those folders (a killed run's half-written file would otherwise stay
    hidden there for good).

    Args:
        *folders (str, optional): The folders.
        recursive (bool): Their sub-folders too (pictures named ``<city>/<id>``). Defaults
            to False.
    """
    removed = []
    for folder in dict.fromkeys(f for f in folders if f):
        removed += _removed_stale(folder, recursive)
    if not removed:
        return None
    listed = ', '.join(f'{p} ({n / 2**20:.1f} MiB)' for p, n in removed[:5])
    more = f' and {len(removed) - 5} more' if len(removed) > 5 else ''
    return (f'Removed {len(removed)} temporary file(s) left by an interrupted write: '
            f'{listed}{more}')


def _create_temporary(directory: str, name: str) -> Tuple[int, str]:
    """Create a new ``.<name>.<random>.tmp`` in ``directory``; return its descriptor and path.

    Not ``tempfile.mkstemp``: its files are 0600, and setting the usual permissions afterwards
    needs the umask, which can only be read by setting it (``os.umask(0)``), and in between any
    other thread of the process (a logger, a data loader thread) creates its files world-
    writable. Created with 0666 here, the kernel applies the umask itself.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0)
    # names are limited to 255 bytes (NAME_MAX): a valid name near it would fail as the
    # temporary's; the 14 bytes added are kept by shortening the name part (whole characters)
    stem = name.encode('utf-8', 'surrogateescape')[:_NAME_MAX - 14].decode('utf-8', 'ignore')
    for _ in range(tempfile.TMP_MAX):
        tmp = osp.join(directory, f'.{stem}.{secrets.token_hex(4)}.tmp')
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f'no free temporary name for {name} in {directory}')


def _lock_temporary(tmp: str) -> Optional[int]:
    """An exclusive ``flock`` on the temporary ``tmp`` through a descriptor of its own
    (returned: close it once the file has its final name), waiting for a leftover check that
    holds it for an instant; None where there is no flock (Windows, some network file
    systems), or when ``tmp`` is gone (that check removed it)."""
    try:
        import fcntl
    except ImportError:
        return None
    guard = os.open(tmp, os.O_RDONLY)  # FileNotFoundError: removed as a leftover
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)
    except OSError:
        os.close(guard)
        return None
    return guard


def _create_locked_temporary(directory: str, name: str) -> Tuple[int, str, Optional[int]]:
    """:func:`_create_temporary` with its lock held (:func:`_lock_temporary`): the write's
    descriptor, the path and the lock's descriptor (None without flock).

    The file exists for an instant before it is locked; a leftover check in that instant
    removes it (under its own lock), so the name is checked to be still this file once
    locked, and a new one is taken if not.
    """
    for _ in range(100):
        fd, tmp = _create_temporary(directory, name)
        try:
            guard = _lock_temporary(tmp)
            if guard is None:
                return fd, tmp, None
            try:
                if osp.samestat(os.fstat(guard), os.stat(tmp)):
                    return fd, tmp, guard
            except FileNotFoundError:
                pass
            os.close(guard)
        except FileNotFoundError:
            pass
        os.close(fd)  # removed as a leftover before it was locked: another one
    raise OSError(f'could not keep a temporary file for {name} in {directory} (removed '
                  'each time as a leftover: is something deleting hidden files there?)')


def _release(guard: Optional[int]) -> None:
    if guard is not None:
        os.close(guard)


def _filled_temporary(path: str, data: Union[bytes, str, Callable[[BinaryIO], None]],
                      encoding: str, fsync: bool) -> Tuple[str, str, Optional[int]]:
    """A new temporary file beside ``path`` holding ``data`` (as :func:`atomic_write` takes
    it), its blocks flushed to disk first with ``fsync``; return its folder, its path and the
    descriptor of its lock (:func:`_lock_temporary`, for the caller to release after the
    rename). ``path``'s folder is created if missing; a failed write leaves no temporary
    behind."""
    if isinstance(data, str):
        data = data.encode(encoding)
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp, guard = _create_locked_temporary(directory, osp.basename(path))
    try:
        with os.fdopen(fd, 'wb') as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        _release(guard)
        raise
    return directory, tmp, guard


def move_exclusive(tmp: str, path: str, fsync: bool = True) -> None:
    """Move the complete file ``tmp`` to ``path`` unless ``path`` exists (also if it appeared
    meanwhile); ``tmp`` must be in ``path``'s file system, e.g. its folder.

    Args:
        tmp (str): The complete file (its data already on disk if it has to survive a power
            loss).
        path (str): The new name.
        fsync (bool): Flush ``path``'s folder afterwards (:func:`fsync_directory`), so that the
            new name survives a power loss. Defaults to True.

    Raises:
        FileExistsError: ``path`` exists; ``tmp`` is left in place.
    """
    try:
        os.link(tmp, path)  # unlike a rename, fails if the name is taken
    except FileExistsError:
        raise FileExistsError(f'{path} exists; refusing to overwrite it') from None
    except OSError:
        # file systems without hard links: check-then-rename, racy but never partial
        if osp.exists(path):
            raise FileExistsError(f'{path} exists; refusing to overwrite it') from None
        os.replace(tmp, path)
    else:
        os.remove(tmp)
    if fsync:
        fsync_directory(osp.dirname(osp.abspath(path)))


def write_first_free(data: Union[bytes, str, Callable[[BinaryIO], None]],
                     path: Union[str, Path],
                     first_suffix: int = 0,
                     encoding: str = 'utf-8',
                     fsync: bool = True) -> str:
    """Write ``data`` to ``path``, or if that name is taken to the first free
    ``<stem>_<k><ext>``, never replacing a file; return the path written.

    The data is written once, into a temporary file, which is then given the first free name
    (:func:`move_exclusive`): also a name taken meanwhile by another run is skipped.

    Args:
        data (bytes | str | callable): As for :func:`atomic_write`.
        path (str | Path): The preferred name.
        first_suffix (int): The first ``k`` tried; 0 tries ``path`` itself first, 1 starts at
            ``<stem>_1<ext>``. Defaults to 0.
        encoding (str): Encoding of ``str`` data. Defaults to 'utf-8'.
        fsync (bool): As for :func:`atomic_write`. Defaults to True.

    Returns:
        str: The path written.

    Raises:
        FileExistsError: ``path`` and ``<stem>_1`` to ``<stem>_9999`` are all taken.
    """
    path = os.fspath(path)
    root, ext = osp.splitext(path)
    _, tmp, guard = _filled_temporary(path, data, encoding, fsync)
    try:
        for k in range(first_suffix, 10000):
            candidate = path if k == 0 else f'{root}_{k}{ext}'
            try:
                move_exclusive(tmp, candidate, fsync=fsync)
                return candidate
            except FileExistsError:
                continue
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
        _release(guard)
    raise FileExistsError(f'{path} and {root}_<k>{ext} up to k = 9999 exist; '
                          'refusing to overwrite them')


class KeptFileError(FileExistsError):
    """An output file exists (another run wrote it first) and was kept; the run stops.

    ``str()`` is :func:`kept_file_message`'s text; ``original`` is the ``FileExistsError`` of
    :func:`atomic_write` / :func:`move_exclusive` naming the file, so that a caller further out
    (a command-line tool) can word the message again with its own way out.
    """

    def __init__(self, message: str, original: Optional[FileExistsError] = None) -> None:
        super().__init__(message)
        self.original = original  # optional: an unpickled copy (another process) has None


def kept_file_message(error: FileExistsError, way_out: str, maybe_before: bool = False) -> str:
    """Say that an output file another run wrote is kept, that the run stops, and what to do.

    Args:
        error (FileExistsError): The error of the exclusive write, whose text names the file
            (a :class:`KeptFileError`'s own ``original`` is used: worded once, not twice).
        way_out (str): What the user can do, a sentence, e.g. ``'Choose another folder or pass
            --force'``.
        maybe_before (bool): The file may also have been there before the run (the writer
            checks nothing at the start). Defaults to False: it appeared during this run.

    Returns:
        str: E.g. ``'out/a.png exists; refusing to overwrite it (it appeared during this run:
        another run writing into the same folder?); it is kept and the run stops here.
        Choose another folder or pass --force'``.
    """
    if isinstance(error, KeptFileError) and error.original is not None:
        error = error.original
    when = ('it was there before, or appeared during this run' if maybe_before else
            'it appeared during this run')
    return (f'{error} ({when}: another run writing into the same folder?); it is kept and '
            f'the run stops here. {way_out}')


@contextlib.contextmanager
def keep_existing_files(way_out: str, maybe_before: bool = False,
                        error_type: Optional[Callable[[str], BaseException]] = None
                        ) -> Iterator[None]:
    """Re-raise a ``FileExistsError`` of the block with :func:`kept_file_message`'s text.

    Args:
        way_out (str): See :func:`kept_file_message`.
        maybe_before (bool): See :func:`kept_file_message`. Defaults to False.
        error_type (callable, optional): What to raise with the text instead of a
            :class:`KeptFileError`, e.g. a tool's one-line ``UserInputError``.
    """
    try:
        yield
    except FileExistsError as e:
        message = kept_file_message(e, way_out, maybe_before)
        raise (KeptFileError(message, e) if error_type is None else error_type(message)) \
            from None


@register_backend(ATOMIC_BACKEND)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose writes are atomic (see :func:`atomic_write`)."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        atomic_write(obj, filepath, encoding=encoding)


def sample_id_problem(sample_id: str) -> Optional[str]:
    """Why ``sample_id`` (taken from a data file: a split list line, a predictions file)
    cannot name files inside a folder, or None.

    Ids may hold ``/`` (Cityscapes' ``<city>/<id>``), but not ``..`` parts, an absolute path
    or a NUL: a crafted split list with ``../../x`` made browse_dataset.py and the edge
    evaluator write ``x.png`` outside their output folders.
    """
    if not isinstance(sample_id, str) or not sample_id:
        return f'is {sample_id!r}, not a non-empty string'
    if '\0' in sample_id:
        return 'holds a NUL character'
    parts = sample_id.replace('\\', '/').split('/')
    if osp.isabs(sample_id) or sample_id.startswith(('/', '\\')) or osp.splitdrive(
            sample_id)[0]:
        return 'is an absolute path'
    if '..' in parts:
        return "has a '..' part"
    return None


def path_in_folder(folder: str, sample_id: str, suffix: str = '') -> str:
    """``folder/<sample_id><suffix>``, the output file of one sample, refused when the id
    would leave ``folder`` (:func:`sample_id_problem`).

    Args:
        folder (str): The output folder.
        sample_id (str): The sample's id, from a data file.
        suffix (str): Appended to the id, e.g. ``'.png'``.

    Returns:
        str: The path.

    Raises:
        UserInputError: The id is absolute, has a ``..`` part, or is no string.
    """
    from .errors import UserInputError
    problem = sample_id_problem(sample_id)
    if problem:
        raise UserInputError(f'sample id {sample_id!r} {problem}: an output file named after '
                             f'it would not lie inside {folder}')
    return osp.join(folder, *sample_id.split('/')) + suffix


def nearest_existing(path: str) -> str:
    """``path`` (made absolute) or the nearest of its parents that exists: where a write
    into ``path`` would create its first missing folder."""
    existing = osp.abspath(path)
    while not osp.exists(existing) and osp.dirname(existing) != existing:
        existing = osp.dirname(existing)
    return existing


def output_path_problem(path: str, folder: bool = False) -> Optional[str]:
    """Why ``path`` cannot be written, as a file or (``folder``) as a folder, or None.

    For the checks a tool makes before its work, of what would otherwise fail only at the
    first write (after a whole test run, say): ``path`` of the other kind (a folder where a
    file goes, or the reverse), a file among the folders above it, or the nearest existing
    folder not writable (permissions, a read-only file system). A URL (``scheme://``) is not
    checked.

    Args:
        path (str): The file or folder to be written.
        folder (bool): Whether ``path`` is a folder. Defaults to False.

    Returns:
        str | None: The problem, naming the path at fault, or None.
    """
    if '://' in path:
        return None
    path = osp.abspath(path)
    if osp.exists(path) and osp.isdir(path) != folder:
        return (f'{path} is a file, where a folder is needed' if folder else
                f'{path} is a folder, where a file is needed')
    existing = nearest_existing(path if folder else osp.dirname(path))
    if not osp.isdir(existing):
        return f'{existing} is a file, where a folder is needed for {path}'
    if not os.access(existing, os.W_OK | os.X_OK):
        return (f'{existing} is not writable (permissions or a read-only file system), so '
                f'{path} cannot be written')
    return None
