"""The evaluator settings every shipped config builds (tolerances, beta^2, thresholds, ignore
values), and the defaults used where a config leaves them out.

The edge protocol's threshold set, NMS and ground-truth thinning are left to the edge evaluation
tests: only the matching tolerance is pinned here.
"""
import glob
import os.path as osp

import numpy as np
import pytest
from mmengine import DefaultScope
from mmengine.config import Config

from mmmt.evaluation import MultiTaskMetric
from mmmt.evaluation.functional import NYUD_SINGLE_TASK_BASELINES
from mmmt.registry import METRICS

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')
NYUD_MAX_DIST = 0.011
PASCAL_MAX_DIST = 0.0075
SAL_THRESHOLDS = [0.05 * k for k in range(1, 20)]  # 0.05 ... 0.95


def shipped_configs():
    return sorted(osp.relpath(p, CONFIGS) for p in glob.glob(osp.join(CONFIGS, '**', '*.py'),
                                                             recursive=True)
                  if '_base_' not in p and 'mmseg_examples' not in p)


def edge_max_dist(evaluator):
    kwargs = getattr(evaluator, 'eval_kwargs', None) or {}
    return kwargs.get('max_dist', getattr(evaluator, 'max_dist', None))


def build(cfg, key):
    with DefaultScope.overwrite_default_scope('mmmt'):
        return METRICS.build(cfg[key])


@pytest.mark.parametrize('config', shipped_configs())
def test_shipped_evaluators(config):
    cfg = Config.fromfile(osp.join(CONFIGS, config))
    pascal = 'pascal' in config
    cityscapes = 'cityscapes' in config
    for key in ('val_evaluator', 'test_evaluator'):
        metric = build(cfg, key)
        assert isinstance(metric, MultiTaskMetric)
        assert metric.tasks == list(cfg.train_dataloader.dataset.tasks)
        for task, evaluator in metric.evaluators.items():
            assert evaluator.ignore_index == 255, (task, evaluator.ignore_index)
        if 'edge' in metric.evaluators:
            expected = PASCAL_MAX_DIST if pascal else NYUD_MAX_DIST
            assert edge_max_dist(metric.evaluators['edge']) == expected
        if 'sal' in metric.evaluators:
            sal = metric.evaluators['sal']
            assert sal.beta2 == 0.3 and sal.iou_threshold == 0.5
            np.testing.assert_allclose(sal.thresholds, SAL_THRESHOLDS, rtol=0, atol=1e-12)
            # the reference meter's double sigmoid, to compare with the published maxF
            assert sal.legacy_double_sigmoid is True
        for task in ('semseg', 'human_parts'):
            if task in metric.evaluators:
                # the class count comes from the dataset's meta, as test.py sets it
                assert metric.evaluators[task]._num_classes is None
        if 'depth' in metric.evaluators:
            depth = metric.evaluators['depth']
            # Cityscapes evaluates disparity on 0 < gt < 80 only, as the reference does
            expected = (0.0, 80.0) if cityscapes else (None, None)
            assert (depth.min_depth, depth.max_depth) == expected
        if config.startswith('demo/'):
            # the paper's NYUD baselines mean nothing on synthetic rooms
            assert metric.delta_m_baselines is None
        elif cityscapes:
            assert metric.delta_m_baselines == {'semseg': 80.0, 'depth': 1.0}
        elif set(metric.tasks) == set(NYUD_SINGLE_TASK_BASELINES):
            assert metric.delta_m_baselines == NYUD_SINGLE_TASK_BASELINES
        else:
            assert metric.delta_m_baselines is None


def test_defaults_where_a_config_is_silent():
    metric = MultiTaskMetric(tasks=['semseg', 'sal', 'edge', 'depth', 'normals'])
    assert edge_max_dist(metric.evaluators['edge']) == NYUD_MAX_DIST
    sal = metric.evaluators['sal']
    assert sal.beta2 == 0.3 and sal.iou_threshold == 0.5 and not sal.legacy_double_sigmoid
    np.testing.assert_allclose(sal.thresholds, SAL_THRESHOLDS, rtol=0, atol=1e-12)
    assert all(e.ignore_index == 255 for e in metric.evaluators.values())
