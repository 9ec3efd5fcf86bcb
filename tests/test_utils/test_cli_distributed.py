"""The tools' Runner under data parallelism: ranks without dataloader workers augment
differently."""
import random

import numpy as np
import pytest
import torch

from mmmt.utils.cli import _runner_class, pipeline_seed_offset

SEED = 7


def test_pipeline_seed_offset_only_for_ranks_without_workers():
    assert pipeline_seed_offset(3, 4, 0, False) == 3
    assert pipeline_seed_offset(0, 4, 0, False) == 0  # rank 0 keeps the config's streams
    assert pipeline_seed_offset(1, 1, 0, False) == 0  # nothing changes for one process
    assert pipeline_seed_offset(1, 2, 2, False) == 0  # mmengine seeds the workers by rank
    assert pipeline_seed_offset(1, 2, 0, True) == 0  # mmengine already seeds by rank
    assert pipeline_seed_offset(1, 2, None, False) == 0  # no training dataloader


def _draws():
    return dict(numpy=np.random.randint(2**31, size=4).tolist(), python=random.random(),
                torch=torch.rand(3).tolist())


def _seeded_draws(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return _draws()


def _rank_draws(rank, workers):
    """The draws after the tools' Runner of rank ``rank`` of 2 sets its randomness (what
    ``Runner.__init__`` does after ``setup_env`` has set the rank)."""
    runner_cls = _runner_class()
    runner = runner_cls.__new__(runner_cls)
    runner.cfg = dict(train_dataloader=dict(num_workers=workers))
    runner._rank, runner._world_size = rank, 2
    runner.set_randomness(SEED)
    return _draws()


@pytest.mark.parametrize('workers', [0, 2])
def test_ranks_without_workers_draw_their_own_augmentation(workers):
    """With num_workers=0 the pipeline draws from each rank's np.random, which mmengine
    seeded alike on every rank: both ranks cropped and flipped their images the same way."""
    ranks = [_rank_draws(rank, workers) for rank in range(2)]
    assert ranks[0] == _seeded_draws(SEED)  # rank 0 keeps the config's seed
    assert ranks[1]['torch'] == ranks[0]['torch']  # and the model's draws are alike
    if workers:  # the workers' seeds differ by rank (mmengine): nothing changes here
        assert ranks[1] == ranks[0]
    else:
        offset = _seeded_draws(SEED + 1)
        assert (ranks[1]['numpy'], ranks[1]['python']) == (offset['numpy'], offset['python'])
        assert ranks[1]['numpy'] != ranks[0]['numpy']
