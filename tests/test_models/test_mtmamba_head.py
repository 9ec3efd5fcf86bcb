import os.path as osp
import re

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from mmmt.models.decode_heads import (MultiTaskMambaDecodeHead, mmmt_to_reference_key,
                                      reference_to_mmmt_key)
from mmmt.models.losses import DepthL1Loss, MultiTaskLoss
from mmmt.registry import MODELS
from mmmt.structures import TASKS, MultiTaskDataSample, register_task
from mmmt.utils.errors import UserInputError

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
    model = build_model(config, **overrides)
    assert num_params(model) == expected
    # the reference's bilinear resizes (head outputs, loss) use align_corners=False
    assert model.decode_head.align_corners is False


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
    # a misspelt task is named with the registered ones (not as a missing loss)
    with pytest.raises(ValueError, match=r"decode_head.tasks: 'depht' is not a registered task "
                       r"\(registered: semseg, depth, human_parts, sal, normals, edge"):
        MultiTaskMambaDecodeHead(in_channels=(16, 32, 64, 128), tasks=dict(depht=1))
    try:  # a registered task without a loss of its own
        register_task(name='albedo', gt_channels=3)
        with pytest.raises(ValueError, match="task 'albedo' has no default loss"):
            MultiTaskMambaDecodeHead(in_channels=(16, 32, 64, 128), tasks=dict(albedo=3))
    finally:
        TASKS.unregister('albedo')
    with pytest.raises(ValueError, match=r"tasks\['normals'\] = 1.*3 channel"):
        MultiTaskMambaDecodeHead(in_channels=(16, 32, 64, 128), tasks=dict(normals=1))
    # the dataset's list of names copied into the head was "list indices must be integers",
    # a count of the wrong kind "invalid literal for int()" or truncated (40.5 -> 40)
    with pytest.raises(ValueError, match=r"`tasks` must map task names to output channels, "
                       r"e.g\. .*, got \['semseg', 'depth'\]$"):
        MultiTaskMambaDecodeHead(in_channels=(16, 32, 64, 128), tasks=['semseg', 'depth'])
    for bad in ('forty', 40.5, 0, True):
        with pytest.raises(ValueError, match=re.escape(
                f"MTMambaHead: tasks['semseg'] must be a number of output channels (an int >= "
                f'1), got {bad!r}')):
            MultiTaskMambaDecodeHead(in_channels=(16, 32, 64, 128), tasks=dict(semseg=bad))


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


def test_old_names_build_the_new_classes():
    from mmmt.models.decode_heads import MTMambaHead, MTMambaPlusHead, MTMambaSegHead
    small = dict(in_channels=(8, 16, 32, 64), num_stm_blocks=1)
    assert type(MODELS.build(dict(type='MultiTaskMambaDecodeHead', tasks=dict(depth=1),
                                  **small))) is MTMambaHead
    assert type(MODELS.build(dict(type='MTMambaPlusDecodeHead', tasks=dict(depth=1),
                                  head_channels=4, **small))) is MTMambaPlusHead
    # the single-task switch of earlier configs builds the mmseg adapter
    seg = MODELS.build(dict(type='MultiTaskMambaDecodeHead', tasks=dict(semseg=5),
                            tensor_output=True, **small))
    assert type(seg) is MTMambaSegHead
    # mmseg options the earlier multi-task head swallowed are dropped with a warning
    with pytest.warns(UserWarning, match='ignore_index'):
        head = MODELS.build(dict(type='MultiTaskMambaDecodeHead', tasks=dict(depth=1),
                                 ignore_index=255, **small))
    assert type(head) is MTMambaHead


def test_seg_head_follows_mmseg_decode_head_contract():
    from mmengine.structures import PixelData
    from mmseg.models.decode_heads.decode_head import BaseDecodeHead
    from mmseg.structures import SegDataSample

    from mmmt.models.decode_heads import MTMambaSegHead
    torch.manual_seed(0)
    head = MTMambaSegHead(num_classes=5, in_channels=(8, 16, 32, 64), num_stm_blocks=1,
                          use_ctm=False)
    assert isinstance(head, BaseDecodeHead)
    assert not hasattr(head, 'conv_seg')  # no classifier built only to be unused
    assert head.num_classes == head.out_channels == 5
    # no multi-task loss modules (their log-variance would be an unused parameter)
    assert not hasattr(head, 'loss_combiner') and not hasattr(head, 'task_losses')
    feats = [torch.randn(2, 8 * 2**i, 8 // 2**i, 8 // 2**i) for i in range(4)]
    logits = head(feats)
    assert logits.shape == (2, 5, 32, 32)
    samples = []
    for _ in range(2):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, 5, (1, 32, 32)))
        samples.append(s)
    losses = head.loss(feats, samples, None)
    assert set(losses) == {'loss_ce', 'acc_seg'}
    expected = F.cross_entropy(logits, torch.stack([s.gt_sem_seg.data[0] for s in samples]),
                               ignore_index=255)
    assert torch.allclose(losses['loss_ce'], expected, atol=1e-5)
    out = head.predict(feats, [dict(img_shape=(40, 48), pad_shape=(40, 48))], None)
    assert out.shape == (2, 5, 40, 48)
    with pytest.raises(ValueError, match='single-task'):
        MTMambaSegHead(tasks=dict(semseg=3, depth=1), in_channels=(8, 16, 32, 64))


@pytest.mark.parametrize('key', ['task_losses', 'loss_combiner'])
def test_seg_head_refuses_the_multi_task_losses_in_one_line(key):
    # an InvalidOptionError: the tools report it in one line (and it is still a TypeError)
    from mmmt.models.decode_heads import MTMambaSegHead
    from mmmt.utils.errors import InvalidOptionError
    with pytest.raises(InvalidOptionError) as info:
        MTMambaSegHead(num_classes=5, in_channels=(8, 16, 32, 64), **{key: {}})
    assert str(info.value) == f'MTMambaSegHead takes loss_decode, not {key!r}'


def test_head_is_built_from_block_configs():
    """A decoder with other blocks is a config of the same class, no subclass needed."""
    from mmmt.models.layers import LinearNHWC, PointwiseConvNHWC, SCTMBlock, STMBlock
    head = MultiTaskMambaDecodeHead(
        in_channels=(8, 16, 32, 64), tasks=dict(semseg=3, depth=1), num_stm_blocks=2,
        stm_block=[[dict(type='STMBlock', d_state=4), dict(type='STMBlock', d_state=8)]] * 3,
        ctm_block=dict(type='SCTMBlock', d_state=4), skip_fuse=dict(type='PointwiseConvNHWC'),
        drop_path_rate=0.1)
    stage = head.stages[0]
    assert isinstance(stage.ctm, SCTMBlock)
    assert isinstance(stage.skip_fuse['depth'], PointwiseConvNHWC)
    assert [b.op.d_state for b in stage.stm_blocks['semseg']] == [4, 8]
    assert isinstance(stage.stm_blocks['semseg'][0], STMBlock)
    assert isinstance(MultiTaskMambaDecodeHead(
        in_channels=(8, 16, 32, 64), tasks=dict(depth=1)).stages[1].skip_fuse['depth'],
        LinearNHWC)
    with pytest.raises(ValueError, match='per stage'):
        MultiTaskMambaDecodeHead(in_channels=(8, 16, 32, 64), tasks=dict(depth=1),
                                 stm_block=[dict(type='STMBlock')] * 2)


def test_predict_by_feat_resizes_bilinearly_to_the_batch_input_shape():
    # only align_corners is read from the head, so no decoder is built; [0, 1] upsampled 2x
    # with align_corners=False samples at x = -0.25 (clamped), 0.25, 0.75, 1.25 (clamped)
    head = type('Head', (), dict(align_corners=False))()
    logits = dict(depth=torch.tensor([[[[0.0, 1.0]]]]))
    out = MultiTaskMambaDecodeHead.predict_by_feat(
        head, logits, [dict(batch_input_shape=(2, 4), img_shape=(1, 1))])
    expected = torch.tensor([0.0, 0.25, 0.75, 1.0]).expand(1, 1, 2, 4)
    torch.testing.assert_close(out['depth'], expected)
    same = MultiTaskMambaDecodeHead.predict_by_feat(head, logits, [dict(img_shape=(1, 2))])
    assert same['depth'] is logits['depth']  # already at the input size: untouched
    # without the preprocessor's batch_input_shape the padded frame (pad_shape) is the input
    # size, not the image before CenterPad (img_shape): its logits were squashed into that
    padded = MultiTaskMambaDecodeHead.predict_by_feat(
        head, logits, [dict(pad_shape=(2, 4), img_shape=(1, 1))])
    torch.testing.assert_close(padded['depth'], expected)


def test_loss_by_feat_resizes_logits_to_the_labels_with_the_heads_align_corners():
    """Cityscapes trains 512x1024 logits against 1024x2048 labels: [0, 1] widened 2x is
    (0, 0.25, 0.75, 1) with align_corners=False (the head's default), against labels
    (0, 0, 1, 1) an L1 of 0.5 / 4 (align_corners=True would give (0, 1/3, 2/3, 1): 2/3 / 4)."""
    head = type('Head', (), dict(
        align_corners=False, tasks=['depth'], task_losses=dict(depth=DepthL1Loss()),
        loss_combiner=MultiTaskLoss(['depth'], scheme='sum'),
        _stack_task_gt=MultiTaskMambaDecodeHead._stack_task_gt))()
    sample = MultiTaskDataSample()
    sample.set_gt('depth', torch.tensor([[[0.0, 0.0, 1.0, 1.0]]]))
    out = MultiTaskMambaDecodeHead.loss_by_feat(
        head, dict(depth=torch.tensor([[[[0.0, 1.0]]]])), [sample])
    assert out['raw_depth'].item() == pytest.approx(0.5 / 4)


class _BatchMeanL1(torch.nn.Module):
    """A new task's loss as one might write it: the mean over the whole batch."""

    def forward(self, logits, gt):
        return (logits - gt).abs().mean()


@pytest.mark.parametrize('loss, got', [(_BatchMeanL1(), r'\(\)'), (torch.nn.L1Loss(
    reduction='none'), r'\(2, 1, 1, 2\)')])
def test_a_task_loss_that_is_not_per_image_is_named(loss, got):
    # the 'log' scheme takes the log of each image's loss: a scalar (the log of the batch
    # mean) or a per-pixel map (a log per pixel) would train another objective without a word
    head = type('Head', (), dict(
        align_corners=False, tasks=['curvature'], task_losses=dict(curvature=loss),
        loss_combiner=MultiTaskLoss(['curvature'], scheme='log'),
        _stack_task_gt=MultiTaskMambaDecodeHead._stack_task_gt))()
    samples = [MultiTaskDataSample() for _ in range(2)]
    for i, sample in enumerate(samples):
        sample.set_gt('curvature', torch.tensor([[[-1.0, float(i)]]]))
    with pytest.raises(UserInputError, match=(
            rf"task 'curvature': its loss {type(loss).__name__} returned {got}; a task loss "
            r'returns one value per image, shape \(B,\) = \(2,\)')):
        MultiTaskMambaDecodeHead.loss_by_feat(
            head, dict(curvature=torch.zeros(2, 1, 1, 2)), samples)


@pytest.mark.parametrize('option, value, expected', [
    ('drop_path_rate', 1.5, 'a number in [0, 1)'),  # DropPath(1.5) scaled branches by -2
    ('drop_path_rate', -0.1, 'a number in [0, 1)'),  # silently no drop path
    ('num_stm_blocks', -1, 'an int >= 0'), ('num_stm_blocks', 1.5, 'an int >= 0'),
    ('logits_scale', 0, 'an int >= 1'), ('d_state', 0, 'an int >= 1'),
    ('ssm_ratio', 0, 'an int >= 1'), ('dt_rank', 'foo', "'auto' or an int >= 1"),
    ('final_head', dict(type='FinalPatchExpandX4'), 'a config with a `name`'),
    ('final_head.out_channels', 0, 'an int >= 1'),  # a head of empty maps
])
def test_head_options_of_the_wrong_kind_are_named_when_built(option, value, expected):
    # each failed in forward or inside torch, naming no option
    with pytest.raises(UserInputError, match=rf'^MTMambaHead: {option} must be '
                                             rf'{re.escape(expected)}.*, got '):
        if option == 'final_head.out_channels':
            value = dict(name='final_conv', type='ConvNormReLU', out_channels=value)
        MultiTaskMambaDecodeHead(in_channels=(8, 16, 32, 64), tasks=dict(depth=1),
                                 **{option.split('.')[0]: value})
    assert MultiTaskMambaDecodeHead(in_channels=(8, 16, 32, 64), tasks=dict(depth=1),
                                    num_stm_blocks=0, drop_path_rate=0.0, ssm_ratio=1)


def test_features_that_do_not_fit_in_channels_are_named():
    head = MultiTaskMambaDecodeHead(in_channels=(16, 32, 64, 128), tasks=dict(depth=1))
    feats = [torch.randn(1, c, s, s) for c, s in ((8, 32), (16, 16), (32, 8), (64, 4))]
    with pytest.raises(UserInputError, match=re.escape(
            'MTMambaHead: the backbone gives 4 feature level(s) of [8, 16, 32, 64] channels, '
            'decode_head.in_channels is [16, 32, 64, 128]')):
        head(feats)
    with pytest.raises(UserInputError, match=r'gives 3 feature level\(s\) of \[16, 32, 64\]'):
        head([torch.randn(1, c, s, s) for c, s in ((16, 32), (32, 16), (64, 8))])


@pytest.mark.parametrize('model_options, message', [
    (dict(test_cfg=dict(mode='slide', crop_size=(64, 64), stride=(32, 32))),
     "test_cfg.mode: only 'whole' is supported"),  # it was ignored: whole-image predictions
    (dict(task_activations=dict(depth='foo')), 'task_activations.depth: \'foo\' is not one of'),
    (dict(task_activations=dict(sal='sigmoid')), "task_activations: 'sal' is not a task"),
])
def test_segmentor_options_that_would_be_ignored_or_fail_late(model_options, message):
    cfg = Config.fromfile(osp.join(CONFIGS, 'demo', 'mtmamba-tiny_synthetic-nyud.py'))
    cfg.model.update(model_options)
    with pytest.raises(UserInputError, match=re.escape(message)):
        MODELS.build(cfg.model)
