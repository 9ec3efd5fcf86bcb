import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmmt.models import MultiTaskEncoderDecoder, SwinEncoder
from mmmt.registry import MODELS

TINY = dict(arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]),
            window_size=4, out_indices=(0, 1, 2, 3), pad_small_map=True)


def imagenet_like_checkpoint(path):
    """backbone.* weights as in an mmpretrain classifier, with the classifier's final norm
    stored as backbone.norm3 (OpenMMLab's converted Swin checkpoints)."""
    reference = SwinEncoder(**TINY)
    state = {f'backbone.{k}': torch.full_like(v, 0.5) if v.is_floating_point() else v
             for k, v in reference.state_dict().items()}
    state['backbone.norm3.weight'] = torch.full((128, ), 3.0)
    state['backbone.norm3.bias'] = torch.full((128, ), -2.0)
    state['head.fc.weight'] = torch.zeros(10, 128)
    torch.save(dict(state_dict=state), path)


@pytest.mark.parametrize('fresh', [True, False])
def test_output_norms_start_from_identity_after_imagenet_weights(tmp_path, fresh):
    ckpt = str(tmp_path / 'swin.pth')
    imagenet_like_checkpoint(ckpt)
    encoder = MODELS.build(dict(
        type='SwinEncoder', fresh_out_norms=fresh, **TINY,
        init_cfg=dict(type='Pretrained', checkpoint=ckpt, prefix='backbone.')))
    encoder.init_weights()
    # the pretrained weights are loaded ...
    assert torch.all(encoder.patch_embed.projection.weight == 0.5)
    assert torch.all(encoder.stages[3].blocks[0].ffn.layers[0][0].weight == 0.5)
    # ... and the output norms are identity (the reference's), or the checkpoint's if asked
    if fresh:
        for i in range(4):
            norm = getattr(encoder, f'norm{i}')
            assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)
    else:
        assert torch.all(encoder.norm3.weight == 3.0) and torch.all(encoder.norm0.weight == 0.5)


def test_without_pretrained_weights_nothing_is_reset():
    torch.manual_seed(0)
    encoder = SwinEncoder(**TINY)
    with torch.no_grad():
        encoder.norm3.weight.fill_(7.0)
    encoder.init_weights()  # random init keeps mmpretrain's behaviour
    assert torch.all(encoder.norm3.weight == 7.0)


def test_segmentor_pretrained_argument_loads_backbone_weights(tmp_path):
    ckpt = str(tmp_path / 'swin.pth')
    imagenet_like_checkpoint(ckpt)
    model = MultiTaskEncoderDecoder(
        backbone=dict(type='SwinEncoder', **TINY),
        decode_head=dict(type='MultiTaskMambaDecodeHead', in_channels=(16, 32, 64, 128),
                         tasks=dict(semseg=3, depth=1), num_stm_blocks=1),
        pretrained=ckpt)
    model.init_weights()
    assert torch.all(model.backbone.patch_embed.projection.weight == 0.5)
    assert torch.all(model.backbone.norm3.weight == 1)


def test_swin_configs_use_the_encoder():
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(osp.join(repo, 'configs', 'mtmamba_swin-l_nyud.py'))
    assert cfg.model.backbone.type == 'SwinEncoder'
    assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
