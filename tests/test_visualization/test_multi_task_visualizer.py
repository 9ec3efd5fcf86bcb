"""MultiTaskVisualizer: grid layout, panel styles, backends and mmseg's visualization hook."""
import os
import os.path as osp
import re
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmengine.visualization import Visualizer

from mmmt.registry import VISUALIZERS
from mmmt.structures import IGNORE_INDEX
from mmmt.structures.multitask_data_sample import MultiTaskDataSample
from mmmt.utils.errors import UserInputError
from mmmt.visualization import MultiTaskVisualizer, default_palette, normals_key

H, W, T = 30, 40, 20


def _sample(with_gt=True):
    rng = np.random.default_rng(0)
    s = MultiTaskDataSample(metainfo=dict(img_path='x.png'))
    seg = torch.from_numpy(rng.integers(0, 3, (1, H, W)))
    depth = torch.from_numpy(rng.uniform(1, 4, (1, H, W))).float()
    normals = torch.zeros(3, H, W)
    normals[2] = 1
    edge = torch.zeros(1, H, W)
    edge[0, 10] = 1
    s.set_pred('semseg', seg)
    s.set_pred('depth', depth)
    s.set_pred('normals', normals)
    s.set_pred('edge', edge)
    if with_gt:
        gt_seg = seg.clone()
        gt_seg[0, :5, :5] = 255
        s.set_gt('semseg', gt_seg)
        s.set_gt('depth', depth.clone())
        s.set_gt('edge', edge.clone())
    return s


#: Panels at the input's size and no legend: the grid layout these tests check.
NATIVE = dict(min_panel_size=0, max_panel_size=None, legend=False)


def _vis(**kw):
    name = f'vis_{len(Visualizer._instance_dict)}_{np.random.randint(1e9)}'
    return MultiTaskVisualizer.get_instance(name, **dict(NATIVE, **kw))


def test_grid_size_and_panels(tmp_path):
    vis = _vis()
    vis.dataset_meta = dict(classes=['a', 'b', 'c'], palette=[[255, 0, 0], [0, 255, 0],
                                                              [0, 0, 255]])
    image = np.full((H, W, 3), 77, np.uint8)
    out = str(tmp_path / 'grid.png')
    drawn = vis.add_datasample('s', image, _sample(), out_file=out)
    # rows: GT and prediction; columns: image + semseg, depth, normals, edge
    assert drawn.shape == (2 * (H + T), 5 * W, 3)
    written = cv2.imread(out)[..., ::-1]
    np.testing.assert_array_equal(written, drawn)
    gt_row, pred_row = drawn[T:T + H], drawn[H + 2 * T:]
    np.testing.assert_array_equal(gt_row[:, :W], image)  # input image first
    np.testing.assert_array_equal(pred_row[:, :W], image)
    seg_pred = pred_row[:, W:2 * W]
    assert {tuple(c) for c in seg_pred.reshape(-1, 3)} <= {(255, 0, 0), (0, 255, 0), (0, 0, 255)}
    seg_gt = gt_row[:, W:2 * W]
    ignored = seg_gt[:5, :5].reshape(-1, 3)
    assert {tuple(c) for c in ignored} == {(70, 70, 70), (170, 170, 170)}  # checkerboard
    normals = pred_row[:, 3 * W:4 * W]
    assert (normals[H // 2, W // 2] == [128, 128, 255]).all()  # (n + 1) / 2 of +z
    edge = pred_row[:, 4 * W:5 * W]
    assert (edge[10, 5] == 255).all() and (edge[20, 5] == 0).all()
    depth = pred_row[:, 2 * W:3 * W]
    assert len({tuple(c) for c in depth[:H // 2].reshape(-1, 3)}) > 10  # colour-mapped


def _one_of_two_levels(panel: np.ndarray, values01: np.ndarray, lut: np.ndarray) -> bool:
    """Whether each pixel is the colour of ``values01`` in a 256-entry ``lut``: the level
    below or above ``255 * value`` (how a drawing rounds is not its contract)."""
    level = np.clip(values01, 0, 1) * 255
    below, above = lut[np.floor(level).astype(int)], lut[np.ceil(level).astype(int)]
    return bool(((panel == below).all(-1) | (panel == above).all(-1)).all())


def test_prediction_only_and_default_palette():
    from matplotlib import colormaps
    h, w = 48, 64  # tall enough for the depth colour bar to leave the top half alone
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 40, (1, h, w))
    depth = rng.uniform(1, 4, (1, h, w)).astype(np.float32)
    edge = rng.uniform(0, 1, (1, h, w)).astype(np.float32)
    sample = MultiTaskDataSample(metainfo=dict(img_path='x.png'))
    for task, value in (('semseg', labels), ('depth', depth), ('edge', edge)):
        sample.set_pred(task, torch.from_numpy(value))
    vis = _vis(tasks=['semseg', 'depth', 'edge'], title_height=0)
    drawn = vis.add_datasample('s', None, sample, out_file=None)
    assert drawn.shape == (h, 4 * w, 3)
    image, seg, depth_panel, edge_panel = (drawn[:, i * w:(i + 1) * w] for i in range(4))
    assert (image == 0).all()  # no image: a black panel of the maps' size
    # no dataset palette: every pixel the default palette's colour of its predicted class
    pal = default_palette()
    assert pal.shape == (256, 3) and pal.dtype == np.uint8 and (default_palette() == pal).all()
    assert len({tuple(c) for c in pal[:40]}) == 40  # NYUD's 40 classes are told apart
    np.testing.assert_array_equal(seg, pal[labels[0]])
    # depth: plasma over the prediction's 1st-99th percentile (no ground truth to take it from)
    lo, hi = np.percentile(depth, [1, 99])
    plasma = np.rint(colormaps['plasma'](np.arange(256) / 255)[:, :3] * 255).astype(np.uint8)
    top = slice(0, h // 2)  # the colour bar and its limits are drawn in the bottom rows
    assert _one_of_two_levels(depth_panel[top], (depth[0, top] - lo) / (hi - lo), plasma)
    assert len({tuple(c) for c in depth_panel[top].reshape(-1, 3)}) > 50
    # edge probabilities in grey: value 1 is white
    grey = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    assert _one_of_two_levels(edge_panel, edge[0], grey)


def test_draw_flags():
    vis = _vis()
    img = np.zeros((H, W, 3), np.uint8)
    assert vis.add_datasample('a', img, _sample(), draw_gt=False).shape[0] == H + T
    assert vis.add_datasample('b', img, _sample(), draw_pred=False).shape[0] == H + T


def test_backend_and_mmseg_visualization_hook(tmp_path):
    """``tools/test.py --show-dir`` path: mmseg's SegVisualizationHook drives our visualizer."""
    from mmseg.engine.hooks import SegVisualizationHook
    img_path = str(tmp_path / '0001.png')
    cv2.imwrite(img_path, np.full((H, W, 3), 50, np.uint8))
    vis = VISUALIZERS.build(
        dict(type='MultiTaskVisualizer', name=f'hook_vis_{np.random.randint(1e9)}',
             vis_backends=[dict(type='LocalVisBackend')], save_dir=str(tmp_path / 'show'),
             **NATIVE))
    assert Visualizer.get_current_instance() is vis
    hook = SegVisualizationHook(draw=True, interval=1)
    sample = _sample()
    sample.set_metainfo(dict(img_path=img_path))
    hook._after_iter(SimpleNamespace(iter=3), 0, {}, [sample], mode='test')
    files = [f for _, _, fs in os.walk(tmp_path / 'show') for f in fs if f.endswith('.png')]
    assert files == ['test_0001.png_3.png']
    path = [osp.join(r, f) for r, _, fs in os.walk(tmp_path / 'show') for f in fs][0]
    assert cv2.imread(path).shape == (2 * (H + T), 5 * W, 3)


def test_bad_colormap():
    with pytest.raises(ValueError):
        _vis(depth_cmap='nope')


def test_multi_task_visualization_hook_from_config(tmp_path):
    from mmengine.registry import DefaultScope

    from mmmt.registry import HOOKS
    img_path = str(tmp_path / 'img.png')
    cv2.imwrite(img_path, np.full((H, W, 3), 50, np.uint8))
    vis = VISUALIZERS.build(
        dict(type='MultiTaskVisualizer', name=f'hook_vis_{np.random.randint(1e9)}',
             vis_backends=[dict(type='MultiTaskLocalVisBackend')], save_dir=str(tmp_path / 'show'),
             **NATIVE))
    with DefaultScope.overwrite_default_scope('mmmt'):
        hook = HOOKS.build(dict(type='MultiTaskVisualizationHook', draw=True, interval=1))
    # it lives in mmmt.engine.hooks and is still importable from mmmt.visualization
    from mmmt.engine.hooks import MultiTaskVisualizationHook
    from mmmt.visualization import MultiTaskVisualizationHook as old_name
    assert type(hook) is MultiTaskVisualizationHook is old_name
    with_path = _sample()
    with_path.set_metainfo(dict(img_path=img_path, img_id='0007'))
    no_image = _sample()  # synthetic sample: no readable image
    no_image.set_metainfo(dict(img_path=None, img_id='0008'))
    hook._after_iter(SimpleNamespace(iter=600), 0, {}, [with_path, no_image], mode='val')
    files = sorted(f for _, _, fs in os.walk(tmp_path / 'show') for f in fs if f.endswith('.png'))
    assert files == ['val_0007_iter600.png', 'val_0008_iter600.png']

    class TestRunner:  # a test-only run must not touch runner.iter (it builds the train loop)

        @property
        def iter(self):
            raise AssertionError('runner.iter read during testing')

    hook._after_iter(TestRunner(), 5, {}, [with_path], mode='test')
    files = sorted(f for _, _, fs in os.walk(tmp_path / 'show') for f in fs if f.endswith('.png'))
    assert 'test_0007.png' in files  # named by img_id, not by batch index
    escaping = _sample()
    escaping.set_metainfo(dict(img_path=img_path, img_id='a/../../x'))
    with pytest.raises(UserInputError, match=re.escape(
            "sample id 'a/../../x' has a '..' part: its picture would not lie inside the "
            'visualization folder')):
        hook._after_iter(TestRunner(), 6, {}, [escaping], mode='test')
    assert vis is Visualizer.get_current_instance()


def test_semseg_legend_names_the_classes_shown():
    vis = _vis(legend=True)
    vis.dataset_meta = dict(classes=['wall', 'floor', 'cabinet', 'bed'],
                            palette=[[10, 20, 30], [40, 50, 60], [70, 80, 90], [1, 2, 3]])
    seg = np.zeros((H, W), np.int64)
    seg[:, :10] = 2  # cabinet: a quarter
    seg[0, 0] = 255  # ignored: not a class
    entries = vis.legend_entries('semseg', [seg, np.ones((H, W), np.int64)])
    # largest first over GT and prediction: floor (1200 px), wall (899), cabinet (300)
    assert [(i, name) for i, name, _ in entries] == [(1, 'floor'), (0, 'wall'), (2, 'cabinet')]
    assert entries[0][2].tolist() == [40, 50, 60]  # the dataset palette's colour
    drawn = vis.draw_multi_task(None, _sample())
    native = _vis().draw_multi_task(None, _sample())
    assert drawn.shape[1] == native.shape[1] and drawn.shape[0] > native.shape[0]
    strip = drawn[native.shape[0]:]
    # the swatch colours of the classes shown (semseg values 0..2 of _sample) are in the strip
    for colour in ([10, 20, 30], [40, 50, 60], [70, 80, 90]):
        assert (strip == colour).all(axis=2).sum() >= 4
    assert not (strip == [1, 2, 3]).all(axis=2).any()  # bed is not in the picture


def test_legend_truncates_and_falls_back_to_indices():
    vis = _vis(legend=True, legend_max_classes=2)
    seg = np.repeat(np.arange(3), [5, 3, 7])[None]
    assert [(i, n) for i, n, _ in vis.legend_entries('semseg', [seg])] == [(2, '2'), (0, '0')]
    # drawn once: a new task's dataset often names no classes, and its legend read '2 2  0 0'
    texts = []
    put_text = vis._put_text
    vis._put_text = lambda row, text, x, h: texts.append(text) or put_text(row, text, x, h)
    vis._legend(['semseg'], {('gt', 'semseg'): seg}, W, H)
    assert texts == ['semseg:', '2', '0']


def test_normals_key_disc():
    disc = normals_key(41)
    centre = disc[20, 20].astype(int)
    assert abs(centre[0] - 128) <= 4 and abs(centre[1] - 128) <= 4 and centre[2] == 255  # z
    assert disc[20, 39, 0] > 240 and disc[20, 1, 0] < 15  # x right
    assert disc[1, 20, 1] > 240 and disc[39, 20, 1] < 15  # y up
    assert (disc[0, 0] == 0).all()  # outside the disc
    vis = _vis(legend=True, min_panel_size=200)
    s = MultiTaskDataSample()
    n = torch.zeros(3, H, W)
    n[2] = 1
    s.set_pred('normals', n)
    panel = vis.draw_multi_task(None, s, draw_gt=False)[:, -vis.display_size(H, W)[1]:]
    flat = np.array([128, 128, 255])
    assert (np.abs(panel[60:100, 10:50].astype(int) - flat) <= 1).all()  # the map itself
    corner = panel[vis._text_height(200) + 150:vis._text_height(200) + 200, 150:]
    assert (np.abs(corner.astype(int) - flat) > 20).any()  # the key in the corner


def test_small_inputs_are_enlarged_and_huge_ones_previewed():
    vis = _vis(min_panel_size=256, max_panel_size=800)
    assert vis.display_size(30, 40) == (210, 280)  # a whole factor (7): label pixels as blocks
    assert vis.display_size(300, 400) == (300, 400)
    assert vis.display_size(3000, 4000) == (600, 800)
    seg = torch.from_numpy(np.repeat(np.arange(4), 10).reshape(1, 1, 40).repeat(30, 1))
    s = MultiTaskDataSample()
    s.set_pred('semseg', seg)
    drawn = vis.draw_multi_task(np.zeros((30, 40, 3), np.uint8), s)
    title = vis._text_height(210)
    assert drawn.shape == (title + 210, 2 * 280, 3)
    labels = drawn[title:, 280:]
    assert len(np.unique(labels.reshape(-1, 3), axis=0)) == 4  # nearest: no blended colours
    with pytest.raises(ValueError, match='max_panel_size'):
        _vis(min_panel_size=300, max_panel_size=100)


def test_titles_grow_with_the_picture():
    vis = _vis(min_panel_size=0, max_panel_size=None)
    assert vis._text_height(128) == T
    assert vis._text_height(1200) == 100


def test_local_backend_names_pictures_without_step(tmp_path):
    from mmmt.visualization import MultiTaskLocalVisBackend
    backend = MultiTaskLocalVisBackend(save_dir=str(tmp_path))
    picture = np.zeros((4, 6, 3), np.uint8)
    picture[..., 0] = 255  # red in RGB
    backend.add_image('test_0007', picture)
    backend.add_image('val_0007', picture, step=600)
    files = sorted(f for _, _, fs in os.walk(tmp_path) for f in fs)
    assert files == ['test_0007.png', 'val_0007_iter600.png']
    saved = cv2.imread(str(tmp_path / 'vis_image' / 'test_0007.png'))
    assert saved[0, 0].tolist() == [0, 0, 255]  # written as BGR


def test_maps_no_style_can_draw_get_a_titled_empty_panel():
    # a 2-channel task (e.g. optical flow) drawn as 'probability': one plane expected
    from mmmt.structures import TASKS, register_task
    try:
        register_task(name='flow', gt_channels=2, out_channels=2,
                      loss=dict(type='DepthL1Loss'), draw='probability')
        sample = _sample()
        flow = torch.ones(2, H, W)
        sample.set_pred('flow', flow)
        sample.set_gt('flow', flow.clone())
        vis = _vis(tasks=['edge', 'flow'], title_height=0)
        drawn = vis.draw_multi_task(np.full((H, W, 3), 77, np.uint8), sample)
        assert drawn.shape == (2 * H, 3 * W, 3)  # image, edge, flow; GT and prediction rows
        assert (drawn[:, 2 * W:] == 0).all()  # the flow panels: empty
        assert (drawn[H:, W:2 * W] != 0).any()  # the edge panel beside them is drawn
        # without an image: the size comes from the drawable maps; the legend copes too
        drawn = _vis(tasks=['flow', 'semseg'], legend=True).draw_multi_task(None, sample)
        assert drawn.shape[1] == 3 * W
    finally:
        TASKS.unregister('flow')


def test_pictures_never_replace_a_file_unless_asked(tmp_path):
    from mmmt.visualization import MultiTaskLocalVisBackend
    picture = np.zeros((4, 6, 3), np.uint8)
    taken = tmp_path / 'vis_image' / 'test_0007.png'
    taken.parent.mkdir()
    taken.write_bytes(b'another run')  # e.g. a second tools/test.py into the same --show-dir
    backend = MultiTaskLocalVisBackend(save_dir=str(tmp_path))
    with pytest.raises(FileExistsError, match=rf'{taken} exists.* is kept .*--force'):
        backend.add_image('test_0007', picture)
    assert taken.read_bytes() == b'another run'
    assert os.listdir(taken.parent) == ['test_0007.png']  # no temporary left either
    MultiTaskLocalVisBackend(save_dir=str(tmp_path), overwrite=True).add_image(
        'test_0007', picture)
    assert cv2.imread(str(taken)).shape == (4, 6, 3)
    # add_datasample(out_file=...) likewise
    out = tmp_path / 'mine.png'
    out.write_bytes(b'user file')
    vis = _vis()
    with pytest.raises(FileExistsError, match='mine.png'):
        vis.add_datasample('s', None, _sample(), out_file=str(out))
    assert out.read_bytes() == b'user file'
    drawn = vis.add_datasample('s', None, _sample(), out_file=str(out), overwrite=True)
    np.testing.assert_array_equal(cv2.imread(str(out))[..., ::-1], drawn)


def test_config_copy_of_another_run_is_kept(tmp_path):
    # mmengine's LocalVisBackend dumps over vis_data/config.py: two runs sharing a save_dir
    # (one tools/test.py --show-dir, or two runs in one second) lost the first run's copy
    from mmengine.config import Config

    from mmmt.visualization import MultiTaskLocalVisBackend
    first, second = Config(dict(lr=0.1)), Config(dict(lr=0.2))
    MultiTaskLocalVisBackend(save_dir=str(tmp_path)).add_config(first)
    saved = tmp_path / 'config.py'
    assert Config.fromfile(str(saved)).lr == 0.1
    MultiTaskLocalVisBackend(save_dir=str(tmp_path)).add_config(first)  # same text: no copy
    assert os.listdir(tmp_path) == ['config.py']
    MultiTaskLocalVisBackend(save_dir=str(tmp_path)).add_config(second)
    assert sorted(os.listdir(tmp_path)) == ['config.py', 'config_1.py']
    assert Config.fromfile(str(saved)).lr == 0.1
    assert Config.fromfile(str(tmp_path / 'config_1.py')).lr == 0.2
    MultiTaskLocalVisBackend(save_dir=str(tmp_path), overwrite=True).add_config(second)
    assert Config.fromfile(str(saved)).lr == 0.2


def test_depth_colour_range_skips_ignored_and_missing_ground_truth():
    """The 1st-99th percentile of the valid ground truth: ignored (255) and missing (0) pixels
    would stretch the range to 0..255 m and draw every real depth in one colour."""
    rng = np.random.default_rng(3)
    gt = rng.uniform(2, 4, (20, 30))
    gt[:5] = IGNORE_INDEX
    gt[5:7] = 0
    pred = rng.uniform(0, 10, (20, 30))
    lo, hi = _vis()._depth_range(gt, pred)
    np.testing.assert_allclose([lo, hi], np.percentile(gt[7:], [1, 99]))
    assert 2 <= lo < hi <= 4
    # no valid ground truth: the prediction's range
    np.testing.assert_allclose(_vis()._depth_range(np.full((4, 4), float(IGNORE_INDEX)), pred),
                               np.percentile(pred, [1, 99]))
    assert _vis(depth_range=(0.5, 8))._depth_range(gt, pred) == (0.5, 8.0)


def test_a_large_prediction_is_shrunk_before_it_is_coloured():
    """The preview of a photo-sized prediction is drawn from the shrunk maps: the class colours
    are those of the nearest labels, and no full-size colour panel or float64 copy is made."""
    import tracemalloc
    h, w = 1200, 1600
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    s = MultiTaskDataSample()
    s.set_pred('semseg', torch.from_numpy((yy // 100 + xx // 130).astype(np.uint8) % 7)[None])
    s.set_pred('depth', torch.from_numpy(1 + yy / h + xx / w)[None])
    normals = np.stack([np.cos(xx / 400), np.sin(xx / 400), np.zeros_like(xx)])
    s.set_pred('normals', torch.from_numpy(normals))
    vis = _vis(max_panel_size=200)
    tracemalloc.start()
    try:
        drawn = vis.draw_multi_task(np.zeros((h, w, 3), np.uint8), s)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # numpy's buffers are traced: 47 MB (the input image, the depth percentiles, one float32
    # copy of the normals); colouring at full size, then shrinking, took 158 MB (float64
    # steps of 46 MB each for the normals alone)
    assert peak < 3 * normals.nbytes
    top = vis._text_height(150)
    seg_panel = drawn[top:top + 150, 200:400]
    labels = cv2.resize(s.pred_semseg.data[0].numpy(), (200, 150),
                        interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(seg_panel, default_palette()[labels])
    n_panel = drawn[top:top + 150, 600:800].astype(np.float64) / 127.5 - 1
    want = cv2.resize(normals.transpose(1, 2, 0), (200, 150), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(n_panel, want, atol=0.02)
