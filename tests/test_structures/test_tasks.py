"""The task registry: the six built-in definitions, and a new task added from this file alone.

The toy task is a 3-class ``occupancy`` map (0 free, 1 occupied, 2 unknown, 255 ignore). It gets
a task definition, an annotation decoder and a dataset class here, and is then trained,
evaluated and visualized through mmengine's Runner with mmmt's own pipeline, model, metric,
visualizer and hook: no file of mmmt is edited for it.
"""
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine import DefaultScope
from mmengine.runner import Runner
from PIL import Image

from mmmt.datasets import BaseMultiTaskDataset
from mmmt.registry import ANNOTATION_DECODERS, DATASETS
from mmmt.structures import (IGNORE_INDEX, TASKS, TaskSpec, get_task, meta_for_task, ordered_tasks,
                             register_task, register_tasks)
from mmmt.utils import register_all_modules
from mmmt.utils.errors import (DuplicateNameError, InvalidOptionError, UnknownNameError,
                               UserInputError)

OCCUPANCY = dict(name='occupancy', label_dtype='int64', loss=dict(type='PixelCrossEntropyLoss'),
                 activation='argmax', evaluator='segmentation', draw='segmentation',
                 delta_m=('mIoU', True))
PALETTE = [[20, 200, 20], [200, 20, 20], [90, 90, 90]]
SIZE = 64


def test_builtin_tasks_in_reference_order():
    assert list(TASKS)[:6] == ['semseg', 'depth', 'human_parts', 'sal', 'normals', 'edge']
    assert ordered_tasks(['edge', 'mine', 'normals', 'semseg']) == \
        ['semseg', 'normals', 'edge', 'mine']
    assert get_task('depth').ignore_rule == 'zero_value' and get_task('depth').pad_value == 0
    assert get_task('normals').gt_channels == 3 and get_task('normals').mirror_channels
    assert get_task('human_parts').meta_prefix == 'part_' and get_task('semseg').is_int
    assert all(spec.pad_value == IGNORE_INDEX for name, spec in TASKS.items()
               if name not in ('depth', 'normals'))
    assert get_task('albedo') is None


def test_classes_and_palettes_are_looked_up_per_task():
    meta = dict(classes=('wall', 'floor'), part_classes=['head', 'torso'],
                sal_classes=['bg', 'fg'], palette=dict(edge=[[0, 0, 0], [255, 255, 255]]))
    assert meta_for_task(meta, 'semseg', 'classes') == ['wall', 'floor']  # meta_prefix ''
    assert meta_for_task(meta, 'human_parts', 'classes') == ['head', 'torso']  # 'part_'
    assert meta_for_task(meta, 'sal', 'classes') == ['bg', 'fg']  # <task>_<what>
    assert meta_for_task(meta, 'edge', 'palette') == [[0, 0, 0], [255, 255, 255]]  # by task
    assert meta_for_task(meta, 'depth', 'classes') is None  # no prefix: never the semseg ones
    assert meta_for_task(None, 'semseg', 'classes') is None
    # a plain string under the prefixed key is not a class list (it would become letters)
    assert meta_for_task(dict(classes='wall'), 'semseg', 'classes') is None


def test_registration_rules():
    with pytest.raises(ValueError, match='activation'):
        TaskSpec(name='x', activation='softplus')
    with pytest.raises(KeyError, match='already registered'):
        register_task(name='depth')
    # the same fields but another default loss is another definition too
    depth = TASKS['depth']
    with pytest.raises(KeyError, match='already registered'):
        register_task(dict({f: getattr(depth, f) for f in depth.__dataclass_fields__},
                           loss=dict(type='NormalsL1Loss')))
    assert TASKS['depth'].loss == dict(type='DepthL1Loss')
    with pytest.raises(KeyError, match="unknown task 'albedo'"):
        TASKS['albedo']
    try:
        spec = register_tasks([dict(OCCUPANCY)])[0]  # the config-dict route (custom_tasks)
        assert spec.order == -1 and register_task(**OCCUPANCY) is spec
    finally:
        TASKS.unregister('occupancy')


def test_registration_errors_are_one_line_input_errors():
    # UserInputErrors (the tools print them in one line) that stay KeyError / TypeError
    with pytest.raises(UnknownNameError) as info:
        TASKS['albedo']
    assert str(info.value).startswith(
        "unknown task 'albedo': registered tasks are ['depth', ")  # no KeyError quotes
    assert str(info.value).endswith('define it with mmmt.structures.register_task (see '
                                    'docs/how_to_add_a_task.md)')
    assert 'albedo' not in TASKS and TASKS.get('albedo') is None  # Mapping still catches it
    with pytest.raises(DuplicateNameError) as info:
        register_task(name='depth')
    # a built-in is not offered force=True: that would change depth for every config
    assert str(info.value) == (
        "task 'depth' is already registered as a built-in task of mmmt (semseg, depth, "
        'human_parts, sal, normals, edge) with another definition; give your task another '
        "name (force=True would replace 'depth' for every model and dataset)")
    try:
        register_task(**OCCUPANCY)
        with pytest.raises(DuplicateNameError) as info:
            register_task(**dict(OCCUPANCY, delta_m=None))
        assert str(info.value) == ("task 'occupancy' is already registered with another "
                                   'definition; pass force=True to replace it')
    finally:
        TASKS.unregister('occupancy')
    with pytest.raises(InvalidOptionError) as info:
        register_tasks(dict(OCCUPANCY))  # custom_tasks = dict(...): was iterated as its keys
    assert str(info.value) == ("custom_tasks must be a list of task definitions, "
                               "[dict(name='occupancy', ...), ...], got a dict (task "
                               "'occupancy'): put it in a list")
    with pytest.raises(InvalidOptionError) as info:
        TASKS.register(['depth'])
    assert str(info.value) == 'a task is a TaskSpec or a dict, got list'
    with pytest.raises(InvalidOptionError) as info:
        register_task(dict(OCCUPANCY), name='occupancy')
    assert str(info.value) == 'register_task: give a spec or keyword arguments, not both'
    with pytest.raises(UserInputError) as info:
        register_task({k: v for k, v in OCCUPANCY.items() if k != 'name'})
    assert str(info.value) == ("a task definition needs a name; got the fields ['activation', "
                               "'delta_m', 'draw', 'evaluator', 'label_dtype', 'loss']")
    assert 'occupancy' not in TASKS


@pytest.mark.parametrize('fields, message', [
    (dict(activaton='argmax'), "task 'occupancy': unknown field(s) 'activaton' (did you mean "
     "'activation'?); the fields are name, gt_channels, label_dtype, "),
    (dict(gt_channels='1'), "task 'occupancy': gt_channels must be an integer >= 1, got '1'"),
    (dict(out_channels=0), "task 'occupancy': out_channels must be None or an integer >= 1, "
     'got 0'),
    (dict(delta_m='mIoU'), "task 'occupancy': delta_m must be None or a (metric, "
     "higher_is_better) pair such as ('mIoU', True), got 'mIoU'"),
    (dict(mirror_channels=True), "task 'occupancy': mirror_channels=True needs x and y "
     'channels (gt_channels >= 2), got gt_channels=1'),
    (dict(loss='PixelCrossEntropyLoss'), "task 'occupancy': loss must be None or a config "
     "dict with a 'type', got 'PixelCrossEntropyLoss'"),
    (dict(order='1'), "task 'occupancy': order must be a number, got '1'"),
])
def test_a_wrong_field_is_named_when_registering(fields, message):
    # the config route (custom_tasks), where such slips are easy to make: without the check a
    # wrong field was a bare TypeError without the task, or failed later (a 1-channel map with
    # mirror_channels crashed the first flip, a string delta_m the first validation)
    with pytest.raises(UserInputError) as info:
        register_tasks([dict(OCCUPANCY, **fields)])
    assert str(info.value).startswith(message)
    assert 'occupancy' not in TASKS


@pytest.mark.parametrize('tasks', [['semseg', 'tied', 'depth'], ['tied', 'depth', 'semseg']])
def test_a_task_of_a_built_in_order_is_ordered_by_name(tasks):
    # order=0 is semseg's: the tie was kept in the config's order, so listing the tasks in
    # another order changed the concatenation order of the cross-task blocks
    try:
        register_task(name='tied', order=0, loss=dict(type='DepthL1Loss'))
        assert ordered_tasks(tasks) == ['semseg', 'tied', 'depth']
    finally:
        TASKS.unregister('tied')


def test_an_unregistered_loss_type_is_named_with_its_task():
    from mmmt.registry import MODELS
    head = dict(type='MTMambaHead', in_channels=(8, 16, 32, 64),
                tasks=dict(semseg=4, occupancy=3))
    register_all_modules(init_default_scope=False)
    try:
        register_task(**dict(OCCUPANCY, loss=dict(type='OccupancyLoss')))
        with DefaultScope.overwrite_default_scope('mmmt'):
            with pytest.raises(UnknownNameError, match=(
                    r"^task 'occupancy', loss from the loss of the task's definition, "
                    r"register_task / custom_tasks: type='OccupancyLoss' is not in the "
                    r"mmmt::model registry")):
                MODELS.build(head)
            with pytest.raises(UnknownNameError, match=(
                    r"^task 'semseg', loss from decode_head.task_losses: type='PixelCELoss' is "
                    r"not in the mmmt::model registry; did you mean 'PixelCrossEntropyLoss'")):
                MODELS.build(dict(head, task_losses=dict(semseg=dict(type='PixelCELoss'),
                                                         occupancy=dict(type='DepthL1Loss'))))
    finally:
        TASKS.unregister('occupancy')


@pytest.mark.parametrize('names', [('zeta', 'alpha'), ('alpha', 'zeta')])
def test_order_of_unordered_tasks_does_not_depend_on_registration(names):
    # the CTM concatenates in this order: a checkpoint must not depend on which module or
    # config registered its tasks first (custom_tasks = [a, b] vs [b, a])
    try:
        for name in names:
            register_task(name=name, loss=dict(type='DepthL1Loss'))
        register_task(name='pinned', order=4.5, loss=dict(type='DepthL1Loss'))
        assert ordered_tasks(['zeta', 'edge', 'alpha', 'semseg', 'other', 'pinned']) == \
            ['semseg', 'pinned', 'edge', 'alpha', 'zeta', 'other']
    finally:
        for name in names + ('pinned', ):
            TASKS.unregister(name)


# ---------------------------------------------------------------- the toy task, end to end --
def decode_occupancy_npy(path, info, ctx):
    """Occupancy stored as an (H, W) uint8 .npy file."""
    return np.load(path).astype(np.uint8)


class ToyOccupancyDataset(BaseMultiTaskDataset):
    """images/<id>.png, occupancy/<id>.npy, depth/<id>.npy (0 = invalid), splits/<split>.txt"""

    METAINFO = dict(occupancy_classes=('free', 'occupied', 'unknown'),
                    occupancy_palette=PALETTE)
    SUPPORTED_TASKS = DEFAULT_TASKS = ('occupancy', 'depth')
    SPLIT_FILE = 'splits/{split}.txt'

    def sample_info(self, img_id):
        img = osp.join(self.data_root, 'images', f'{img_id}.png')
        ann = {t: dict(path=osp.join(self.data_root, t, f'{img_id}.npy'),
                       encoding=f'{t}_npy') for t in self.tasks}
        return dict(img_path=img, ann_info=ann,
                    required_files=[img] + [a['path'] for a in ann.values()])


@pytest.fixture
def occupancy_task():
    register_task(**OCCUPANCY)
    ANNOTATION_DECODERS.register_module('occupancy_npy', module=decode_occupancy_npy, force=True)
    DATASETS.register_module(module=ToyOccupancyDataset, force=True)
    yield
    TASKS.unregister('occupancy')
    ANNOTATION_DECODERS.module_dict.pop('occupancy_npy', None)
    DATASETS.module_dict.pop('ToyOccupancyDataset', None)


def write_toy_data(root, n_train=4, n_val=2):
    """Left half free, a square occupied, the top rows unknown; colour says which; a strip of
    ignore and of invalid depth."""
    rng = np.random.default_rng(0)
    for split, n in (('train', n_train), ('val', n_val)):
        ids = [f'{split}{i}' for i in range(n)]
        for i, img_id in enumerate(ids):
            occ = np.zeros((SIZE, SIZE), np.uint8)
            y, x = rng.integers(8, 32, size=2)
            occ[y:y + 24, x:x + 24] = 1
            occ[:6] = 2
            occ[-3:] = IGNORE_INDEX
            img = np.array(PALETTE, np.float64)[np.minimum(occ, 2)] + rng.normal(0, 5, (
                SIZE, SIZE, 3))
            depth = np.where(occ == 1, 1.0, 3.0).astype(np.float32)
            depth[:, :2] = 0
            for sub, arr in (('occupancy', occ), ('depth', depth)):
                (root / sub).mkdir(parents=True, exist_ok=True)
                np.save(root / sub / f'{img_id}.npy', arr)
            (root / 'images').mkdir(exist_ok=True)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
                root / 'images' / f'{img_id}.png')
        (root / 'splits').mkdir(exist_ok=True)
        (root / 'splits' / f'{split}.txt').write_text('\n'.join(ids) + '\n')


def toy_config(data_root, work_dir):
    norm = dict(type='mmcv.Normalize', mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375], to_rgb=False)
    head = [dict(type='LoadMultiTaskImage'), dict(type='LoadMultiTaskAnnotations')]
    tail = [norm, dict(type='CenterPad', size=(SIZE, SIZE)), dict(type='AddIgnoreRegions'),
            dict(type='PackMultiTaskInputs')]
    train = head + [dict(type='MultiTaskRandomFlip', prob=0.5)] + tail
    loader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                  sampler=dict(type='DefaultSampler', shuffle=False))
    dataset = dict(type='ToyOccupancyDataset', data_root=str(data_root))
    return dict(
        default_scope='mmmt',
        work_dir=str(work_dir),
        model=dict(
            type='MultiTaskEncoderDecoder',
            data_preprocessor=dict(type='MultiTaskDataPreProcessor', size_divisor=32),
            backbone=dict(type='mmpretrain.SwinTransformer',
                          arch=dict(embed_dims=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]),
                          window_size=4, drop_path_rate=0.0, out_indices=(0, 1, 2, 3),
                          pad_small_map=True),
            decode_head=dict(type='MTMambaHead', in_channels=(8, 16, 32, 64),
                             tasks=dict(occupancy=3, depth=1), num_stm_blocks=1, d_state=4,
                             drop_path_rate=0.0)),
        train_dataloader=dict(loader, dataset=dict(dataset, split='train', pipeline=train)),
        val_dataloader=dict(loader, dataset=dict(dataset, split='val', pipeline=head + tail)),
        val_evaluator=dict(type='MultiTaskMetric', tasks=['occupancy', 'depth']),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=3, val_interval=3),
        val_cfg=dict(type='ValLoop'),
        optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=100),
            visualization=dict(type='MultiTaskVisualizationHook', draw=True, interval=1)),
        # panels at native size and no legend strip: the test reads the panel's pixels
        visualizer=dict(type='MultiTaskVisualizer', name='toy_visualizer',
                        min_panel_size=0, max_panel_size=None, legend=False,
                        vis_backends=[dict(type='LocalVisBackend')]),
        randomness=dict(seed=0),
        log_level='WARNING')


def test_new_task_trains_evaluates_and_draws(occupancy_task, tmp_path):
    register_all_modules(init_default_scope=False)
    write_toy_data(tmp_path / 'toy')
    with DefaultScope.overwrite_default_scope('mmmt'):
        runner = Runner.from_cfg(toy_config(tmp_path / 'toy', tmp_path / 'work'))
        # the pipeline packs the toy labels by their definition: int64 class indices, the
        # ignore strip kept, depth 0 turned into the ignore value
        sample = runner.train_dataloader.dataset[0]['data_samples']
        occ = sample.gt_occupancy.data
        assert occ.dtype == torch.int64 and occ.shape == (1, SIZE, SIZE)
        assert set(occ.unique().tolist()) == {0, 1, 2, IGNORE_INDEX}
        assert (sample.gt_depth.data[..., :2] == IGNORE_INDEX).all()
        head = runner.model.decode_head
        assert head.tasks == ['depth', 'occupancy']  # canonical order: built-ins first
        assert type(head.task_losses['occupancy']).__name__ == 'PixelCrossEntropyLoss'
        assert runner.model.task_activations['occupancy'] == 'argmax'
        runner.train()
        metrics = runner.val_loop.run()

    assert 0 <= metrics['occupancy/mIoU'] <= 100 and metrics['depth/rmse'] > 0
    # the prediction of the toy task is a class map, drawn with the dataset's palette
    drawings = glob.glob(str(tmp_path / 'work' / '*' / 'vis_data' / 'vis_image' / '*.png'))
    assert len(drawings) == 2  # both validation images
    grid = np.asarray(Image.open(drawings[0]).convert('RGB'))
    panel = grid[-SIZE:, 2 * SIZE:3 * SIZE]  # prediction row: image, depth, occupancy columns
    colours = {tuple(c) for c in panel.reshape(-1, 3)}
    assert colours <= {tuple(c) for c in PALETTE} | {(0, 0, 0)}, list(colours)[:5]
