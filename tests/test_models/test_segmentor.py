import re

import pytest
import torch
from mmengine.structures import PixelData

from mmmt.registry import MODELS
from mmmt.structures import MultiTaskDataSample
from mmmt.utils.errors import UserInputError

TINY_BACKBONE = dict(
    type='mmpretrain.SwinTransformer',
    arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]),
    window_size=4,
    out_indices=(0, 1, 2, 3),
    pad_small_map=True)


def tiny_model(**kwargs):
    cfg = dict(
        type='MultiTaskEncoderDecoder',
        data_preprocessor=dict(type='MultiTaskDataPreProcessor', size_divisor=32),
        backbone=TINY_BACKBONE,
        decode_head=dict(
            type='MultiTaskMambaDecodeHead',
            in_channels=(16, 32, 64, 128),
            tasks=dict(semseg=5, depth=1, normals=3, edge=1, sal=2)),
        **kwargs)
    return MODELS.build(cfg)


def make_sample(h, w, padding=(0, 0, 0, 0), ori=None):
    sample = MultiTaskDataSample(metainfo=dict(
        ori_shape=ori or (h - padding[2] - padding[3], w - padding[0] - padding[1]),
        img_shape=(h, w), img_padding_size=list(padding)))
    sample.gt_semseg = PixelData(data=torch.randint(0, 5, (1, h, w)))
    sample.gt_depth = PixelData(data=torch.rand(1, h, w) * 5)
    sample.gt_normals = PixelData(data=torch.nn.functional.normalize(torch.randn(3, h, w), dim=0))
    sample.gt_edge = PixelData(data=(torch.rand(1, h, w) > 0.9).float())
    sample.gt_sal = PixelData(data=(torch.rand(1, h, w) > 0.5).float())
    return sample


def test_loss_mode_returns_per_task_losses():
    torch.manual_seed(0)
    model = tiny_model()
    data = dict(inputs=[torch.randn(3, 64, 96)] * 2, data_samples=[make_sample(64, 96)] * 2)
    batch = model.data_preprocessor(data, training=True)
    losses = model(**batch, mode='loss')
    for t in ('semseg', 'depth', 'normals', 'edge', 'sal'):
        assert torch.isfinite(losses[f'loss_{t}']) and f'raw_{t}' in losses
    # values, on a deterministic forward (no drop path): the raw losses are the task losses of
    # the logits, and the shipped 'log' scheme logs them
    model.eval()
    with torch.no_grad():
        losses = model(**batch, mode='loss')
        logits = model(batch['inputs'], mode='tensor')
    samples = batch['data_samples']
    gt_semseg = torch.cat([s.gt_semseg.data for s in samples])
    gt_depth = torch.stack([s.gt_depth.data for s in samples])
    ce = torch.nn.functional.cross_entropy(logits['semseg'], gt_semseg, ignore_index=255)
    assert torch.allclose(losses['raw_semseg'], ce, rtol=1e-5)
    l1 = (logits['depth'] - gt_depth).abs().mean()  # every depth pixel is valid (> 0) here
    assert torch.allclose(losses['raw_depth'], l1, rtol=1e-5)
    for t in ('semseg', 'depth', 'normals', 'edge', 'sal'):
        assert torch.allclose(losses[f'loss_{t}'], losses[f'raw_{t}'].log(), rtol=1e-6), t


def test_predict_crops_padding_and_activates_each_task():
    torch.manual_seed(0)
    model = tiny_model().eval()
    # a 50x70 image centre-padded to 64x96: left 13, right 13, top 7, bottom 7
    sample = make_sample(64, 96, padding=(13, 13, 7, 7))
    batch = model.data_preprocessor(
        dict(inputs=[torch.randn(3, 64, 96)], data_samples=[sample]), training=False)
    with torch.no_grad():
        logits = model(batch['inputs'], mode='tensor')
        out = model(**batch, mode='predict')[0]
    crop = {t: v[0, :, 7:57, 13:83] for t, v in logits.items()}  # the image's own pixels
    assert out.pred_semseg.shape == (50, 70)
    assert out.pred_semseg.data.dtype == torch.int64
    assert torch.equal(out.pred_semseg.data, crop['semseg'].argmax(0, keepdim=True))
    assert torch.equal(out.semseg_logits.data, crop['semseg'])
    # each task's activation, on the cropped logits (written out, not through the model's own
    # activation code)
    assert torch.equal(out.pred_depth.data, crop['depth'].clamp(min=0))
    normals = crop['normals'] / crop['normals'].norm(dim=0, keepdim=True)
    assert torch.allclose(out.pred_normals.data, normals, atol=1e-6)
    assert torch.allclose(out.pred_edge.data, crop['edge'].sigmoid(), atol=1e-7)
    expected_sal = crop['sal'].softmax(0)[1:2]
    assert torch.allclose(out.pred_sal.data, expected_sal, atol=1e-6)


def test_predict_undoes_every_mmcv_flip_direction():
    model = tiny_model().eval()
    logits = {'normals': torch.arange(3 * 2 * 3, dtype=torch.float).view(1, 3, 2, 3),
              'depth': torch.arange(2 * 3, dtype=torch.float).view(1, 1, 2, 3)}
    n, d = logits['normals'][0], logits['depth'][0]
    expected = {  # flipped dims of the map; normals' x (channel 0) and y (channel 1) negated
        'horizontal': (d.flip(2), n.flip(2) * torch.tensor([-1., 1, 1]).view(3, 1, 1)),
        'vertical': (d.flip(1), n.flip(1) * torch.tensor([1., -1, 1]).view(3, 1, 1)),
        'diagonal': (d.flip(1, 2), n.flip(1, 2) * torch.tensor([-1., -1, 1]).view(3, 1, 1))}
    for direction, (depth, normals) in expected.items():
        sample = MultiTaskDataSample(metainfo=dict(
            ori_shape=(2, 3), img_padding_size=[0, 0, 0, 0], flip=True,
            flip_direction=direction))
        out = model.postprocess_result(logits, [sample])[0]
        assert torch.equal(out.depth_logits.data, depth), direction
        assert torch.equal(out.normals_logits.data, normals), direction
    assert torch.equal(logits['normals'][0], n)  # the batch's logits are left alone
    sample = MultiTaskDataSample(metainfo=dict(ori_shape=(2, 3), flip=True,
                                               flip_direction='sideways'))
    with pytest.raises(UserInputError, match="flip_direction 'sideways'.*diagonal"):
        model.postprocess_result(logits, [sample])


def test_preprocessor_pads_odd_sizes_and_records_padding():
    model = tiny_model().eval()
    sample = make_sample(50, 70)
    batch = model.data_preprocessor(
        dict(inputs=[torch.randn(3, 50, 70)], data_samples=[sample]), training=True)
    assert batch['inputs'].shape == (1, 3, 64, 96)
    assert batch['data_samples'][0].img_padding_size == [0, 26, 0, 14]
    gt = batch['data_samples'][0].gt_depth.data
    assert gt.shape == (1, 64, 96) and (gt[:, 50:] == 255).all()
    with torch.no_grad():
        out = model(**batch, mode='predict')[0]
    assert out.pred_depth.shape == (50, 70)


def test_preprocessor_options_of_the_wrong_kind_are_named():
    # each was a bare torch error at the first batch (or a TypeError in the padding)
    import pytest

    from mmmt.utils.errors import UserInputError
    for options, message in ((dict(mean=[1.0, 2.0], std=[1.0, 1.0]), 'mean and std must list 1 '
                              'or 3 channel values each, got mean=[1.0, 2.0]'),
                             (dict(size_divisor='32'), "size_divisor must be an int >= 1 or "
                              "None, got '32'")):
        with pytest.raises(UserInputError, match=f'^{re.escape(message)}'):
            MODELS.build(dict(type='MultiTaskDataPreProcessor', **options))


def test_loss_weights_that_are_no_numbers_are_named():
    import pytest

    from mmmt.models.losses import MultiTaskLoss
    from mmmt.utils.errors import UserInputError
    with pytest.raises(UserInputError, match=r"^MultiTaskLoss: weights\['depth'\] must be a "
                       r"number, got 'abc'$"):
        MultiTaskLoss(['semseg', 'depth'], weights=dict(depth='abc'))
