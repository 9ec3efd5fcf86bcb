from .multi_task_loss import MultiTaskLoss
from .task_losses import (BalancedBCEEdgeLoss, BalancedSaliencyLoss, DepthL1Loss,
                          NormalsL1Loss, PixelCrossEntropyLoss)

#: The loss each known task uses in the MTMamba reference, by task name.
DEFAULT_TASK_LOSSES = dict(
    semseg=dict(type='PixelCrossEntropyLoss'),
    human_parts=dict(type='PixelCrossEntropyLoss'),
    sal=dict(type='BalancedSaliencyLoss'),
    edge=dict(type='BalancedBCEEdgeLoss', pos_weight=0.95),
    normals=dict(type='NormalsL1Loss'),
    depth=dict(type='DepthL1Loss'),
)

__all__ = [
    'MultiTaskLoss', 'PixelCrossEntropyLoss', 'BalancedSaliencyLoss', 'BalancedBCEEdgeLoss',
    'NormalsL1Loss', 'DepthL1Loss', 'DEFAULT_TASK_LOSSES'
]
