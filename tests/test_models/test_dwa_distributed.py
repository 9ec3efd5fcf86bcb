"""DWA's loss history under data parallelism: the global batch's, the same on every rank."""
import os

import torch

from mmmt.models.losses import MultiTaskLoss
from tests.gloo import init_gloo, spawn_ranks

TASKS = ('semseg', 'depth')


def _losses(step):
    """Per-image losses of a global batch of 4 images; the two halves differ on purpose."""
    g = torch.Generator().manual_seed(step)
    return {t: torch.rand(4, generator=g, dtype=torch.float64) * (1 + i) + 0.1
            for i, t in enumerate(TASKS)}


def _run(combiner, halves):
    """Three training steps; the DWA weights of the last (lambda_t = loss_t / raw_t)."""
    for step in range(3):
        full = _losses(step)
        out = combiner({t: v if halves is None else v[2 * halves:2 * halves + 2]
                        for t, v in full.items()})
    return torch.stack([out[f'loss_{t}'] / out[f'raw_{t}'] for t in TASKS])


def _worker(rank, port, out_dir):
    import torch.distributed as dist
    init_gloo(rank, port)
    combiner = MultiTaskLoss(TASKS, scheme='dwa', dwa_window=1)
    lambdas = _run(combiner, halves=rank)
    torch.save(dict(history=combiner.dwa_history.clone(), lambdas=lambdas),
               os.path.join(out_dir, f'{rank}.pth'))
    dist.destroy_process_group()


def test_two_ranks_keep_the_global_batch_history(tmp_path):
    spawn_ranks(_worker, str(tmp_path))
    ranks = [torch.load(tmp_path / f'{r}.pth') for r in range(2)]
    # by hand: windows of one step, means of the whole batch; step 2 weights by steps 0 and 1,
    # then its own means enter the history
    means = [torch.stack([_losses(s)[t].mean() for t in TASKS]) for s in range(3)]
    ratio = means[1] / means[0]
    expected_lambdas = 2 * torch.softmax(ratio / 2.0, dim=0)
    single = MultiTaskLoss(TASKS, scheme='dwa', dwa_window=1)
    _run(single, halves=None)
    for r in ranks:
        assert torch.allclose(r['history'][0], means[1], rtol=1e-12)
        assert torch.allclose(r['history'][1], means[2], rtol=1e-12)
        assert torch.allclose(r['lambdas'], expected_lambdas, rtol=1e-6)
    assert torch.allclose(ranks[0]['history'], single.dwa_history, rtol=1e-12)
