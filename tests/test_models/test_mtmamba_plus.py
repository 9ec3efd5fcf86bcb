"""MTMamba++: layers, head, parameter counts, reference names, configs."""
import gc
import os.path as osp
import re

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from mmmt.models.decode_heads import (MTMambaPlusDecodeHead, mmmt_to_reference_key,
                                      reference_to_mmmt_key)
from mmmt.models.layers import SS2D, CrossSS2D, PointwiseConvNHWC, SCTMBlock
from mmmt.registry import MODELS

HERE = osp.dirname(osp.dirname(__file__))
KEYS_DIR = osp.join(HERE, 'data', 'reference_keys')
CONFIGS = osp.join(osp.dirname(HERE), 'configs')
NYUD_CFG = osp.join(CONFIGS, 'mtmamba_plus', 'mtmamba-plus_swin-l_nyud.py')
PASCAL_CFG = osp.join(CONFIGS, 'mtmamba_plus', 'mtmamba-plus_swin-l_pascal.py')
NYUD_TASKS = dict(semseg=40, depth=1, normals=3, edge=1)
PASCAL_TASKS = dict(semseg=21, human_parts=7, sal=2, normals=3, edge=1)


def read_keys(name):
    keys = {}
    with open(osp.join(KEYS_DIR, name)) as f:
        for line in f:
            m = re.match(r'^(\S+)\s+(\[buffer\]\s+)?\(([\d,]*)\)$', line.strip())
            assert m, line
            keys[m.group(1)] = tuple(int(v) for v in m.group(3).split(',') if v)
    return keys


def num_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope='module')
def nyud_model():
    """The MTMamba++ NYUD model from its config (Swin-L, built once for the module)."""
    cfg = Config.fromfile(NYUD_CFG)
    cfg.model.backbone.init_cfg = None  # never download weights in tests
    model = MODELS.build(cfg.model)
    yield model
    del model
    gc.collect()


def test_parameter_counts_match_reference(nyud_model):
    assert num_params(nyud_model.backbone) == 195_201_204
    assert num_params(nyud_model) == 315_021_249
    # PASCAL: the same backbone config, the PASCAL head
    pascal = Config.fromfile(PASCAL_CFG)
    assert pascal.model.backbone == Config.fromfile(NYUD_CFG).model.backbone
    head = MODELS.build(pascal.model.decode_head)
    assert num_params(nyud_model.backbone) + num_params(head) == 343_231_606
    # the SyncBN buffers of the 4 / 5 heads: running mean, var (96 each) and the counter
    assert sum(b.numel() for b in nyud_model.decode_head.buffers()) == 4 * 193
    assert sum(b.numel() for b in head.buffers()) == 5 * 193


@pytest.mark.parametrize('tasks,key_file', [
    (NYUD_TASKS, 'mtmamba_plus_nyud_decoder_keys.txt'),
    (PASCAL_TASKS, 'mtmamba_plus_pascal_decoder_keys.txt'),
])
def test_decoder_state_dict_corresponds_to_reference(tasks, key_file):
    head = MTMambaPlusDecodeHead(tasks=tasks, norm_cfg=dict(type='SyncBN'))
    ours = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    reference = read_keys(key_file)
    mapped = {reference_to_mmmt_key(k, 'mtmamba_plus'): s for k, s in reference.items()}
    assert len(mapped) == len(reference)  # one-to-one
    assert mapped == ours  # every parameter and SyncBN buffer, with its shape
    for key in ours:
        assert reference_to_mmmt_key(mmmt_to_reference_key(key, 'mtmamba_plus'),
                                     'mtmamba_plus') == key
    assert sum(v.numel() for k, v in head.state_dict().items()
               if 'running_' in k or 'num_batches' in k) == len(tasks) * 193


def test_reference_names_of_the_new_parts():
    to_mmmt = lambda k: reference_to_mmmt_key(k, 'mtmamba_plus')  # noqa: E731
    assert to_mmmt('concat_layers.human_parts_2.weight') == 'stages.2.skip_fuse.human_parts.weight'
    assert to_mmmt('block_stm.sal_1.1.op.A_logs') == 'stages.1.stm_blocks.sal.1.op.A_logs'
    assert to_mmmt('block_ctm.0.0.conv_share.1.weight') == 'stages.0.ctm.conv_share.1.weight'
    assert to_mmmt('block_ctm.2.0.op.edge.in_proj_cross.weight') == \
        'stages.2.ctm.op.edge.in_proj_cross.weight'
    assert to_mmmt('final_expand.depth.0.weight') == 'final_conv.depth.conv.weight'
    assert to_mmmt('final_expand.depth.1.running_var') == 'final_conv.depth.bn.running_var'
    assert to_mmmt('final_project.normals.bias') == 'final_project.normals.bias'
    with pytest.raises(KeyError):
        to_mmmt('block_3.0.norm_share.weight')  # an MTMamba (ECCV) key
    with pytest.raises(ValueError, match='variant'):
        reference_to_mmmt_key('final_project.depth.bias', 'mtmamba_pp')


def test_drop_path_slots_as_mtmamba():
    head = MTMambaPlusDecodeHead(in_channels=(16, 32, 64, 128), tasks=dict(semseg=3, depth=1))
    rates = []
    for stage in head.stages:
        rates += [getattr(b.drop_path, 'drop_prob', 0.0) for b in stage.stm_blocks['semseg']]
        rates.append(getattr(stage.ctm.drop_path, 'drop_prob', 0.0))
    assert rates == pytest.approx([0.2, 0.175, 0.15, 0.125, 0.1, 0.075, 0.05, 0.025, 0.0])


def test_cross_ss2d_scans_task_input_with_shared_parameters():
    """u (and the gate) come from the task feature, delta/B/C from the shared one."""
    torch.manual_seed(0)
    m = CrossSS2D(16).eval()
    assert m.in_proj_cross.weight.shape == (32, 16) and m.in_proj.weight.shape == (64, 16)
    x, shared = torch.randn(2, 5, 6, 16), torch.randn(2, 5, 6, 16)
    y = m(x, shared)
    assert y.shape == x.shape
    # With a zero shared feature, B = C = 0: each direction returns D*u = u, the merge 4u.
    xs, z = m.in_proj(x).chunk(2, dim=-1)
    u = F.silu(m.conv2d(xs.permute(0, 3, 1, 2)))
    expected = m.out_proj(m.out_norm(4 * u.permute(0, 2, 3, 1)) * F.silu(z))
    assert torch.allclose(m(x, torch.zeros_like(shared)), expected, atol=1e-5)
    # the shared feature steers the scan: gradients reach it and in_proj_cross
    shared.requires_grad_(True)
    m(x, shared).sum().backward()
    assert shared.grad.abs().sum() > 0 and m.in_proj_cross.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='spatial'):
        m(x, shared[:, :4])


def test_cross_ss2d_with_its_own_feature_as_source_equals_ss2d_scan():
    torch.manual_seed(0)
    m = CrossSS2D(8).eval()
    plain = SS2D(8).eval()
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if 'cross' not in k})
    u = torch.randn(1, 16, 4, 3)
    assert torch.allclose(m.scan(u, source=u), plain.scan(u), atol=1e-6)


def test_sctm_block_structure_and_forward():
    torch.manual_seed(0)
    block = SCTMBlock(8, ['semseg', 'depth', 'edge'], drop_path=0.1).eval()
    assert block.norm_share.normalized_shape == (24, )
    assert block.conv_share[0].weight.shape == (8, 24, 1, 1)
    assert block.conv_share[1].weight.shape == (8, 8, 3, 3)
    feats = {t: torch.randn(2, 4, 5, 8) for t in ['semseg', 'depth', 'edge']}
    out = block(feats)
    assert {t: v.shape for t, v in out.items()} == {t: v.shape for t, v in feats.items()}
    # the shared map is computed in NCHW: 1x1 conv over the concatenation, then 3x3
    cat = block.norm_share(torch.cat([feats[t] for t in block.tasks], -1)).permute(0, 3, 1, 2)
    expected = block.conv_share[1](block.conv_share[0](cat)).permute(0, 2, 3, 1)
    assert torch.allclose(block.shared_feature(feats), expected, atol=1e-6)
    # residual: with zeroed out_proj each task feature passes through unchanged
    for op in block.op.values():
        torch.nn.init.zeros_(op.out_proj.weight)
    assert all(torch.equal(out_t, feats[t]) for t, out_t in block(feats).items())


def test_pointwise_conv_nhwc_equals_conv1x1():
    torch.manual_seed(0)
    conv = PointwiseConvNHWC(6, 4)
    x = torch.randn(2, 3, 5, 6)
    ref = F.conv2d(x.permute(0, 3, 1, 2), conv.weight, conv.bias).permute(0, 2, 3, 1)
    assert conv.weight.shape == (4, 6, 1, 1)
    assert torch.allclose(conv(x), ref, atol=1e-6)


def test_head_forward_backward_and_shapes():
    torch.manual_seed(0)
    head = MTMambaPlusDecodeHead(
        in_channels=(16, 32, 64, 128), tasks=dict(semseg=5, depth=1), head_channels=8)
    conv = head.final_conv['semseg'].conv
    assert conv.weight.shape == (8, 16, 3, 3) and head.final_project['depth'].in_channels == 8
    assert isinstance(head.final_conv['semseg'].bn, torch.nn.BatchNorm2d)
    assert not hasattr(head, 'final_expand')
    assert isinstance(head.stages[0].skip_fuse['depth'], PointwiseConvNHWC)
    feats = [torch.randn(2, 16 * 2**i, 16 // 2**i, 24 // 2**i) for i in range(4)]
    head.train()
    for stage in head.stages:  # no stochastic depth: every parameter must get a gradient
        for blocks in stage.stm_blocks.values():
            for b in blocks:
                b.drop_path = torch.nn.Identity()
        stage.ctm.drop_path = torch.nn.Identity()
    out = head(feats)
    assert out['semseg'].shape == (2, 5, 64, 96) and out['depth'].shape == (2, 1, 64, 96)
    sum(v.pow(2).mean() for v in out.values()).backward()
    assert [n for n, p in head.named_parameters() if p.grad is None] == []


def test_head_output_is_4x_bilinear_of_the_stride4_logits():
    torch.manual_seed(0)
    head = MTMambaPlusDecodeHead(
        in_channels=(8, 16, 32, 64), tasks=dict(depth=1), head_channels=4).eval()
    feats = [torch.randn(1, 8 * 2**i, 8 // 2**i, 8 // 2**i) for i in range(4)]
    captured = {}
    head.final_project['depth'].register_forward_hook(
        lambda mod, inp, out: captured.setdefault('y', out))
    out = head(feats)['depth']
    assert torch.allclose(
        out, F.interpolate(captured['y'], scale_factor=4, mode='bilinear', align_corners=False))


def test_head_rejects_mtmamba_only_options():
    with pytest.raises(TypeError, match='use_ctm'):
        MTMambaPlusDecodeHead(in_channels=(8, 16, 32, 64), tasks=dict(depth=1), use_ctm=False)


@pytest.mark.parametrize('key', ['use_ctm', 'ctm_block', 'logits_scale'])
def test_a_fixed_option_is_a_one_line_input_error(key):
    # an InvalidOptionError: the tools report it in one line (and it is still a TypeError)
    from mmmt.utils.errors import InvalidOptionError
    with pytest.raises(InvalidOptionError) as info:
        MTMambaPlusDecodeHead(in_channels=(8, 16, 32, 64), tasks=dict(depth=1), **{key: None})
    assert str(info.value) == (f"MTMambaPlusHead has no {key!r} option (it is MTMambaHead with "
                               'fixed blocks)')


@pytest.mark.parametrize('head_channels', [0, -3, 2.5, True])
def test_head_channels_of_the_wrong_kind_are_named_when_built(head_channels):
    # 0 built a head of empty maps (all-zero logits); -3, 2.5 and True failed inside torch
    from mmmt.utils.errors import UserInputError
    with pytest.raises(UserInputError, match=re.escape(
            f'MTMambaPlusHead: head_channels must be an int >= 1, got {head_channels!r}')):
        MTMambaPlusDecodeHead(in_channels=(8, 16, 32, 64), tasks=dict(depth=1),
                              head_channels=head_channels)
    head = MTMambaPlusDecodeHead(in_channels=(8, 16, 32, 64), tasks=dict(depth=1),
                                 head_channels=5)
    assert head.final_project['depth'].in_channels == 5


@pytest.mark.parametrize('config,lr,scheme,weights,tasks', [
    (NYUD_CFG, 2e-5, 'sum', dict(semseg=1.0, depth=1.0, normals=10.0, edge=50.0), NYUD_TASKS),
    (PASCAL_CFG, 8e-5, 'log', None, PASCAL_TASKS),
])
def test_recipes_follow_reference(config, lr, scheme, weights, tasks):
    cfg = Config.fromfile(config)
    head = cfg.model.decode_head
    assert head.type == 'MTMambaPlusDecodeHead' and head.tasks == tasks
    assert head.norm_cfg.type == 'SyncBN'  # 8-GPU recipe, as the reference
    assert head.loss_combiner.scheme == scheme
    assert head.loss_combiner.get('weights') == weights
    assert cfg.optim_wrapper.optimizer.lr == lr
    assert cfg.optim_wrapper.optimizer.weight_decay == 1e-6
    assert cfg.train_cfg.max_iters == 40000
    assert cfg.param_scheduler[0].end == 40000 + 1  # PolyLR's last step, see test_schedules.py
    assert cfg.model.backbone.arch == 'large' and cfg.model.backbone.window_size == 12


def test_segmentor_with_plus_head_trains_and_predicts():
    from mmengine.structures import PixelData

    from mmmt.structures import MultiTaskDataSample
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='MultiTaskEncoderDecoder',
        data_preprocessor=dict(type='MultiTaskDataPreProcessor', size_divisor=32),
        backbone=dict(type='mmpretrain.SwinTransformer',
                      arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]),
                      window_size=4, out_indices=(0, 1, 2, 3), pad_small_map=True),
        decode_head=dict(
            type='MTMambaPlusDecodeHead', in_channels=(16, 32, 64, 128), head_channels=8,
            tasks=dict(semseg=5, depth=1),
            loss_combiner=dict(type='MultiTaskLoss', scheme='sum',
                               weights=dict(semseg=1.0, depth=10.0)))))

    def sample(**meta):
        s = MultiTaskDataSample(metainfo=dict(dict(ori_shape=(64, 96), img_shape=(64, 96),
                                                   img_padding_size=[0, 0, 0, 0]), **meta))
        s.gt_semseg = PixelData(data=torch.randint(0, 5, (1, 64, 96)))
        s.gt_depth = PixelData(data=torch.rand(1, 64, 96) * 5 + 0.1)  # every pixel valid
        return s

    def expected_losses(logits, samples):
        """The 'sum' scheme of cross-entropy and L1 (written out), weighted 1 and 10."""
        gt_semseg = torch.cat([s.gt_semseg.data for s in samples])
        gt_depth = torch.stack([s.gt_depth.data for s in samples])
        ce = -logits['semseg'].log_softmax(1).gather(1, gt_semseg[:, None]).mean()
        l1 = (logits['depth'] - gt_depth).abs().mean()
        return dict(loss_semseg=ce, loss_depth=10 * l1, raw_semseg=ce, raw_depth=l1)

    images = [torch.randn(3, 64, 96), torch.randn(3, 64, 96)]
    data = dict(inputs=images, data_samples=[sample(), sample()])
    batch = model.data_preprocessor(data, training=True)
    # training mode (batch-norm statistics of the batch, stochastic depth): the same random
    # draws give the loss forward and the plain forward the same logits
    torch.manual_seed(1)
    losses = model(**batch, mode='loss')
    torch.manual_seed(1)
    with torch.no_grad():
        logits = model(batch['inputs'], mode='tensor')
    assert {t: v.shape[1:] for t, v in logits.items()} == dict(semseg=(5, 64, 96),
                                                               depth=(1, 64, 96))
    for key, value in expected_losses(logits, batch['data_samples']).items():
        assert torch.allclose(losses[key], value, rtol=1e-5), key
    model.eval()
    with torch.no_grad():  # some depth logits below 0, so that the ReLU of depth shows
        model.decode_head.final_project['depth'].bias -= 0.3
    # predictions: image 0 a 50x70 image centre-padded to 64x96 (left/right 13, top/bottom
    # 7), image 1 the input at half its original 128x192 size
    data = dict(inputs=images, data_samples=[
        sample(ori_shape=(50, 70), img_padding_size=[13, 13, 7, 7]),
        sample(ori_shape=(128, 192))])
    with torch.no_grad():
        batch = model.data_preprocessor(data, training=False)
        logits = model(batch['inputs'], mode='tensor')
        preds = model(**batch, mode='predict')
    crops = [{t: v[0:1, :, 7:57, 13:83] for t, v in logits.items()},
             {t: F.interpolate(v[1:2], size=(128, 192), mode='bilinear', align_corners=False)
              for t, v in logits.items()}]
    for pred, crop in zip(preds, crops):
        semseg, depth = crop['semseg'][0], crop['depth'][0]
        assert torch.allclose(pred.semseg_logits.data, semseg, atol=1e-6)
        assert pred.pred_semseg.data.dtype == torch.int64
        assert torch.equal(pred.pred_semseg.data, semseg.argmax(0, keepdim=True))
        assert torch.allclose(pred.pred_depth.data, depth.clamp(min=0), atol=1e-6)
        assert (depth < 0).any() and (depth > 0).any()
