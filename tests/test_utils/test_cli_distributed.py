"""The tools' Runner under data parallelism: ranks without dataloader workers augment
differently (two gloo processes on the CPU)."""
import argparse
import json
import os
import os.path as osp
import random

import numpy as np
import pytest
import torch

from mmmt.utils.cli import add_runner_args, pipeline_seed_offset
from tests.gloo import init_gloo, spawn_ranks

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
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


def _worker(rank, port, out_dir):
    """Build the tools' Runner without and with dataloader workers; write the draws after
    each."""
    import torch.distributed as dist

    from mmmt.utils import build_runner, load_runner_config, parse_runner_args, register_all_modules
    init_gloo(rank, port)
    register_all_modules()
    parser = argparse.ArgumentParser()
    parser.add_argument('config')
    add_runner_args(parser, trust_help='trust')
    draws = {}
    for workers in (0, 2):
        args = parse_runner_args(parser, [
            osp.join(REPO, 'configs', 'demo', 'mtmamba-tiny_synthetic-nyud.py'),
            '--work-dir', os.path.join(out_dir, f'work{workers}'), '--cfg-options',
            f'randomness.seed={SEED}', f'train_dataloader.num_workers={workers}',
            f'train_dataloader.persistent_workers={workers > 0}', 'log_level=WARNING'])
        runner = build_runner(load_runner_config(args), 'training')
        assert (runner.rank, runner.world_size) == (rank, 2)
        draws[workers] = _draws()
    with open(os.path.join(out_dir, f'{rank}.json'), 'w') as f:
        json.dump(draws, f)
    dist.destroy_process_group()


@pytest.fixture(scope='module')
def rank_draws(tmp_path_factory):
    """Each rank's draws after building the Runner, by num_workers (0 and 2)."""
    out = tmp_path_factory.mktemp('rank_draws')
    spawn_ranks(_worker, str(out))
    return [{int(k): v for k, v in json.loads((out / f'{r}.json').read_text()).items()}
            for r in range(2)]


@pytest.mark.parametrize('workers', [0, 2])
def test_ranks_without_workers_draw_their_own_augmentation(rank_draws, workers):
    """With num_workers=0 the pipeline draws from each rank's np.random, which mmengine
    seeded alike on every rank: both ranks cropped and flipped their images the same way."""
    ranks = [draws[workers] for draws in rank_draws]
    # rank 0 keeps the config's seed, and torch (the model's draws) is alike on every rank
    random.seed(SEED)
    np.random.seed(SEED)
    expected = _draws()
    assert (ranks[0]['numpy'], ranks[0]['python']) == (expected['numpy'], expected['python'])
    assert ranks[1]['torch'] == ranks[0]['torch']
    if workers:  # the workers' seeds differ by rank (mmengine): nothing changes here
        assert ranks[1] == ranks[0]
    else:
        random.seed(SEED + 1)
        np.random.seed(SEED + 1)
        expected = _draws()
        assert ranks[1]['numpy'] == expected['numpy']
        assert ranks[1]['python'] == expected['python']
        assert ranks[1]['numpy'] != ranks[0]['numpy']
