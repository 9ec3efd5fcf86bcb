"""MultiTaskMetric: keys, DDP-style reduction, edge export, Δm, config errors."""
import os
import re

import cv2
import numpy as np
import pytest
import torch

from mmmt.evaluation import MultiTaskMetric, delta_m
from mmmt.evaluation.functional import NYUD_SINGLE_TASK_BASELINES
from mmmt.registry import METRICS
from mmmt.structures.multitask_data_sample import MultiTaskDataSample
from mmmt.utils.errors import InvalidOptionError, UnknownNameError

H, W = 24, 32


def _sample(rng, idx, tasks=('semseg', 'depth', 'normals', 'edge'), noise=0.3):
    s = MultiTaskDataSample(metainfo=dict(img_path=f'/data/images/{idx:04d}.png',
                                          img_id=f'{idx:04d}', ori_shape=(H, W)))
    if 'semseg' in tasks:
        gt = torch.from_numpy(rng.integers(0, 4, (1, H, W)))
        gt[0, :2] = 255
        pred = torch.where(torch.from_numpy(rng.random((1, H, W))) < noise,
                           torch.from_numpy(rng.integers(0, 4, (1, H, W))), gt)
        pred[pred == 255] = 0
        s.set_gt('semseg', gt)
        s.set_pred('semseg', pred)
    if 'depth' in tasks:
        gt = torch.from_numpy(rng.uniform(0.5, 5, (1, H, W))).float()
        gt[0, -1] = 255
        s.set_gt('depth', gt)
        s.set_pred('depth', (gt * torch.from_numpy(rng.uniform(0.8, 1.2, (1, H, W)))).float())
    if 'normals' in tasks:
        g = rng.normal(size=(3, H, W))
        g /= np.linalg.norm(g, axis=0)
        p = g + noise * rng.normal(size=g.shape)
        p /= np.linalg.norm(p, axis=0)
        g[:, 0, :3] = 255
        s.set_gt('normals', torch.from_numpy(g).float())
        s.set_pred('normals', torch.from_numpy(p).float())
    if 'edge' in tasks:
        gt = np.zeros((H, W), np.uint8)
        cv2.line(gt, (int(rng.integers(0, W)), 0), (int(rng.integers(0, W)), H - 1), 1, 1)
        pred = np.clip(cv2.GaussianBlur(gt.astype(np.float32), (0, 0), 1.0) * 2.5 +
                       0.2 * rng.random((H, W)).astype(np.float32), 0, 1)
        s.set_gt('edge', torch.from_numpy(gt[None].astype(np.float32)))
        s.set_pred('edge', torch.from_numpy(pred[None]))
    if 'sal' in tasks:
        gt = (rng.random((1, H, W)) < 0.3).astype(np.float32)
        pred = np.clip(gt * 0.6 + 0.5 * rng.random((1, H, W)), 0, 1).astype(np.float32)
        s.set_gt('sal', torch.from_numpy(gt))
        s.set_pred('sal', torch.from_numpy(pred))
    if 'human_parts' in tasks:
        gt = torch.from_numpy(rng.integers(0, 7, (1, H, W)))
        s.set_gt('human_parts', gt)
        s.set_pred('human_parts', gt.clone())
    return s


def _samples(n, seed=0, **kw):
    rng = np.random.default_rng(seed)
    return [_sample(rng, i, **kw) for i in range(n)]


NYUD_TASKS = dict(semseg=dict(num_classes=4), depth=None, normals=None, edge=None)


def test_keys_units_and_registry():
    metric = METRICS.build(dict(type='MultiTaskMetric', tasks=NYUD_TASKS))
    metric.process({}, [s.to_dict() for s in _samples(3)])
    res = metric.compute_metrics(metric.results)
    expected = {
        'semseg/mIoU', 'semseg/mIoU_present', 'semseg/pixel_acc', 'depth/rmse', 'depth/abs_rel',
        'depth/sq_rel', 'depth/log_rmse', 'depth/delta1', 'depth/delta2', 'depth/delta3',
        'normals/mean', 'normals/median', 'normals/rmse', 'normals/within_11.25',
        'normals/within_22.5', 'normals/within_30', 'edge/odsF', 'edge/oisF', 'edge/AP',
        'multi_task/delta_m'
    }
    assert set(res) == expected
    # the values (and their units) against hand computations: test_metric_values.py


def test_perfect_predictions():
    samples = _samples(2, tasks=('semseg', 'depth', 'normals', 'edge', 'sal', 'human_parts'),
                       noise=0.0)
    for s in samples:
        s.set_pred('depth', s.gt_depth.data.clone())
        s.set_pred('normals', torch.where(s.gt_normals.data == 255, 0, s.gt_normals.data))
        s.set_pred('edge', s.gt_edge.data.clone())
        s.set_pred('sal', s.gt_sal.data.clone())
    # The SEISM protocol's border ramp removes boundary pixels on the image border, so only the
    # earlier protocol scores an exact copy of the ground truth 100 (see test_boundary.py).
    metric = MultiTaskMetric(
        tasks=dict(semseg=dict(num_classes=4), human_parts=dict(num_classes=7), depth=None,
                   normals=None, edge=dict(protocol='seism-2016-01'), sal=None))
    metric.process({}, [s.to_dict() for s in samples])
    res = metric.compute_metrics(metric.results)
    assert res['semseg/mIoU'] == 100 and res['human_parts/mIoU'] == 100
    assert res['depth/rmse'] == 0 and res['depth/delta1'] == 100
    assert res['normals/mean'] == pytest.approx(0, abs=1e-4)
    assert res['edge/odsF'] == 100 and res['sal/maxF'] == pytest.approx(100)
    assert res['sal/IoU'] == 100
    assert 'multi_task/delta_m' not in res  # 'auto' only for exactly the NYUD tasks


def test_distributed_reduction_equals_single_process():
    samples = [s.to_dict() for s in _samples(6, tasks=('semseg', 'depth', 'normals', 'edge',
                                                       'sal'))]
    tasks = dict(semseg=dict(num_classes=4), depth=None, normals=None, edge=None, sal=None)
    whole = MultiTaskMetric(tasks=tasks)
    whole.process({}, samples)
    rank0, rank1 = MultiTaskMetric(tasks=tasks), MultiTaskMetric(tasks=tasks)
    rank0.process({}, samples[0::2])
    rank1.process({}, samples[1::2])
    gathered = rank0.results + rank1.results  # what collect_results hands rank 0
    assert whole.compute_metrics(whole.results) == rank0.compute_metrics(gathered)
    # per-sample payloads are small (counts and sums, not maps)
    import pickle
    assert max(len(pickle.dumps(r)) for r in whole.results) < 6000


def test_evaluate_through_mmengine_with_padding_duplicates():
    samples = [s.to_dict() for s in _samples(3)]
    metric = MultiTaskMetric(tasks=NYUD_TASKS)
    metric.process({}, samples)
    ref = metric.compute_metrics(list(metric.results))
    metric.process({}, samples[:1])  # a padded duplicate, as DistributedSampler adds
    assert metric.evaluate(size=3) == ref
    assert metric.results == []


def test_accepts_data_sample_objects_and_reads_dataset_meta():
    metric = MultiTaskMetric(tasks=dict(semseg=dict(report_per_class=True)))
    metric.dataset_meta = dict(classes=['a', 'b', 'c', 'd'])
    metric.process({}, _samples(2, tasks=('semseg', )))
    res = metric.compute_metrics(metric.results)
    assert {'semseg/IoU.a', 'semseg/IoU.d'} <= set(res)
    assert res['semseg/mIoU'] == pytest.approx(np.mean([res[f'semseg/IoU.{c}'] for c in 'abcd']))


def test_missing_prediction_is_an_error():
    s = _samples(1, tasks=('semseg', ))[0].to_dict()
    metric = MultiTaskMetric(tasks=['semseg', 'depth'])
    metric.process({}, [s])  # no depth at all: skipped
    del s['pred_semseg']
    with pytest.raises(KeyError):
        metric.process({}, [s])


def test_size_mismatch_is_an_error():
    s = _samples(1, tasks=('depth', ))[0]
    s.set_pred('depth', torch.zeros(1, H + 2, W))
    with pytest.raises(ValueError):
        MultiTaskMetric(tasks=['depth']).process({}, [s.to_dict()])


def test_bad_config():
    with pytest.raises(KeyError):
        MultiTaskMetric(tasks=['unknown_task'])
    with pytest.raises(TypeError):
        MultiTaskMetric(tasks=dict(depth=dict(typo_option=1)))
    m = MultiTaskMetric(tasks=dict(my_seg=dict(type='segmentation', num_classes=2)))
    assert m.evaluators['my_seg'].kind == 'segmentation'


def test_config_errors_are_one_line_input_errors():
    # UserInputErrors (the tools print them in one line), still KeyError / TypeError
    kinds = "['boundary', 'depth', 'normals', 'saliency', 'segmentation']"
    with pytest.raises(UnknownNameError) as info:
        MultiTaskMetric(tasks=['unknown_task'])
    assert str(info.value) == f"unknown task 'unknown_task': give its evaluator with type=one " \
        f'of {kinds}'
    with pytest.raises(UnknownNameError) as info:
        MultiTaskMetric(tasks=dict(depth=dict(type='dept')))
    assert str(info.value) == f"task 'depth': unknown evaluator type 'dept'; did you mean " \
        f"'depth'? choose from {kinds}"
    with pytest.raises(UnknownNameError) as info:
        MultiTaskMetric(tasks=dict(depth=dict(type='xyz')))
    assert str(info.value) == f"task 'depth': unknown evaluator type 'xyz'; choose from {kinds}"
    with pytest.raises(InvalidOptionError) as info:
        MultiTaskMetric(tasks=dict(depth=dict(typo_option=1)))
    assert str(info.value) == ("bad options for task 'depth' (depth): got an unexpected keyword "
                               "argument 'typo_option'; the depth evaluator takes "
                               "['ignore_index', 'min_depth', 'max_depth']")
    with pytest.raises(UnknownNameError) as info:
        MultiTaskMetric(tasks=['semseg'], delta_m_baselines=dict(foo=1.0))
    assert str(info.value) == "no Δm metric known for ['foo']; pass delta_m_metrics"


def test_a_type_error_inside_an_evaluator_keeps_its_traceback(monkeypatch):
    # the options fit the signature: a TypeError raised by __init__ itself is a bug, not an
    # input error the tools would reduce to one line
    from mmmt.evaluation.metrics.task_evaluators import DepthEvaluator

    def broken_init(self, task, ignore_index=None, min_depth=None, max_depth=None):
        raise TypeError('a bug in the evaluator')

    monkeypatch.setattr(DepthEvaluator, '__init__', broken_init)
    with pytest.raises(TypeError, match='^a bug in the evaluator$') as info:
        MultiTaskMetric(tasks=['depth'])
    assert not isinstance(info.value, InvalidOptionError)


def test_edge_png_export_through_the_metric(tmp_path):
    samples = _samples(2, tasks=('edge', ))
    samples[0].set_pred('edge', torch.full((1, H + 4, W + 2), 0.5))  # padded, to be cropped
    samples[0].gt_edge = None  # a sample without gt is still exported
    del samples[0].gt_edge
    out = tmp_path / 'edge'
    metric = MultiTaskMetric(tasks=dict(edge=dict(save_dir=str(out), evaluate=False)))
    metric.process({}, [s.to_dict() for s in samples])
    assert metric.compute_metrics(metric.results) == {}
    assert sorted(os.listdir(out)) == ['0000.png', '0001.png']
    img = cv2.imread(str(out / '0000.png'), cv2.IMREAD_UNCHANGED)
    assert img.shape == (H, W) and (img == 127).all()
    # a second run keeps existing files unless asked
    metric2 = MultiTaskMetric(tasks=dict(edge=dict(save_dir=str(out), evaluate=False)))
    metric2.process({}, [s.to_dict() for s in samples])
    assert metric2.evaluators['edge'].num_skipped_existing == 2


def test_edge_png_export_keeps_inside_its_folder(tmp_path):
    # an id from a crafted split list or predictions file wrote ../x.png beside save_dir
    from mmmt.utils.errors import UserInputError
    samples = _samples(1, tasks=('edge', ))
    samples[0].set_metainfo(dict(img_id='../x'))
    metric = MultiTaskMetric(tasks=dict(edge=dict(save_dir=str(tmp_path / 'edge'),
                                                  evaluate=False)))
    with pytest.raises(UserInputError, match=re.escape(
            f"sample id '../x' has a '..' part: an output file named after it would not lie "
            f"inside {tmp_path / 'edge'}")):
        metric.process({}, [s.to_dict() for s in samples])
    assert not (tmp_path / 'x.png').exists()
    samples[0].set_metainfo(dict(img_id='aachen/x'))  # Cityscapes' <city>/<name> ids
    metric.process({}, [s.to_dict() for s in samples])
    assert (tmp_path / 'edge' / 'aachen' / 'x.png').is_file()


def test_edge_worker_processes_give_the_same_numbers():
    samples = [s.to_dict() for s in _samples(3, tasks=('edge', ))]
    serial = MultiTaskMetric(tasks=['edge'])
    serial.process({}, samples)
    pooled = MultiTaskMetric(tasks=dict(edge=dict(nproc=2, mp_start_method='fork')))
    pooled.process({}, samples)
    try:
        assert pooled.evaluate(3) == serial.evaluate(3)
    finally:
        pooled.evaluators['edge'].close()


def test_pending_edge_work_is_awaited_with_a_progress_bar(monkeypatch, capsys):
    from concurrent.futures import Future

    import mmmt.evaluation.metrics.multi_task_metric as mtm
    from mmmt.utils.progress import ProgressBar
    samples = [s.to_dict() for s in _samples(2, tasks=('edge', ))]
    serial = MultiTaskMetric(tasks=['edge'])
    serial.process({}, samples)
    expected = serial.evaluate(2)
    metric = MultiTaskMetric(tasks=['edge'])
    metric.process({}, samples)
    future = Future()
    payload, metric.results[1]['edge'] = metric.results[1]['edge'], future

    def bar_then_finish(total, **kwargs):  # the worker "finishes" once the bar is shown
        bar = ProgressBar(total, **kwargs)
        future.set_result(payload)
        return bar

    monkeypatch.setattr(mtm, 'ProgressBar', bar_then_finish)
    assert metric.evaluate(2) == expected
    out = capsys.readouterr().out
    assert 'edge images: 1/1 (100%)' in out and '\r' not in out  # a log-file line


def test_delta_m_reproduces_the_paper():
    # the papers: MTMamba 55.82 / 0.5066 / 18.63 / 78.70 -> +2.38; the multi-task baseline -1.87
    res = {'semseg/mIoU': 55.82, 'depth/rmse': 0.5066, 'normals/mean': 18.63, 'edge/odsF': 78.70}
    assert delta_m(res, NYUD_SINGLE_TASK_BASELINES) == pytest.approx(2.3819, abs=1e-4)
    assert delta_m(NYUD_SINGLE_TASK_BASELINES, NYUD_SINGLE_TASK_BASELINES) == 0
    worse = dict(res, **{'depth/rmse': 0.5166 * 1.1})  # lower-is-better: higher rmse hurts
    assert delta_m(worse, NYUD_SINGLE_TASK_BASELINES) < delta_m(res, NYUD_SINGLE_TASK_BASELINES)


def test_delta_m_options():
    metric = MultiTaskMetric(tasks=['semseg', 'depth'], delta_m_baselines=dict(semseg=50.0,
                                                                               depth=1.0))
    values = {'semseg/mIoU': 55.0, 'semseg/pixel_acc': 1.0, 'depth/rmse': 0.9}
    assert delta_m(values, metric.delta_m_baselines) == pytest.approx(10.0)
    assert MultiTaskMetric(tasks=['semseg'], delta_m_baselines=None).delta_m_baselines is None
    assert MultiTaskMetric(tasks=['semseg', 'sal']).delta_m_baselines is None
    with pytest.raises(KeyError):
        MultiTaskMetric(tasks=['semseg'], delta_m_baselines=dict(foo=1.0))
    # a task's delta_m naming a metric its evaluator does not report (a new task's misspelt
    # ('miou', True)): the message names the results it has, not just the task
    with pytest.raises(KeyError) as info:
        delta_m(values, dict(semseg=50.0), dict(semseg=('miou', True)))
    assert info.value.args[0] == (
        "task 'semseg': its Δm metric 'miou' is not one of its results (semseg/mIoU, "
        "semseg/pixel_acc); correct delta_m in the task's definition (or the metric's "
        'delta_m_metrics)')
    with pytest.raises(KeyError) as info:  # a task that was not evaluated at all
        delta_m(values, dict(normals=20.0))
    assert info.value.args[0] == "no result 'normals/mean' for task 'normals'"


def test_evaluation_never_imports_models_or_datasets():
    import ast
    import glob
    import os.path as osp

    import mmmt.evaluation
    root = osp.dirname(mmmt.evaluation.__file__)
    for path in glob.glob(osp.join(root, '**', '*.py'), recursive=True):
        tree = ast.parse(open(path, encoding='utf-8').read())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [('.' * node.level) + node.module]
            for name in names:
                assert not name.startswith(('mmmt.models', 'mmmt.datasets', '..models',
                                            '..datasets', '...models', '...datasets')), path


@pytest.mark.parametrize('options, field', [
    (dict(delta_m_metrics=dict(semseg='mIoU')), "delta_m_metrics['semseg']"),  # not a pair
    (dict(delta_m_metrics=dict(depth=('rmse', 'False'))), "delta_m_metrics['depth']"),
    (dict(delta_m_baselines=dict(semseg=0, depth=0.5)), "delta_m_baselines['semseg']"),
    (dict(delta_m_baselines=dict(semseg=50.0, depth=float('nan'))),
     "delta_m_baselines['depth']"),
    (dict(delta_m_baselines=dict(semseg='fifty')), "delta_m_baselines['semseg']"),
    (dict(delta_m_baselines=[50.0, 0.5]), 'delta_m_baselines must be a mapping'),
])
def test_bad_delta_m_options_are_refused_when_the_metric_is_built(options, field):
    # found only by compute_metrics, they cost the whole evaluation ('False' even flipped a sign)
    with pytest.raises(ValueError, match=re.escape(field)):
        MultiTaskMetric(tasks=['semseg', 'depth'], **options)
    ok = MultiTaskMetric(tasks=['semseg', 'depth'], delta_m_metrics=dict(depth=['rmse', False]),
                         delta_m_baselines=dict(semseg=50, depth=1))
    assert ok.delta_m_metrics['depth'] == ('rmse', False)
    assert ok.delta_m_baselines == dict(semseg=50.0, depth=1.0)


@pytest.mark.parametrize('thresholds', [0.5, [], [0.5, float('inf')], 'high', 0])
def test_bad_saliency_thresholds_are_refused_when_the_metric_is_built(thresholds):
    with pytest.raises(ValueError, match='sal: thresholds'):
        MultiTaskMetric(tasks=dict(sal=dict(thresholds=thresholds)))


def test_saliency_threshold_count_is_the_uniform_set_of_the_default():
    by_count = MultiTaskMetric(tasks=dict(sal=dict(thresholds=19))).evaluators['sal']
    default = MultiTaskMetric(tasks=['sal']).evaluators['sal']
    np.testing.assert_array_equal(by_count.thresholds, default.thresholds)
    np.testing.assert_array_equal(
        MultiTaskMetric(tasks=dict(sal=dict(thresholds=3))).evaluators['sal'].thresholds,
        [0.25, 0.5, 0.75])
