"""Write synthetic NYUDv2 / PASCAL-Context multi-task datasets in the real layouts.

The files follow the real layouts byte for byte in kind (names, formats, value encodings,
split lists, ``.mat`` variables), see :class:`~mmmt.datasets.NYUDv2MultiTaskDataset` and
:class:`~mmmt.datasets.PascalContextMultiTaskDataset`. Output is a pure function of the seed:
each image uses its own ``SeedSequence([seed, dataset, index])`` and the ``.mat`` headers carry a
fixed text instead of a creation time. The scenes come from :mod:`mmmt.testing.synthetic_scenes`.

Not written (not read by the loaders): NYUD has no extra files; PASCAL has no ``edge/*.png``,
no ``ImageSets/Parts`` JSON cache and no ``db_info/``.

A dataset is built in a hidden sibling folder and renamed into place when complete
(:func:`staged_out_dir`), with a list of its files (``.synthetic_mt.json``): an interrupted run
leaves no partial dataset, an interrupted ``overwrite`` re-run leaves the old one intact, and
``overwrite`` replaces only a folder of this generator's files.

A run killed outright (``kill -9``, a lost machine) cannot delete its hidden ``.NAME.<hex>.partial``
sibling, nor, in the middle of a replacement, the old dataset moved aside (``.old``). The builder
holds an advisory ``flock`` on each of these folders for as long as it lives (the kernel
releases it however the process ends); a later run of the same target that can take the lock
knows the owner is dead and removes the folder, or moves an interrupted replacement's old dataset
back (:func:`remove_stale_builds`).
"""
import contextlib
import io
import json
import logging
import os
import os.path as osp
import re
import secrets
import shutil
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log
from PIL import Image

from mmmt.utils.errors import name_some
from .synthetic_scenes import render_nyud_scene, render_pascal_scene

__all__ = ['generate_nyud', 'generate_pascal', 'generate', 'savemat_deterministic', 'check_out_dir',
           'staged_out_dir', 'remove_stale_builds', 'MANIFEST']

# the module's former name, kept so that a seed still gives byte-identical files
_MAT_HEADER = b'MATLAB 5.0 MAT-file, written by mmmt.datasets.synthetic'


def savemat_deterministic(path: str, variables: dict) -> None:
    """``scipy.io.savemat`` (v5) with a fixed header text instead of the creation time."""
    import scipy.io
    buf = io.BytesIO()
    scipy.io.savemat(buf, variables, do_compression=True, oned_as='row')
    data = bytearray(buf.getvalue())
    data[:116] = _MAT_HEADER.ljust(116, b' ')
    with open(path, 'wb') as f:
        f.write(bytes(data))


def _parts_struct(objects: List[dict], img_id: str) -> np.ndarray:
    """The PASCAL-Part ``anno`` struct: (imname, objects(class, class_ind, mask, parts))."""
    obj_dtype = [('class', 'O'), ('class_ind', 'O'), ('mask', 'O'), ('parts', 'O')]
    part_dtype = [('part_name', 'O'), ('mask', 'O')]
    objs = np.zeros((1, len(objects)), dtype=obj_dtype)
    for i, o in enumerate(objects):
        if o['parts']:
            parts = np.zeros((1, len(o['parts'])), dtype=part_dtype)
            for j, (name, m) in enumerate(o['parts']):
                parts[0, j] = (name, m)
        else:
            parts = np.zeros((0, 0))
        objs[0, i] = (o['name'], np.array([[o['class_ind']]], dtype=np.uint8), o['mask'],
                      parts)
    anno = np.zeros((1, 1), dtype=[('imname', 'O'), ('objects', 'O')])
    anno[0, 0] = (f'{img_id}.jpg', objs)
    return anno


def _save_png(path: str, arr: np.ndarray) -> None:
    Image.fromarray(arr).save(path, format='PNG')


def _encode_normals(n: np.ndarray) -> np.ndarray:
    return np.clip(np.rint((n + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _image_rng(seed: int, dataset: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), dataset, index]))


def _split_ids(ids: List[str], n_train: int) -> Tuple[List[str], List[str]]:
    return sorted(ids[:n_train]), sorted(ids[n_train:])


def _write_split(path: str, ids: Sequence[str]) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(''.join(f'{i}\n' for i in ids))


def _progress_cb(progress, i, n, img_id):
    if progress is not None:
        progress(i + 1, n, img_id)


#: The list of the files of a generated dataset, in its root: what ``overwrite`` may replace.
MANIFEST = '.synthetic_mt.json'


def _files_under(root: str) -> List[str]:
    """Every file (and link) under ``root``, as sorted '/'-separated relative paths."""
    found = []
    for folder, dirs, files in os.walk(root):
        links = [d for d in dirs if osp.islink(osp.join(folder, d))]  # not followed by walk
        found += [osp.relpath(osp.join(folder, name), root).replace(os.sep, '/')
                  for name in files + links]
    return sorted(found)


def _foreign_files(out_dir: str) -> List[str]:
    """The files of ``out_dir`` that this generator did not write (all without a manifest)."""
    files = [f for f in _files_under(out_dir) if f != MANIFEST]
    try:
        with open(osp.join(out_dir, MANIFEST), encoding='utf-8') as f:
            own = set(json.load(f)['files'])
    except (OSError, ValueError, KeyError, TypeError):
        return files
    return [f for f in files if f not in own]


def check_out_dir(out_dir: str, overwrite: bool) -> None:
    """Refuse to write into a non-empty folder unless asked, and even then unless it holds
    only a dataset this generator wrote (its ``.synthetic_mt.json`` lists every file): a
    synthetic dataset written over a real download (``data/NYUDv2``) would replace its files.
    """
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise NotADirectoryError(f'{out_dir} exists and is not a folder')
    if not (osp.isdir(out_dir) and os.listdir(out_dir)):
        return
    if not overwrite:
        raise FileExistsError(
            f'{out_dir} exists and is not empty; refusing to write a synthetic dataset into it '
            '(choose another folder, delete it, or pass overwrite=True / --force)')
    foreign = _foreign_files(out_dir)
    if foreign:
        raise FileExistsError(
            f'{out_dir} holds files this generator did not write ({name_some(foreign)}; no '
            f'{MANIFEST} lists them); overwrite/--force replaces only a synthetic dataset of '
            'its own. Move them away, delete the folder yourself, or choose another folder')


def _lock_folder(path: str) -> Optional[int]:
    """Take an exclusive ``flock`` on the folder ``path`` without waiting.

    ``fcntl`` on the folder itself, as ``SafeCheckpointHook``'s work-dir lock: no lock file to
    leave beside the user's dataset (``filelock`` keeps its file in place).

    Returns:
        int or None: The descriptor holding the lock; None if another process holds it (or
        ``path`` was renamed meanwhile); -1 where there are no such locks (Windows, some
        network file systems).

    Raises:
        FileNotFoundError: ``path`` is gone.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        return -1
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:  # a file system without flock
        os.close(fd)
        return -1
    try:
        same = osp.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        same = False
    if not same:  # renamed or removed by its owner meanwhile: another folder's lock
        os.close(fd)
        return None
    return fd


def _unlock(fd: Optional[int]) -> None:
    if fd is not None and fd >= 0:
        os.close(fd)  # releases the flock (no process is forked while a dataset is written)


def _new_stage(parent: str, name: str) -> Tuple[str, Optional[int]]:
    """Create a new ``.<name>.<hex>.partial`` in ``parent``, locked; return it and the lock."""
    while True:  # os.mkdir, not mkdtemp (0700): the kernel applies the umask
        stage = osp.join(parent, f'.{name}.{secrets.token_hex(4)}.partial')
        try:
            os.mkdir(stage)
        except FileExistsError:
            continue
        try:
            fd = _lock_folder(stage)
        except FileNotFoundError:
            fd = None
        if fd is not None:
            return stage, fd
        # a run cleaning up found it between mkdir and flock and took it for a killed run's
        # (it removes it, empty): another name


def _complete(folder: str) -> bool:
    """Whether every file its :data:`MANIFEST` lists is in ``folder``."""
    try:
        with open(osp.join(folder, MANIFEST), encoding='utf-8') as f:
            listed = json.load(f)['files']
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return set(listed) <= set(_files_under(folder))


def remove_stale_builds(out_dir: str) -> List[str]:
    """Clean up after killed builds of ``out_dir``: its hidden ``.<name>.<hex>.partial`` and
    ``.old`` siblings whose builder is dead (their lock can be taken; those of a running build
    are left alone, and so is everything where there are no locks).

    A stale ``.partial`` is deleted. A stale ``.old`` is the previous dataset that a replacement
    had moved aside: if ``out_dir`` is missing (killed between the two renames) and the old
    dataset is complete, it is moved back, so that the interrupted replacement changed nothing;
    otherwise (the replacement was done, only the deletion was cut short) it is deleted.

    Returns:
        list[str]: What was done, one entry per folder (also logged, in one line).
    """
    target = osp.realpath(out_dir)
    parent, name = osp.split(target)
    try:
        siblings = os.listdir(parent)
    except (FileNotFoundError, NotADirectoryError):
        return []
    pattern = re.compile(rf'\.{re.escape(name)}\.[0-9a-f]{{8}}\.(partial|old)\Z')
    # the .old ones first: a complete one is moved back whatever comes after it
    stale = sorted((m.group(1) == 'partial', entry) for entry in siblings
                   if (m := pattern.match(entry)) and not osp.islink(osp.join(parent, entry))
                   and osp.isdir(osp.join(parent, entry)))
    done = []
    for is_partial, entry in stale:
        path = osp.join(parent, entry)
        try:
            fd = _lock_folder(path)
        except FileNotFoundError:  # its owner finished meanwhile
            continue
        if fd is None or fd < 0:  # alive, or no way to know
            continue
        try:
            if not is_partial and not osp.lexists(target) and _complete(path):
                os.rename(path, target)
                done.append(f'moved {entry} back to {name} (a replacement cut short)')
            else:
                shutil.rmtree(path)
                done.append(f'removed {entry}')
        finally:
            _unlock(fd)
    if done:
        print_log(f'{out_dir}: cleaned up after a killed run: {"; ".join(done)}',
                  logger='current', level=logging.WARNING)
    return done


@contextlib.contextmanager
def staged_out_dir(out_dir: str, overwrite: bool) -> Iterator[str]:
    """Yield a new hidden sibling folder of ``out_dir`` to write a dataset into; when the block
    ends normally, list its files in :data:`MANIFEST` and rename it to ``out_dir`` (the old
    dataset, checked by :func:`check_out_dir`, is moved aside and deleted only then). When the
    block raises, the sibling is deleted and ``out_dir`` is as it was. The siblings that killed
    builds left are cleaned up first (:func:`remove_stale_builds`).
    """
    remove_stale_builds(out_dir)  # first: an interrupted replacement's old dataset is back
    check_out_dir(out_dir, overwrite)
    # the real folder: a link data/NYUDv2 -> /disk/nyud keeps pointing at the new dataset
    target = osp.realpath(out_dir)
    parent, name = osp.split(target)
    os.makedirs(parent, exist_ok=True)
    stage, lock = _new_stage(parent, name)  # held to the end: a later run sees it is alive
    try:
        yield stage
        files = _files_under(stage)  # before the manifest exists
        with open(osp.join(stage, MANIFEST), 'w', encoding='utf-8') as f:
            json.dump(dict(written_by='mmmt.testing (tools/dataset_converters/synthetic_mt.py)',
                           files=files), f, indent=0)
            f.write('\n')
        _swap_into_place(stage, target, out_dir, overwrite)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        _unlock(lock)


def _swap_into_place(stage: str, target: str, out_dir: str, overwrite: bool) -> None:
    """Rename the complete ``stage`` to ``target``, replacing an old dataset of this generator
    (checked again: files may have been added while the new one was written)."""
    if osp.isdir(target) and not os.listdir(target):
        os.rmdir(target)
    if not osp.exists(target):
        os.rename(stage, target)
        return
    check_out_dir(out_dir, overwrite)
    old = stage[:-len('.partial')] + '.old'
    # locked before it is renamed: a later run takes an unlocked .old for a killed run's
    lock = _lock_folder(target)
    if lock is None:
        raise FileExistsError(f'{out_dir} is being replaced by another run; wait for it to end')
    try:
        os.rename(target, old)
        try:
            os.rename(stage, target)
        except BaseException:
            os.rename(old, target)
            raise
        shutil.rmtree(old)
    finally:
        _unlock(lock)


def generate_nyud(out_dir: str, n_train: int, n_val: int, seed: int = 0,
                  size: Tuple[int, int] = (425, 560),
                  progress: Optional[Callable[[int, int, str], None]] = None,
                  overwrite: bool = False) -> Dict[str, list]:
    """Write a synthetic NYUDv2 multi-task dataset (the NYUDv2 multi-task layout).

    Args:
        out_dir: The dataset root to create (``images/``, ``segmentation/``, ``depth/``,
            ``normals/``, ``edge/``, ``gt_sets/{train,val}.txt``).
        n_train, n_val: Number of images per split.
        seed: Random seed; the output is a function of it.
        size: (H, W) of every image (the real data is 425x560).
        progress: Called as ``progress(done, total, id)`` after each image.
        overwrite: Replace ``out_dir`` if it holds a dataset of this generator (see
            :func:`staged_out_dir`). Defaults to False (``FileExistsError`` if not empty).

    Returns:
        dict: ``{'train': ids, 'val': ids}``.
    """
    with staged_out_dir(out_dir, overwrite) as root:
        return _write_nyud(root, n_train, n_val, seed, size, progress)


def _write_nyud(out_dir: str, n_train: int, n_val: int, seed: int, size: Tuple[int, int],
                progress: Optional[Callable[[int, int, str], None]]) -> Dict[str, list]:
    n = n_train + n_val
    id_rng = _image_rng(seed, 0, 10**6)
    nums = id_rng.choice(np.arange(1, max(1449, n) + 1), size=n, replace=False)
    ids = [f'{int(k):04d}' for k in nums]
    for sub in ('images', 'segmentation', 'depth', 'normals', 'edge', 'gt_sets'):
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)
    for i, img_id in enumerate(ids):
        s = render_nyud_scene(_image_rng(seed, 0, i), tuple(size))
        _save_png(osp.join(out_dir, 'images', f'{img_id}.png'), s['image'])
        _save_png(osp.join(out_dir, 'segmentation', f'{img_id}.png'), s['semseg'])
        np.save(osp.join(out_dir, 'depth', f'{img_id}.npy'), s['depth'])
        _save_png(osp.join(out_dir, 'normals', f'{img_id}.png'), _encode_normals(s['normals']))
        _save_png(osp.join(out_dir, 'edge', f'{img_id}.png'), s['edge'])
        _progress_cb(progress, i, n, img_id)
    train, val = _split_ids(ids, n_train)
    _write_split(osp.join(out_dir, 'gt_sets', 'train.txt'), train)
    _write_split(osp.join(out_dir, 'gt_sets', 'val.txt'), val)
    return dict(train=train, val=val)


def generate_pascal(out_dir: str, n_train: int, n_val: int, seed: int = 0,
                    size: Tuple[int, int] = (375, 500), portrait_prob: float = 0.3,
                    person_prob: float = 0.6,
                    progress: Optional[Callable[[int, int, str], None]] = None,
                    overwrite: bool = False) -> Dict[str, list]:
    """Write a synthetic PASCAL-Context multi-task dataset (the PASCAL-Context multi-task layout).

    Args:
        out_dir: The dataset root to create (``JPEGImages/``, ``pascal-context/trainval/``,
            ``semseg/pascal-context/``, ``human_parts/``, ``normals_distill/``,
            ``sal_distill/``, ``ImageSets/Context/{train,val}.txt``).
        n_train, n_val: Number of images per split.
        seed: Random seed; the output is a function of it.
        size: (H, W) of a landscape image; with probability ``portrait_prob`` an image is
            (W, H) instead (PASCAL images vary in size and orientation).
        portrait_prob: See ``size``.
        person_prob: Probability that an image contains persons (80 % of which have parts).
        progress: Called as ``progress(done, total, id)`` after each image.
        overwrite: Replace ``out_dir`` if it holds a dataset of this generator (see
            :func:`staged_out_dir`). Defaults to False (``FileExistsError`` if not empty).

    Returns:
        dict: ``{'train': ids, 'val': ids}``.
    """
    with staged_out_dir(out_dir, overwrite) as root:
        return _write_pascal(root, n_train, n_val, seed, size, portrait_prob, person_prob,
                             progress)


def _write_pascal(out_dir: str, n_train: int, n_val: int, seed: int, size: Tuple[int, int],
                  portrait_prob: float, person_prob: float,
                  progress: Optional[Callable[[int, int, str], None]]) -> Dict[str, list]:
    n = n_train + n_val
    id_rng = _image_rng(seed, 1, 10**6)
    nums = id_rng.choice(np.arange(1, max(9000, n) + 1), size=n, replace=False)
    years = id_rng.integers(2008, 2011, size=n)
    ids = [f'{int(y)}_{int(k):06d}' for y, k in zip(years, nums)]
    dirs = dict(img='JPEGImages', ctx=osp.join('pascal-context', 'trainval'),
                seg=osp.join('semseg', 'pascal-context'), parts='human_parts',
                nrm='normals_distill', sal='sal_distill')
    for sub in dirs.values():
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)
    for i, img_id in enumerate(ids):
        rng = _image_rng(seed, 1, i)
        hw = tuple(size) if rng.random() >= portrait_prob else (size[1], size[0])
        s = render_pascal_scene(rng, hw, person_prob=person_prob)
        Image.fromarray(s['image']).save(
            osp.join(out_dir, dirs['img'], f'{img_id}.jpg'), format='JPEG', quality=90)
        savemat_deterministic(osp.join(out_dir, dirs['ctx'], f'{img_id}.mat'),
                              {'LabelMap': s['labelmap']})
        _save_png(osp.join(out_dir, dirs['seg'], f'{img_id}.png'), s['semseg'])
        savemat_deterministic(osp.join(out_dir, dirs['parts'], f'{img_id}.mat'),
                              {'anno': _parts_struct(s['objects'], img_id)})
        _save_png(osp.join(out_dir, dirs['nrm'], f'{img_id}.png'), _encode_normals(s['normals']))
        _save_png(osp.join(out_dir, dirs['sal'], f'{img_id}.png'), s['sal'])
        _progress_cb(progress, i, n, img_id)
    train, val = _split_ids(ids, n_train)
    _write_split(osp.join(out_dir, 'ImageSets', 'Context', 'train.txt'), train)
    _write_split(osp.join(out_dir, 'ImageSets', 'Context', 'val.txt'), val)
    return dict(train=train, val=val)


def generate(dataset: str, out_dir: str, n_train: int, n_val: int, seed: int = 0,
             size: Optional[Tuple[int, int]] = None, **kwargs) -> Dict[str, list]:
    """Dispatch to :func:`generate_nyud` (``'nyud'``), :func:`generate_pascal` (``'pascal'``)
    or ``synthetic_cityscapes.generate_cityscapes`` (``'cityscapes'``); ``size=None`` uses
    the dataset's default size."""
    if dataset == 'nyud':
        fn = generate_nyud
    elif dataset == 'pascal':
        fn = generate_pascal
    elif dataset == 'cityscapes':
        from .synthetic_cityscapes import generate_cityscapes  # it imports this module
        fn = generate_cityscapes
    else:
        raise ValueError(f"dataset must be 'nyud', 'pascal' or 'cityscapes', got {dataset!r}")
    if size is not None:
        kwargs['size'] = tuple(int(s) for s in size)
    return fn(out_dir, n_train, n_val, seed=seed, **kwargs)
