"""Combination of the per-task losses into one objective."""
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.dist import all_reduce
from mmengine.logging import print_log

from mmmt.registry import MODELS
from mmmt.utils.errors import UserInputError

__all__ = ['MultiTaskLoss']

SCHEMES = ('log', 'sum', 'uncertainty', 'dwa')


@MODELS.register_module()
class MultiTaskLoss(nn.Module):
    """Weight and combine per-image task losses.

    Schemes (L_{t,b}: loss of task t on image b, w_t: fixed weight):

    * ``'log'`` (MTMamba, both datasets): ``mean_b sum_t w_t * log(L_{t,b} + eps)``. The log is
      taken **per image**: the reference trains with one image per GPU and averages gradients
      over 8 GPUs, so 8 GPUs x 1 image and 1 process x 8 images optimise the same objective.
      The gradient of a task is grad(L) / L; an image without valid pixels for a task gives
      log(eps) with zero gradient.
    * ``'sum'`` (MTMamba++ NYUD): ``sum_t w_t * mean_b L_{t,b}``.
    * ``'uncertainty'`` (Kendall et al., CVPR 2018): ``sum_t exp(-s_t) * w_t * mean_b L_{t,b} +
      s_t`` with a learned log-variance s_t per task (initialised to 0).
    * ``'dwa'`` (Dynamic Weight Average, Liu et al., CVPR 2019): ``sum_t lambda_t * w_t * mean_b
      L_{t,b}`` with ``lambda = T * softmax(r / temperature)``, r_t the ratio of task t's mean
      loss over the last two windows of ``dwa_window`` iterations (lambda = 1 until two windows
      exist). The window statistics are buffers, so they are saved and resumed; under data
      parallelism they are the global batch's (the ranks' means averaged), the same on every rank.

    Returns a dict with ``loss_<task>`` (the task's contribution; they sum to the objective, which
    is what mmengine's ``parse_losses`` adds up) and ``raw_<task>`` (the batch mean of the plain
    task loss, for logging).

    Args:
        tasks (Sequence[str]): Task names.
        scheme (str): One of 'log', 'sum', 'uncertainty', 'dwa'. Defaults to 'log'.
        weights (dict, optional): Task -> weight w_t; missing tasks get 1.
        eps (float): Added inside the log. Defaults to 1e-8.
        dwa_window (int): Iterations per DWA averaging window. Defaults to 100.
        dwa_temperature (float): DWA temperature. Defaults to 2.
    """

    def __init__(self,
                 tasks: Sequence[str],
                 scheme: str = 'log',
                 weights: Optional[Dict[str, float]] = None,
                 eps: float = 1e-8,
                 dwa_window: int = 100,
                 dwa_temperature: float = 2.0) -> None:
        super().__init__()
        if scheme not in SCHEMES:
            raise UserInputError(f'MultiTaskLoss: scheme must be one of {SCHEMES}, got {scheme!r}')
        self.tasks = list(tasks)
        unknown = set(weights or {}) - set(self.tasks)
        if unknown:
            # typically a child config that changed the head's tasks of a base whose weights
            # name the base's tasks (MTMamba++'s): mmengine merges the weights dict key by key
            raise UserInputError(f'MultiTaskLoss: weights given for unknown tasks '
                                 f'{sorted(unknown)}; tasks are {self.tasks} (a child config '
                                 'that changes the tasks replaces the weights of its base: '
                                 'loss_combiner=dict(weights=dict(_delete_=True, ...)))')
        self.scheme = scheme
        # said once, at the first training loss: a model built for inference never logs it
        self._explained = scheme != 'log'
        self.weights = {}
        for t in self.tasks:
            w = (weights or {}).get(t, 1.0)
            try:
                self.weights[t] = float(w)
            except (TypeError, ValueError):  # float()'s own error names no task
                raise UserInputError(f'MultiTaskLoss: weights[{t!r}] must be a number, got '
                                     f'{w!r}') from None
        self.eps = eps
        self.dwa_window = dwa_window
        self.dwa_temperature = dwa_temperature
        if scheme == 'uncertainty':
            self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))
        if scheme == 'dwa':
            num = len(self.tasks)
            self.register_buffer('dwa_sum', torch.zeros(num, dtype=torch.float64))
            self.register_buffer('dwa_count', torch.zeros((), dtype=torch.long))
            # mean loss of the last two complete windows: row 0 older, row 1 newer
            self.register_buffer('dwa_history', torch.zeros(2, num, dtype=torch.float64))
            self.register_buffer('dwa_windows', torch.zeros((), dtype=torch.long))

    def _dwa_lambdas(self, means: torch.Tensor) -> torch.Tensor:
        num = len(self.tasks)
        if self.dwa_windows >= 2:
            ratio = self.dwa_history[1] / self.dwa_history[0].clamp(min=1e-12)
            lambdas = num * torch.softmax(ratio / self.dwa_temperature, dim=0)
        else:
            lambdas = torch.ones(num, dtype=torch.float64, device=means.device)
        if self.training:
            # the window statistics of the global batch: each rank's means averaged (equal
            # batches per rank), so every rank keeps the same history whether or not DDP
            # broadcasts buffers (mmengine's GPU default does not), and it is the history one
            # process training on the whole global batch keeps
            global_means = means.detach().double()
            all_reduce(global_means, op='mean')  # nothing without a process group
            self.dwa_sum += global_means
            self.dwa_count += 1
            if self.dwa_count >= self.dwa_window:
                self.dwa_history[0] = self.dwa_history[1]
                self.dwa_history[1] = self.dwa_sum / self.dwa_count
                self.dwa_sum.zero_()
                self.dwa_count.zero_()
                self.dwa_windows += 1
        return lambdas.to(means.dtype)

    def forward(self, task_losses: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Args: task_losses: task -> (B,) per-image losses. Returns: see the class doc."""
        missing = [t for t in self.tasks if t not in task_losses]
        if missing:
            raise KeyError(f'MultiTaskLoss: no loss for tasks {missing}')
        if self.training and not self._explained:
            self._explained = True
            print_log("MultiTaskLoss 'log' scheme: loss_<task> = weight * the mean over the "
                      "batch's images of log(task loss), negative once a task loss is below 1 "
                      '(so is the total); raw_<task> are the task losses themselves (batch '
                      'means), so loss_<task> = weight * log(raw_<task>) at one image per '
                      'process and is below it otherwise', logger='current')
        means = torch.stack([task_losses[t].mean() for t in self.tasks])
        outputs = {}
        if self.scheme == 'dwa':
            lambdas = self._dwa_lambdas(means)
        for i, t in enumerate(self.tasks):
            w = self.weights[t]
            if self.scheme == 'log':
                term = w * torch.log(task_losses[t] + self.eps).mean()
            elif self.scheme == 'sum':
                term = w * means[i]
            elif self.scheme == 'uncertainty':
                term = torch.exp(-self.log_vars[i]) * w * means[i] + self.log_vars[i]
            else:
                term = lambdas[i] * w * means[i]
            outputs[f'loss_{t}'] = term
            outputs[f'raw_{t}'] = means[i].detach()
        return outputs
