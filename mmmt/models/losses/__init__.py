from .multi_task_loss import MultiTaskLoss
from .task_losses import (BalancedBCEEdgeLoss, BalancedSaliencyLoss, DepthL1Loss, NormalsL1Loss,
                          PixelCrossEntropyLoss)

# The loss each task uses by default is part of its definition (mmmt.structures.TASKS).

__all__ = [
    'MultiTaskLoss', 'PixelCrossEntropyLoss', 'BalancedSaliencyLoss', 'BalancedBCEEdgeLoss',
    'NormalsL1Loss', 'DepthL1Loss'
]
