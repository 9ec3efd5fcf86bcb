"""Cityscapes: the label-id and disparity decoders, the sky option, the dataset, the synthetic
layout, the metric (hand computations) and the dataset checker."""
import json
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from mmmt.datasets import CityscapesMultiTaskDataset
from mmmt.datasets.cityscapes import REFERENCE_SKY_LABEL_ID
from mmmt.datasets.transforms import AddIgnoreRegions, LoadMultiTaskAnnotations, LoadMultiTaskImage
from mmmt.evaluation.metrics import MultiTaskMetric
from mmmt.testing.synthetic_cityscapes import encode_disparity, generate_cityscapes
from tests.tool_loader import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

CONFIG = osp.join(REPO, 'configs', '_base_', 'datasets', 'cityscapes_mt.py')
LOAD = [LoadMultiTaskImage(), LoadMultiTaskAnnotations()]
# cityscapesScripts' labels.py, written out: train id of raw label ids 0..33 (255 = void)
TRAIN_ID_OF = [255, 255, 255, 255, 255, 255, 255, 0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5,
               255, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 255, 255, 16, 17, 18]


def write_sample(root, split, city, stem, label_ids, disparity_raw, img=None):
    """One sample of the real layout from raw arrays (labelIds uint8, disparity uint16)."""
    h, w = label_ids.shape
    img = np.full((h, w, 3), 128, np.uint8) if img is None else img
    files = dict(leftImg8bit=('_leftImg8bit.png', img),
                 gtFine=('_gtFine_labelIds.png', label_ids.astype(np.uint8)),
                 disparity=('_disparity.png', disparity_raw.astype(np.uint16)))
    for folder, (suffix, arr) in files.items():
        sub = osp.join(root, folder, split, city)
        os.makedirs(sub, exist_ok=True)
        assert cv2.imwrite(osp.join(sub, stem + suffix), arr[..., ::-1] if arr.ndim == 3
                           else arr)
    return f'{city}/{stem}'


@pytest.fixture
def hand_layout(tmp_path):
    """Two val samples: every label id 0..33 once, and a sky / rail-track sample."""
    root = str(tmp_path / 'cityscapes')
    ids = np.arange(34, dtype=np.uint8).reshape(2, 17)
    write_sample(root, 'val', 'lindau', 'lindau_000000_000019', ids,
                 np.full(ids.shape, 257, np.uint16))
    # row 0: sky (23) with raw disparity 513 (2 px); row 1: rail track (10) with 25601 (100 px)
    labels = np.array([[23, 23, 7], [10, 10, 7]], np.uint8)
    raw = np.array([[513, 513, 0], [25601, 25601, 1]], np.uint16)
    write_sample(root, 'val', 'munster', 'munster_000001_000019', labels, raw)
    return root


def test_label_ids_map_to_the_19_train_ids(hand_layout):
    ds = CityscapesMultiTaskDataset(data_root=hand_layout, split='val', tasks=['semseg'],
                                    pipeline=LOAD)
    assert ds.get_data_info(0)['img_id'] == 'lindau/lindau_000000_000019'
    sem = ds[0]['gt_semseg']
    assert sem.dtype == np.uint8
    np.testing.assert_array_equal(sem.ravel(), TRAIN_ID_OF)
    assert len(ds.metainfo['classes']) == 19 and ds.metainfo['classes'][10] == 'sky'
    assert len(ds.metainfo['palette']) == 19


def test_disparity_decoding_and_invalid_pixels(hand_layout):
    ds = CityscapesMultiTaskDataset(data_root=hand_layout, split='val', tasks=['depth'],
                                    sky_label_id=None, pipeline=LOAD)
    disp = ds[1]['gt_depth']
    assert disp.dtype == np.float32
    # (d - 1) / 256 for d > 0; d = 0 (no match) and d = 1 (zero disparity) give 0 = invalid
    np.testing.assert_array_equal(disp, [[2.0, 2.0, 0.0], [100.0, 100.0, 0.0]])
    ignored = AddIgnoreRegions()(dict(gt_depth=disp))['gt_depth']
    np.testing.assert_array_equal(ignored, [[2, 2, 255], [100, 100, 255]])


@pytest.mark.parametrize('sky_label_id,expected', [
    (None, [[2.0, 2.0, 0.0], [100.0, 100.0, 0.0]]),
    (23, [[0.0, 0.0, 0.0], [100.0, 100.0, 0.0]]),  # the default: sky's label id
    (REFERENCE_SKY_LABEL_ID, [[2.0, 2.0, 0.0], [0.0, 0.0, 0.0]]),  # the reference: rail track
])
def test_sky_option(hand_layout, sky_label_id, expected):
    kwargs = {} if sky_label_id == 23 else dict(sky_label_id=sky_label_id)
    ds = CityscapesMultiTaskDataset(data_root=hand_layout, split='val', pipeline=LOAD,
                                    **kwargs)
    out = ds[1]
    np.testing.assert_array_equal(out['gt_depth'], expected)
    np.testing.assert_array_equal(out['gt_semseg'], [[10, 10, 0], [255, 255, 0]])


@pytest.mark.parametrize('split', ['train', 'val'])
def test_the_config_resizes_the_image_only_to_512x1024_and_drops_sky(hand_layout, split):
    """The shipped data config: the image (2 x 3 here) is resized to 512 x 1024, labels keep
    the original size, and sky (label id 23) has no disparity, in training as in testing."""
    cfg = Config.fromfile(CONFIG)
    loader = cfg.train_dataloader if split == 'train' else cfg.val_dataloader
    ds_cfg = dict(loader.dataset, data_root=hand_layout, split='val')
    ds_cfg.pop('type')
    out = CityscapesMultiTaskDataset(**ds_cfg)[1]
    assert tuple(out['inputs'].shape) == (3, 512, 1024)
    sample = out['data_samples']
    assert sample.ori_shape == (2, 3)
    # sky pixels ignored (255), rail track (label id 10) keeps its 100 px
    np.testing.assert_array_equal(sample.gt_depth.data[0].numpy(),
                                  [[255, 255, 255], [100, 100, 255]])
    np.testing.assert_array_equal(sample.gt_semseg.data[0].numpy(), [[10, 10, 0], [255, 255, 0]])


def test_bad_files_name_the_file(hand_layout):
    label = osp.join(hand_layout, 'gtFine', 'val', 'munster',
                     'munster_000001_000019_gtFine_labelIds.png')
    Image.fromarray(np.array([[40, 7, 7], [7, 7, 7]], np.uint8)).save(label)
    ds = CityscapesMultiTaskDataset(data_root=hand_layout, split='val', pipeline=LOAD)
    with pytest.raises(ValueError, match=r'label ids must be 0\.\.33.*\[40\].*munster_000001'):
        ds[1]
    os.remove(label)
    # depth alone still needs the label map while the sky option is on, and says which
    with pytest.raises(FileNotFoundError, match='munster_000001_000019_gtFine_labelIds.png'):
        CityscapesMultiTaskDataset(data_root=hand_layout, split='val', tasks=['depth'])
    assert len(CityscapesMultiTaskDataset(data_root=hand_layout, split='val', tasks=['depth'],
                                          sky_label_id=None)) == 2
    with pytest.raises(FileNotFoundError, match=r"leftImg8bit/train' of split 'train'"):
        CityscapesMultiTaskDataset(data_root=hand_layout, split='train')


def test_an_8_bit_disparity_png_is_refused(hand_layout):
    # it decoded as disparities below 1 px (200 -> 0.78) without a word
    disparity = osp.join(hand_layout, 'disparity', 'val', 'munster',
                         'munster_000001_000019_disparity.png')
    Image.fromarray(np.full((2, 3), 200, np.uint8)).save(disparity)
    ds = CityscapesMultiTaskDataset(data_root=hand_layout, split='val', tasks=['depth'],
                                    sky_label_id=None, pipeline=LOAD)
    with pytest.raises(ValueError, match=r"disparity PNG must be 16-bit .*got mode 'L'.*"
                       r'munster_000001_000019_disparity\.png'):
        ds[1]


@pytest.mark.parametrize('sky', [23.9, -5, 300, True, '23'])
def test_sky_label_id_must_be_a_label_id(hand_layout, sky):
    # 23.9 was truncated to 23; -5 or 300 masked nothing
    with pytest.raises(ValueError, match=rf'sky_label_id: expected a Cityscapes label id .* '
                       rf'got {re.escape(repr(sky))}$'):
        CityscapesMultiTaskDataset(data_root=hand_layout, split='val', sky_label_id=sky)


def test_split_list_selects_samples(hand_layout, tmp_path):
    split = tmp_path / 'val_subset.txt'
    split.write_text('munster/munster_000001_000019\n')
    ds = CityscapesMultiTaskDataset(data_root=hand_layout, split='val', ann_file=str(split))
    assert len(ds) == 1 and ds.get_data_info(0)['img_id'] == 'munster/munster_000001_000019'
    split.write_text('munster_000001_000019\n')
    with pytest.raises(ValueError, match="'<city>/<id>'"):
        CityscapesMultiTaskDataset(data_root=hand_layout, split='val', ann_file=str(split))


def test_synthetic_layout_is_deterministic_and_loads(tmp_path):
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    splits = generate_cityscapes(a, 3, 2, seed=5, size=(32, 64))
    generate_cityscapes(b, 3, 2, seed=5, size=(32, 64))
    assert splits['val'] == ['frankfurt/frankfurt_000000_000049',
                             'frankfurt/frankfurt_000001_000059']
    for sub, _, names in os.walk(a):
        for name in names:
            with open(osp.join(sub, name), 'rb') as fa, \
                    open(osp.join(b, osp.relpath(sub, a), name), 'rb') as fb:
                assert fa.read() == fb.read(), name
    with pytest.raises(FileExistsError, match='not empty'):
        generate_cityscapes(a, 1, 1)
    ds = CityscapesMultiTaskDataset(data_root=a, split='train', pipeline=LOAD)
    assert [ds.get_data_info(i)['img_id'] for i in range(3)] == splits['train']
    out = ds[0]
    assert out['img'].shape == (32, 64, 3) and out['gt_semseg'].shape == (32, 64)
    assert set(np.unique(out['gt_semseg'])) <= set(range(19)) | {255}
    assert (out['gt_depth'] > 0).any() and out['gt_depth'].min() >= 0
    # the encoding round-trips within its 1/256 px resolution
    d = np.array([0.0, 0.3, 17.25, 120.0], np.float32)
    raw = encode_disparity(d)
    np.testing.assert_array_equal(raw, [0, 78, 4417, 30721])
    np.testing.assert_allclose(np.where(raw > 0, (raw - 1) / 256, 0), d, atol=1 / 512)


def test_metric_of_the_config_against_hand_computation():
    """19-class mIoU with 255 ignored, RMSE on 0 < gt < 80, delta_m vs (80 %, 1)."""
    cfg = Config.fromfile(CONFIG)
    metric = MultiTaskMetric(**{k: v for k, v in cfg.val_evaluator.items() if k != 'type'})
    metric.dataset_meta = dict(classes=CityscapesMultiTaskDataset.METAINFO['classes'])
    gt_sem = np.array([[[0, 0, 13, 13, 255]]])
    pred_sem = np.array([[[0, 13, 13, 13, 5]]])
    # depth: 255 ignored, 80 and 95 outside (0, 80), 79.5 and 2 and 10 counted
    gt_d = np.array([[[2.0, 10.0, 79.5, 80.0, 95.0, 255.0]]], np.float32)
    pred_d = np.array([[[3.0, 10.0, 77.5, 0.0, 0.0, 0.0]]], np.float32)
    metric.process({}, [dict(gt_semseg=dict(data=gt_sem), pred_semseg=dict(data=pred_sem),
                             gt_depth=dict(data=gt_d), pred_depth=dict(data=pred_d))])
    res = metric.compute_metrics(metric.results)
    # road: TP 1, union 2 (gt 2, pred 1); car: TP 2, union 3; the other 17 classes count 0
    miou = 100 * (1 / 2 + 2 / 3) / 19
    rmse = np.sqrt((1 + 0 + 4) / 3)
    assert res['semseg/mIoU'] == pytest.approx(miou)
    assert res['depth/rmse'] == pytest.approx(rmse)
    assert res['multi_task/delta_m'] == pytest.approx(
        100 * ((miou - 80) / 80 - (rmse - 1) / 1) / 2)


def test_checker_knows_the_layout(tmp_path, capsys):
    tool = load_tool('tools', 'dataset_converters', 'check_dataset')
    root = str(tmp_path / 'cs')
    generate_cityscapes(root, 2, 1, seed=0, size=(32, 64))
    assert tool.main(['cityscapes', root]) == 0
    out = capsys.readouterr().out
    assert 'train: 2 samples' in out
    assert 'train: warning: 2 samples, the standard split has 2975' in out
    label = osp.join(root, 'gtFine', 'val', 'frankfurt', 'frankfurt_000000_000039'
                     '_gtFine_labelIds.png')
    Image.fromarray(np.full((32, 64), 50, np.uint8)).save(label)
    os.remove(osp.join(root, 'disparity', 'train', 'bochum',
                       'bochum_000000_000029_disparity.png'))
    assert tool.main(['cityscapes', root]) == 1
    out = capsys.readouterr().out
    assert 'bochum_000000_000029_disparity.png' in out
    assert 'frankfurt_000000_000039_gtFine_labelIds.png' in out and '[50]' in out


def test_classes_and_palette_equal_mmseg():
    """The names and colours are mmseg's CityscapesDataset's (written out to keep mmseg's
    dataset module, which needs mmcv's ops, out of ``import mmmt``)."""
    from mmmt.utils import register_all_modules
    register_all_modules(init_default_scope=False)  # the mmcv-lite shim, where needed
    from mmseg.datasets.cityscapes import CityscapesDataset
    assert CityscapesMultiTaskDataset.METAINFO['classes'] == tuple(
        CityscapesDataset.METAINFO['classes'])
    assert CityscapesMultiTaskDataset.METAINFO['palette'] == [
        list(p) for p in CityscapesDataset.METAINFO['palette']]


def test_synthetic_mt_writes_the_cityscapes_layout(tmp_path):
    """The tool goes through mmmt.testing.generate, which dispatches 'cityscapes' to the
    Cityscapes writer: the same files as calling the writer directly."""
    tool = load_tool('tools', 'dataset_converters', 'synthetic_mt')
    via_tool, direct = str(tmp_path / 'tool'), str(tmp_path / 'direct')
    assert tool.main(['cityscapes', via_tool, '--train', '2', '--val', '1', '--seed', '3',
                      '--size', '32', '64', '--quiet']) == 0
    generate_cityscapes(direct, 2, 1, seed=3, size=(32, 64))
    files = sorted(osp.relpath(osp.join(d, f), direct)
                   for d, _, names in os.walk(direct) for f in names)
    # image, label ids and disparity of 3 samples, and the list of them (what --force may
    # replace, mmmt/testing/synthetic_writers.py)
    assert len(files) == 10 and files[0] == '.synthetic_mt.json'
    with open(osp.join(direct, files[0]), encoding='utf-8') as f:
        assert json.load(f)['files'] == files[1:]
    for rel in files:
        with open(osp.join(direct, rel), 'rb') as a, open(osp.join(via_tool, rel), 'rb') as b:
            assert a.read() == b.read(), rel
