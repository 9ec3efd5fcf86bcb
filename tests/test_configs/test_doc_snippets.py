"""The config snippets of README.md and docs/ that are meant to be pasted into a child of a
shipped config, pasted into one and built.

Each snippet is the fenced code block after an ``<!-- snippet: NAME ... -->`` comment.
"""
import os.path as osp
import re

import pytest
import torch
from mmengine import DefaultScope
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO, 'configs')
UPERNET_SWIN_T = ('mmseg::swin/'
                  'swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py')


def snippet(doc: str, name: str) -> str:
    """The fenced code block that follows ``<!-- snippet: name`` in ``doc`` (a path relative to
    the repository root)."""
    with open(osp.join(REPO, doc), encoding='utf-8') as f:
        text = f.read()
    found = re.search(r'<!-- snippet: ' + re.escape(name) + r'\b[^>]*-->\s*\n```[a-z]*\n(.*?)\n```',
                      text, re.S)
    assert found, (f'{doc} has no fenced code block after a "<!-- snippet: {name} -->" marker '
                   '(the test reads the snippet from there)')
    return found.group(1) + '\n'


def child_config(tmp_path, base: str, body: str, name: str = 'child.py') -> Config:
    """``Config.fromfile`` of a file holding ``_base_ = [base]`` and then ``body``."""
    path = tmp_path / name
    path.write_text(f'_base_ = [{base!r}]\n{body}', encoding='utf-8')
    return Config.fromfile(str(path))


def shipped(config: str) -> str:
    return osp.join(CONFIGS, config)


# -- README.md: the decode head in an mmseg config -----------------------------------------------


def test_snippet_marker_missing_fails_clearly(tmp_path):
    (tmp_path / 'doc.md').write_text('```python\nx = 1\n```\n')
    with pytest.raises(AssertionError, match='no fenced code block after'):
        snippet(str(tmp_path / 'doc.md'), 'mmseg-decode-head')  # an absolute path


def test_readme_mmseg_head_snippet_replaces_an_upernet_head(tmp_path):
    """The README's snippet in a child of mmseg's UPerNet Swin-T config: the model is an
    EncoderDecoder with only the MTMamba head, which trains (loss) and predicts."""
    from mmengine.structures import PixelData
    from mmseg.models import EncoderDecoder
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    from mmmt.models import MTMambaSegHead

    # mmseg:: resolves offline, from the configs mmseg installs in its package (.mim)
    base = child_config(tmp_path, UPERNET_SWIN_T, '', name='plain_child.py')
    assert base.model.decode_head.type == 'UPerHead' and 'in_index' in base.model.decode_head
    assert base.model.auxiliary_head.type == 'FCNHead'

    cfg = child_config(tmp_path, UPERNET_SWIN_T, snippet('README.md', 'mmseg-decode-head'))
    head = cfg.model.decode_head
    assert head.type == 'mmmt.MTMambaSegHead' and head.num_classes == 150
    assert head.in_channels == (96, 192, 384, 768)  # Swin-T's, as the base's backbone
    assert cfg.model.auxiliary_head is None
    # small settings: a 1-block Swin with 16 channels
    cfg.model.backbone.update(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                              window_size=4, drop_path_rate=0.0, init_cfg=None)
    head.update(in_channels=(16, 32, 64, 128), num_stm_blocks=1, drop_path_rate=0.0)

    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    assert isinstance(model, EncoderDecoder) and isinstance(model.decode_head, MTMambaSegHead)
    assert not model.with_auxiliary_head

    torch.manual_seed(0)
    size = (64, 64)
    meta = dict(ori_shape=size, img_shape=size, pad_shape=size, padding_size=[0, 0, 0, 0])
    inputs = torch.randn(2, 3, *size)
    samples = [SegDataSample(metainfo=meta,
                             gt_sem_seg=PixelData(data=torch.randint(0, 150, (1, *size))))
               for _ in range(2)]
    model.train()
    losses = model.loss(inputs, samples)
    assert set(losses) == {'decode.loss_ce', 'decode.acc_seg'}  # no aux.* loss
    assert torch.isfinite(losses['decode.loss_ce'])
    losses['decode.loss_ce'].backward()
    grads = [p.grad for p in model.decode_head.final_project.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)

    model.eval()
    with torch.no_grad():
        preds = model.predict(inputs[:1], [SegDataSample(metainfo=meta)])
    assert preds[0].pred_sem_seg.data.shape == (1, *size)
    assert preds[0].seg_logits.data.shape == (150, *size)


# -- docs/test_time_augmentation.md: other TTA scales ---------------------------------------------


def tta_scales_of(cfg: Config) -> list:
    """The fixed RandomScaling factors of the config's TestTimeAug, in order."""
    tta = cfg.tta_pipeline[-1]
    assert tta.type == 'TestTimeAug'
    scales = []
    for view in tta.transforms[0]:
        assert view.type == 'ImageOnly' and view.transforms[0].type == 'RandomScaling'
        low, high = view.transforms[0].scale_range
        assert low == high
        scales.append(low)
    return scales


def paste_into_configs(tmp_path, body: str, name: str = 'child.py') -> Config:
    """``body`` as a file of ``configs/`` (its ``'./x.py'`` bases are configs/x.py)."""
    body = re.sub(r"_base_ = \['\./([^']+)'\]", lambda m: f'_base_ = [{shipped(m.group(1))!r}]',
                  body)
    assert shipped('') in body, 'the snippet names no ./ base config'
    path = tmp_path / name
    path.write_text(body, encoding='utf-8')
    return Config.fromfile(str(path))


@pytest.mark.parametrize('config', ['mtmamba_swin-l_nyud.py', 'mtmamba_swin-l_pascal.py'])
def test_tta_scales_snippet_gives_its_scales(tmp_path, config):
    body = snippet('docs/test_time_augmentation.md', 'tta-scales')
    assert "_base_ = ['./mtmamba_swin-l_nyud.py']" in body
    cfg = paste_into_configs(tmp_path, body.replace('mtmamba_swin-l_nyud.py', config))
    base = Config.fromfile(shipped(config))
    assert tta_scales_of(base) == [0.75, 1.0, 1.25]
    assert tta_scales_of(cfg) == [1.0, 1.25]
    # everything but the scales is the base's: the loaders, the flips, the base's own
    # normalisation and its crop (448x576 NYUD, 512x512 PASCAL), the packing
    assert cfg.tta_pipeline[:-1] == base.tta_pipeline[:-1]
    assert cfg.tta_pipeline[-1].transforms[1:] == base.tta_pipeline[-1].transforms[1:]
    assert cfg.tta_model == base.tta_model


def test_tta_scales_alone_in_a_child_changes_nothing(tmp_path):
    """What the doc warns about: the base built tta_pipeline from its own tta_scales."""
    cfg = child_config(tmp_path, shipped('mtmamba_swin-l_nyud.py'), 'tta_scales = (1.0, )\n')
    assert cfg.tta_scales == (1.0, )
    assert tta_scales_of(cfg) == [0.75, 1.0, 1.25]


# -- docs/multi_task_balancing.md: a balancer in a shipped config --------------------------------


@pytest.mark.parametrize('config', [
    'mtmamba_swin-l_nyud.py',  # MTMamba's recipe, configs/_base_/schedules/schedule_50k.py
    'mtmamba_plus/mtmamba-plus_swin-l_8xb1-40k_nyudv2-448x576.py',  # its own lr / decay
])
def test_balancer_snippet_keeps_the_configs_optimizer(tmp_path, config):
    import torch.nn as nn
    from mmengine.optim import build_optim_wrapper

    import mmmt.engine  # noqa: F401  registers the wrapper and the balancers
    from mmmt.engine import MultiTaskOptimWrapper, PCGrad

    base = Config.fromfile(shipped(config))
    cfg = child_config(tmp_path, shipped(config),
                       snippet('docs/multi_task_balancing.md', 'balancer'))
    assert base.optim_wrapper.type == 'OptimWrapper'
    assert cfg.optim_wrapper.type == 'MultiTaskOptimWrapper'
    assert cfg.optim_wrapper.balancer == dict(type='PCGrad')
    # the recipe is untouched: the same optimizer (type, lr, weight decay, betas, ...) and
    # clip_grad
    assert cfg.optim_wrapper.optimizer == base.optim_wrapper.optimizer
    assert cfg.optim_wrapper.get('clip_grad') == base.optim_wrapper.get('clip_grad')

    model = nn.Module()
    model.backbone, model.head = nn.Linear(3, 4), nn.Linear(4, 1)
    with DefaultScope.overwrite_default_scope('mmmt'):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert isinstance(wrapper, MultiTaskOptimWrapper) and isinstance(wrapper.balancer, PCGrad)
    group = wrapper.optimizer.param_groups[0]
    assert type(wrapper.optimizer).__name__ == base.optim_wrapper.optimizer.type
    assert group['lr'] == base.optim_wrapper.optimizer.lr
    assert group['weight_decay'] == base.optim_wrapper.optimizer.weight_decay


# -- docs/how_to_add_a_task.md: a new task in a shipped config -----------------------------------


@pytest.mark.parametrize('config', [
    'mtmamba_swin-l_nyud.py',  # the evaluator's tasks a dict
    'demo/mtmamba-tiny_synthetic-nyud.py',  # the evaluator's tasks a list
])
def test_task_snippet_replaces_the_tasks_of_a_shipped_config(tmp_path, config):
    base = Config.fromfile(shipped(config))
    cfg = child_config(tmp_path, shipped(config),
                       snippet('docs/how_to_add_a_task.md', 'task-config'))
    tasks = ['semseg', 'depth', 'occupancy']
    head = cfg.model.decode_head
    assert head.tasks == dict(semseg=40, depth=1, occupancy=3)
    # the rest of the head is the base's
    assert {k: v for k, v in head.items() if k != 'tasks'} == \
        {k: v for k, v in base.model.decode_head.items() if k != 'tasks'}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.tasks == tasks, loader
        assert cfg[loader].dataset.type == base[loader].dataset.type
    for evaluator in ('val_evaluator', 'test_evaluator'):
        assert cfg[evaluator].type == 'MultiTaskMetric'
        assert cfg[evaluator].tasks == dict(semseg=None, depth=None,
                                            occupancy=dict(num_classes=3)), evaluator


# -- docs/how_to_add_a_dataset.md: a dataset of one's own in a shipped config --------------------


def page_dataset_module(tmp_path, monkeypatch):
    """The page's dataset class, as the page's ``my_project/datasets.py`` under ``tmp_path``
    (on ``sys.path``, so that the snippet's ``custom_imports`` imports it)."""
    import sys

    code = snippet('docs/how_to_add_a_dataset.md', 'dataset-class')
    assert code.startswith('# my_project/datasets.py\n')
    # how_to_add_a_task's subclass for its occupancy task, "after MyIndoorDataset"
    occupancy = snippet('docs/how_to_add_a_task.md', 'task-dataset')
    assert occupancy.startswith('# my_project/datasets.py, after MyIndoorDataset\n')
    tasks = snippet('docs/how_to_add_a_task.md', 'task-module')
    assert tasks.startswith('# my_project/tasks.py\n')
    (tmp_path / 'my_project').mkdir()
    (tmp_path / 'my_project' / '__init__.py').write_text('')
    (tmp_path / 'my_project' / 'datasets.py').write_text(code + '\n\n' + occupancy,
                                                         encoding='utf-8')
    (tmp_path / 'my_project' / 'tasks.py').write_text(tasks, encoding='utf-8')
    monkeypatch.syspath_prepend(str(tmp_path))
    # imported (and the class registered) once per process: DATASETS refuses a second
    # MyIndoorDataset, so a later test finds it in sys.modules
    assert 'my_project' not in sys.modules or \
        sys.modules['my_project.datasets'].MyIndoorDataset.SUPPORTED_TASKS == ('semseg', 'depth')


def write_my_indoor(root, ids, split, occupancy=(0, 1, 2, 255)):
    """The page's layout: images/<id>.jpg, seg/<id>.png, depth/<id>.npy, splits/<split>.txt;
    labels 0..12 (the page's 13 classes) and 255; and how_to_add_a_task's occ/<id>.png with
    the ``occupancy`` values."""
    import mmcv
    import numpy as np

    rng = np.random.default_rng(0)
    for sub in ('images', 'seg', 'depth', 'splits', 'occ'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in ids:
        mmcv.imwrite(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8), str(root / 'images' /
                                                                            f'{i}.jpg'))
        seg = rng.choice(np.array([0, 5, 12, 255], np.uint8), (32, 40))
        mmcv.imwrite(seg, str(root / 'seg' / f'{i}.png'))
        occ = rng.choice(np.array(occupancy, np.uint8), (32, 40))
        mmcv.imwrite(occ, str(root / 'occ' / f'{i}.png'))
        np.save(str(root / 'depth' / f'{i}.npy'), rng.uniform(0.5, 5, (32, 40)).astype('float32'))
    (root / 'splits' / f'{split}.txt').write_text('\n'.join(ids) + '\n')


@pytest.mark.parametrize('config', [
    'mtmamba_swin-l_nyud.py',  # the evaluator's tasks a dict
    'demo/mtmamba-tiny_synthetic-nyud.py',  # the evaluator's tasks a list
    'mtmamba/mtmamba_swin-l_8xb1-40k_cityscapes-512x1024.py',  # a dataset argument of its own
])
def test_dataset_snippet_replaces_the_dataset_of_a_shipped_config(tmp_path, monkeypatch,
                                                                  config):
    """The page's config snippet in a child of a shipped config: the page's dataset with its
    two tasks everywhere, the base's pipelines, none of the base dataset's arguments."""
    page_dataset_module(tmp_path, monkeypatch)
    base = Config.fromfile(shipped(config))
    cfg = child_config(tmp_path, shipped(config),
                       snippet('docs/how_to_add_a_dataset.md', 'dataset-config'))
    tasks = ['semseg', 'depth']
    for loader, split, pipeline in (('train_dataloader', 'train', 'train_pipeline'),
                                    ('val_dataloader', 'val', 'test_pipeline'),
                                    ('test_dataloader', 'val', 'test_pipeline')):
        dataset = cfg[loader].dataset
        expected = dict(type='MyIndoorDataset', data_root='data/my_indoor', split=split,
                        tasks=tasks, pipeline=base[pipeline])
        if split == 'val':
            expected['test_mode'] = True
        assert dataset == expected, loader
        assert cfg[loader].batch_size == base[loader].batch_size  # the rest is the base's
    assert cfg.model.decode_head.tasks == dict(semseg=13, depth=1)
    for evaluator in ('val_evaluator', 'test_evaluator'):
        assert cfg[evaluator].type == 'MultiTaskMetric'
        assert cfg[evaluator].tasks == dict(semseg=None, depth=None), evaluator
        # no delta_m against the base dataset's single-task results (Cityscapes' semseg=80.0,
        # depth=1.0 would otherwise stay)
        assert cfg[evaluator].delta_m_baselines is None
        assert build_metric(cfg[evaluator]).delta_m_baselines is None
    assert 'my_project.datasets' in cfg.custom_imports.imports  # imported by fromfile


def test_dataset_snippet_builds_the_page_dataset(tmp_path, monkeypatch):
    """The merged train dataset, built on a 1-image dataset in the page's layout, reads a
    sample through the base's train pipeline."""
    from mmmt.registry import DATASETS

    page_dataset_module(tmp_path, monkeypatch)
    cfg = child_config(tmp_path, shipped('mtmamba_swin-l_nyud.py'),
                       snippet('docs/how_to_add_a_dataset.md', 'dataset-config'))
    root = tmp_path / 'my_indoor'
    write_my_indoor(root, ['a0'], 'train')
    cfg.train_dataloader.dataset.data_root = str(root)
    with DefaultScope.overwrite_default_scope('mmmt'):
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
        sample = dataset[0]
    assert type(dataset).__name__ == 'MyIndoorDataset' and len(dataset) == 1
    # as many class names as the head's semseg channels (labels up to 12 pass the check)
    assert len(dataset.metainfo['classes']) == cfg.model.decode_head.tasks['semseg'] == 13
    data = sample['data_samples']
    assert sample['inputs'].shape == (3, 448, 576)  # NYUD's crop, from the base's pipeline
    assert data.gt_semseg.data.shape == data.gt_depth.data.shape == (1, 448, 576)
    assert not hasattr(data, 'gt_normals')


def test_task_pages_dataset_loads_the_new_task(tmp_path, monkeypatch):
    """how_to_add_a_task end to end on its files: the task module registered, the page's
    occupancy dataset (a subclass of how_to_add_a_dataset's) in a child of the demo config
    reads occ/<id>.png through the base's train pipeline as int64 class indices; the head
    predicts the task and the evaluator scores it; a label the task's 3 classes do not have
    is named with the task and the file."""
    import sys

    import numpy as np
    from mmengine.registry import init_default_scope

    from mmmt.registry import DATASETS, METRICS, MODELS
    from mmmt.structures import TASKS
    from mmmt.utils.errors import UserInputError

    page_dataset_module(tmp_path, monkeypatch)
    sys.modules.pop('my_project.tasks', None)  # registers the task again when imported
    root = tmp_path / 'my_indoor'
    write_my_indoor(root, ['a0'], 'train')
    # the task page's config in a child of the dataset page's, with the two changes the task
    # page names: the dataset type and the page's 13 classes
    indoor = tmp_path / 'my_indoor_demo.py'
    indoor.write_text(f"_base_ = [{shipped('demo/mtmamba-tiny_synthetic-nyud.py')!r}]\n" +
                      snippet('docs/how_to_add_a_dataset.md', 'dataset-config'))
    body = snippet('docs/how_to_add_a_task.md', 'task-config').replace(
        'semseg=40', 'semseg=13').replace(
            'dataset=dict(tasks=tasks)', "dataset=dict(type='MyOccupancyDataset', tasks=tasks)")
    body += ("custom_imports = dict(imports=['mmmt', 'my_project.tasks', "
             "'my_project.datasets'], allow_failed_imports=False)\n")
    try:
        cfg = child_config(tmp_path, str(indoor), body)
        assert cfg.val_dataloader.dataset.type == 'MyOccupancyDataset'
        assert cfg.test_dataloader.dataset.tasks == ['semseg', 'depth', 'occupancy']
        assert TASKS['occupancy'].activation == 'argmax'  # the page's task module ran
        cfg.train_dataloader.dataset.data_root = str(root)
        init_default_scope('mmmt')
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
        assert type(dataset).__name__ == 'MyOccupancyDataset'
        assert tuple(dataset.tasks) == ('semseg', 'depth', 'occupancy')
        data = dataset[0]['data_samples']
        occ = data.gt_occupancy.data
        assert occ.dtype == torch.int64 and occ.shape == (1, 128, 160)  # the demo's crop
        assert set(np.unique(occ.numpy())) <= {0, 1, 2, 255}
        assert {0, 1, 2} <= set(np.unique(occ.numpy()))
        head = MODELS.build(cfg.model).decode_head
        assert head.task_channels['occupancy'] == 3
        metric = METRICS.build(cfg.val_evaluator)
        assert metric.evaluators['occupancy'].num_classes == 3

        # the page's message for a shipped dataset, which knows only its own tasks
        nyud = child_config(tmp_path, shipped('mtmamba_swin-l_nyud.py'),
                            snippet('docs/how_to_add_a_task.md', 'task-config'), 'nyud.py')
        with pytest.raises(UserInputError, match=re.escape(
                "NYUDv2MultiTaskDataset has no task(s) ['occupancy']")):
            DATASETS.build(nyud.train_dataloader.dataset)

        write_my_indoor(root, ['a0'], 'train', occupancy=(0, 3))
        with pytest.raises(ValueError, match=r'occupancy label values \[3\] outside 0\.\.2 '
                           r'and 255 in .*occ[/\\]a0\.png'):
            dataset[0]
    finally:
        TASKS.unregister('occupancy')


# -- docs/metrics.md: the evaluators in a shipped config -----------------------------------------

NYUD_METRIC_TASKS = dict(semseg=dict(num_classes=40), depth=None, normals=None,
                         edge=dict(max_dist=0.011))
PASCAL_METRIC_TASKS = dict(semseg=None, human_parts=None, sal=dict(legacy_double_sigmoid=True),
                           normals=None, edge=dict(max_dist=0.0075, gt_mode='thin'))


def build_metric(evaluator):
    from mmmt.evaluation.metrics import MultiTaskMetric
    from mmmt.registry import METRICS

    with DefaultScope.overwrite_default_scope('mmmt'):
        metric = METRICS.build(evaluator)
    assert isinstance(metric, MultiTaskMetric)
    return metric


@pytest.mark.parametrize('config', [
    'mtmamba_swin-l_nyud.py',  # tasks a dict, the four NYUD tasks
    'demo/mtmamba-tiny_synthetic-nyud.py',  # tasks a list, delta_m_baselines=None
    'mtmamba_swin-l_pascal.py',  # tasks a dict, the five PASCAL tasks
])
@pytest.mark.parametrize('name, tasks', [('metric-nyud', NYUD_METRIC_TASKS),
                                         ('metric-pascal', PASCAL_METRIC_TASKS)])
def test_metric_snippets_give_exactly_their_tasks(tmp_path, config, name, tasks):
    base = Config.fromfile(shipped(config))
    cfg = child_config(tmp_path, shipped(config), snippet('docs/metrics.md', name))
    for evaluator in ('val_evaluator', 'test_evaluator'):
        merged = cfg[evaluator]
        assert merged.type == 'MultiTaskMetric'
        assert merged.tasks == tasks, evaluator
        # the snippet's delta_m_baselines, else the base's
        assert merged.get('delta_m_baselines') == (
            'auto' if name == 'metric-nyud' else base[evaluator].get('delta_m_baselines'))
        metric = build_metric(merged)
        assert metric.tasks == list(tasks)
    if name == 'metric-nyud':
        assert metric.delta_m_baselines is not None  # exactly the four NYUD tasks


@pytest.mark.parametrize('config', ['mtmamba_swin-l_nyud.py', 'mtmamba_swin-l_pascal.py'])
def test_metric_edge_png_snippet_keeps_the_base_tasks(tmp_path, config):
    base = Config.fromfile(shipped(config))
    cfg = child_config(tmp_path, shipped(config), snippet('docs/metrics.md', 'metric-edge-png'))
    assert cfg.val_evaluator == base.val_evaluator  # validation evaluates as before
    merged, before = cfg.test_evaluator, base.test_evaluator
    assert {k: v for k, v in merged.items() if k != 'tasks'} == \
        {k: v for k, v in before.items() if k != 'tasks'}
    assert list(merged.tasks) == list(before.tasks)
    assert {t: o for t, o in merged.tasks.items() if t != 'edge'} == \
        {t: o for t, o in before.tasks.items() if t != 'edge'}
    # the base's edge options (tolerance, protocol, ...) and the two of the snippet
    assert merged.tasks.edge == dict(before.tasks.edge, save_dir='work_dirs/x/edge',
                                     evaluate=False)
    metric = build_metric(merged)
    assert metric.evaluators['edge'].save_dir == 'work_dirs/x/edge'
    assert not metric.evaluators['edge'].evaluate


def test_metric_edge_png_snippet_does_not_fit_the_demo(tmp_path):
    """What the doc says: a dict merged into the demo's list of tasks is refused."""
    with pytest.raises(TypeError, match='tasks is a dict in the child config'):
        child_config(tmp_path, shipped('demo/mtmamba-tiny_synthetic-nyud.py'),
                     snippet('docs/metrics.md', 'metric-edge-png'))


# -- README.md: another boundary protocol for the demo's predictions ------------------------------


def test_readme_demo_edge_protocol_snippet(tmp_path):
    """The README's child of the demo config (whose evaluator lists task names, so
    ``--cfg-options test_evaluator.tasks.edge.protocol=...`` cannot reach them): the same four
    tasks, only the test evaluator's boundary protocol changed."""
    demo = shipped('demo/mtmamba-tiny_synthetic-nyud.py')
    base = Config.fromfile(demo)
    cfg = child_config(tmp_path, demo, snippet('README.md', 'demo-edge-protocol'))
    assert cfg.val_evaluator == base.val_evaluator  # validation evaluates as before
    assert list(cfg.test_evaluator.tasks) == list(base.test_evaluator.tasks)
    assert cfg.test_evaluator.delta_m_baselines is None  # the demo's, kept
    before, after = build_metric(base.test_evaluator), build_metric(cfg.test_evaluator)
    assert before.evaluators['edge'].protocol == 'seism'
    assert after.evaluators['edge'].protocol == 'seism-2016-01'
    # what the protocol changes (docs/metrics.md), at the demo's tolerance
    assert (before.evaluators['edge'].thresholds.size, after.evaluators['edge'].thresholds.size,
            after.evaluators['edge'].eval_kwargs['nms']) == (101, 99, False)
    assert after.evaluators['edge'].eval_kwargs['max_dist'] == 0.011
    assert after.tasks == before.tasks and after.delta_m_baselines is None
