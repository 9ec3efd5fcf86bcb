"""Checkpoint converters: reference MTMamba/MTMamba++ -> mmmt (and back), Microsoft Swin ->
mmpretrain. Reference checkpoints are made here from the key lists (random tensors)."""
import argparse
import gc
import importlib.util
import math
import os
import os.path as osp
import re
from collections import OrderedDict

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmmt.models.decode_heads import reference_to_mmmt_state_dict
from mmmt.models.utils import (merge_order_to_unfold, microsoft_swin_to_mmpretrain,
                               mmpretrain_swin_to_microsoft, unfold_to_merge_order)
from mmmt.registry import MODELS
from tests.tool_loader import load_tool

TESTS = osp.dirname(osp.dirname(__file__))
ROOT = osp.dirname(TESTS)
KEYS_DIR = osp.join(TESTS, 'data', 'reference_keys')
CONFIGS = osp.join(ROOT, 'configs')

PAIRS = [
    ('mtmamba', 'nyud', 'mtmamba_swin-l_nyud.py'),
    ('mtmamba', 'pascal', 'mtmamba_swin-l_pascal.py'),
    ('mtmamba_plus', 'nyud', 'mtmamba_plus/mtmamba-plus_swin-l_nyud.py'),
    ('mtmamba_plus', 'pascal', 'mtmamba_plus/mtmamba-plus_swin-l_pascal.py'),
]
#: Random values shared by all fake tensors: each tensor is a view at its own offset, so a
#: checkpoint of ~300 M parameters takes ~50 MB in memory and on disk.
POOL_SIZE = 12_000_000


def load_converter(name):
    return load_tool('tools', 'model_converters', name)


def read_keys(name):
    keys = OrderedDict()
    with open(osp.join(KEYS_DIR, name)) as f:
        for line in f:
            m = re.match(r'^(\S+)\s+(\[buffer\]\s+)?\(([\d,]*)\)$', line.strip())
            keys[m.group(1)] = tuple(int(v) for v in m.group(3).split(',') if v)
    return keys


def fake_reference_state_dict(variant, dataset, seed=0):
    """``{'module.' + name: tensor}`` with the shapes of the key lists, as DDP saves them."""
    pool = torch.randn(POOL_SIZE, generator=torch.Generator().manual_seed(seed))
    prefix = 'mtmamba_plus' if variant == 'mtmamba_plus' else 'mtmamba'
    names = [('backbone.' + k, s)
             for k, s in read_keys('swin_large_mmseg_backbone_keys.txt').items()]
    names += list(read_keys(f'{prefix}_{dataset}_decoder_keys.txt').items())
    state = OrderedDict()
    for i, (name, shape) in enumerate(names):
        numel = math.prod(shape)
        if name.endswith(('relative_position_index', 'num_batches_tracked')):
            tensor = torch.randint(0, 500, shape, dtype=torch.long)
        else:
            offset = (i * 104_729) % (POOL_SIZE - numel)
            tensor = pool[offset:offset + numel].view(shape)
        state['module.' + name] = tensor
    return state


@pytest.fixture(scope='module')
def segmentor():
    """One Swin-L MultiTaskEncoderDecoder; each test installs the head of its config."""
    cfg = Config.fromfile(osp.join(CONFIGS, 'mtmamba_swin-l_nyud.py'))
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    model.backbone_cfg = cfg.model.backbone
    yield model
    del model
    gc.collect()


@pytest.fixture(scope='module')
def tool():
    return load_converter('mtmamba2mmmt')


@pytest.mark.parametrize('variant,dataset,config', PAIRS)
def test_reference_checkpoint_converts_loads_strictly_and_round_trips(
        segmentor, tool, tmp_path, variant, dataset, config, capsys):
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    cfg.model.backbone.init_cfg = None
    assert cfg.model.backbone == segmentor.backbone_cfg  # so the shared backbone is the config's
    segmentor.decode_head = MODELS.build(cfg.model.decode_head)

    reference = fake_reference_state_dict(variant, dataset)
    src, dst, back = (str(tmp_path / n) for n in ('checkpoint.pth.tar', 'mmmt.pth', 'back.pth'))
    torch.save({'model': reference}, src)

    tool.main([src, dst])  # --variant auto
    n = len(reference)
    assert capsys.readouterr().out.splitlines()[-1] == \
        f'wrote {n} tensors in the mmmt layout ({variant}) to {dst}'
    converted = torch.load(dst, weights_only=True)
    assert set(converted) == {'state_dict', 'meta'}
    assert converted['meta']['variant'] == variant
    state = converted['state_dict']
    assert all(k.startswith(('backbone.', 'decode_head.')) for k in state)
    segmentor.load_state_dict(state, strict=True)

    # every tensor lands, unchanged, in the parameter the mapping names ...
    ours = segmentor.state_dict()
    expected, _ = reference_to_mmmt_state_dict(reference, variant)
    for key, value in expected.items():
        assert torch.equal(ours[key], value.to(ours[key].dtype)), key
    # ... and the mapping puts known tensors where they belong
    spot = {
        'mtmamba': {
            'module.block_2.normals_1.op.x_proj_weight':
            'decode_head.stages.1.stm_blocks.normals.1.op.x_proj_weight',
            'module.block_3.0.op_share.in_proj.weight':
            'decode_head.stages.0.ctm.op_share.in_proj.weight',
            'module.concat_layers.edge_2.bias': 'decode_head.stages.2.skip_fuse.edge.bias',
            'module.final_expand.normals.expand.weight':
            'decode_head.final_expand.normals.expand.weight',
        },
        'mtmamba_plus': {
            'module.block_stm.normals_0.1.op.dt_projs_bias':
            'decode_head.stages.0.stm_blocks.normals.1.op.dt_projs_bias',
            'module.block_ctm.1.0.op.semseg.in_proj_cross.weight':
            'decode_head.stages.1.ctm.op.semseg.in_proj_cross.weight',
            'module.final_expand.edge.1.running_mean':
            'decode_head.final_conv.edge.bn.running_mean',
            'module.final_expand.semseg.0.weight': 'decode_head.final_conv.semseg.conv.weight',
        },
    }[variant]
    spot['module.backbone.stages.2.downsample.reduction.weight'] = \
        'backbone.stages.2.downsample.reduction.weight'
    for ref_key, our_key in spot.items():
        assert torch.equal(ours[our_key], reference[ref_key].to(ours[our_key].dtype)), ref_key

    # round trip: every tensor bit-exact under its original name
    tool.main([dst, back, '--reverse'])
    assert capsys.readouterr().out.splitlines()[-1] == \
        f'wrote {n} tensors in the reference layout to {back}'
    restored = torch.load(back, weights_only=True)['model']
    assert list(restored) == list(reference)
    for key, value in reference.items():
        assert restored[key].dtype == value.dtype and torch.equal(restored[key], value), key


def test_variant_detection_and_wrong_variant(tool, tmp_path):
    reference = fake_reference_state_dict('mtmamba_plus', 'nyud')
    src = str(tmp_path / 'src.pth')
    torch.save({'model': reference}, src)
    with pytest.raises(SystemExit, match=r'src\.pth: not a reference mtmamba decoder key'):
        tool.main([src, str(tmp_path / 'out.pth'), '--variant', 'mtmamba'])
    assert not osp.exists(tmp_path / 'out.pth')


def test_refuses_to_overwrite_and_writes_atomically(tool, tmp_path, monkeypatch):
    src, dst = str(tmp_path / 'src.pth'), str(tmp_path / 'dst.pth')
    torch.save({'model': {'module.final_project.depth.bias': torch.ones(1)}}, src)
    with open(dst, 'w') as f:
        f.write('keep me')
    with pytest.raises(SystemExit, match='--force'):
        tool.main([src, dst])
    assert open(dst).read() == 'keep me'
    tool.main([src, dst, '--force'])
    assert torch.load(dst, weights_only=True)['state_dict'] == {
        'decode_head.final_project.depth.bias': torch.ones(1)}

    # a failure while writing leaves neither a partial file nor a temporary one
    def broken_save(obj, f, *args, **kwargs):
        f.write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', broken_save)
    new = str(tmp_path / 'new.pth')
    with pytest.raises(OSError, match='disk full'):
        tool.main([src, new])
    assert sorted(os.listdir(tmp_path)) == ['dst.pth', 'src.pth']


def test_untrusted_pickle_needs_trust_flag(tool, tmp_path, monkeypatch):
    monkeypatch.delenv('MMMT_TRUST_CHECKPOINTS', raising=False)
    src = str(tmp_path / 'src.pth')
    torch.save({'model': {'module.final_project.depth.bias': torch.ones(1)},
                'args': argparse.Namespace(lr=1e-4)}, src)
    with pytest.raises(SystemExit, match='src.pth: refused .*--trust-checkpoint'):
        tool.main([src, str(tmp_path / 'a.pth')])
    tool.main([src, str(tmp_path / 'a.pth'), '--trust-checkpoint'])
    assert osp.exists(tmp_path / 'a.pth')


def test_mmseg_swin_and_mmpretrain_swin_are_the_same_function():
    """The backbone keys are kept as they are: check that this preserves the function."""
    from mmpretrain.models import SwinTransformer as PretrainSwin
    from mmseg.models.backbones import SwinTransformer as SegSwin
    torch.manual_seed(0)
    mmseg_swin = SegSwin(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4),
                         window_size=12, drop_path_rate=0.0, out_indices=(0, 1, 2, 3))
    mmseg_swin.eval()  # mmseg's Swin.train() returns None
    for p in mmseg_swin.parameters():
        torch.nn.init.normal_(p, std=0.2)
    reference = {'module.backbone.' + k: v for k, v in mmseg_swin.state_dict().items()}
    converted, _ = reference_to_mmmt_state_dict(reference, 'mtmamba')
    ours = PretrainSwin(arch=dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4]),
                        window_size=12, drop_path_rate=0.0, out_indices=(0, 1, 2, 3),
                        pad_small_map=True)
    ours.eval()  # returns None for Swin
    ours.load_state_dict({k[len('backbone.'):]: v for k, v in converted.items()}, strict=True)
    for size in [(448, 576), (96, 160)]:  # the NYUD size; maps smaller than a window
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            for a, b in zip(mmseg_swin(x), ours(x)):
                assert torch.allclose(a, b, atol=1e-5)


# ----------------------------------------------------------------------------- Microsoft Swin


def microsoft_swin_state_dict(embed=16, depths=(2, 2, 2, 2), heads=(1, 2, 2, 4), window=7,
                              num_classes=10, resolution=56):
    """An official-layout Swin v1 state_dict (names and shapes of Microsoft's release)."""
    g = torch.Generator().manual_seed(0)
    rnd = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    sd = OrderedDict()
    sd['patch_embed.proj.weight'] = rnd(embed, 3, 4, 4)
    sd['patch_embed.proj.bias'] = rnd(embed)
    sd['patch_embed.norm.weight'], sd['patch_embed.norm.bias'] = rnd(embed), rnd(embed)
    for i, (depth, h) in enumerate(zip(depths, heads)):
        c, res = embed * 2**i, resolution // 2**i
        for j in range(depth):
            p = f'layers.{i}.blocks.{j}.'
            sd[p + 'norm1.weight'], sd[p + 'norm1.bias'] = rnd(c), rnd(c)
            sd[p + 'attn.relative_position_bias_table'] = rnd((2 * window - 1)**2, h)
            sd[p + 'attn.relative_position_index'] = torch.randint(
                0, (2 * window - 1)**2, (window**2, window**2), generator=g)
            sd[p + 'attn.qkv.weight'], sd[p + 'attn.qkv.bias'] = rnd(3 * c, c), rnd(3 * c)
            sd[p + 'attn.proj.weight'], sd[p + 'attn.proj.bias'] = rnd(c, c), rnd(c)
            sd[p + 'norm2.weight'], sd[p + 'norm2.bias'] = rnd(c), rnd(c)
            sd[p + 'mlp.fc1.weight'], sd[p + 'mlp.fc1.bias'] = rnd(4 * c, c), rnd(4 * c)
            sd[p + 'mlp.fc2.weight'], sd[p + 'mlp.fc2.bias'] = rnd(c, 4 * c), rnd(c)
            if j % 2 and res > window:
                sd[p + 'attn_mask'] = torch.zeros((res // window)**2, window**2, window**2)
        if i < len(depths) - 1:
            sd[f'layers.{i}.downsample.reduction.weight'] = rnd(2 * c, 4 * c)
            sd[f'layers.{i}.downsample.norm.weight'] = rnd(4 * c)
            sd[f'layers.{i}.downsample.norm.bias'] = rnd(4 * c)
    c = embed * 2**(len(depths) - 1)
    sd['norm.weight'], sd['norm.bias'] = rnd(c), rnd(c)
    sd['head.weight'], sd['head.bias'] = rnd(num_classes, c), rnd(num_classes)
    return sd


def test_swin2mmpretrain_loads_strictly_into_mmpretrain_classifier(tmp_path):
    from mmpretrain.models import ImageClassifier
    assert not osp.exists(osp.join(osp.dirname(importlib.util.find_spec('mmpretrain').origin),
                                   '.mim', 'tools', 'model_converters', 'swin2mmpretrain.py'))
    microsoft = microsoft_swin_state_dict()
    src, dst = str(tmp_path / 'swin_tiny_patch4_window7_224.pth'), str(tmp_path / 'out.pth')
    torch.save({'model': microsoft}, src)
    load_converter('swin2mmpretrain').main([src, dst])
    converted = torch.load(dst, weights_only=True)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = ImageClassifier(
            backbone=dict(type='SwinTransformer', arch=dict(embed_dims=16, depths=[2, 2, 2, 2],
                                                            num_heads=[1, 2, 2, 4]),
                          img_size=224, window_size=7),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=128))
    classifier.load_state_dict(converted['state_dict'], strict=True)
    state = classifier.state_dict()
    assert torch.equal(state['backbone.stages.1.blocks.1.ffn.layers.0.0.weight'],
                       microsoft['layers.1.blocks.1.mlp.fc1.weight'])
    assert torch.equal(state['backbone.norm3.bias'], microsoft['norm.bias'])
    assert torch.equal(state['head.fc.weight'], microsoft['head.weight'])
    # and back (without the constant attn_mask)
    restored = mmpretrain_swin_to_microsoft(converted['state_dict'])
    kept = OrderedDict((k, v) for k, v in microsoft.items() if not k.endswith('attn_mask'))
    assert list(restored) == list(kept)
    assert all(torch.equal(restored[k], v) for k, v in kept.items())


def test_patch_merging_reorder_preserves_the_function():
    """Microsoft's merge (concat of x[0::2,0::2], x[1::2,0::2], x[0::2,1::2], x[1::2,1::2]) with
    the original weights == mmpretrain's Unfold merge with the converted ones."""
    from mmpretrain.models.utils import PatchMerging
    torch.manual_seed(0)
    c = 6
    weight, norm_w, norm_b = torch.randn(2 * c, 4 * c), torch.randn(4 * c), torch.randn(4 * c)
    x = torch.randn(2, 8, 10, c)
    merged = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]],
                       dim=-1)
    expected = torch.nn.functional.layer_norm(merged, (4 * c, ), norm_w, norm_b) @ weight.t()

    ours = PatchMerging(in_channels=c, out_channels=2 * c)
    converted = microsoft_swin_to_mmpretrain({
        'layers.0.downsample.reduction.weight': weight,
        'layers.0.downsample.norm.weight': norm_w,
        'layers.0.downsample.norm.bias': norm_b,
    }, backbone_prefix='')
    ours.load_state_dict({k[len('stages.0.downsample.'):]: v for k, v in converted.items()})
    out, size = ours(x.reshape(2, 80, c), (8, 10))
    assert size == (4, 5)
    assert torch.allclose(out.view(2, 4, 5, 2 * c), expected, atol=1e-5)
    assert torch.equal(unfold_to_merge_order(merge_order_to_unfold(weight)), weight)


def test_microsoft_converter_rejects_unknown_keys():
    with pytest.raises(KeyError, match='not a Microsoft Swin'):
        microsoft_swin_to_mmpretrain({'backbone.stages.0.blocks.0.norm1.weight': torch.ones(1)})
    with pytest.raises(KeyError, match='v1'):
        microsoft_swin_to_mmpretrain({'layers.0.blocks.0.norm1.weight': torch.ones(1),
                                      'logit_scale': torch.ones(1)})


def test_config_check_names_what_does_not_fit_and_knows_config_tasks(tmp_path, capsys):
    from mmmt.structures import TASKS
    from mmmt.utils.analysis import build_model
    tool = load_converter('mtmamba2mmmt')
    demo = osp.join(CONFIGS, 'demo', 'mtmamba-tiny_synthetic-nyud.py')
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(
        f"_base_ = [{demo!r}]\n"
        "custom_tasks = [dict(name='albedo', gt_channels=3, out_channels=3,\n"
        "                     loss=dict(type='NormalsL1Loss'), draw='normals')]\n"
        "model = dict(decode_head=dict(tasks=dict(albedo=3)))\n")
    try:
        state = build_model(str(cfg_file)).state_dict()
        TASKS.unregister('albedo')  # as in a fresh converter process
        tool.check_loads(str(cfg_file), state)
        assert 'loads strictly into' in capsys.readouterr().out
        missing = next(k for k in state if '.albedo.' in k)
        state.pop(missing)
        with pytest.raises(SystemExit, match=f'--config .*cfg.py: .*{missing}'):
            tool.check_loads(str(cfg_file), state)
    finally:
        TASKS.unregister('albedo')


def test_reverse_checks_its_source_against_the_config(tmp_path, capsys):
    """--reverse --config checks the mmmt source before exporting; the option was once
    dropped silently, so a checkpoint of another model was exported as if checked."""
    from mmmt.utils.analysis import build_model
    tool = load_converter('mtmamba2mmmt')
    demo = osp.join(CONFIGS, 'demo', 'mtmamba-tiny_synthetic-nyud.py')
    src = tmp_path / 'demo.pth'
    torch.save(dict(state_dict=build_model(demo).state_dict()), src)
    back = tmp_path / 'back.pth.tar'
    tool.main([str(src), str(back), '--reverse', '--variant', 'mtmamba', '--config', demo])
    assert 'loads strictly into' in capsys.readouterr().out
    assert any(k.startswith('module.block_1.semseg_0.') for k in torch.load(back)['model'])
    other = tmp_path / 'two_tasks.py'  # the same model without normals and edge
    other.write_text(f"_base_ = [{demo!r}]\n"
                     "model = dict(decode_head=dict(tasks=dict(_delete_=True, semseg=40, "
                     "depth=1)))\n")
    dst = tmp_path / 'other.pth.tar'
    with pytest.raises(SystemExit, match=r'--config .*two_tasks\.py: .*normals'):
        tool.main([str(src), str(dst), '--reverse', '--variant', 'mtmamba',
                   '--config', str(other)])
    assert not dst.exists()


@pytest.mark.parametrize('tool', ['mtmamba2mmmt', 'swin2mmpretrain'])
def test_converter_tools_name_a_missing_or_foreign_source(tool, tmp_path):
    """A source that is missing, or a checkpoint of another kind, is the user's error: the tool
    stops with the file and the reason (one line, status 2 through run_main), writing nothing."""
    from mmmt.utils import UserInputError
    main = load_tool('tools', 'model_converters', tool).main
    dst = tmp_path / 'out.pth'
    with pytest.raises(UserInputError, match=r'checkpoint file not found: .*missing\.pth'):
        main([str(tmp_path / 'missing.pth'), str(dst)])
    foreign = tmp_path / 'foreign.pth'
    torch.save({'model': {'fc.weight': torch.ones(2, 2)}}, foreign)  # a classifier's layout
    why = 'not a reference mtmamba decoder key' if tool == 'mtmamba2mmmt' else \
        'not a Microsoft Swin checkpoint'
    with pytest.raises(SystemExit, match=rf'foreign\.pth: .*{why}'):
        main([str(foreign), str(dst)])
    assert not dst.exists()
