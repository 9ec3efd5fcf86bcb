"""The training objective as every shipped config builds it, against hand computations.

Each config's decode head is built (with small widths: the losses do not depend on them) and
its ``loss_by_feat`` is fed fixed logits and ground truth with ignored (255) pixels, as
training's padding produces. Every per-task loss (``raw_<task>``) is compared with a NumPy
re-computation of the reference's definition (reference losses: docs/differences.md), and every
contribution (``loss_<task>``) with the config's combination scheme and weights, written out
here. Also: the optional schemes away from their degenerate points (uncertainty at s != 0,
DWA resumed from a state dict).
"""
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine import DefaultScope
from mmengine.config import Config

from mmmt.models.losses import MultiTaskLoss
from mmmt.registry import MODELS
from mmmt.structures import MultiTaskDataSample

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')
IGNORE = 255
H, W = 6, 8
CHANNELS = dict(semseg=40, human_parts=7, sal=2, normals=3, edge=1, depth=1)

UNIT_LOG = ('log', None)
#: (scheme, weights) of every shipped multi-task config; None = all weights 1.
EXPECTED_COMBINATION = {
    'mtmamba_swin-l_nyud.py': UNIT_LOG,
    'mtmamba_swin-l_pascal.py': UNIT_LOG,
    'mtmamba_swin-t_nyud.py': UNIT_LOG,
    'mtmamba_plus/mtmamba-plus_swin-l_nyud.py': (
        'sum', dict(semseg=1.0, depth=1.0, normals=10.0, edge=50.0)),
    'mtmamba_plus/mtmamba-plus_swin-l_pascal.py': UNIT_LOG,
    'mtmamba/mtmamba_swin-l_8xb1-50k_nyudv2-448x576.py': UNIT_LOG,
    'mtmamba/mtmamba_swin-l_8xb1-50k_pascal-context-512x512.py': UNIT_LOG,
    'mtmamba/mtmamba_swin-t_8xb1-50k_nyudv2-448x576.py': UNIT_LOG,
    'mtmamba_plus/mtmamba-plus_swin-l_8xb1-40k_nyudv2-448x576.py': (
        'sum', dict(semseg=1.0, depth=1.0, normals=10.0, edge=50.0)),
    'mtmamba_plus/mtmamba-plus_swin-l_8xb1-40k_pascal-context-512x512.py': UNIT_LOG,
    'demo/mtmamba-tiny_synthetic-nyud.py': UNIT_LOG,
}
EXPECTED_COMBINATION.update({
    osp.relpath(p, CONFIGS): UNIT_LOG
    for p in glob.glob(osp.join(CONFIGS, 'ablations', '*.py'))
})
NYUD = ['semseg', 'depth', 'normals', 'edge']
PASCAL = ['semseg', 'human_parts', 'sal', 'normals', 'edge']


def expected_tasks(config):
    if 'pascal' in config:
        return PASCAL
    if '/singletask-' in config:
        return [config.rsplit('-', 1)[1][:-3]]
    return NYUD


# ------------------------------------------------------------------ hand computations (NumPy)
def log_softmax(x):
    x = x - x.max(axis=0, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=0, keepdims=True))


def softplus(x):
    return np.logaddexp(0, x)


def hand_ce(logits, label):
    """Mean over valid pixels of -log p(label)."""
    valid = label != IGNORE
    lp = log_softmax(logits)
    return -np.mean([lp[label[i, j], i, j] for i, j in zip(*np.nonzero(valid))])


def hand_balanced_sal(logits, label):
    """Weights 1 - p- (background) and p- (salient), p- over the valid pixels only; the
    weighted CE summed and divided by the number of valid pixels."""
    valid = label != IGNORE
    p_neg = np.sum(label[valid] == 0) / valid.sum()
    lp = log_softmax(logits)
    total = 0.0
    for i, j in zip(*np.nonzero(valid)):
        c = label[i, j]
        total += -(p_neg if c == 1 else 1 - p_neg) * lp[c, i, j]
    return total / valid.sum()


def hand_edge(logit, label, w=0.95):
    valid = label != IGNORE
    x, y = logit[valid], label[valid]
    return np.mean(w * y * softplus(-x) + (1 - w) * (1 - y) * softplus(x))


def hand_normals(pred, label):
    """Pixels with any ignored channel are left out entirely."""
    valid = (label != IGNORE).all(axis=0)
    n = pred / np.linalg.norm(pred, axis=0, keepdims=True)
    return np.mean(np.abs(n - label).sum(axis=0)[valid])


def hand_depth(pred, label):
    valid = label != IGNORE
    return np.mean(np.abs(pred[valid] - label[valid]))


HAND = dict(semseg=hand_ce, human_parts=hand_ce, sal=hand_balanced_sal, edge=hand_edge,
            normals=hand_normals, depth=hand_depth)


def make_inputs(tasks, seed=0):
    """(logits of a batch of 1, the data sample, per-task NumPy copies)."""
    rng = np.random.default_rng(seed)
    logits, gts = {}, {}
    for t in tasks:
        logits[t] = rng.normal(size=(CHANNELS[t], H, W))
    gts['semseg'] = rng.integers(0, 40, (H, W))
    gts['semseg'][0, :3] = IGNORE
    gts['human_parts'] = rng.integers(0, 7, (H, W))
    gts['human_parts'][:, -2:] = IGNORE
    # saliency padded with 255 as the training pipeline does (3 of the 5 valid pixels of each
    # row are salient): ignored pixels are neither negatives nor positives for the balance
    gts['sal'] = np.zeros((H, W), np.int64)
    gts['sal'][:, :3] = 1
    gts['sal'][:, -3:] = IGNORE
    gts['edge'] = (rng.random((H, W)) < 0.2).astype(np.float64)
    gts['edge'][-1] = IGNORE
    normals = rng.normal(size=(3, H, W))
    normals /= np.linalg.norm(normals, axis=0)
    normals[0, 1, 1] = IGNORE  # one ignored channel: the whole pixel is ignored
    normals[2, 2, 5] = IGNORE
    normals[:, 4, 4] = IGNORE
    gts['normals'] = normals
    gts['depth'] = rng.uniform(0.5, 5, (H, W))
    gts['depth'][3, 2:6] = IGNORE
    sample = MultiTaskDataSample()
    for t in tasks:
        gt = gts[t] if gts[t].ndim == 3 else gts[t][None]
        sample.set_gt(t, torch.from_numpy(gt).float() if t in ('edge', 'normals', 'depth')
                      else torch.from_numpy(gt))
    batch_logits = {t: torch.from_numpy(x[None]).float() for t, x in logits.items()}
    return batch_logits, sample, logits, gts


def build_head(config):
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    head_cfg = dict(cfg.model.decode_head)
    head_cfg['in_channels'] = (32, 64, 128, 256)  # the loss does not depend on the widths
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmmt')):
        return MODELS.build(head_cfg)


@pytest.mark.parametrize('config', sorted(EXPECTED_COMBINATION))
def test_shipped_objective_equals_hand_computation(config):
    head = build_head(config)
    tasks = expected_tasks(config)
    assert sorted(head.tasks) == sorted(tasks)
    batch_logits, sample, logits, gts = make_inputs(tasks)
    with torch.no_grad():
        out = head.loss_by_feat(batch_logits, [sample])
    scheme, weights = EXPECTED_COMBINATION[config]
    for t in tasks:
        x = logits[t] if CHANNELS[t] > 1 else logits[t][0]
        expected = HAND[t](x, gts[t])
        assert out[f'raw_{t}'].item() == pytest.approx(expected, rel=1e-5), t
        w = (weights or {}).get(t, 1.0)
        combined = w * (np.log(expected + 1e-8) if scheme == 'log' else expected)
        assert out[f'loss_{t}'].item() == pytest.approx(combined, rel=1e-5, abs=1e-6), t
    assert set(out) == {f'{k}_{t}' for t in tasks for k in ('loss', 'raw')}


def test_saliency_balance_ignores_padding():
    # the reference weights count only valid pixels; counting the 255 pixels as negatives gives
    # p- = 5/8 instead of 3/5 (per row) and another value
    loss = MODELS.build(dict(type='BalancedSaliencyLoss'))
    logits = torch.tensor([[[[0.3, -0.2, 1.0, 0.5, 2.0]]], [[[1.5, 0.1, -1.0, 0.2, -3.0]]]])
    logits = logits.permute(1, 0, 2, 3)  # (1, 2, 1, 5)
    label = torch.tensor([[[[1, 0, 0, 255, 255]]]])
    lp = torch.log_softmax(logits[0, :, 0], dim=0)
    p_neg = 2 / 3
    expected = -(p_neg * lp[1, 0] + (1 - p_neg) * lp[0, 1] + (1 - p_neg) * lp[0, 2]) / 3
    assert loss(logits, label).item() == pytest.approx(expected.item(), rel=1e-6)


def test_normals_loss_ignores_pixels_with_any_ignored_channel():
    loss = MODELS.build(dict(type='NormalsL1Loss'))
    pred = torch.tensor([[0.0, 3.0], [0.0, 0.0], [2.0, 4.0]]).view(1, 3, 1, 2)
    # pixel 0 valid and exact; pixel 1 with only its x channel ignored
    label = torch.tensor([[0.0, IGNORE], [0.0, 0.0], [1.0, 1.0]]).view(1, 3, 1, 2)
    assert loss(pred, label).item() == 0.0
    label[0, 0, 0, 1] = 0.0  # now valid: |(0.6, 0, 0.8) - (0, 0, 1)|_1 = 0.8, mean 0.4
    assert loss(pred, label).item() == pytest.approx(0.4, rel=1e-6)


def test_uncertainty_scheme_value_and_gradient_at_nonzero_log_variance():
    combiner = MultiTaskLoss(['a', 'b'], scheme='uncertainty', weights=dict(a=2.0, b=1.0))
    with torch.no_grad():
        combiner.log_vars.copy_(torch.tensor([0.4, -1.2]))
    la = torch.tensor([0.5, 1.5], requires_grad=True)  # per-image losses, mean 1.0
    lb = torch.tensor([3.0], requires_grad=True)
    out = combiner(dict(a=la, b=lb))
    # exp(-s) * w * mean(L) + s
    assert out['loss_a'].item() == pytest.approx(np.exp(-0.4) * 2.0 * 1.0 + 0.4, rel=1e-6)
    assert out['loss_b'].item() == pytest.approx(np.exp(1.2) * 3.0 - 1.2, rel=1e-6)
    (out['loss_a'] + out['loss_b']).backward()
    # d/ds = 1 - exp(-s) w mean(L); d/dL_i = exp(-s) w / B
    np.testing.assert_allclose(combiner.log_vars.grad.numpy(),
                               [1 - np.exp(-0.4) * 2.0, 1 - np.exp(1.2) * 3.0], rtol=1e-5)
    np.testing.assert_allclose(la.grad.numpy(), [np.exp(-0.4)] * 2, rtol=1e-6)
    np.testing.assert_allclose(lb.grad.numpy(), [np.exp(1.2)], rtol=1e-6)


def _feed(combiner, values):
    outs = []
    for a, b in values:
        outs.append(combiner(dict(a=torch.tensor([a]), b=torch.tensor([b]))))
    return outs


def test_dwa_resumes_from_its_state_dict():
    losses = [(4.0, 1.0), (4.0, 1.0), (2.0, 1.0), (2.0, 1.0), (1.0, 1.0)]
    trained = MultiTaskLoss(['a', 'b'], scheme='dwa', dwa_window=2, dwa_temperature=2.0)
    _feed(trained, losses[:4])  # two complete windows: means (4, 1) then (2, 1)
    resumed = MultiTaskLoss(['a', 'b'], scheme='dwa', dwa_window=2, dwa_temperature=2.0)
    resumed.load_state_dict(trained.state_dict())
    (nxt, ) = _feed(resumed, losses[4:])
    # lambda = T * softmax(r / temperature), r = (2/4, 1/1)
    r = np.array([0.5, 1.0]) / 2.0
    lam = 2 * np.exp(r) / np.exp(r).sum()
    assert nxt['loss_a'].item() == pytest.approx(lam[0] * 1.0, rel=1e-6)
    assert nxt['loss_b'].item() == pytest.approx(lam[1] * 1.0, rel=1e-6)
    assert lam[0] < 0.9  # not the weights 1 of a fresh start
    (ref, ) = _feed(trained, losses[4:])
    assert ref['loss_a'].item() == nxt['loss_a'].item()
