"""Where predictions come from in the padded frame: images smaller than the test frame and of
odd sizes (asymmetric centre padding), a photo much larger than it, and test-time flip.

Every prediction is compared, value for value, with the same logits cropped by hand at the
offsets the centre padding must have ((frame - size) // 2 at the top/left), so that a crop read
in the wrong order or a flip undone in the wrong place cannot agree by accident; and the
inferencer with what ``tools/test.py`` computes (the config's test dataset through
``model.test_step``) on the same file.
"""
import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmcv.transforms import Compose
from mmengine import DefaultScope
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from mmmt.models.segmentors.multitask_encoder_decoder import activate
from mmmt.registry import DATASETS, TRANSFORMS
from mmmt.structures import pred_to_array
from mmmt.testing import generate_nyud

FRAME = (128, 160)  # the tiny (demo) config's CenterPad size
ODD = (97, 131)
TASKS = ('semseg', 'depth', 'normals', 'edge')


@pytest.fixture(scope='module')
def odd_dataset(tmp_path_factory, tiny_config):
    """The tiny config's test dataset over 1 synthetic NYUD image of 97x131."""
    root = tmp_path_factory.mktemp('odd_nyud')
    generate_nyud(str(root), n_train=1, n_val=1, seed=7, size=ODD)
    cfg = Config.fromfile(tiny_config)
    with DefaultScope.overwrite_default_scope('mmmt'):
        return DATASETS.build(dict(cfg.test_dataloader.dataset, data_root=str(root)))


def padding_of(size):
    top, left = (FRAME[0] - size[0]) // 2, (FRAME[1] - size[1]) // 2
    return top, left


def hand_crop(model, inputs, top, left, size):
    """Activated predictions of the frame's logits cropped at (top, left), as numpy."""
    with torch.no_grad():
        logits = model(inputs, mode='tensor')
    return {t: pred_to_array(activate(x[0, :, top:top + size[0], left:left + size[1]],
                                      model.task_activations[t]))
            for t, x in logits.items()}


def as_numpy(sample, task):
    return pred_to_array(sample.get(f'pred_{task}').data)


def assert_same(pred, expected, task):
    if task == 'semseg':
        np.testing.assert_array_equal(pred, expected)
    else:
        np.testing.assert_allclose(pred, expected, rtol=1e-5, atol=1e-6)


def test_odd_image_in_a_larger_frame(inferencer, odd_dataset):
    model = inferencer.model
    data = odd_dataset[0]
    assert tuple(data['inputs'].shape[1:]) == FRAME
    top, left = padding_of(ODD)  # 15 rows and 14 columns before, 16 and 15 after
    assert data['data_samples'].metainfo['img_padding_size'] == [
        left, FRAME[1] - ODD[1] - left, top, FRAME[0] - ODD[0] - top]
    batch = model.data_preprocessor(pseudo_collate([data]), False)
    expected = hand_crop(model, batch['inputs'], top, left, ODD)
    # tools/test.py: the test dataset's sample through model.test_step
    (tested, ) = model.test_step(pseudo_collate([odd_dataset[0]]))
    # the inferencer on the same file
    (inferred, ) = inferencer(data['data_samples'].img_path)['predictions']
    for task in TASKS:
        assert expected[task].shape[:2] == ODD
        assert_same(as_numpy(tested, task), expected[task], task)
        assert_same(inferred[task], expected[task], task)


def test_large_photo_is_shrunk_into_the_frame_and_resized_back(inferencer):
    model = inferencer.model
    rng = np.random.default_rng(0)
    small = cv2.resize(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), (400, 300),
                       interpolation=cv2.INTER_CUBIC)
    big = cv2.resize(small, (4000, 3000), interpolation=cv2.INTER_LINEAR)
    (pred, ) = inferencer(big)['predictions']
    # what the model sees: the photo shrunk 25x to 120x160, centred in the 128x160 frame
    shrunk = cv2.resize(big.astype(np.float32), (160, 120), interpolation=cv2.INTER_AREA)
    steps = [t for t in Config.fromfile(inferencer.cfg.filename).test_pipeline
             if t['type'] not in ('LoadMultiTaskImage', 'LoadMultiTaskAnnotations',
                                  'AddIgnoreRegions')]
    with DefaultScope.overwrite_default_scope('mmmt'):
        pipeline = Compose([TRANSFORMS.build(t) for t in steps])
    data = pipeline(dict(img=shrunk, ori_shape=(3000, 4000), img_shape=(120, 160),
                         seg_fields=[], tasks=[]))
    assert data['data_samples'].metainfo['img_padding_size'] == [0, 0, 4, 4]
    batch = model.data_preprocessor(pseudo_collate([data]), False)
    with torch.no_grad():
        logits = model(batch['inputs'], mode='tensor')
    for task in ('depth', 'edge'):  # one-channel maps: the full-size reference stays small
        x = logits[task][:, :, 4:124]  # hand crop of the 4 padded rows above and below
        x = F.interpolate(x, size=(3000, 4000), mode='bilinear', align_corners=False)
        expected = pred_to_array(activate(x[0], model.task_activations[task]))
        np.testing.assert_allclose(pred[task], expected, rtol=1e-4, atol=5e-5)
        del x, expected
    # the model's own predict on the same batch (postprocess_result) agrees too
    (sample, ) = model.postprocess_result({'depth': logits['depth']}, batch['data_samples'])
    np.testing.assert_allclose(pred['depth'], as_numpy(sample, 'depth'), rtol=1e-4, atol=5e-5)
    assert pred['semseg'].shape == (3000, 4000) and pred['normals'].shape == (3000, 4000, 3)


@pytest.mark.parametrize('direction', ['horizontal', 'vertical'])
def test_test_time_flip_is_undone(inferencer, odd_dataset, direction):
    """A flipped image (mmmt's flip transform in the test pipeline) predicts mirrored back:
    semseg/depth/edge mirrored, normals mirrored with x (or y) negated."""
    model = inferencer.model
    dataset = odd_dataset
    with DefaultScope.overwrite_default_scope('mmmt'):
        flip = TRANSFORMS.build(dict(type='MultiTaskRandomFlip', prob=1.0,
                                     direction=direction))
    pipeline = list(dataset.pipeline.transforms)
    pad_at = next(i for i, t in enumerate(pipeline) if type(t).__name__ == 'CenterPad')
    flipped_pipeline = Compose(pipeline[:pad_at] + [flip] + pipeline[pad_at:])
    data = flipped_pipeline(dataset.get_data_info(0))
    meta = data['data_samples'].metainfo
    assert meta['flip'] and meta['flip_direction'] == direction
    (sample, ) = model.test_step(pseudo_collate([data]))
    top, left = padding_of(ODD)
    batch = model.data_preprocessor(pseudo_collate([flipped_pipeline(
        dataset.get_data_info(0))]), False)
    expected = hand_crop(model, batch['inputs'], top, left, ODD)
    axis = 1 if direction == 'horizontal' else 0
    for task in TASKS:
        want = np.flip(expected[task], axis=axis)
        if task == 'normals':
            want = want.copy()
            want[..., 0 if direction == 'horizontal' else 1] *= -1
        assert_same(as_numpy(sample, task), want, task)


def test_batch_of_different_sizes_is_cropped_back_exactly(tiny_config, tiny_checkpoint):
    """Full resolution (max_size=None): the smaller image is centre-padded into the frame, the
    larger keeps its size and is padded at the bottom/right to multiples of 32; in one batch
    each is run in its own padding, so the predictions equal those of batch_size=1."""
    from mmmt.apis import MultiTaskInferencer
    inferencer = MultiTaskInferencer(tiny_config, tiny_checkpoint, device='cpu',
                                     show_progress=False, max_size=None)
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, ODD + (3, ), dtype=np.uint8)
    large = rng.integers(0, 256, (140, 170, 3), dtype=np.uint8)
    preds = inferencer([small, large, small], batch_size=3)['predictions']
    norm = Config.fromfile(tiny_config).img_norm_cfg
    top, left = padding_of(ODD)
    framed = np.zeros((1, ) + FRAME + (3, ), np.float32)  # the small image alone
    framed[0, top:top + ODD[0], left:left + ODD[1]] = (small - norm.mean) / norm.std
    padded = np.zeros((1, 160, 192, 3), np.float32)  # 140x170 rounded up to multiples of 32
    padded[0, :140, :170] = (large - norm.mean) / norm.std
    model = inferencer.model
    for i, (batch, t0, l0, size) in enumerate([(framed, top, left, ODD),
                                               (padded, 0, 0, (140, 170)),
                                               (framed, top, left, ODD)]):
        inputs = torch.from_numpy(batch).permute(0, 3, 1, 2)
        expected = hand_crop(model, inputs, t0, l0, size)
        alone = inferencer([small, large][i % 2])['predictions'][0]
        for task in TASKS:
            assert_same(preds[i][task], alone[task], task)
            # the hand-made input is normalised in float64: float noise (normals: amplified
            # where the raw vector is short)
            if task == 'semseg':
                assert (preds[i][task] == expected[task]).mean() > 0.999
            else:
                np.testing.assert_allclose(preds[i][task], expected[task], atol=1e-4)
