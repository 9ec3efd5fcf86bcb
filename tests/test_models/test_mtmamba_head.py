import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

from mmmt.models.decode_heads import (MultiTaskMambaDecodeHead, mmmt_to_reference_key,
                                      reference_to_mmmt_key)
from mmmt.registry import MODELS

HERE = osp.dirname(osp.dirname(__file__))
KEYS_DIR = osp.join(HERE, 'data', 'reference_keys')
CONFIGS = osp.join(osp.dirname(HERE), 'configs')


def read_keys(name):
    keys = {}
    with open(osp.join(KEYS_DIR, name)) as f:
        for line in f:
            m = re.match(r'^(\S+)\s+(\[buffer\]\s+)?\(([\d,]*)\)$', line.strip())
            assert m, line
            keys[m.group(1)] = tuple(int(v) for v in m.group(3).split(',') if v)
    return keys


def build_model(config, **head_overrides):
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    cfg.model.backbone.init_cfg = None  # never download weights in tests
    cfg.model.decode_head.update(head_overrides)
    return MODELS.build(cfg.model)


def num_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('config,overrides,expected', [
    ('mtmamba_swin-l_nyud.py', {}, 307_999_137),
    ('mtmamba_swin-l_pascal.py', {}, 335_858_326),
    ('mtmamba_swin-l_nyud.py', dict(use_ctm=False, num_stm_blocks=1), 252_518_817),
    ('mtmamba_swin-l_nyud.py', dict(use_ctm=False, num_stm_blocks=2), 276_485_025),
    ('mtmamba_swin-l_nyud.py', dict(use_ctm=False, num_stm_blocks=3), 300_451_233),
])
def test_parameter_counts_match_paper(config, overrides, expected):
    assert num_params(build_model(config, **overrides)) == expected


@pytest.mark.parametrize('tasks,key_file', [
    (dict(semseg=40, depth=1, normals=3, edge=1), 'mtmamba_nyud_decoder_keys.txt'),
    (dict(semseg=21, human_parts=7, sal=2, normals=3, edge=1),
     'mtmamba_pascal_decoder_keys.txt'),
])
def test_decoder_state_dict_corresponds_to_reference(tasks, key_file):
    head = MultiTaskMambaDecodeHead(tasks=tasks)
    ours = {k: tuple(v.shape) for k, v in head.state_dict().items()
            if not k.startswith(('task_losses.', 'loss_'))}
    reference = read_keys(key_file)
    mapped = {reference_to_mmmt_key(k): shape for k, shape in reference.items()}
    assert len(mapped) == len(reference)  # one-to-one
    assert mapped == ours
    for key in ours:
        assert reference_to_mmmt_key(mmmt_to_reference_key(key)) == key


def test_task_order_follows_reference_regardless_of_config_order():
    head = MultiTaskMambaDecodeHead(
        in_channels=(16, 32, 64, 128), tasks=dict(edge=1, normals=3, semseg=5, depth=1))
    assert head.tasks == ['semseg', 'depth', 'normals', 'edge']


def test_drop_path_schedule_over_nine_slots():
    head = MultiTaskMambaDecodeHead(in_channels=(16, 32, 64, 128), tasks=dict(semseg=3, depth=1))
    rates = []
    for stage in head.stages:
        rates += [getattr(b.drop_path, 'drop_prob', 0.0) for b in stage.stm_blocks['semseg']]
        rates.append(getattr(stage.ctm.drop_path, 'drop_prob', 0.0))
    assert rates == pytest.approx([0.2, 0.175, 0.15, 0.125, 0.1, 0.075, 0.05, 0.025, 0.0])


def test_head_rejects_bad_configuration():
    with pytest.raises(ValueError, match='tasks'):
        MultiTaskMambaDecodeHead(in_channels=(16, 32, 64, 128), tasks={})
    with pytest.raises(ValueError, match='twice'):
        MultiTaskMambaDecodeHead(in_channels=(16, 32, 48, 128), tasks=dict(semseg=3))
    with pytest.raises(ValueError, match='no default loss'):
        MultiTaskMambaDecodeHead(in_channels=(16, 32, 64, 128), tasks=dict(albedo=3))


def test_input_size_not_multiple_of_32_is_a_clear_error():
    head = MultiTaskMambaDecodeHead(in_channels=(8, 16, 32, 64), tasks=dict(depth=1))
    feats = [torch.randn(1, 8, 27, 8), torch.randn(1, 16, 14, 4), torch.randn(1, 32, 7, 2),
             torch.randn(1, 64, 4, 1)]
    with pytest.raises(ValueError, match='multiples of 32'):
        head(feats)


def test_small_model_forward_backward_every_parameter_gets_gradient():
    torch.manual_seed(0)
    model = build_model('mtmamba_swin-t_nyud.py')
    # eval mode only switches off stochastic depth, which may legitimately drop a whole block
    model.eval()
    x = torch.randn(2, 3, 128, 160)
    out = model(x, mode='tensor')
    assert set(out) == {'semseg', 'depth', 'normals', 'edge'}
    channels = dict(semseg=40, depth=1, normals=3, edge=1)
    for task, logits in out.items():
        assert logits.shape == (2, channels[task], 128, 160)
        assert torch.isfinite(logits).all()
    sum(v.pow(2).mean() for v in out.values()).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []
    zero = [n for n, p in model.named_parameters() if p.grad is not None and not p.grad.any()]
    assert zero == []
