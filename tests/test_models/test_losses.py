import math

import pytest
import torch
import torch.nn.functional as F

from mmmt.models.losses import (BalancedBCEEdgeLoss, BalancedSaliencyLoss, DepthL1Loss,
                                MultiTaskLoss, NormalsL1Loss, PixelCrossEntropyLoss)


def test_pixel_cross_entropy_hand_computed_with_ignore():
    logits = torch.zeros(1, 2, 1, 3)
    logits[0, 0, 0, 0] = math.log(3.0)  # p(class 0) = 3/4 at pixel 0
    target = torch.tensor([[[[0, 1, 255]]]])
    loss = PixelCrossEntropyLoss()(logits, target)
    expected = (-math.log(0.75) + math.log(2.0)) / 2  # pixel 2 ignored
    assert loss.shape == (1, ) and loss.item() == pytest.approx(expected, rel=1e-6)


def test_all_ignored_image_gives_zero_finite_loss_and_zero_grad():
    cases = [
        (PixelCrossEntropyLoss(), 3, torch.full((2, 1, 2, 2), 255)),
        (BalancedSaliencyLoss(), 2, torch.full((2, 1, 2, 2), 255.)),
        (BalancedBCEEdgeLoss(), 1, torch.full((2, 1, 2, 2), 255.)),
        (NormalsL1Loss(), 3, torch.full((2, 3, 2, 2), 255.)),
        (DepthL1Loss(), 1, torch.full((2, 1, 2, 2), 255.)),
    ]
    for loss_fn, channels, target in cases:
        pred = torch.randn(2, channels, 2, 2, requires_grad=True)
        loss = loss_fn(pred, target)
        assert torch.equal(loss, torch.zeros(2)), type(loss_fn).__name__
        loss.sum().backward()
        assert torch.isfinite(pred.grad).all() and not pred.grad.any()


def test_balanced_saliency_weights_by_negative_fraction():
    logits = torch.zeros(1, 2, 1, 4)  # p = 0.5 everywhere: CE = log 2 per pixel
    target = torch.tensor([[[[0., 0., 0., 1.]]]])  # 3 negatives of 4 valid: p- = 0.75
    loss = BalancedSaliencyLoss()(logits, target)
    expected = (3 * 0.25 * math.log(2) + 0.75 * math.log(2)) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_edge_loss_weights_positives_095():
    x = torch.tensor([[[[0.3, -1.2, 2.0]]]])
    y = torch.tensor([[[[1., 0., 255.]]]])
    loss = BalancedBCEEdgeLoss()(x, y)
    expected = (0.95 * F.softplus(-x[0, 0, 0, 0]) + 0.05 * F.softplus(x[0, 0, 0, 1])) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_normals_loss_normalises_prediction_and_ignores_invalid_pixels():
    pred = torch.tensor([[[[2.0, 5.0]], [[0.0, 1.0]], [[0.0, 2.0]]]])  # pixel 0: (2, 0, 0)
    target = torch.tensor([[[[0.0, 255.]], [[1.0, 255.]], [[0.0, 255.]]]])
    loss = NormalsL1Loss()(pred, target)
    assert loss.item() == pytest.approx(2.0)  # |1-0| + |0-1| + 0 over one valid pixel


def test_depth_loss_mean_abs_over_valid():
    pred = torch.tensor([[[[1.0, 2.0, 3.0]]]])
    target = torch.tensor([[[[1.5, 255., 1.0]]]])
    assert DepthL1Loss()(pred, target).item() == pytest.approx((0.5 + 2.0) / 2)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match='DepthL1Loss'):
        DepthL1Loss()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2))


def test_log_scheme_is_per_image_and_sums_to_objective():
    combiner = MultiTaskLoss(['semseg', 'depth'], scheme='log')
    losses = dict(semseg=torch.tensor([1.0, 4.0]), depth=torch.tensor([0.5, 0.5]))
    out = combiner(losses)
    assert out['loss_semseg'].item() == pytest.approx((math.log(1.0) + math.log(4.0)) / 2)
    assert out['loss_depth'].item() == pytest.approx(math.log(0.5))
    assert out['raw_semseg'].item() == pytest.approx(2.5)
    # 8 images in one process == mean over 8 single-image processes
    per_image = [combiner(dict(semseg=losses['semseg'][i:i + 1],
                               depth=losses['depth'][i:i + 1])) for i in range(2)]
    total = sum(v for k, v in out.items() if k.startswith('loss_'))
    singles = sum(sum(v for k, v in o.items() if k.startswith('loss_')) for o in per_image) / 2
    assert total.item() == pytest.approx(singles.item())


def test_sum_scheme_weights_and_uncertainty_has_parameters():
    combiner = MultiTaskLoss(['semseg', 'edge'], scheme='sum', weights=dict(edge=50))
    out = combiner(dict(semseg=torch.tensor([2.0]), edge=torch.tensor([0.1])))
    assert out['loss_edge'].item() == pytest.approx(5.0)
    unc = MultiTaskLoss(['semseg', 'edge'], scheme='uncertainty')
    assert unc.log_vars.shape == (2, )
    out = unc(dict(semseg=torch.tensor([2.0]), edge=torch.tensor([0.1])))
    assert out['loss_semseg'].item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match='scheme'):
        MultiTaskLoss(['semseg'], scheme='max')
    with pytest.raises(ValueError, match='unknown tasks'):
        MultiTaskLoss(['semseg'], weights=dict(depth=1))


def test_dwa_weights_follow_loss_ratios():
    combiner = MultiTaskLoss(['a', 'b'], scheme='dwa', dwa_window=1, dwa_temperature=1.0)
    combiner.train()
    for a, b in [(1.0, 1.0), (0.5, 1.0)]:  # a halves, b stays: b gets the larger weight
        combiner(dict(a=torch.tensor([a]), b=torch.tensor([b])))
    out = combiner(dict(a=torch.tensor([1.0]), b=torch.tensor([1.0])))
    w = torch.softmax(torch.tensor([0.5, 1.0]), 0) * 2
    assert out['loss_a'].item() == pytest.approx(w[0].item(), rel=1e-5)
    assert out['loss_b'].item() == pytest.approx(w[1].item(), rel=1e-5)


def test_default_scheme_is_the_per_image_log():
    # MultiTaskLoss(tasks) with no scheme is MTMamba's objective: mean_b log(L_b + 1e-8)
    combiner = MultiTaskLoss(['semseg', 'depth'])
    out = combiner(dict(semseg=torch.tensor([2.0, 8.0]), depth=torch.tensor([0.25, 1.0])))
    assert out['loss_semseg'].item() == pytest.approx((math.log(2.0) + math.log(8.0)) / 2)
    assert out['loss_depth'].item() == pytest.approx((math.log(0.25) + math.log(1.0)) / 2)
    assert out['raw_semseg'].item() == pytest.approx(5.0)


def test_dwa_defaults_window_100_and_temperature_2():
    combiner = MultiTaskLoss(['a', 'b'], scheme='dwa')
    combiner.train()
    feed = [(4.0, 1.0)] * 100 + [(2.0, 1.0)] * 99
    for a, b in feed:
        combiner(dict(a=torch.tensor([a]), b=torch.tensor([b])))
    # 199 iterations: one complete window of 100, so the weights are still 1
    out = combiner(dict(a=torch.tensor([2.0]), b=torch.tensor([1.0])))
    assert out['loss_a'].item() == pytest.approx(2.0)
    assert out['loss_b'].item() == pytest.approx(1.0)
    # two windows of means (4, 1) and (2, 1): r = (0.5, 1), lambda = 2 softmax(r / 2)
    out = combiner(dict(a=torch.tensor([1.0]), b=torch.tensor([1.0])))
    e = [math.exp(0.25), math.exp(0.5)]
    assert out['loss_a'].item() == pytest.approx(2 * e[0] / sum(e), rel=1e-6)
    assert out['loss_b'].item() == pytest.approx(2 * e[1] / sum(e), rel=1e-6)


def test_the_log_scheme_is_explained_once_at_the_first_training_loss(monkeypatch):
    import mmmt.models.losses.multi_task_loss as module
    said = []
    monkeypatch.setattr(module, 'print_log', lambda msg, **kwargs: said.append(msg))
    combiner = MultiTaskLoss(['semseg', 'depth'])
    losses = dict(semseg=torch.tensor([0.5]), depth=torch.tensor([2.0]))
    combiner.eval()
    combiner(losses)  # built and run for inference: nothing to explain
    assert said == []
    combiner.train()
    combiner(losses)
    combiner(losses)
    assert len(said) == 1 and said[0].startswith("MultiTaskLoss 'log' scheme: loss_<task> = ")
    MultiTaskLoss(['semseg'], scheme='sum').train()(dict(semseg=torch.tensor([0.5])))
    assert len(said) == 1
