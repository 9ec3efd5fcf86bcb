"""Both synthetic layouts through the dataset classes with the real train and test pipelines."""
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from mmmt.datasets import (PASCAL_NORMALS_VALID_CONTEXT_IDS, NYUDv2MultiTaskDataset,
                           PascalContextMultiTaskDataset)
from mmmt.registry import DATASETS
from mmmt.structures import MultiTaskDataSample

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
META_KEYS = {'img_path', 'img_id', 'ori_shape', 'img_shape', 'pad_shape', 'img_padding_size',
             'flip', 'flip_direction', 'scale_factor', 'tasks'}


def _crop_back(t: torch.Tensor, pad) -> torch.Tensor:
    """What mmseg's BaseSegmentor.postprocess_result does with img_padding_size."""
    left, right, top, bottom = pad
    h, w = t.shape[-2:]
    return t[..., top:h - bottom, left:w - right]


def _check_task_values(task: str, gt: torch.Tensor, n_sem: int) -> None:
    """Dtype, channel count and value range of one packed gt (data-sample conventions)."""
    g = gt.numpy()
    if task in ('semseg', 'human_parts'):
        assert gt.dtype == torch.int64 and g.shape[0] == 1
        n = n_sem if task == 'semseg' else 7
        vals = set(np.unique(g).tolist())
        assert vals <= set(range(n)) | {255}, (task, vals)
        return
    assert gt.dtype == torch.float32
    if task == 'normals':
        assert g.shape[0] == 3
        ign = (g == 255).all(0)
        assert ((g == 255).any(0) == ign).all(), 'normals ignore must cover all 3 channels'
        valid = g[:, ~ign]
        assert np.abs(valid).max() <= 1.0 + 1e-6
        assert (np.linalg.norm(valid, axis=0) > 0).all(), 'zero normals must be ignored'
        return
    assert g.shape[0] == 1
    v = g[g != 255]
    if task == 'depth':
        assert (v > 0).all() and (v < 100).all(), 'depth 0 must have become 255'
    elif task == 'edge':
        assert ((v >= 0) & (v <= 1)).all()
    elif task == 'sal':
        assert set(np.unique(v).tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize('name,n_sem,crop', [('nyud', 40, (448, 576)), ('pascal', 21, (512, 512))])
def test_train_pipeline(synthetic_roots, name, n_sem, crop, dataset_cfg):
    np.random.seed(0)
    ds = DATASETS.build(dataset_cfg(name, 'train', synthetic_roots[name]))
    assert len(ds) == 4
    seen_flip = set()
    for i in range(len(ds)):
        for _ in range(3):
            out = ds[i]
            x, s = out['inputs'], out['data_samples']
            assert isinstance(s, MultiTaskDataSample)
            assert x.dtype == torch.float32 and tuple(x.shape) == (3, ) + crop
            assert META_KEYS <= set(s.metainfo), META_KEYS - set(s.metainfo)
            assert s.tasks == list(ds.tasks) == list(ds.metainfo['tasks'])
            assert s.pad_shape == crop and s.ori_shape == (48, 64)
            pad = s.img_padding_size
            h, w = s.img_shape
            assert h + pad[2] + pad[3] == crop[0] and w + pad[0] + pad[1] == crop[1]
            assert pad[2] == (crop[0] - h) // 2 and pad[0] == (crop[1] - w) // 2
            seen_flip.add(s.flip)
            # padded image area is the mean colour, i.e. 0 after normalisation
            mask = np.ones(crop, dtype=bool)
            mask[pad[2]:crop[0] - pad[3], pad[0]:crop[1] - pad[1]] = False
            assert (x.numpy()[:, mask] == 0).all()
            for task in ds.tasks:
                g = s.get_gt(task).data
                assert tuple(g.shape[1:]) == crop, task
                _check_task_values(task, g, n_sem)
                # padding is ignored for every task (depth/normals fill 0 -> 255)
                assert (g.numpy()[:, mask] == 255).all(), task
    assert seen_flip == {True, False}


@pytest.mark.parametrize('name,n_sem,crop', [('nyud', 40, (448, 576)), ('pascal', 21, (512, 512))])
def test_test_pipeline(synthetic_roots, name, n_sem, crop, dataset_cfg):
    ds = DATASETS.build(dataset_cfg(name, 'val', synthetic_roots[name]))
    assert len(ds) == 3
    for i in range(len(ds)):
        out = ds[i]
        x, s = out['inputs'], out['data_samples']
        assert tuple(x.shape) == (3, ) + crop
        assert s.flip is False and s.scale_factor == (1.0, 1.0)
        assert s.img_shape == s.ori_shape
        # the image is padded, centred; cropping back gives the normalised original image
        raw = np.asarray(Image.open(s.img_path).convert('RGB'), np.float32)
        expect = ((raw / 255.0 - MEAN) / STD).transpose(2, 0, 1)
        np.testing.assert_allclose(_crop_back(x, s.img_padding_size).numpy(), expect,
                                   atol=1e-5)
        left, right, top, bottom = s.img_padding_size
        assert top == (crop[0] - raw.shape[0]) // 2 and left == (crop[1] - raw.shape[1]) // 2
        # labels stay at the original size
        for task in ds.tasks:
            g = s.get_gt(task).data
            assert tuple(g.shape[1:]) == raw.shape[:2], task
            _check_task_values(task, g, n_sem)


def test_nyud_decoding(synthetic_roots, dataset_cfg):
    """Each NYUD modality decodes as the reference decodes it (independent re-decoding of the
    files)."""
    root = synthetic_roots['nyud']
    ds = DATASETS.build(dataset_cfg('nyud', 'val', root))
    out = ds[0]
    s = out['data_samples']
    i = s.img_id
    seg = np.asarray(Image.open(osp.join(root, 'segmentation', f'{i}.png'))).astype(np.int64)
    exp = np.where(seg == 0, 255, seg - 1)
    np.testing.assert_array_equal(s.gt_semseg.data[0].numpy(), exp)
    depth = np.load(osp.join(root, 'depth', f'{i}.npy'))
    np.testing.assert_array_equal(s.gt_depth.data[0].numpy(), np.where(depth == 0, 255, depth))
    nrm = np.asarray(Image.open(osp.join(root, 'normals', f'{i}.png')), np.float32)
    np.testing.assert_allclose(s.gt_normals.data.numpy().transpose(1, 2, 0),
                               2 * nrm / 255 - 1, atol=1e-6)
    edge = np.asarray(Image.open(osp.join(root, 'edge', f'{i}.png')), np.float32)
    np.testing.assert_allclose(s.gt_edge.data[0].numpy(), edge / 255, atol=1e-7)


def test_pascal_decoding(synthetic_roots, dataset_cfg):
    """PASCAL semseg/sal/normals-mask/edge decode as the reference decodes them."""
    root = synthetic_roots['pascal']
    ds = DATASETS.build(dataset_cfg('pascal', 'val', root))
    for k in range(len(ds)):
        s = ds[k]['data_samples']
        i = s.img_id
        seg = np.asarray(Image.open(osp.join(root, 'semseg', 'pascal-context', f'{i}.png')))
        np.testing.assert_array_equal(s.gt_semseg.data[0].numpy(), seg)
        sal = np.asarray(Image.open(osp.join(root, 'sal_distill', f'{i}.png')), np.float32)
        np.testing.assert_array_equal(s.gt_sal.data[0].numpy(), (sal / 255 > 0.5))
        lm = scipy.io.loadmat(osp.join(root, 'pascal-context', 'trainval',
                                       f'{i}.mat'))['LabelMap']
        valid = np.isin(lm, PASCAL_NORMALS_VALID_CONTEXT_IDS)
        n = s.gt_normals.data.numpy()
        assert (n[:, ~valid] == 255).all()
        assert (np.abs(n[:, valid]) <= 1).all()
        # every edge pixel sits on a Context label change (4-neighbourhood)
        e = s.gt_edge.data[0].numpy() > 0
        pad = np.pad(lm, 1, mode='edge')
        change = ((pad[1:-1, 1:-1] != pad[:-2, 1:-1]) | (pad[1:-1, 1:-1] != pad[2:, 1:-1]) |
                  (pad[1:-1, 1:-1] != pad[1:-1, :-2]) | (pad[1:-1, 1:-1] != pad[1:-1, 2:]))
        assert e.any() and not (e & ~change).any()
        # parts only on person pixels (semseg 15, or its 255 void border)
        hp = s.gt_human_parts.data[0].numpy()
        if (hp != 255).any():
            assert ((hp == 0) | np.isin(seg, (15, 255))).all()


def test_metainfo():
    assert len(NYUDv2MultiTaskDataset.METAINFO['classes']) == 40
    assert len(NYUDv2MultiTaskDataset.METAINFO['palette']) == 40
    assert NYUDv2MultiTaskDataset.METAINFO['classes'][:3] == ('wall', 'floor', 'cabinet')
    assert NYUDv2MultiTaskDataset.METAINFO['classes'][-1] == 'otherprop'
    meta = PascalContextMultiTaskDataset.METAINFO
    assert len(meta['classes']) == 21 and len(meta['palette']) == 21
    assert meta['classes'][0] == 'background' and meta['classes'][15] == 'person'
    assert meta['palette'][1] == (128, 0, 0)  # the standard VOC colour map
    assert meta['part_classes'] == ('background', 'head', 'torso', 'uarm', 'larm', 'uleg',
                                    'lleg')


def test_voc_palette_is_mmsegs():
    from mmmt.utils import register_all_modules
    register_all_modules(init_default_scope=False)  # mmseg.utils needs the mmcv placeholder
    from mmseg.utils import get_palette
    assert PascalContextMultiTaskDataset.METAINFO['palette'] == \
        tuple(tuple(c) for c in get_palette('voc'))
    # NYUD continues the same colour map past VOC's 21 entries
    assert NYUDv2MultiTaskDataset.METAINFO['palette'][:20] == \
        PascalContextMultiTaskDataset.METAINFO['palette'][1:]


def test_task_selection(copy_root, dataset_cfg):
    root = copy_root('nyud')
    shutil.rmtree(osp.join(root, 'segmentation'))  # not needed when semseg is not selected
    ds = NYUDv2MultiTaskDataset(data_root=root, split='val', tasks=['depth'],
                                pipeline=dataset_cfg('nyud', 'val', root)['pipeline'])
    s = ds[0]['data_samples']
    assert ds.metainfo['tasks'] == ['depth'] and s.tasks == ['depth']
    assert s.has_gt('depth') and not s.has_gt('semseg') and not s.has_gt('normals')
    with pytest.raises(ValueError, match='human_parts'):
        NYUDv2MultiTaskDataset(data_root=root, tasks=['depth', 'human_parts'])
    with pytest.raises(FileNotFoundError, match='segmentation'):
        NYUDv2MultiTaskDataset(data_root=root, split='val', tasks=['semseg'])


def test_a_task_nobody_defined_stops_the_dataset(tmp_path):
    # a dataset that lists a task but whose config does not import the task's definition
    # (custom_imports without the tasks module): the pipeline would pad it with 255, pack it
    # as float and draw it as a probability; the dataset names the task instead
    from mmmt.utils.errors import UserInputError

    class AlbedoDataset(NYUDv2MultiTaskDataset):
        SUPPORTED_TASKS = NYUDv2MultiTaskDataset.SUPPORTED_TASKS + ('albedo', )

    with pytest.raises(UserInputError) as info:
        AlbedoDataset(data_root=str(tmp_path), tasks=['depth', 'albedo'])
    assert str(info.value).startswith(
        "AlbedoDataset: task(s) ['albedo'] are not registered (registered: semseg, depth, ")
    assert 'register_task' in str(info.value) and 'custom_tasks' in str(info.value)


def test_pascal_voc12_semseg_first(copy_root, dataset_cfg):
    """semseg/VOC12/<id>.png takes precedence over semseg/pascal-context/<id>.png."""
    root = copy_root('pascal')
    ds = PascalContextMultiTaskDataset(data_root=root, split='val', tasks=['semseg'])
    i = ds.get_data_info(0)['img_id']
    src = osp.join(root, 'semseg', 'pascal-context', f'{i}.png')
    h, w = np.asarray(Image.open(src)).shape
    os.makedirs(osp.join(root, 'semseg', 'VOC12'))
    Image.fromarray(np.full((h, w), 7, np.uint8)).save(osp.join(root, 'semseg', 'VOC12',
                                                                f'{i}.png'))
    ds = PascalContextMultiTaskDataset(
        data_root=root, split='val', tasks=['semseg'],
        pipeline=dataset_cfg('pascal', 'val', root)['pipeline'])
    s = ds[0]['data_samples']
    assert (s.gt_semseg.data == 7).all()
