"""Seed torch's generators from (seed, iteration) before every training iteration."""
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook

from mmmt.registry import HOOKS

__all__ = ['IterationSeedHook', 'iteration_seed']


def iteration_seed(seed: int, iteration: int) -> int:
    """The torch seed of training iteration ``iteration`` of a run seeded with ``seed``.

    NumPy's ``SeedSequence`` mixes the pair (neighbouring iterations get unrelated streams,
    unlike ``seed + iteration``); 63 bits, what ``torch.manual_seed`` accepts.
    """
    state = np.random.SeedSequence([int(seed) % 2**63, int(iteration)]).generate_state(
        1, np.uint64)[0]
    return int(state) >> 1


@HOOKS.register_module()
class IterationSeedHook(Hook):
    """Make the model's random draws (drop path) a function of the seed and the iteration.

    mmengine's checkpoints do not hold the random generators' states, and a resumed run
    reseeds them once at start-up: without this hook the drop-path masks after ``--resume``
    differ from those of the uninterrupted run (the shipped Swin-L recipes train with drop
    path 0.1 / 0.2), so the resumed weights differ too. Seeding torch (CPU and every CUDA
    device, ``torch.manual_seed``) before each training iteration from ``(runner.seed,
    runner.iter)`` gives both runs the same masks. ``runner.seed`` is the resumed run's seed
    (mmengine restores it from the checkpoint) and already differs per rank where
    ``randomness.diff_rank_seed=True``; with the default ``False`` every rank draws the same
    masks, as every rank did before (the reference seeds all ranks alike).

    Only torch is reseeded: the data pipeline draws from ``np.random`` (in the dataloader's
    workers, which mmengine seeds per rank and worker), and the sampler has its own
    generator, so the data are untouched.

    Args:
        seed (int, optional): Seed to derive from instead of ``runner.seed``.
    """

    priority = 'VERY_HIGH'

    def __init__(self, seed: Optional[int] = None) -> None:
        self.seed = seed

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        seed = self.seed if self.seed is not None else runner.seed
        torch.manual_seed(iteration_seed(seed, runner.iter))
