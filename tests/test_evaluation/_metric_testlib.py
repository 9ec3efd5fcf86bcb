"""Shared helper of the metric value tests: evaluate NumPy maps through ``MultiTaskMetric``."""
import numpy as np
import torch

from mmmt.evaluation import MultiTaskMetric
from mmmt.structures import MultiTaskDataSample


def evaluate(tasks, images):
    """``images``: one dict task -> (pred, gt) NumPy maps (C, H, W) per image."""
    samples = []
    for i, maps in enumerate(images):
        s = MultiTaskDataSample(metainfo=dict(img_id=f'{i}'))
        for task, (pred, gt) in maps.items():
            s.set_pred(task, torch.from_numpy(np.asarray(pred)))
            s.set_gt(task, torch.from_numpy(np.asarray(gt)))
        samples.append(s.to_dict())
    metric = MultiTaskMetric(tasks=tasks, delta_m_baselines=None)
    metric.process({}, samples)
    return metric.evaluate(len(samples))
