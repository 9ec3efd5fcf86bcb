"""Multi-task test-time augmentation: per-task merging, and flip-merge against mirrored inputs."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from mmmt.datasets.transforms import ImageOnly
from mmmt.models.segmentors import MultiTaskTTAModel, merge_task_predictions
from mmmt.structures import MultiTaskDataSample
from mmmt.utils import enable_tta
from tests.test_models.test_segmentor import tiny_model


def test_argmax_tasks_average_probabilities_not_logits():
    # view 1 is sure of class 0, view 2 mildly prefers class 1: mean logits pick 1, mean
    # probabilities pick 0
    a = torch.tensor([10.0, 0.0, 0.0]).view(3, 1, 1)
    b = torch.tensor([0.0, 12.0, 11.0]).view(3, 1, 1)
    assert int(((a + b) / 2).argmax()) == 1
    assert int(merge_task_predictions([a, b], 'argmax')) == 0


def test_probability_and_normal_tasks_merge():
    a, b = torch.full((1, 2, 2), 2.0), torch.full((1, 2, 2), -1.0)
    assert torch.allclose(merge_task_predictions([a, b], 'sigmoid'),
                          (a.sigmoid() + b.sigmoid()) / 2)
    n1 = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1) * 5  # unnormalised logits
    n2 = torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1)
    merged = merge_task_predictions([n1, n2], 'l2_normalize')
    assert torch.allclose(merged.flatten(), torch.tensor([1.0, 1.0, 0.0]) / 2**0.5)
    assert torch.allclose(merge_task_predictions([a, b], 'relu'), torch.ones(1, 2, 2))


def view(img, flip):
    h, w = img.shape[1:]
    sample = MultiTaskDataSample(metainfo=dict(
        ori_shape=(h, w), img_shape=(h, w), img_padding_size=[0, 0, 0, 0], flip=flip,
        flip_direction='horizontal' if flip else None))
    return (img.flip(-1) if flip else img), sample


def tta_predict(tta, img):
    """Two views of ``img``: as is and mirrored (what the tta_pipeline's flips produce)."""
    views = [view(img, False), view(img, True)]
    data = dict(inputs=[[v[0]] for v in views], data_samples=[[v[1]] for v in views])
    with torch.no_grad():
        return tta.test_step(data)[0]


def mirror(pred, task):
    out = pred.flip(-1)
    if task == 'normals':
        out = out.clone()
        out[0] *= -1
    return out


def test_flip_merge_is_consistent_with_mirrored_inputs():
    torch.manual_seed(0)
    model = tiny_model().eval()
    tta = MultiTaskTTAModel(module=model).eval()
    img = torch.randn(3, 64, 96)
    out, out_mirrored = tta_predict(tta, img), tta_predict(tta, img.flip(-1))
    # merging x with its mirror must give the mirror of merging mirror(x) with x
    for task in ('semseg', 'depth', 'normals', 'edge', 'sal'):
        a = out.get(f'pred_{task}').data
        b = mirror(out_mirrored.get(f'pred_{task}').data, task)
        assert torch.allclose(a.float(), b.float(), atol=1e-6), task
    # and equal the hand merge of the model's plain predictions of x and mirror(x)
    with torch.no_grad():
        plain = model.predict(img[None])[0]
        flipped = model.predict(img.flip(-1)[None])[0]
    probs = (plain.semseg_logits.data.softmax(0)
             + flipped.semseg_logits.data.softmax(0).flip(-1)) / 2
    assert torch.equal(out.pred_semseg.data, probs.argmax(0, keepdim=True))
    normals = F.normalize(plain.pred_normals.data + mirror(flipped.pred_normals.data, 'normals'),
                          dim=0)
    assert torch.allclose(out.pred_normals.data, normals, atol=1e-6)
    assert torch.allclose(out.pred_edge.data,
                          (plain.pred_edge.data + flipped.pred_edge.data.flip(-1)) / 2)
    assert out.metainfo['flip'] is False and out.metainfo['tta_views'] == 2


def test_tta_model_loads_the_plain_models_weights_strictly():
    model = tiny_model()
    tta = MultiTaskTTAModel(module=tiny_model())
    tta.load_state_dict(model.state_dict(), strict=True)
    assert tta.state_dict().keys() == model.state_dict().keys()
    for k, v in model.state_dict().items():
        assert torch.equal(tta.state_dict()[k], v)


def test_image_only_keeps_labels_in_the_original_frame():
    img = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    normals = np.random.default_rng(0).normal(size=(2, 3, 3)).astype(np.float32)
    results = dict(img=img.copy(), img_shape=(2, 3), gt_normals=normals.copy(),
                   seg_fields=['gt_normals'])
    out = ImageOnly([dict(type='MultiTaskRandomFlip', prob=1.0)])(results)
    assert np.array_equal(out['img'], img[:, ::-1])
    assert np.array_equal(out['gt_normals'], normals) and out['seg_fields'] == ['gt_normals']
    assert out['flip'] is True
    out = ImageOnly([dict(type='RandomScaling', scale_range=(2.0, 2.0))])(
        dict(img=img.copy(), img_shape=(2, 3), gt_normals=normals.copy(),
             seg_fields=['gt_normals']))
    assert out['img'].shape[:2] == (4, 6) and out['gt_normals'].shape[:2] == (2, 3)


def test_enable_tta_rewrites_the_config():
    cfg = Config(dict(model=dict(type='MultiTaskEncoderDecoder'), tta_pipeline=[dict(type='X')],
                      test_dataloader=dict(dataset=dict(pipeline=[dict(type='Y')]))))
    enable_tta(cfg)
    assert cfg.model.type == 'MultiTaskTTAModel'
    assert cfg.model.module.type == 'MultiTaskEncoderDecoder'
    assert cfg.test_dataloader.dataset.pipeline == [dict(type='X')]
    with pytest.raises(ValueError, match='tta_pipeline'):
        enable_tta(Config(dict(model=dict(type='M'))))
