"""A two-task model small enough to check the wrapper's gradients by hand."""
import torch
import torch.nn as nn
from mmengine.model import BaseModel


class TinyTwoTask(BaseModel):
    """``backbone``: Linear(3, 4) + tanh; two linear heads with squared-error losses."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.backbone = nn.Sequential(nn.Linear(3, 4), nn.Tanh())
        self.head_a = nn.Linear(4, 1)
        self.head_b = nn.Linear(4, 1)
        # equal heads and opposite targets: the tasks pull the backbone in conflicting directions
        self.head_b.load_state_dict(self.head_a.state_dict())

    def forward(self, inputs, data_samples=None, mode='loss'):
        z = self.backbone(inputs)
        return dict(loss_a=((self.head_a(z) - data_samples[:, :1])**2).mean(),
                    loss_b=((self.head_b(z) - data_samples[:, 1:])**2).mean() + 0.1,
                    raw_a=z.detach().sum())


def batch(seed: int, size: int = 4):
    """Inputs and targets whose task gradients conflict (targets of opposite sign)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(size, 3, generator=gen)
    s = 3 * x.sum(1)
    y = torch.stack([s, -s + 0.3 * torch.randn(size, generator=gen)], dim=1)
    return dict(inputs=x, data_samples=y)
