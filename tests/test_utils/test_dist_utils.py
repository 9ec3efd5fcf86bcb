import os.path as osp

import torch
from mmengine.config import Config

from mmmt.models import MTMambaPlusDecodeHead
from mmmt.registry import MODELS
from mmmt.utils import replace_sync_bn

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')


def test_sync_bn_of_a_config_becomes_bn():
    cfg = Config.fromfile(osp.join(CONFIGS, 'mtmamba_plus', 'mtmamba-plus_swin-l_nyud.py'))
    assert cfg.model.decode_head.norm_cfg.type == 'SyncBN'
    assert replace_sync_bn(cfg.model) == 1
    assert cfg.model.decode_head.norm_cfg == dict(type='BN', requires_grad=True)
    nested = dict(a=[dict(norm_cfg=dict(type='SyncBN')), (dict(type='mmcv.SyncBN'), )],
                  b=dict(type='GN'))
    assert replace_sync_bn(nested) == 2 and nested['b'] == dict(type='GN')
    assert nested['a'][0]['norm_cfg']['type'] == 'BN' and nested['a'][1][0]['type'] == 'BN'


def test_the_replaced_head_has_plain_batch_norm():
    # SyncBatchNorm raises on CPU tensors as soon as a process group with several ranks
    # exists (gloo runs); the rewritten config builds torch's BatchNorm2d instead
    head_cfg = dict(type='MTMambaPlusDecodeHead', in_channels=(16, 32, 64, 128),
                    tasks=dict(semseg=3), head_channels=8, norm_cfg=dict(type='SyncBN'))
    assert isinstance(MODELS.build(head_cfg).final_conv['semseg'].bn, torch.nn.SyncBatchNorm)
    replace_sync_bn(head_cfg)
    head = MODELS.build(head_cfg).train()
    assert isinstance(head, MTMambaPlusDecodeHead)
    bn = head.final_conv['semseg'].bn
    assert type(bn) is torch.nn.BatchNorm2d
    feats = [torch.randn(2, 16 * 2**i, 16 // 2**i, 16 // 2**i) for i in range(4)]
    assert head(feats)['semseg'].shape == (2, 3, 64, 64)
