"""Per-task dense losses, exactly as the MTMamba reference computes them (docs/differences.md).

Every loss returns **one value per image**, shape (B,), so that the multi-task combination can be
taken per image (see :class:`~mmmt.models.losses.MultiTaskLoss`). Ground truth uses 255 as the
ignore value; a loss over an image without valid pixels is 0 with zero gradient.

These are written here rather than taken from mmseg because mmseg's losses average over the
batch (no per-image values), treat an all-ignored batch differently, and have no normals/depth
losses.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmmt.registry import MODELS
from mmmt.structures import IGNORE_INDEX
from mmmt.utils.errors import UserInputError

__all__ = [
    'PixelCrossEntropyLoss', 'BalancedSaliencyLoss', 'BalancedBCEEdgeLoss', 'NormalsL1Loss',
    'DepthL1Loss'
]


def _per_image_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Sum of ``values`` over valid pixels of each image divided by max(#valid, 1).

    Args:
        values (Tensor): (B, ...) per-pixel loss, finite everywhere.
        valid (Tensor): bool mask broadcastable to ``values``.
    """
    values = torch.where(valid, values, values.new_zeros(()))
    count = valid.expand_as(values).flatten(1).sum(1).clamp(min=1)
    return values.flatten(1).sum(1) / count


def _check_shapes(pred: torch.Tensor, target: torch.Tensor, name: str) -> None:
    if pred.dim() != 4 or target.dim() != 4 or pred.shape[0] != target.shape[0] \
            or pred.shape[2:] != target.shape[2:]:
        raise ValueError(f'{name}: expected prediction (B, C, H, W) and target (B, C\', H, W) '
                         f'of the same size, got {tuple(pred.shape)} and {tuple(target.shape)}')


@MODELS.register_module()
class PixelCrossEntropyLoss(nn.Module):
    """Softmax cross-entropy over valid pixels (semseg, human_parts).

    Per image: sum of per-pixel CE over pixels whose label is not ``ignore_index``, divided by
    their number (0 when there is none).
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_shapes(pred, target, type(self).__name__)
        label = target[:, 0].long()
        per_pixel = F.cross_entropy(
            pred.float(), label, ignore_index=self.ignore_index, reduction='none')
        return _per_image_mean(per_pixel, label != self.ignore_index)


@MODELS.register_module()
class BalancedSaliencyLoss(nn.Module):
    """Class-balanced two-way cross-entropy (sal).

    With p- the fraction of negatives among an image's valid pixels, background pixels are
    weighted 1 - p- and salient pixels p-; the weighted CE is summed and divided by the number of
    valid pixels (not by the sum of weights), as the reference does.
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_shapes(pred, target, type(self).__name__)
        label = target[:, 0]
        valid = label != self.ignore_index
        positive = (label == 1) & valid
        num_valid = valid.flatten(1).sum(1).clamp(min=1)
        frac_neg = 1 - positive.flatten(1).sum(1) / num_valid  # (B,)
        weight = torch.where(positive, frac_neg[:, None, None], 1 - frac_neg[:, None, None])
        per_pixel = F.cross_entropy(
            pred.float(),
            torch.where(valid, label, torch.zeros_like(label)).long(),
            reduction='none')
        return _per_image_mean(weight * per_pixel, valid)


@MODELS.register_module()
class BalancedBCEEdgeLoss(nn.Module):
    """Weighted binary cross-entropy with logits (edge).

    Per valid pixel: ``w * y * softplus(-x) + (1 - w) * (1 - y) * softplus(x)`` with the fixed
    positive weight ``w`` (0.95 in the reference), averaged over valid pixels.
    """

    def __init__(self, pos_weight: float = 0.95, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        if not 0 < pos_weight < 1:
            raise UserInputError(f'pos_weight must lie in (0, 1), got {pos_weight}')
        self.pos_weight = pos_weight
        self.ignore_index = ignore_index

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_shapes(pred, target, type(self).__name__)
        valid = target != self.ignore_index
        y = torch.where(valid, target, torch.zeros_like(target)).float()
        x = pred.float()
        w = self.pos_weight
        per_pixel = w * y * F.softplus(-x) + (1 - w) * (1 - y) * F.softplus(x)
        return _per_image_mean(per_pixel, valid)


@MODELS.register_module()
class NormalsL1Loss(nn.Module):
    """L1 between the L2-normalised prediction and the label normals (normals).

    Per image: sum over valid pixels (no label channel equal to the ignore value) of the L1 norm
    of the difference vector, divided by the number of valid pixels.
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_shapes(pred, target, type(self).__name__)
        valid = (target != self.ignore_index).all(dim=1, keepdim=True)
        normed = F.normalize(pred.float(), p=2, dim=1, eps=1e-12)
        label = torch.where(valid, target, torch.zeros_like(target)).float()
        per_pixel = (normed - label).abs().sum(dim=1, keepdim=True)
        return _per_image_mean(per_pixel, valid)


@MODELS.register_module()
class DepthL1Loss(nn.Module):
    """L1 on valid depth pixels (label not equal to the ignore value), raw prediction."""

    def __init__(self, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_shapes(pred, target, type(self).__name__)
        valid = target != self.ignore_index
        label = torch.where(valid, target, torch.zeros_like(target)).float()
        return _per_image_mean((pred.float() - label).abs(), valid)
