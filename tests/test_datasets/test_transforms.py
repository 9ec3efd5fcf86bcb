"""Unit tests of the multi-task transforms against the reference's rules (docs/differences.md)."""
import copy

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import Normalize

from mmmt.datasets.transforms import (AddIgnoreRegions, CenterPad, MultiTaskPhotoMetricDistortion,
                                      MultiTaskRandomCrop, MultiTaskRandomFlip, PackMultiTaskInputs,
                                      RandomScaling)
from mmmt.registry import TRANSFORMS

TASKS = ['semseg', 'depth', 'normals', 'edge', 'human_parts', 'sal']


def make_results(h: int = 12, w: int = 16, seed: int = 0) -> dict:
    """A results dict with random, asymmetric content for every task."""
    rng = np.random.default_rng(seed)
    n = rng.normal(size=(h, w, 3)).astype(np.float32)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    res = dict(
        img=rng.uniform(0, 255, (h, w, 3)).astype(np.float32),
        gt_semseg=rng.integers(0, 5, (h, w)).astype(np.uint8),
        gt_depth=rng.uniform(0.5, 8, (h, w)).astype(np.float32),
        gt_normals=n,
        gt_edge=(rng.random((h, w)) > 0.8).astype(np.float32),
        gt_human_parts=rng.integers(0, 7, (h, w)).astype(np.uint8),
        gt_sal=(rng.random((h, w)) > 0.5).astype(np.float32),
        img_shape=(h, w), ori_shape=(h, w), tasks=list(TASKS))
    res['seg_fields'] = [f'gt_{t}' for t in TASKS]
    return res


# ---------------------------------------------------------------------------------- flip
def test_flip_negates_normals_x_and_mirrors_everything():
    res = make_results()
    orig = copy.deepcopy(res)
    out = MultiTaskRandomFlip(prob=1.0)(res)
    assert out['flip'] is True and out['flip_direction'] == 'horizontal'
    np.testing.assert_array_equal(out['img'], orig['img'][:, ::-1])
    for key in ('gt_semseg', 'gt_depth', 'gt_edge', 'gt_human_parts', 'gt_sal'):
        np.testing.assert_array_equal(out[key], orig[key][:, ::-1], err_msg=key)
    exp = orig['gt_normals'][:, ::-1].copy()
    exp[..., 0] *= -1
    np.testing.assert_array_equal(out['gt_normals'], exp)
    # y and z are mirrored, not negated
    np.testing.assert_array_equal(out['gt_normals'][..., 1:], orig['gt_normals'][:, ::-1, 1:])


def test_vertical_flip_negates_normals_y():
    res = make_results()
    orig = copy.deepcopy(res)
    out = MultiTaskRandomFlip(prob=1.0, direction='vertical')(res)
    assert out['flip_direction'] == 'vertical'
    for key in ('gt_semseg', 'gt_depth', 'gt_edge'):
        np.testing.assert_array_equal(out[key], orig[key][::-1], err_msg=key)
    exp = orig['gt_normals'][::-1].copy()
    exp[..., 1] *= -1  # up becomes down; x and z are only mirrored
    np.testing.assert_array_equal(out['gt_normals'], exp)


def test_flip_probability():
    res = make_results()
    orig = copy.deepcopy(res)
    out = MultiTaskRandomFlip(prob=0.0)(res)
    assert out['flip'] is False
    np.testing.assert_array_equal(out['gt_normals'], orig['gt_normals'])
    np.random.seed(0)
    flips = [MultiTaskRandomFlip(prob=0.5)(make_results(4, 4))['flip'] for _ in range(200)]
    assert 70 < sum(flips) < 130


# ------------------------------------------------------------------------------- scaling
def test_scale_factors_compose():
    # two scalings (e.g. a TTA view of an already resized image): the recorded factor maps
    # the original frame to the final one, as mmcv's Resize records it
    res = RandomScaling().transform(make_results(12, 16), scale=0.5)  # 6 x 8
    out = RandomScaling().transform(res, scale=1.5)  # 9 x 12
    assert out['img_shape'] == (9, 12)
    assert out['scale_factor'] == pytest.approx((12 / 16, 9 / 12))


# 0.9: 12 x 0.9 = 10.8 -> 10 rows (floor, as the reference), not 11
@pytest.mark.parametrize('s', [0.5, 0.77, 0.9, 1.5, 2.0])
def test_scaling_divides_depth_and_resizes_nearest(s):
    res = make_results(12, 16)
    orig = copy.deepcopy(res)
    out = RandomScaling().transform(res, scale=s)
    nh, nw = int(12 * s), int(16 * s)
    assert out['img'].shape == (nh, nw, 3) and out['img_shape'] == (nh, nw)
    assert out['scale_factor'] == pytest.approx((nw / 16, nh / 12))
    for key in orig['seg_fields']:
        assert out[key].shape[:2] == (nh, nw), key
        assert out[key].dtype == orig[key].dtype, key
        exp = cv2.resize(orig[key], (nw, nh), interpolation=cv2.INTER_NEAREST)
        if key == 'gt_depth':
            exp = exp / np.float32(s)
        np.testing.assert_allclose(out[key], exp, rtol=1e-6, err_msg=key)
    # nearest: depth values are original values divided by s, labels keep their value set
    dist = np.abs((out['gt_depth'] * s).reshape(-1, 1) - orig['gt_depth'].reshape(1, -1))
    assert (dist.min(axis=1) < 1e-5).all()
    assert set(np.unique(out['gt_semseg'])) <= set(np.unique(orig['gt_semseg']))
    np.testing.assert_allclose(
        out['img'], cv2.resize(orig['img'], (nw, nh), interpolation=cv2.INTER_LINEAR))


def test_scaling_random_range_and_identity():
    np.random.seed(1)
    t = RandomScaling(scale_range=(0.5, 2.0))
    ratios = []
    for _ in range(50):
        out = t(make_results(40, 40))
        ratios.append(out['img'].shape[0] / 40)
    assert min(ratios) >= 0.5 and max(ratios) <= 2.0 and max(ratios) - min(ratios) > 0.8
    res = make_results()
    orig = copy.deepcopy(res)
    out = t.transform(res, scale=1.0)
    np.testing.assert_array_equal(out['gt_depth'], orig['gt_depth'])


# ---------------------------------------------------------------------------------- crop
def test_crop_category_rule():
    t = MultiTaskRandomCrop(crop_size=(10, 10), cat_max_ratio=0.75)
    box = (0, 10, 0, 10)

    def seg(counts):
        flat = np.concatenate([np.full(c, v, np.uint8) for v, c in counts.items()])
        return flat.reshape(10, 10)

    assert t._accepted(seg({0: 74, 1: 26}), box)
    assert not t._accepted(seg({0: 75, 1: 25}), box)  # most frequent class must be < 75 %
    assert not t._accepted(seg({3: 60, 255: 40}), box)  # needs > 1 non-ignore class
    assert t._accepted(seg({0: 50, 1: 20, 255: 30}), box)  # share among non-ignore: 0.714
    assert not t._accepted(seg({0: 60, 1: 15, 255: 25}), box)  # 0.8
    assert not t._accepted(seg({255: 100}), box)  # all ignored: rejected, not an error


def test_crop_of_an_all_ignored_label_map_is_taken_after_10_tries():
    res = make_results(20, 20)
    res['gt_semseg'][:] = 255  # e.g. an unlabelled image
    out = MultiTaskRandomCrop(crop_size=(10, 10), cat_max_ratio=0.75)(res)
    assert out['gt_semseg'].shape == (10, 10) and (out['gt_semseg'] == 255).all()


class _Boxes:
    """Replaces the random box generator by a fixed sequence and counts draws."""

    def __init__(self, boxes):
        self.boxes, self.calls = list(boxes), 0

    def __call__(self, img):
        self.calls += 1
        return self.boxes[self.calls - 1]


def _two_region_results():
    res = make_results(20, 20)
    res['gt_semseg'][:] = 0
    res['gt_semseg'][:, 10:] = 1  # left half class 0, right half class 1
    return res


@pytest.mark.parametrize('good_at', [0, 3, 9, None])
def test_crop_tries_at_most_10_then_unchecked(good_at):
    bad, good = (0, 10, 0, 10), (0, 10, 5, 15)  # bad: only class 0; good: 50/50
    boxes = [bad] * 11
    if good_at is not None:
        boxes[good_at] = good
    t = MultiTaskRandomCrop(crop_size=(10, 10), cat_max_ratio=0.75)
    gen = _Boxes(boxes + [good])
    t._random_bbox = gen
    res = _two_region_results()
    assert t.crop_bbox(res) == (good if good_at is not None else bad)
    # 1 initial draw + one per rejected check; after 10 rejections the 11th is used unchecked
    assert gen.calls == (good_at + 1 if good_at is not None else 11)


def test_crop_default_applies_the_075_rule():
    """Without cat_max_ratio the crop keeps the reference's 0.75 rule: a box where one class
    covers 75 % is redrawn, one at 74 % is kept."""
    t = MultiTaskRandomCrop(crop_size=(10, 10))
    res = make_results(10, 20)
    seg = np.zeros((10, 20), np.uint8)
    seg[:, 10:] = 1
    seg[:5, 15:] = 0  # right box: 25 of class 0, 75 of class 1
    seg[0, 10] = 0  # ... 26 / 74 in the box starting at column 10
    res['gt_semseg'] = seg
    left, right, middle = (0, 10, 0, 10), (0, 10, 10, 20), (0, 10, 5, 15)
    gen = _Boxes([left, right])
    t._random_bbox = gen
    assert t.crop_bbox(res) == right and gen.calls == 2  # the all-0 left box is rejected
    seg[0, 10] = 1  # 75 % class 1 now: the right box is rejected too, the next one is 50/50
    gen = _Boxes([right, middle])
    t._random_bbox = gen
    assert t.crop_bbox(res) == middle and gen.calls == 2


def test_crop_same_box_for_all_keys_and_small_dims_kept():
    res = make_results(20, 30)
    h, w = 20, 30
    yy, xx = np.mgrid[0:h, 0:w]
    code = (yy * 100 + xx).astype(np.float32)
    res['img'] = np.stack([code] * 3, -1)
    for key in res['seg_fields']:
        res[key] = code.copy() if res[key].ndim == 2 else np.stack([code] * 3, -1)
    np.random.seed(3)
    out = MultiTaskRandomCrop(crop_size=(10, 40), cat_max_ratio=1.0)(res)
    assert out['img'].shape[:2] == (10, 30)  # width 30 < 40: not cropped
    assert out['img_shape'] == (10, 30)
    for key in out['seg_fields']:
        np.testing.assert_array_equal(out[key][..., 0] if out[key].ndim == 3 else out[key],
                                      out['img'][..., 0], err_msg=key)
    # equal size: no crop
    res = make_results(10, 12)
    out = MultiTaskRandomCrop(crop_size=(10, 12))(copy.deepcopy(res))
    np.testing.assert_array_equal(out['img'], res['img'])


def test_crop_offsets_cover_every_position_including_the_last():
    """Offsets are uniform over 0 .. dim - crop inclusive (margins 2 and 1 here)."""
    t = MultiTaskRandomCrop(crop_size=(4, 5), cat_max_ratio=1.0)
    img = np.zeros((6, 6, 3), np.float32)
    np.random.seed(0)
    boxes = [t.crop_bbox(dict(img=img)) for _ in range(60)]
    assert {b[0] for b in boxes} == {0, 1, 2} and {b[2] for b in boxes} == {0, 1}
    assert all((b[1] - b[0], b[3] - b[2]) == (4, 5) for b in boxes)


def test_crop_rule_holds_statistically():
    """With the rule, most returned crops satisfy it; without it, few do."""
    seg = np.zeros((60, 60), np.uint8)
    seg[35:, 35:] = 1  # class 1 covers a 25x25 corner
    rule = MultiTaskRandomCrop(crop_size=(30, 30), cat_max_ratio=0.75)

    def satisfied(ratio):
        np.random.seed(0)
        t = MultiTaskRandomCrop(crop_size=(30, 30), cat_max_ratio=ratio)
        return sum(rule._accepted(seg, t.crop_bbox(dict(img=seg, gt_semseg=seg)))
                   for _ in range(100))

    assert satisfied(0.75) >= 75 and satisfied(1.0) <= 30


# ------------------------------------------------------------------------------ pad/crop
@pytest.mark.parametrize('shape', [(12, 16), (11, 15), (20, 16), (30, 40)])
def test_pad_then_crop_back_is_identity(shape):
    res = make_results(*shape)
    orig = copy.deepcopy(res)
    out = CenterPad(size=(20, 24))(res)
    left, right, top, bottom = out['img_padding_size']
    dh, dw = max(20 - shape[0], 0), max(24 - shape[1], 0)
    assert (top, bottom, left, right) == (dh // 2, dh - dh // 2, dw // 2, dw - dw // 2)
    H, W = out['img'].shape[:2]
    assert out['pad_shape'] == (H, W) == (max(20, shape[0]), max(24, shape[1]))
    fills = dict(img=0, gt_semseg=255, gt_edge=255, gt_human_parts=255, gt_sal=255,
                 gt_depth=0, gt_normals=0)
    for key in ['img'] + orig['seg_fields']:
        arr = out[key]
        back = arr[top:H - bottom, left:W - right]
        np.testing.assert_array_equal(back, orig[key], err_msg=key)
        mask = np.ones((H, W), bool)
        mask[top:H - bottom, left:W - right] = False
        assert (arr[mask] == fills[key]).all(), key
    # the same through torch slicing, as mmseg's postprocess_result crops predictions
    t = torch.from_numpy(out['img'].transpose(2, 0, 1).copy())
    np.testing.assert_array_equal(
        t[:, top:H - bottom, left:W - right].numpy().transpose(1, 2, 0), orig['img'])


@pytest.mark.parametrize('dtype, widened', [(bool, np.uint8), (np.int8, np.int16),
                                            (np.uint8, np.uint8), (np.int64, np.int64)])
def test_pad_widens_a_label_map_that_cannot_hold_the_fill(dtype, widened):
    # a bool map filled True (class 1) where it meant ignore; int8 raised an OverflowError
    res = make_results(2, 2)
    res['gt_semseg'] = np.ones((2, 2), dtype)
    out = CenterPad(size=(4, 4))(res)['gt_semseg']
    assert out.dtype == widened
    np.testing.assert_array_equal(out, [[255] * 4, [255, 1, 1, 255], [255, 1, 1, 255],
                                        [255] * 4])


def test_scaling_to_nothing_is_named():
    # cv2's own error was an assertion on inv_scale_x
    with pytest.raises(ValueError, match=r'RandomScaling: scale 0\.1 makes the 6x8 image .* '
                       r'0x0 pixels; raise the low end of scale_range \(0\.5, 2\.0\)'):
        RandomScaling().transform(make_results(6, 8), scale=0.1)


def test_pad_image_only_for_testing():
    res = make_results(12, 16)
    orig = copy.deepcopy(res)
    out = CenterPad(size=(20, 24), pad_gt=False)(res)
    assert out['img'].shape[:2] == (20, 24)
    for key in orig['seg_fields']:
        np.testing.assert_array_equal(out[key], orig[key])


# ------------------------------------------------------------------------- ignore rules
def test_add_ignore_regions():
    res = make_results(6, 8)
    res['gt_normals'][0, 0] = 0
    res['gt_normals'][1, 1] = (0, 0.5, 0)  # not zero: kept
    res['gt_normals'][1, 2] = (5e-4, 0, 0)  # tiny (a float .npy normal), still not zero
    res['gt_depth'][2, :] = 0
    res['gt_human_parts'][:] = 0
    res['gt_human_parts'][0, :3] = 255
    sem = res['gt_semseg'].copy()
    out = AddIgnoreRegions()(res)
    assert (out['gt_normals'][0, 0] == 255).all()
    np.testing.assert_array_equal(out['gt_normals'][1, 1], (0, 0.5, 0))
    np.testing.assert_array_equal(out['gt_normals'][1, 2], np.float32([5e-4, 0, 0]))
    assert (out['gt_normals'][1:] != 255).all()
    assert (out['gt_depth'][2] == 255).all() and (out['gt_depth'][3] != 255).all()
    assert (out['gt_human_parts'] == 255).all()  # no part labelled: whole map ignored
    np.testing.assert_array_equal(out['gt_semseg'], sem)
    res = make_results(6, 8)
    res['gt_human_parts'][:] = 0
    res['gt_human_parts'][3, 3] = 2
    out = AddIgnoreRegions()(res)
    assert out['gt_human_parts'].max() == 2 and (out['gt_human_parts'] != 255).all()


# --------------------------------------------------------------------------- photometric
class _Forced:
    """Stands in for np.random.randint / uniform with fixed answers."""

    def __init__(self, ints, floats=()):
        self.ints, self.floats = list(ints), list(floats)

    def randint(self, *a, **k):
        return self.ints.pop(0)

    def uniform(self, *a, **k):
        return self.floats.pop(0)


def test_photometric_truncates_and_returns_float(monkeypatch):
    t = MultiTaskPhotoMetricDistortion()
    img = np.full((4, 4, 3), 10.9, np.float32)
    f = _Forced(ints=[0, 0, 0, 0, 0])  # no brightness, mode 0, no sat, no hue, no contrast
    monkeypatch.setattr(np.random, 'randint', f.randint)
    out = t(dict(img=img))['img']
    assert out.dtype == np.float32 and (out == 10).all()


def test_photometric_brightness_contrast_order(monkeypatch):
    t = MultiTaskPhotoMetricDistortion()
    img = np.full((2, 2, 3), 100, np.float32)
    # brightness +20.7 -> 120; mode 1: contrast first x1.5 -> 180; no sat/hue
    f = _Forced(ints=[1, 1, 1, 0, 0], floats=[20.7, 1.5])
    monkeypatch.setattr(np.random, 'randint', f.randint)
    monkeypatch.setattr(np.random, 'uniform', f.uniform)
    assert (t(dict(img=img))['img'] == 180).all()
    # clipping to 255 then truncation
    f = _Forced(ints=[1, 1, 1, 0, 0], floats=[30.0, 2.0])
    monkeypatch.setattr(np.random, 'randint', f.randint)
    monkeypatch.setattr(np.random, 'uniform', f.uniform)
    assert (t(dict(img=img))['img'] == 255).all()


def test_photometric_hue_and_saturation_are_rgb(monkeypatch):
    t = MultiTaskPhotoMetricDistortion()
    red = np.zeros((2, 2, 3), np.float32)
    red[..., 0] = 255  # RGB red
    # hue +60 (OpenCV units = 120 degrees): red -> green in RGB
    f = _Forced(ints=[0, 0, 0, 1, 60, 0])
    monkeypatch.setattr(np.random, 'randint', f.randint)
    out = t(dict(img=red.copy()))['img']
    np.testing.assert_array_equal(out[0, 0], (0, 255, 0))
    # saturation x0 -> grey
    f = _Forced(ints=[0, 0, 1, 0, 0], floats=[0.0])
    monkeypatch.setattr(np.random, 'randint', f.randint)
    monkeypatch.setattr(np.random, 'uniform', f.uniform)
    out = t(dict(img=red.copy()))['img']
    assert (out[0, 0] == out[0, 0, 0]).all()


def test_photometric_hue_wraps_around_180(monkeypatch):
    t = MultiTaskPhotoMetricDistortion()
    red = np.zeros((2, 2, 3), np.float32)
    red[..., 0] = 255  # RGB red: OpenCV hue 0
    # hue -18: 0 - 18 wraps to 162 (324 degrees): R = 255, G = 0, B = 255 * (1 - 24 / 60)
    f = _Forced(ints=[0, 0, 0, 1, -18, 0])
    monkeypatch.setattr(np.random, 'randint', f.randint)
    out = t(dict(img=red.copy()))['img']
    np.testing.assert_allclose(out[0, 0], (255, 0, 153), atol=1)


def test_photometric_default_ranges_are_the_references(monkeypatch):
    """The shipped pipelines use the defaults: brightness U(-32, 32), contrast and saturation
    U(0.5, 1.5), hue randint(-18, 18)."""
    calls = []

    def randint(*args):
        calls.append(('randint', args))
        return 1 if args == (2, ) else args[0]  # every step on, the lowest hue shift

    def uniform(*args):
        calls.append(('uniform', args))
        return args[0]

    monkeypatch.setattr(np.random, 'randint', randint)
    monkeypatch.setattr(np.random, 'uniform', uniform)
    MultiTaskPhotoMetricDistortion()(dict(img=np.full((2, 2, 3), 100, np.float32)))
    drawn = [c for c in calls if c != ('randint', (2, ))]
    assert drawn == [('uniform', (-32, 32)), ('uniform', (0.5, 1.5)), ('uniform', (0.5, 1.5)),
                     ('randint', (-18, 18))]


def test_photometric_random_parameters_in_range():
    np.random.seed(0)
    t = MultiTaskPhotoMetricDistortion()
    img = np.random.uniform(0, 255, (8, 8, 3)).astype(np.float32)
    for _ in range(20):
        out = t(dict(img=img.copy()))['img']
        assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 255
        assert (out == np.round(out)).all()


# ------------------------------------------------------------------------- normalise/pack
def test_normalize_matches_spec():
    """The config's mmcv Normalize is the spec's x/255 - mean, / std on RGB."""
    img = np.random.default_rng(0).uniform(0, 255, (5, 6, 3)).astype(np.float32)
    t = TRANSFORMS.build(dict(type='mmcv.Normalize', mean=[123.675, 116.28, 103.53],
                              std=[58.395, 57.12, 57.375], to_rgb=False))
    assert isinstance(t, Normalize)
    exp = (img / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(t(dict(img=img.copy()))['img'], exp, atol=1e-5)


def test_pack_dtypes_shapes_and_defaults():
    res = make_results(6, 8)
    res['img_path'] = 'x.png'
    out = PackMultiTaskInputs()(res)
    x, s = out['inputs'], out['data_samples']
    assert x.shape == (3, 6, 8) and x.dtype == torch.float32
    np.testing.assert_array_equal(x.numpy(), res['img'].transpose(2, 0, 1))
    for task in TASKS:
        g = s.get_gt(task).data
        assert g.shape == ((3, 6, 8) if task == 'normals' else (1, 6, 8)), task
        assert g.dtype == (torch.int64 if task in ('semseg', 'human_parts') else torch.float32)
    np.testing.assert_array_equal(s.gt_normals.data.numpy(), res['gt_normals'].transpose(2, 0, 1))
    assert s.img_padding_size == [0, 0, 0, 0] and s.flip is False
    assert s.pad_shape == (6, 8) and s.scale_factor == (1.0, 1.0)
    assert s.tasks == TASKS and s.img_path == 'x.png'
    # only tasks in results['tasks'] are packed
    res = make_results(6, 8)
    res['tasks'] = ['depth']
    s = PackMultiTaskInputs()(res)['data_samples']
    assert s.has_gt('depth') and not s.has_gt('semseg')


# ------------------------------------------------------------------------ config checks
@pytest.mark.parametrize('build,msg', [
    (lambda: RandomScaling(scale_range=(2.0, 0.5)),
     r'RandomScaling: scale_range must be \(low, high\) with 0 < low <= high, got \(2\.0, 0\.5\)'),
    (lambda: RandomScaling(scale_range=(0, 1)), r'scale_range .* got \(0, 1\)'),
    (lambda: RandomScaling(scale_range=1.5), r'scale_range .* got 1\.5'),
    (lambda: MultiTaskRandomFlip(direction='diagonal'),
     r"MultiTaskRandomFlip: direction must be 'horizontal' or 'vertical', got 'diagonal'"),
    (lambda: MultiTaskRandomFlip(prob=1.5), r'MultiTaskRandomFlip: prob must be a number in '
     r'\[0, 1\], got 1\.5'),
    (lambda: MultiTaskRandomCrop(crop_size=(0, 10)),
     r'MultiTaskRandomCrop: crop_size must be \(h, w\) of two positive integers, got \(0, 10\)'),
    (lambda: MultiTaskRandomCrop(crop_size=(448, )), r'crop_size .* got \(448,\)'),
    (lambda: CenterPad(size=(448.5, 576)),
     r'CenterPad: size must be \(h, w\) of two positive integers, got \(448\.5, 576\)'),
])
def test_bad_transform_options_name_the_field(build, msg):
    """These were bare AssertionErrors without a message, or a TypeError."""
    with pytest.raises(ValueError, match=msg):
        build()


def test_good_transform_options_are_kept():
    assert MultiTaskRandomCrop(crop_size=[448, 576]).crop_size == (448, 576)
    assert MultiTaskRandomCrop(crop_size=512).crop_size == (512, 512)
    assert CenterPad(size=32).size == (32, 32)
    assert RandomScaling(scale_range=[1, 1]).scale_range == (1.0, 1.0)
    res = MultiTaskRandomFlip(prob=1)(make_results())  # an int, which mmcv refuses
    assert res['flip'] is True
