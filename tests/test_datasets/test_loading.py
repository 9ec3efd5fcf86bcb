"""Annotation decoding on hand-made files, and the bad-input errors of the issue's acceptance."""
import io
import os
import os.path as osp
import re

import numpy as np
import pytest
import scipy.io
from PIL import Image

from mmmt.datasets import NYUDv2MultiTaskDataset, PascalContextMultiTaskDataset
from mmmt.datasets.transforms import AddIgnoreRegions, LoadMultiTaskAnnotations, LoadMultiTaskImage
from mmmt.datasets.transforms.decoders import fit_to_size
from mmmt.utils.errors import UserInputError

H, W = 8, 10


def _struct(dtype, rows):
    arr = np.zeros((1, len(rows)), dtype=dtype)
    for i, r in enumerate(rows):
        arr[0, i] = r
    return arr


def write_parts_mat(path, objects):
    """A PASCAL-Part file: ``anno`` = (imname, objects(class, class_ind, mask, parts))."""
    objs = []
    for name, cls, mask, parts in objects:
        if parts:
            p = _struct([('part_name', 'O'), ('mask', 'O')], parts)
        else:
            p = np.zeros((0, 0))
        objs.append((name, np.array([[cls]], np.float64), mask.astype(np.uint8), p))
    o = _struct([('class', 'O'), ('class_ind', 'O'), ('mask', 'O'), ('parts', 'O')], objs)
    anno = _struct([('imname', 'O'), ('objects', 'O')], [('x.jpg', o)])
    scipy.io.savemat(path, {'anno': anno})


def _box(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def load(task, ann, tmp_path=None):
    res = dict(img=np.zeros((H, W, 3), np.float32), tasks=[task], ann_info={task: ann},
               seg_fields=[], img_id='x', split_file='list.txt')
    res = LoadMultiTaskAnnotations()(res)
    return AddIgnoreRegions()(res)[f'gt_{task}']


# ------------------------------------------------------------------------- human parts
def test_human_parts_groups_and_rules(tmp_path):
    p = str(tmp_path / 'parts.mat')
    a = _box(0, 8, 0, 4)
    write_parts_mat(p, [
        ('person', 15, a, [('head', _box(0, 2, 0, 4)), ('neck', _box(2, 3, 0, 4)),
                           ('lhand', _box(3, 4, 0, 4)), ('ruleg', _box(4, 6, 0, 4)),
                           ('rfoot', _box(6, 7, 0, 2)), ('tail', _box(7, 8, 0, 4)),
                           ('hair', _box(0, 1, 0, 1))]),  # later parts overwrite earlier
        ('person', 15, _box(0, 8, 5, 7), []),  # person without parts: background
        ('dog', 12, _box(0, 8, 8, 10), [('head', _box(0, 2, 8, 10))]),  # not a person
    ])
    hp = load('human_parts', dict(path=p, encoding='pascal_parts_mat'))
    assert hp.dtype == np.uint8 and hp.shape == (H, W)
    exp = np.zeros((H, W), np.uint8)
    exp[0:2, 0:4] = 1
    exp[2, 0:4] = 2
    exp[3, 0:4] = 4
    exp[4:6, 0:4] = 5
    exp[6, 0:2] = 6
    exp[7, 0:4] = 0  # unknown part name -> 0
    exp[0, 0] = 1
    np.testing.assert_array_equal(hp, exp)


@pytest.mark.parametrize(
    'case', ['no_person', 'person_no_parts', 'empty_person', 'no_file', 'no_objects'])
def test_human_parts_without_parts_is_fully_ignored(tmp_path, case):
    p = str(tmp_path / 'parts.mat')
    if case == 'no_person':
        write_parts_mat(p, [('car', 7, _box(0, 4, 0, 4), [])])
    elif case == 'person_no_parts':
        write_parts_mat(p, [('person', 15, _box(0, 4, 0, 4), [])])
    elif case == 'empty_person':  # zero-area person mask: the object does not count
        write_parts_mat(p, [('person', 15, np.zeros((H, W), bool),
                             [('head', _box(0, 2, 0, 2))]), ('cat', 8, _box(0, 3, 0, 3), [])])
    elif case == 'no_objects':
        write_parts_mat(p, [])
    hp = load('human_parts', dict(path=p, encoding='pascal_parts_mat'))
    assert hp.shape == (H, W) and (hp == 255).all()


# ------------------------------------------------------------------- context-derived maps
def _write_labelmap(path, lm):
    scipy.io.savemat(path, {'LabelMap': lm.astype(np.uint16)})


def test_edges_from_labelmap_are_thin(tmp_path):
    lm = np.full((H, W), 3)
    lm[:, 5:] = 9
    p = str(tmp_path / 'ctx.mat')
    _write_labelmap(p, lm)
    e = load('edge', dict(path=p, encoding='context_edge_mat'))
    assert e.dtype == np.float32 and set(np.unique(e)) == {0.0, 1.0}
    # |Laplacian| > 0 marks both sides of the boundary (columns 4 and 5); thinning leaves one
    # pixel per row (skimage's thin may also drop the line's end pixel at the border)
    assert e[:, [4, 5]].sum() == e.sum() and (e.sum(axis=1) <= 1).all()
    assert (e[1:-1].sum(axis=1) == 1).all()
    _write_labelmap(p, np.full((H, W), 3))
    assert (load('edge', dict(path=p, encoding='context_edge_mat')) == 0).all()


def test_normals_masked_to_valid_context_classes(tmp_path):
    lm = np.full((H, W), 3)  # 3 is one of the 170 classes
    lm[:, 5:] = 1  # 1 is not
    ctx = str(tmp_path / 'ctx.mat')
    _write_labelmap(ctx, lm)
    png = str(tmp_path / 'n.png')
    Image.fromarray(np.full((H, W, 3), (255, 128, 0), np.uint8)).save(png)
    n = load('normals', dict(path=png, encoding='context_masked_normals_png', context_path=ctx))
    np.testing.assert_allclose(n[:, :5], np.broadcast_to((1, 2 * 128 / 255 - 1, -1),
                                                         (H, 5, 3)), atol=1e-6)
    assert (n[:, 5:] == 255).all()


def test_saliency_threshold(tmp_path):
    png = str(tmp_path / 's.png')
    Image.fromarray(np.array([[0, 127, 128, 255]] * 2, np.uint8)).save(png)
    res = dict(img=np.zeros((2, 4, 3), np.float32), tasks=['sal'],
               ann_info=dict(sal=dict(path=png, encoding='sal_png')), seg_fields=[])
    sal = LoadMultiTaskAnnotations()(res)['gt_sal']
    np.testing.assert_array_equal(sal[0], [0, 0, 1, 1])  # v / 255 > 0.5


# -------------------------------------------------------------------------- bad inputs
def _first_id(root, split_file):
    with open(osp.join(root, split_file)) as f:
        return f.readline().strip()


@pytest.mark.parametrize('what', ['images/{}.png', 'depth/{}.npy', 'edge/{}.png'])
def test_missing_nyud_file_names_file_and_split(copy_root, what):
    root = copy_root('nyud')
    i = _first_id(root, 'gt_sets/train.txt')
    os.remove(osp.join(root, what.format(i)))
    with pytest.raises(FileNotFoundError) as err:
        NYUDv2MultiTaskDataset(data_root=root, split='train')
    msg = str(err.value)
    assert osp.join(root, what.format(i)) in msg and 'gt_sets/train.txt' in msg


@pytest.mark.parametrize('what', ['JPEGImages/{}.jpg', 'pascal-context/trainval/{}.mat',
                                  'sal_distill/{}.png', 'semseg/pascal-context/{}.png'])
def test_missing_pascal_file_names_file_and_split(copy_root, what):
    root = copy_root('pascal')
    i = _first_id(root, 'ImageSets/Context/val.txt')
    os.remove(osp.join(root, what.format(i)))
    with pytest.raises(FileNotFoundError) as err:
        PascalContextMultiTaskDataset(data_root=root, split='val')
    msg = str(err.value)
    assert osp.join(root, what.format(i)) in msg and 'ImageSets/Context/val.txt' in msg


def test_missing_human_parts_folder_is_an_error(copy_root):
    """One missing PASCAL-Part file is an image without persons, but with the folder missing
    every image's human parts were ignored: training and testing on nothing, without a word."""
    root = copy_root('pascal')
    folder = osp.join(root, 'human_parts')
    keep = {f'{_first_id(root, f"ImageSets/Context/{s}.txt")}.mat' for s in ('train', 'val')}
    for name in os.listdir(folder):  # one file per split left: images without persons
        if name not in keep:
            os.remove(osp.join(folder, name))
    PascalContextMultiTaskDataset(data_root=root, split='val')
    PascalContextMultiTaskDataset(data_root=root, split='train')
    for name in keep:
        os.remove(osp.join(folder, name))
    with pytest.raises(FileNotFoundError, match=rf"None of the 3 ids of split list "
                       rf"'.*ImageSets/Context/val\.txt' has a PASCAL-Part file in "
                       rf"'{re.escape(folder)}'"):
        PascalContextMultiTaskDataset(data_root=root, split='val')
    # without the task, or without the file check, the folder is not needed
    ds = PascalContextMultiTaskDataset(data_root=root, split='val', tasks=['semseg', 'sal'])
    assert len(ds) == 3
    assert len(PascalContextMultiTaskDataset(data_root=root, split='val', check_files=False))
    # check_dataset.py builds the dataset without the file check: it reports the folder too
    from mmmt.datasets import check_split
    report = check_split('pascal', root, 'val', tasks=['human_parts'], progress=False)
    assert len(report['errors']) == 1 and report['errors'][0].startswith(
        "None of the 3 ids of split list") and folder in report['errors'][0]


def test_missing_file_at_load_time_names_file(copy_root, dataset_cfg):
    """Files removed after construction (or check_files=False) fail when read."""
    root = copy_root('nyud')
    ds = NYUDv2MultiTaskDataset(data_root=root, split='val', check_files=False,
                                pipeline=dataset_cfg('nyud', 'val', root)['pipeline'])
    path = osp.join(root, 'normals', ds.get_data_info(0)['img_id'] + '.png')
    os.remove(path)
    with pytest.raises(FileNotFoundError, match=path):
        ds[0]


@pytest.mark.parametrize('name', ['nyud', 'pascal'])
def test_corrupt_image_names_file(copy_root, dataset_cfg, name):
    root = copy_root(name)
    cfg = dataset_cfg(name, 'val', root)
    cfg.pop('type')
    cls = NYUDv2MultiTaskDataset if name == 'nyud' else PascalContextMultiTaskDataset
    ds = cls(**cfg)
    path = ds.get_data_info(0)['img_path']
    if name == 'nyud':
        with open(path, 'wb') as f:
            f.write(b'this is not a png file')
    else:  # truncated JPEG
        data = open(path, 'rb').read()
        with open(path, 'wb') as f:
            f.write(data[:len(data) // 2])
    with pytest.raises(OSError, match=path):
        ds[0]


def test_corrupt_label_png_names_file(copy_root, dataset_cfg):
    root = copy_root('nyud')
    ds = NYUDv2MultiTaskDataset(data_root=root, split='val',
                                pipeline=dataset_cfg('nyud', 'val', root)['pipeline'])
    path = osp.join(root, 'segmentation', ds.get_data_info(0)['img_id'] + '.png')
    with open(path, 'wb') as f:
        f.write(b'\x89PNG broken')
    with pytest.raises(OSError, match=path):
        ds[0]


def test_size_mismatch_resized_with_warning(copy_root, dataset_cfg):
    root = copy_root('nyud')
    ds = NYUDv2MultiTaskDataset(data_root=root, split='val',
                                pipeline=dataset_cfg('nyud', 'val', root)['pipeline'])
    i = ds.get_data_info(0)['img_id']
    path = osp.join(root, 'segmentation', f'{i}.png')
    small = np.asarray(Image.open(path))[::2, ::2].copy()  # half size
    Image.fromarray(small).save(path)
    with pytest.warns(UserWarning, match=path):
        s = ds[0]['data_samples']
    seg = s.gt_semseg.data[0].numpy()
    assert seg.shape == s.ori_shape
    exp = np.asarray(Image.fromarray(small).resize((seg.shape[1], seg.shape[0]),
                                                   Image.NEAREST)).astype(np.int64)
    np.testing.assert_array_equal(seg, np.where(exp == 0, 255, exp - 1))


@pytest.mark.parametrize('name,bad', [('nyud', 41), ('pascal', 21), ('pascal', 254)])
def test_semseg_out_of_range_names_file(copy_root, dataset_cfg, name, bad):
    root = copy_root(name)
    cfg = dataset_cfg(name, 'val', root)
    cfg.pop('type')
    cls = NYUDv2MultiTaskDataset if name == 'nyud' else PascalContextMultiTaskDataset
    ds = cls(**cfg)
    i = ds.get_data_info(0)['img_id']
    folder = 'segmentation' if name == 'nyud' else 'semseg/pascal-context'
    path = osp.join(root, folder, f'{i}.png')
    seg = np.asarray(Image.open(path)).copy()
    seg[0, 0] = bad
    Image.fromarray(seg).save(path)
    with pytest.raises(ValueError, match=path):
        ds[0]


def test_pascal_semseg_255_is_allowed(copy_root, dataset_cfg):
    root = copy_root('pascal')
    ds = PascalContextMultiTaskDataset(
        data_root=root, split='val', tasks=['semseg'],
        pipeline=dataset_cfg('pascal', 'val', root)['pipeline'])
    path = osp.join(root, 'semseg/pascal-context', ds.get_data_info(0)['img_id'] + '.png')
    seg = np.asarray(Image.open(path)).copy()
    seg[0, :] = 255
    Image.fromarray(seg).save(path)
    assert (ds[0]['data_samples'].gt_semseg.data[0, 0] == 255).all()


@pytest.mark.parametrize('name,split_file', [('nyud', 'gt_sets/val.txt'),
                                             ('pascal', 'ImageSets/Context/val.txt')])
def test_empty_or_missing_split_list(copy_root, name, split_file):
    root = copy_root(name)
    cls = NYUDv2MultiTaskDataset if name == 'nyud' else PascalContextMultiTaskDataset
    with open(osp.join(root, split_file)) as f:
        ids = f.read().split()
    with open(osp.join(root, split_file), 'w') as f:
        f.write('\n  \n')
    with pytest.raises(ValueError, match='empty'):
        cls(data_root=root, split='val')
    os.remove(osp.join(root, split_file))
    with pytest.raises(FileNotFoundError, match=split_file):
        cls(data_root=root, split='val')
    with pytest.raises(FileNotFoundError, match='test.txt'):
        cls(data_root=root, split='test')
    # two lists pasted together: each repeated image loaded, and counted in the metrics, twice
    with open(osp.join(root, split_file), 'w') as f:
        f.write('\n'.join(ids + ids[:2]) + '\n')
    with pytest.raises(ValueError, match=(
            rf"^Split list '.*{split_file}' of split 'val' lists 2 id\(s\) more than once "
            rf'\({ids[0]}, {ids[1]}\); list each sample once ')):
        cls(data_root=root, split='val')
    # a crafted list: browse_dataset.py and the edge evaluator wrote <id>.png outside their
    # output folders (symlinked task folders let the inputs of such an id exist)
    for bad, problem in (('../../x', "has a '..' part"), ('/tmp/x', 'is an absolute path'),
                         ('a\\..\\x', "has a '..' part")):
        with open(osp.join(root, split_file), 'w') as f:
            f.write('\n'.join(ids[:1] + ['', bad]) + '\n')
        with pytest.raises(ValueError, match=(
                rf"^Split list '.*{split_file}' line 3: the id {re.escape(repr(bad))} "
                rf"{re.escape(problem)}; an id names files inside the dataset's folders")):
            cls(data_root=root, split='val')
    with open(osp.join(root, split_file), 'w') as f:
        f.write('\n'.join(ids) + '\n')
    ds = cls(data_root=root, split='val')
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == ids


class _MemoryBackend:
    """A file backend holding files in a dict, registered under 'mmmt_test_memory' by the
    test below (stands in for S3 / HTTP / petrel)."""

    files = {}

    def __init__(self, **kwargs):
        pass

    def get(self, filepath):
        if filepath not in self.files:
            raise FileNotFoundError(filepath)
        return self.files[filepath]

    def get_text(self, filepath, encoding='utf-8'):
        return self.get(filepath).decode(encoding)

    def exists(self, filepath):
        return filepath in self.files

    isfile = exists

    def join_path(self, filepath, *filepaths):
        return '/'.join([filepath.rstrip('/')] + list(filepaths))


def test_files_are_read_through_mmengine_fileio_backends(synthetic_roots):
    """Every read of the dataset and both loaders goes through ``backend_args``: the dataset
    below exists only in memory, yet loads as the same dataset on disk does."""
    from mmengine.fileio.backends import BaseStorageBackend, register_backend
    backend = type('MemoryBackend', (_MemoryBackend, BaseStorageBackend), {})
    register_backend('mmmt_test_memory', backend, force=True)
    root = synthetic_roots['pascal']
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                _MemoryBackend.files['mem:/' + osp.relpath(path, root)] = f.read()
    args = dict(backend='mmmt_test_memory')
    pipeline = [dict(type='LoadMultiTaskImage', backend_args=args),
                dict(type='LoadMultiTaskAnnotations', backend_args=args)]
    on_disk = PascalContextMultiTaskDataset(data_root=root, split='val', pipeline=[
        LoadMultiTaskImage(), LoadMultiTaskAnnotations()])
    in_memory = PascalContextMultiTaskDataset(data_root='mem:', split='val',
                                              backend_args=args, pipeline=pipeline)
    assert len(in_memory) == len(on_disk) == 3
    a, b = on_disk[0], in_memory[0]
    for key in ['img'] + [f'gt_{t}' for t in in_memory.tasks]:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    _MemoryBackend.files.clear()


# ------------------------------------------------------------------- depth and LabelMap values
@pytest.mark.parametrize('value,problem', [(np.nan, '1 NaN'), (np.inf, '1 infinite'),
                                           (-0.5, '1 negative'), (1e38, '1 > 100000 m')])
def test_broken_depth_values_name_the_file(tmp_path, value, problem):
    depth = np.full((H, W), 2.5, np.float32)
    depth[0, 0] = 0  # no measurement: fine
    path = str(tmp_path / 'd.npy')
    np.save(path, depth)
    assert load('depth', dict(path=path, encoding='depth_npy'))[0, 0] == 255  # ignored
    depth[1, 2] = value
    np.save(path, depth)
    with pytest.raises(ValueError, match=rf'Depth map has {problem} pixel\(s\) \(expected '
                       rf"metres >= 0, 0 = no measurement\): .*d\.npy \(id 'x', listed in "):
        load('depth', dict(path=path, encoding='depth_npy'))


def test_depth_file_that_is_no_npy_array_names_the_file_and_what_it_is(tmp_path):
    """Bytes that are no .npy were "pickled (object) data" that numpy suggested loading
    unsafely with allow_pickle, and a .npz under a .npy name an array of its member names
    ("must be a numeric (H, W) array, got dtype <U1")."""
    archive = io.BytesIO()
    np.savez(archive, depth=np.ones((H, W), np.float32))
    path = tmp_path / 'd.npy'
    for what, data in ((r"not a \.npy file \(it starts with b'<html>\\n<'\)",
                        b'<html>\n<body>not found</body>'),
                       (r'a \.npz archive \(numpy\.savez\)', archive.getvalue()),
                       (r'empty \(0 bytes\)', b'')):
        path.write_bytes(data)
        with pytest.raises(OSError, match=(
                rf"^Cannot read depth file .*d\.npy \(id 'x', listed in list\.txt\): {what}; "
                r'expected one \(H, W\) array saved with numpy\.save$')):
            load('depth', dict(path=str(path), encoding='depth_npy'))
    np.save(path, np.full((H, W), 2.5, np.float32))  # the same path with a .npy: read
    assert load('depth', dict(path=str(path), encoding='depth_npy'))[0, 0] == 2.5


@pytest.mark.parametrize('array,problem', [
    (np.array([['a', 'b']]), 'numeric'), (np.zeros((0, 0), np.float32), 'non-empty'),
    (np.zeros((H, W, 2), np.float32), 'non-empty')])
def test_depth_and_labelmap_arrays_of_the_wrong_kind(tmp_path, array, problem):
    path = str(tmp_path / 'd.npy')
    np.save(path, array)
    with pytest.raises(ValueError, match=rf'Depth map must be a {problem}.*d\.npy'):
        load('depth', dict(path=path, encoding='depth_npy'))
    mat = str(tmp_path / 'ctx.mat')
    scipy.io.savemat(mat, {'LabelMap': array})
    with pytest.raises(ValueError, match=rf'LabelMap must be a {problem}.*ctx\.mat'):
        load('edge', dict(path=mat, encoding='context_edge_mat'))


@pytest.mark.parametrize('value, problem', [
    (3.7, 'must hold whole class ids, got 3.7 at 1 pixel'),
    (np.nan, 'must hold whole class ids, got nan'),
    (-2.0, 'must hold class ids >= 0, got values from -2'),
    (1e30, 'must hold class ids >= 0, got values from 0.0 to 1e+30')])
def test_a_labelmap_of_fractions_or_negative_ids_names_the_file(tmp_path, value, problem):
    # the cast to int64 made them garbage ids (NaN: -2**63), with a warning naming no file
    labels = np.zeros((H, W))
    labels[0, 0] = value
    mat = str(tmp_path / 'ctx.mat')
    scipy.io.savemat(mat, {'LabelMap': labels})
    with pytest.raises(ValueError, match=rf'^LabelMap {re.escape(problem)}.*ctx\.mat'):
        load('edge', dict(path=mat, encoding='context_edge_mat'))


def test_split_list_with_bom_crlf_or_latin1(copy_root):
    root = copy_root('nyud')
    split = osp.join(root, 'gt_sets', 'val.txt')
    with open(split) as f:
        ids = f.read().split()
    with open(split, 'wb') as f:
        f.write(b'\xef\xbb\xbf' + '\r\n'.join(ids).encode() + b'\r\n')
    assert [d['img_id'] for d in NYUDv2MultiTaskDataset(data_root=root, split='val')] == ids
    with open(split, 'wb') as f:
        f.write('caf\xe9\n'.encode('latin-1'))
    with pytest.raises(ValueError, match=r"gt_sets/val\.txt' is not UTF-8 text"):
        NYUDv2MultiTaskDataset(data_root=root, split='val')


# ------------------------------------------------------------------------- label PNGs
@pytest.mark.parametrize('encoding', ['semseg_png', 'nyud_semseg_png'])
def test_label_png_without_num_classes_names_the_task_and_file(tmp_path, encoding):
    """A new dataset's sample_info that gives a label PNG no num_classes (the values are
    checked against it) is named with the task and the file, not a bare KeyError."""
    path = str(tmp_path / 'occ.png')
    Image.fromarray(np.array([[0, 1], [2, 255]], np.uint8)).save(path)
    with pytest.raises(ValueError, match=rf"ann_info\['occupancy'\] has no 'num_classes' "
                       rf"\(encoding '{encoding}'.*occ\.png \(id 'x', listed in list\.txt\)"):
        load('occupancy', dict(path=path, encoding=encoding))


def test_label_values_out_of_range_name_their_task(tmp_path):
    path = str(tmp_path / 'occ.png')
    labels = np.zeros((H, W), np.uint8)
    labels[0, :3] = 1, 3, 255
    Image.fromarray(labels).save(path)
    with pytest.raises(ValueError, match=r'occupancy label values \[3\] outside 0\.\.2 and 255'):
        load('occupancy', dict(path=path, encoding='semseg_png', num_classes=3))
    np.testing.assert_array_equal(
        load('occupancy', dict(path=path, encoding='semseg_png', num_classes=4)), labels)


def test_nyud_semseg_png_value_0_is_unlabelled_and_the_rest_shift_down(tmp_path):
    """NYUD's PNG value v in 1..40 is class v - 1; 0 (unlabelled) becomes the ignore value,
    never class 0 (wall)."""
    path = str(tmp_path / 'seg.png')
    raw = np.ones((H, W), np.uint8)
    raw[0, :4] = 0, 1, 2, 40
    Image.fromarray(raw).save(path)
    seg = load('semseg', dict(path=path, encoding='nyud_semseg_png', num_classes=40))
    exp = np.zeros((H, W), np.uint8)
    exp[0, :4] = 255, 0, 1, 39
    np.testing.assert_array_equal(seg, exp)


@pytest.mark.parametrize('encoding', ['semseg_png', 'nyud_semseg_png'])
def test_more_classes_than_uint8_maps_hold_is_refused(tmp_path, encoding):
    """The maps are uint8 with 255 = ignore: with 300 classes, label 299 became 43 (or 42) and
    256 became 0 (or the ignore value) without a word."""
    path = str(tmp_path / 'occ.png')
    labels = np.ones((H, W), np.uint16)
    labels[0, :2] = 299, 256
    Image.fromarray(labels).save(path)
    with pytest.raises(ValueError, match=rf"ann_info\['occupancy'\]\['num_classes'\] is 300; "
                       rf"encoding '{encoding}' holds 1\.\.255 classes.*occ\.png \(id 'x'"):
        load('occupancy', dict(path=path, encoding=encoding, num_classes=300))
    labels[0, :2] = 254, 255
    Image.fromarray(labels.astype(np.uint8)).save(path)
    np.testing.assert_array_equal(
        load('occupancy', dict(path=path, encoding='semseg_png', num_classes=255)), labels)


# ------------------------------------------------------ normals, edge, saliency PNG kinds
def test_normals_of_another_size_are_resized_bicubic_and_labels_nearest():
    """A step 0 -> 1 between two columns widened 4x: output column 3 samples x = 0.375, where
    the cubic kernel (a = -0.75, cv2's) weighs the four neighbours 0, 0, 1, 1 with
    w(1.375), w(0.375), w(0.625), w(1.625): 0.42627 - 0.06592 = 0.36035 (linear: 0.375)."""
    step = np.zeros((2, 2, 3), np.float32)
    step[:, 1, 0] = 1
    with pytest.warns(UserWarning, match=r'normals annotation n\.png .*\(bicubic\)'):
        normals = fit_to_size('normals', step, (2, 8), 'n.png')
    assert normals.shape == (2, 8, 3) and normals.dtype == np.float32
    assert normals[0, 3, 0] == pytest.approx(0.36035, abs=1e-4)
    assert normals[0, 4, 0] == pytest.approx(1 - 0.36035, abs=1e-4)
    labels = np.array([[0, 1], [0, 1]], np.uint8)
    with pytest.warns(UserWarning, match=r'\(nearest\)'):
        seg = fit_to_size('semseg', labels, (2, 8), 's.png')
    np.testing.assert_array_equal(seg, np.repeat(labels, 4, axis=1))


def _png(tmp_path, arr, name='m.png'):
    path = str(tmp_path / name)
    Image.fromarray(arr).save(path)
    return path


@pytest.mark.parametrize('task,encoding,arr,what', [
    # a grayscale "normals" map became (v, v, v): 200 -> (0.569, 0.569, 0.569)
    ('normals', 'normals_png', np.full((H, W), 200, np.uint8), "8-bit RGB PNG, got mode 'L'"),
    ('normals', 'normals_png', np.full((H, W), 1000, np.uint16),
     "8-bit RGB PNG, got mode 'I;16'"),
    # 16-bit maps were clipped at 255 by PIL's conversion to 'L': 1000 -> edge 1.0, sal 1
    ('edge', 'edge_png', np.full((H, W), 1000, np.uint16),
     r"8-bit grayscale PNG \(values 0\.\.255\), got mode 'I;16'"),
    ('sal', 'sal_png', np.full((H, W), 1000, np.uint16),
     r"8-bit grayscale PNG \(values 0\.\.255\), got mode 'I;16'"),
])
def test_png_of_the_wrong_kind_names_the_file(tmp_path, task, encoding, arr, what):
    path = _png(tmp_path, arr)
    with pytest.raises(ValueError, match=rf"{task} map must be an {what}: .*m\.png \(id 'x'"):
        load(task, dict(path=path, encoding=encoding))


def test_normals_png_colour_kinds_decode_exactly(tmp_path):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 0, 128, 255
    rgb[0, 0] = 17, 200, 64
    exp = 2 * rgb.astype(np.float64) / 255 - 1
    rgba = np.concatenate([rgb, np.full((H, W, 1), 9, np.uint8)], axis=-1)
    for arr in (rgb, rgba):  # the alpha channel is not part of the vector
        n = load('normals', dict(path=_png(tmp_path, arr), encoding='normals_png'))
        assert n.dtype == np.float32 and n.shape == (H, W, 3)
        np.testing.assert_allclose(n, exp, atol=1e-6)
    palette = Image.fromarray(rgb).quantize(colors=4, method=Image.Quantize.MAXCOVERAGE)
    palette.save(str(tmp_path / 'p.png'))
    n = load('normals', dict(path=str(tmp_path / 'p.png'), encoding='normals_png'))
    np.testing.assert_allclose(
        n, 2 * np.asarray(palette.convert('RGB'), np.float64) / 255 - 1, atol=1e-6)


def test_edge_and_saliency_png_kinds_decode_to_their_values(tmp_path):
    """v / 255 of 8-bit grayscale; a 1-bit PNG (PIL mode '1', stored 0/1) means 0/255, as it
    displays: its edges are 1.0, not 1/255 (see docs/differences.md)."""
    gray = np.zeros((H, W), np.uint8)
    gray[0, :4] = [0, 51, 128, 255]
    edge = load('edge', dict(path=_png(tmp_path, gray), encoding='edge_png'))
    assert edge.dtype == np.float32 and edge.shape[:2] == (H, W)
    np.testing.assert_allclose(edge[0, :4].ravel(), [0, 0.2, 128 / 255, 1.0], rtol=1e-6)
    bits = np.zeros((H, W), bool)
    bits[2, 3] = bits[5, 1] = True
    path = str(tmp_path / 'bits.png')
    Image.fromarray(bits).save(path)
    assert Image.open(path).mode == '1'
    edge = load('edge', dict(path=path, encoding='edge_png'))
    np.testing.assert_array_equal(edge.reshape(H, W), bits.astype(np.float32))
    sal = load('sal', dict(path=path, encoding='sal_png'))
    np.testing.assert_array_equal(sal.reshape(H, W), bits.astype(np.float32))


@pytest.mark.parametrize('dtype', [np.uint16, np.int32, bool])
def test_integer_depth_is_refused(tmp_path, dtype):
    """A uint16 Kinect map (millimetres) was taken for metres: 3000 became 3000 m."""
    path = str(tmp_path / 'd.npy')
    np.save(path, np.full((H, W), 3000).astype(dtype))
    with pytest.raises(ValueError, match=rf'Depth map has dtype {np.dtype(dtype)}, expected '
                       r"floating-point metres .*d\.npy \(id 'x'"):
        load('depth', dict(path=path, encoding='depth_npy'))
    np.save(path, np.full((H, W), 3.25, np.float16))  # half precision is fine
    depth = load('depth', dict(path=path, encoding='depth_npy'))
    assert depth.dtype == np.float32 and (depth == 3.25).all()


def test_map_with_rows_and_columns_swapped_is_refused(tmp_path):
    """A (W, H) map for an (H, W) image was resized to (H, W) with a warning: every label
    stretched to another place (depth (10, 8) -> (8, 10))."""
    path = str(tmp_path / 'd.npy')
    np.save(path, np.ones((W, H), np.float32))
    with pytest.raises(ValueError, match=r'depth annotation .*d\.npy has size \(10, 8\), its '
                       r'image \(8, 10\): rows and columns are swapped'):
        load('depth', dict(path=path, encoding='depth_npy'))
    mat = str(tmp_path / 'ctx.mat')
    _write_labelmap(mat, np.ones((W, H)))
    with pytest.raises(ValueError, match=r'Context LabelMap .*ctx\.mat has size \(10, 8\), '
                       r'its image \(8, 10\): rows and columns are swapped'):
        load('edge', dict(path=mat, encoding='context_edge_mat'))
    np.save(path, np.full((H // 2, W // 2), 2.0, np.float32))  # another size: resized
    with pytest.warns(UserWarning, match=r'has size \(4, 5\) but its image has size \(8, 10\)'):
        assert (load('depth', dict(path=path, encoding='depth_npy')) == 2).all()


def test_part_mask_of_another_size_names_the_file(tmp_path):
    """A part mask whose size differs from the person's ended in numpy's bare IndexError
    ('boolean index did not match'), naming no file."""
    p = str(tmp_path / 'parts.mat')
    write_parts_mat(p, [('person', 15, _box(0, 8, 0, 4), [('head', np.ones((3, 3), bool))])])
    with pytest.raises(ValueError, match=r"PASCAL-Part mask of part 'head' has size \(3, 3\), "
                       r"the person masks \(8, 10\): .*parts\.mat \(id 'x'"):
        load('human_parts', dict(path=p, encoding='pascal_parts_mat'))


def test_16_bit_image_is_refused_and_8_bit_kinds_load(tmp_path):
    """PIL's conversion of a 16-bit image to RGB clipped it at 255 (1000 -> 255, 100 -> 100)."""
    path = str(tmp_path / 'im.png')
    Image.fromarray(np.full((H, W), 1000, np.uint16)).save(path)
    res = dict(img_path=path, img_id='x', split_file='list.txt')
    with pytest.raises(ValueError, match=r"Image must have 8 bits per channel, got mode "
                       r"'I;16': .*im\.png \(id 'x', listed in list\.txt\)"):
        LoadMultiTaskImage()(dict(res))
    gray = np.arange(H * W, dtype=np.uint8).reshape(H, W)
    Image.fromarray(gray).save(path)
    img = LoadMultiTaskImage()(dict(res))['img']
    assert img.dtype == np.float32 and img.shape == (H, W, 3)
    np.testing.assert_array_equal(img, np.repeat(gray[..., None], 3, axis=-1))


def test_nyud_depth_in_other_units_than_metres_is_refused(copy_root):
    """A float depth map in millimetres passed every check (the bound was 1e5 m), so depth
    RMSE came out 1000 times the metres' one; NYUD's own bound is 100 m (Kinect: ~10 m)."""
    root = copy_root('nyud')
    i = _first_id(root, 'gt_sets/val.txt')
    path = osp.join(root, 'depth', f'{i}.npy')
    metres = np.load(path)
    assert 0 < metres.max() < 100
    np.save(path, metres * 1000)
    pipeline = [dict(type='LoadMultiTaskImage'), dict(type='LoadMultiTaskAnnotations')]
    ds = NYUDv2MultiTaskDataset(data_root=root, split='val', pipeline=pipeline)
    n = int((metres * 1000 > 100).sum())
    with pytest.raises(ValueError, match=rf'Depth map has {n} > 100 m pixel\(s\) \(expected '
                       rf"metres >= 0, 0 = no measurement\): .*{i}\.npy \(id '{i}'"):
        ds[0]
    ds = NYUDv2MultiTaskDataset(data_root=root, split='val', pipeline=pipeline, max_depth=1e5)
    np.testing.assert_array_equal(ds[0]['gt_depth'], (metres * 1000).astype(np.float32))
    for bad in (0, float('nan'), 'abc', None, True):  # 'abc' and None: float()'s bare error
        with pytest.raises(ValueError, match='max_depth must be a positive number of metres, '
                           rf'got {re.escape(repr(bad))}'):
            NYUDv2MultiTaskDataset(data_root=root, split='val', max_depth=bad)
    with pytest.raises(ValueError, match=r"tasks: \['depth'\] listed more than once in "
                       r"\['depth', 'semseg', 'depth'\]"):
        NYUDv2MultiTaskDataset(data_root=root, split='val', tasks=['depth', 'semseg', 'depth'])


# --------------------------------------------------------------- a decoder of one's own
@pytest.fixture
def own_decoder():
    """An encoding ``own_map`` whose decoder returns ``out['map']`` (a new dataset's decoder,
    docs/how_to_add_a_dataset.md)."""
    from mmmt.registry import ANNOTATION_DECODERS
    out = {}
    ANNOTATION_DECODERS.register_module('own_map', module=lambda path, info, ctx: out['map'],
                                        force=True)
    yield out
    ANNOTATION_DECODERS.module_dict.pop('own_map', None)


@pytest.mark.parametrize('arr, problem', [
    (np.full((H, W), 0.6, np.float32), r'values \[0\.6\d*\] are no class index'),  # was 0
    (np.full((H, W), np.nan, np.float32), r'values \[nan\] are no class index'),
    (np.full((H, W), 300, np.uint16), r'values \[300\] are no class index'),
    (np.full((H, W), -1, np.int32), r'values \[-1\] are no class index'),
    (np.zeros(W, np.uint8), r'numpy array, got shape \(10,\)'),
    ([[0] * W] * H, 'numpy array, got list'),
    (None, 'numpy array, got NoneType'),
])
def test_a_decoders_result_that_is_no_label_map_is_named(own_decoder, arr, problem):
    # packing casts class maps to int64: 0.6 became class 0, NaN a huge negative index, and
    # -1 or 300 reached the loss; a list or None was an AttributeError
    own_decoder['map'] = arr
    with pytest.raises(ValueError, match=r"^encoding 'own_map' of task 'semseg' for s\.png "
                       rf"\(id 'x', listed in list\.txt\): .*{problem}"):
        load('semseg', dict(path='s.png', encoding='own_map'))


def test_a_decoders_integral_labels_of_any_dtype_load(own_decoder):
    labels = np.array([0, 2, 255] * 30)[:H * W].reshape(H, W)
    for arr in (labels.astype(np.float32), labels.astype(np.int64), labels.astype(np.uint16)):
        own_decoder['map'] = arr
        np.testing.assert_array_equal(load('semseg', dict(path='s.png', encoding='own_map')),
                                      labels)
    own_decoder['map'] = np.full((H, W), 0.25, np.float32)  # a float task takes any value
    np.testing.assert_array_equal(load('edge', dict(path='e.png', encoding='own_map')), 0.25)


def test_a_decoders_channels_first_normals_are_named(own_decoder):
    """(3, H, W) went through the transforms as (H, W, C): "gt_normals has H channels"."""
    normals = np.zeros((H, W, 3), np.float32)
    normals[..., 2] = 1
    own_decoder['map'] = np.moveaxis(normals, -1, 0)
    with pytest.raises(ValueError, match=rf"^encoding 'own_map' of task 'normals' for n\.png "
                       rf".*: shape \(3, {H}, {W}\) is channels-first; a decoder returns "
                       r'\(H, W, 3\)'):
        load('normals', dict(path='n.png', encoding='own_map'))
    own_decoder['map'] = normals
    np.testing.assert_array_equal(load('normals', dict(path='n.png', encoding='own_map')),
                                  normals)


class _OwnDataset:
    """A dataset class of one's own (docs/how_to_add_a_dataset.md) whose ``sample_info`` gives
    ``ann(task, path)`` per selected task except ``skip``."""

    @staticmethod
    def build(root, tasks, ann=lambda task, path: dict(path=path, encoding='depth_npy'),
              skip=()):
        from mmmt.datasets import BaseMultiTaskDataset

        class OwnDataset(BaseMultiTaskDataset):
            SUPPORTED_TASKS = ('semseg', 'depth')
            SPLIT_FILE = 'list.txt'

            def sample_info(self, img_id):
                img = osp.join(self.data_root, f'{img_id}.png')
                return dict(img_path=img, ann_info={
                    t: ann(t, osp.join(self.data_root, f'{img_id}.npy')) for t in self.tasks
                    if t not in skip}, required_files=[img])

        (root / 'list.txt').write_text('a\nb\n')
        for i in 'ab':
            Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(root / f'{i}.png')
        return OwnDataset(data_root=str(root), tasks=tasks)


@pytest.mark.parametrize('kwargs, message', [
    (dict(skip=('depth', )), r"^OwnDataset\.sample_info\('a'\) gives no ann_info entry for "
     r"task\(s\) \['depth'\] of the selected tasks \['semseg', 'depth'\]"),
    (dict(ann=lambda t, p: dict(path=p, encoding='depth_npyy')),
     r"^OwnDataset\.sample_info\('a'\): encoding 'depth_npyy' of task 'semseg' is not a "
     r"registered annotation decoder; did you mean 'depth_npy'\? \(registered: .*edge_png"),
    (dict(ann=lambda t, p: dict(file=p, encoding='depth_npy')),
     r"^OwnDataset\.sample_info\('a'\): ann_info\['semseg'\] needs path \(dict"),
    (dict(ann=lambda t, p: p), r"ann_info\['semseg'\] needs path and encoding \(dict\(path=\.\.\., "
     r"encoding=\.\.\.\)\), got '.*a\.npy'"),
])
def test_an_ann_info_the_loader_cannot_read_is_refused_at_construction(tmp_path, kwargs,
                                                                       message):
    # found when the first sample was loaded (a KeyError or ValueError in a dataloader
    # worker, after the model was built); now at construction, naming the class and sample
    with pytest.raises(UserInputError, match=message):
        _OwnDataset.build(tmp_path, ['semseg', 'depth'], **kwargs)
    # a task that is not selected needs no entry
    assert len(_OwnDataset.build(tmp_path, ['semseg'], skip=('depth', ))) == 2


def _write_anno(path, objects):
    anno = _struct([('imname', 'O'), ('objects', 'O')], [('x.jpg', objects)])
    scipy.io.savemat(path, {'anno': anno})


@pytest.mark.parametrize('case', ['no_parts_field', 'empty_class_ind', 'part_without_mask'])
def test_a_part_file_missing_a_field_names_the_file(tmp_path, case):
    """Each was numpy's bare IndexError ('invalid index'), naming no file."""
    p = str(tmp_path / 'parts.mat')
    mask = _box(0, 4, 0, 4).astype(np.uint8)
    if case == 'no_parts_field':
        _write_anno(p, _struct([('class', 'O'), ('class_ind', 'O'), ('mask', 'O')],
                               [('person', np.array([[15.0]]), mask)]))
    elif case == 'empty_class_ind':
        _write_anno(p, _struct([('class', 'O'), ('class_ind', 'O'), ('mask', 'O'),
                                ('parts', 'O')], [('person', np.zeros((0, 0)), mask,
                                                   np.zeros((0, 0)))]))
    else:
        parts = _struct([('part_name', 'O')], [('head', )])
        _write_anno(p, _struct([('class', 'O'), ('class_ind', 'O'), ('mask', 'O'),
                                ('parts', 'O')], [('person', np.array([[15.0]]), mask, parts)]))
    with pytest.raises(ValueError, match=r"Unexpected PASCAL-Part structure .* in "
                       r".*parts\.mat \(id 'x'.*: IndexError"):
        load('human_parts', dict(path=p, encoding='pascal_parts_mat'))
