"""The synthetic generator: determinism, real-layout file formats, consistency between tasks."""
import glob
import hashlib
import os
import os.path as osp

import numpy as np
import pytest
import scipy.io
from PIL import Image

from mmmt.datasets import PASCAL_PART_GROUPS, VOC_CLASSES
from mmmt.datasets.class_names import VOC_CONTEXT_IDS
from mmmt.datasets.transforms.loading import read_pascal_part_mask
from mmmt.testing import generate
from mmmt.testing.synthetic_writers import remove_stale_builds
from mmmt.utils.errors import UserInputError
from tests.tool_loader import load_tool


def tree_hash(root: str) -> str:
    h = hashlib.sha256()
    for path in sorted(glob.glob(osp.join(root, '**', '*'), recursive=True)):
        if osp.isfile(path):
            h.update(osp.relpath(path, root).encode())
            with open(path, 'rb') as f:
                h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


@pytest.mark.parametrize('name', ['nyud', 'pascal'])
def test_deterministic_for_a_seed(tmp_path, name):
    a, b, c = (str(tmp_path / x) for x in 'abc')
    generate(name, a, 2, 1, seed=3, size=(24, 32))
    generate(name, b, 2, 1, seed=3, size=(24, 32))
    generate(name, c, 2, 1, seed=4, size=(24, 32))
    assert tree_hash(a) == tree_hash(b)
    assert tree_hash(a) != tree_hash(c)


def test_nyud_layout_and_encodings(synthetic_roots):
    root = synthetic_roots['nyud']
    train = open(osp.join(root, 'gt_sets', 'train.txt')).read().split()
    val = open(osp.join(root, 'gt_sets', 'val.txt')).read().split()
    assert len(train) == 4 and len(val) == 3 and not set(train) & set(val)
    floor_ny = []
    for i in train + val:
        assert len(i) == 4 and i.isdigit()
        img = Image.open(osp.join(root, 'images', f'{i}.png'))
        assert img.format == 'PNG' and img.mode == 'RGB' and img.size == (64, 48)
        seg = Image.open(osp.join(root, 'segmentation', f'{i}.png'))
        assert seg.mode == 'L'
        seg = np.asarray(seg)
        assert seg.max() <= 40
        depth = np.load(osp.join(root, 'depth', f'{i}.npy'))
        assert depth.dtype == np.float32 and depth.shape == (48, 64)
        assert depth.min() >= 0 and depth.max() < 20 and (depth > 0).mean() > 0.5
        nimg = Image.open(osp.join(root, 'normals', f'{i}.png'))
        assert nimg.mode == 'RGB'
        n = 2 * np.asarray(nimg, np.float32) / 255 - 1
        np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1, atol=0.02)
        edge = np.asarray(Image.open(osp.join(root, 'edge', f'{i}.png')))
        assert set(np.unique(edge)) <= {0, 255} and edge.max() == 255
        # consistency: floor normals point up (camera y), walls do not
        if (seg == 2).sum() > 20:
            floor_ny.append(n[seg == 2][:, 1].mean())
        # every semantic change is an edge pixel (or its neighbour)
        change = np.zeros(seg.shape, bool)
        change[:, :-1] |= seg[:, :-1] != seg[:, 1:]
        assert (edge[change] == 255).all()
    assert floor_ny and min(floor_ny) > 0.7


def test_pascal_layout_and_mat_structures(synthetic_roots):
    root = synthetic_roots['pascal']
    ids = open(osp.join(root, 'ImageSets', 'Context', 'train.txt')).read().split() + \
        open(osp.join(root, 'ImageSets', 'Context', 'val.txt')).read().split()
    assert len(ids) == 7
    for i in ids:
        y, k = i.split('_')
        assert len(y) == 4 and len(k) == 6
        img = Image.open(osp.join(root, 'JPEGImages', f'{i}.jpg'))
        assert img.format == 'JPEG' and img.mode == 'RGB'
        shape = img.size[::-1]
        assert shape in ((48, 64), (64, 48))
        lm = scipy.io.loadmat(osp.join(root, 'pascal-context', 'trainval', f'{i}.mat'))
        lm = lm['LabelMap']
        assert lm.shape == shape and lm.min() >= 1 and lm.max() <= 459
        seg = np.asarray(Image.open(osp.join(root, 'semseg', 'pascal-context', f'{i}.png')))
        assert seg.shape == shape and set(np.unique(seg)) <= set(range(21)) | {255}
        # semseg is the VOC view of the Context LabelMap
        ctx_of_voc = np.array(VOC_CONTEXT_IDS)
        ok = seg != 255
        obj = ok & (seg > 0)
        np.testing.assert_array_equal(lm[obj], ctx_of_voc[seg[obj]])
        assert not np.isin(lm[ok & (seg == 0)], ctx_of_voc[1:]).any()
        sal = np.asarray(Image.open(osp.join(root, 'sal_distill', f'{i}.png')))
        assert sal.dtype == np.uint8 and sal.shape == shape
        nrm = Image.open(osp.join(root, 'normals_distill', f'{i}.png'))
        assert nrm.mode == 'RGB' and nrm.size == img.size
        # the parts file reads back exactly as the loader expects
        anno = scipy.io.loadmat(osp.join(root, 'human_parts', f'{i}.mat'))['anno']
        objects = anno[0][0][1][0]
        assert len(objects) >= 1
        for o in objects:
            cls = int(o[1][0][0])
            assert 1 <= cls <= 20 and str(o[0][0]) == VOC_CLASSES[cls]
            mask = o[2]
            assert mask.shape == shape
            if mask.sum():
                assert (seg[mask.astype(bool)] == cls).mean() > 0.5  # 255 borders aside
            if len(o[3]):
                assert cls == 15
                union = np.zeros(shape, bool)
                for part in o[3][0]:
                    name = str(part[0][0])
                    assert name in PASCAL_PART_GROUPS
                    pm = part[1].astype(bool)
                    assert pm.shape == shape and not (pm & ~mask.astype(bool)).any()
                    union |= pm
                assert (union == mask.astype(bool)).all()
        hp = read_pascal_part_mask(osp.join(root, 'human_parts', f'{i}.mat'))
        if hp is not None:
            assert hp.shape == shape and hp.max() <= 6


def test_persons_with_parts_occur(tmp_path):
    root = str(tmp_path / 'p')
    generate('pascal', root, 6, 0, seed=0, size=(48, 64), person_prob=1.0)
    maps = [read_pascal_part_mask(p) for p in glob.glob(osp.join(root, 'human_parts', '*.mat'))]
    labelled = [m for m in maps if m is not None and m.max() > 0]
    assert len(labelled) >= 3
    assert set(np.unique(np.concatenate([m.ravel() for m in labelled]))) >= {0, 1, 2, 5, 6}


def test_cli(tmp_path, capsys):
    mod = load_tool('tools', 'dataset_converters', 'synthetic_mt')
    out = str(tmp_path / 'nyud')
    assert mod.main(['nyud', out, '--train', '2', '--val', '1', '--seed', '5', '--size', '24',
                     '32']) == 0
    captured = capsys.readouterr()
    assert 'Wrote nyud' in captured.out and 'images: 3/3 (100%)' in captured.err
    assert len(os.listdir(osp.join(out, 'images'))) == 3
    ref = str(tmp_path / 'ref')
    generate('nyud', ref, 2, 1, seed=5, size=(24, 32))
    assert tree_hash(out) == tree_hash(ref)
    with pytest.raises(SystemExit):
        mod.main(['kitti', out])
    # never over an existing dataset unless asked
    (tmp_path / 'nyud' / 'images' / 'mine.png').write_bytes(b'user data')
    with pytest.raises(UserInputError, match='not empty'):  # one line, exit status 2
        mod.main(['nyud', out, '--train', '1', '--val', '1', '--quiet'])
    assert (tmp_path / 'nyud' / 'images' / 'mine.png').read_bytes() == b'user data'
    assert tree_hash(out) != tree_hash(ref)
    # --force replaces only the generator's own files: a user's file among them stops it
    with pytest.raises(UserInputError, match=r'holds files this generator did not write '
                       r'\(images/mine\.png; .*Move them away'):
        mod.main(['nyud', out, '--train', '2', '--val', '1', '--force', '--quiet'])
    assert (tmp_path / 'nyud' / 'images' / 'mine.png').read_bytes() == b'user data'
    (tmp_path / 'nyud' / 'images' / 'mine.png').unlink()
    assert mod.main(['nyud', out, '--train', '2', '--val', '1', '--seed', '5', '--size', '24',
                     '32', '--force', '--quiet']) == 0
    assert tree_hash(out) == tree_hash(ref)
    with pytest.raises(FileExistsError, match='not empty'):
        generate('pascal', out, 1, 1)


def test_a_forced_rerun_is_complete_or_leaves_the_old_dataset(tmp_path):
    out = str(tmp_path / 'nyud')
    generate('nyud', out, 2, 1, seed=5, size=(24, 32))
    old = tree_hash(out)

    def stop(done, total, img_id):
        if done == 2:
            raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of the re-run

    with pytest.raises(KeyboardInterrupt):
        generate('nyud', out, 3, 2, seed=7, size=(24, 32), overwrite=True, progress=stop)
    assert tree_hash(out) == old  # the old dataset, whole, and nothing of the new one
    assert os.listdir(tmp_path) == ['nyud']  # nor a half-built sibling
    # a complete re-run with fewer images: exactly a fresh dataset (the old run wrote 3
    # images; written into the folder, the re-run of 2 left 5 in images/)
    generate('nyud', out, 1, 1, seed=6, size=(24, 32), overwrite=True)
    fresh = str(tmp_path / 'fresh')
    generate('nyud', fresh, 1, 1, seed=6, size=(24, 32))
    assert tree_hash(out) == tree_hash(fresh)
    assert len(os.listdir(osp.join(out, 'images'))) == 2
    assert sorted(os.listdir(tmp_path)) == ['fresh', 'nyud']
    # a folder without the generator's list of files is not its own: never replaced
    os.remove(osp.join(out, '.synthetic_mt.json'))
    with pytest.raises(FileExistsError, match=r'did not write \(depth/.*\.npy'):
        generate('nyud', out, 1, 1, seed=6, size=(24, 32), overwrite=True)
    assert len(os.listdir(osp.join(out, 'images'))) == 2


def test_old_module_name_still_imports_with_a_warning():
    import importlib
    import sys

    import mmmt.testing
    sys.modules.pop('mmmt.datasets.synthetic', None)
    with pytest.warns(DeprecationWarning, match='mmmt.testing'):
        old = importlib.import_module('mmmt.datasets.synthetic')
    assert old.generate is mmmt.testing.generate


# a builder in a child process that stops at a point and waits there to be killed (kill -9):
# it writes the marker file first, so that the test knows it got there
_BUILDER = r'''
import os, shutil, sys, time
from mmmt.testing import generate
import mmmt.testing.synthetic_writers as writers
out, marker, where = sys.argv[1:4]

def wait_to_be_killed():
    open(marker, 'w').close()
    time.sleep(600)

if where == 'writing':  # the first image written, the others not yet
    generate('nyud', out, 2, 1, seed=7, size=(24, 32),
             progress=lambda done, total, img_id: wait_to_be_killed())
rename, rmtree = os.rename, shutil.rmtree

def rename_then_wait(src, dst):  # the old dataset moved aside, the new one not yet in place
    if where == 'swapping' and src.endswith('.partial'):
        wait_to_be_killed()
    rename(src, dst)

def rmtree_after_wait(path, *args, **kwargs):  # the new one in place, the old one not deleted
    if where == 'deleting' and path.endswith('.old'):
        wait_to_be_killed()
    rmtree(path, *args, **kwargs)

writers.os.rename, writers.shutil.rmtree = rename_then_wait, rmtree_after_wait
generate('nyud', out, 1, 1, seed=8, size=(24, 32), overwrite=True)
'''


def _builder_waiting(tmp_path, out, where):
    """A child process building ``out``, stopped at ``where`` (it holds its locks)."""
    import subprocess
    import sys
    import time
    marker = tmp_path / f'{where}.{len(list(tmp_path.glob("*.reached")))}.reached'
    child = subprocess.Popen([sys.executable, '-c', _BUILDER, out, str(marker), where],
                             cwd=osp.dirname(osp.dirname(osp.dirname(__file__))))
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert child.poll() is None, f'the builder ended with {child.returncode}'
        assert time.monotonic() < deadline, 'the builder did not get there'
        time.sleep(0.05)
    return child


def _kill(child):
    import signal
    child.send_signal(signal.SIGKILL)
    child.wait(30)


def _siblings(tmp_path):
    return sorted(p for p in os.listdir(tmp_path) if p.startswith('.nyud.'))


def _logged_lines(lines):
    """A handler on mmengine's current logger that appends each message to ``lines``.

    Not capsys: the logger's stream handler writes to whatever ``sys.stdout`` was when an
    earlier test created the logger, which capsys does not see in a full run."""
    import logging

    class Collect(logging.Handler):

        def emit(self, record):
            lines.append(record.getMessage())

    return Collect()


def test_a_killed_build_is_cleaned_up_by_the_next_run_once_its_owner_is_dead(tmp_path):
    from mmengine.logging import MMLogger
    out = str(tmp_path / 'nyud')
    _kill(_builder_waiting(tmp_path, out, 'writing'))  # kill -9: nothing of it can clean up
    (stale, ) = _siblings(tmp_path)
    assert stale.endswith('.partial') and not osp.exists(out)
    alive = _builder_waiting(tmp_path, out, 'writing')  # the next build of the same dataset
    logger, lines = MMLogger.get_current_instance(), []
    handler = _logged_lines(lines)
    logger.addHandler(handler)
    try:
        (running, ) = _siblings(tmp_path)  # it removed the dead one's folder
        assert running != stale
        generate('nyud', out, 1, 1, seed=6, size=(24, 32))
        assert _siblings(tmp_path) == [running]  # a live one's folder is kept
        assert not [ln for ln in lines if 'killed run' in ln]
        _kill(alive)
        generate('nyud', out, 1, 1, seed=6, size=(24, 32), overwrite=True)
    finally:
        logger.removeHandler(handler)
        if alive.poll() is None:
            _kill(alive)
    assert _siblings(tmp_path) == []  # now dead: removed, and said so in one line
    (line, ) = [ln for ln in lines if 'killed run' in ln]
    assert line == f'{out}: cleaned up after a killed run: removed {running}'
    fresh = str(tmp_path / 'fresh')
    generate('nyud', fresh, 1, 1, seed=6, size=(24, 32))
    assert tree_hash(out) == tree_hash(fresh)


def test_a_replacement_killed_in_the_swap_leaves_the_old_dataset(tmp_path):
    out = str(tmp_path / 'nyud')
    generate('nyud', out, 2, 1, seed=5, size=(24, 32))
    old = tree_hash(out)
    swapping = _builder_waiting(tmp_path, out, 'swapping')
    try:  # alive: both its folders (the new dataset, the old one moved aside) are its own
        assert remove_stale_builds(out) == []
    finally:
        _kill(swapping)
    assert not osp.exists(out)  # between the renames: the old dataset is in .nyud.<hex>.old
    assert [p.rsplit('.', 1)[1] for p in _siblings(tmp_path)] == ['old', 'partial']
    # the next run moves the old one back (and refuses it: no overwrite), removes the new one
    with pytest.raises(FileExistsError, match='not empty'):
        generate('nyud', out, 1, 1, seed=6, size=(24, 32))
    assert tree_hash(out) == old and _siblings(tmp_path) == []
    # killed after the swap, in the old one's deletion: the new one stays, the old one goes
    _kill(_builder_waiting(tmp_path, out, 'deleting'))
    (left, ) = _siblings(tmp_path)
    assert left.endswith('.old')
    new = tree_hash(out)
    assert new != old
    generate('nyud', str(tmp_path / 'other'), 1, 1, seed=6, size=(24, 32))  # another target
    assert _siblings(tmp_path) == [left]  # not its business
    generate('nyud', out, 1, 1, seed=8, size=(24, 32), overwrite=True)
    assert tree_hash(out) == new and _siblings(tmp_path) == []
