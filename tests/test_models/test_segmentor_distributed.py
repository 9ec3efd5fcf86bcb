"""The segmentor's logged losses under DDP: the mean over the ranks, the gradients unchanged."""
import os
import types

import torch
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper

from tests.gloo import init_gloo, spawn_ranks
from tests.test_models.test_segmentor import make_sample, tiny_model


def _batch(rank):
    """Two images and their ground truth; each rank's differ (its own seed)."""
    torch.manual_seed(10 + rank)
    return dict(inputs=[torch.randn(3, 64, 96) for _ in range(2)],
                data_samples=[make_sample(64, 96) for _ in range(2)])


class _GradRecorder(OptimWrapper):
    """An optim wrapper that keeps the gradients of the step (the update itself is lr 0)."""

    def step(self, **kwargs):
        self.grads = [p.grad.clone() for group in self.optimizer.param_groups
                      for p in group['params'] if p.grad is not None]
        super().step(**kwargs)


def _train_step(model, data):
    """One DDP ``train_step`` of ``model``: (what it logs, the gradients it steps with)."""
    from mmengine.model import MMDistributedDataParallel
    ddp = MMDistributedDataParallel(module=model, find_unused_parameters=True)
    wrapper = _GradRecorder(optimizer=torch.optim.SGD(model.parameters(), lr=0.0))
    torch.manual_seed(1)
    log_vars = ddp.train_step(data, wrapper)
    return {k: v.detach() for k, v in log_vars.items()}, wrapper.grads


def _worker(rank, port, out_dir):
    import torch.distributed as dist

    from mmmt.utils import register_all_modules
    register_all_modules()
    torch.set_num_threads(1)  # two processes on the test machine's cores
    init_gloo(rank, port)
    torch.manual_seed(0)
    model, before = tiny_model(), tiny_model()
    before.load_state_dict(model.state_dict())
    # mmengine's own parse_losses: what the segmentor did before it averaged the log values
    before.parse_losses = types.MethodType(BaseModel.parse_losses, before)
    logged, grads = _train_step(model, _batch(rank))
    own = {k: v.clone() for k, v in model.rank_log_vars.items()}
    logged_before, grads_before = _train_step(before, _batch(rank))
    torch.save(dict(logged=logged, own=own, grads=grads, logged_before=logged_before,
                    grads_before=grads_before), os.path.join(out_dir, f'{rank}.pth'))
    dist.destroy_process_group()


def test_two_ranks_log_the_mean_and_keep_their_gradients(tmp_path):
    spawn_ranks(_worker, str(tmp_path))
    ranks = [torch.load(tmp_path / f'{r}.pth') for r in range(2)]
    # one process on each rank's batch: the values a single-process run logs
    torch.manual_seed(0)
    single = tiny_model()
    expected = []
    for rank in range(2):
        torch.manual_seed(1)
        data = single.data_preprocessor(_batch(rank), True)
        torch.manual_seed(1)
        _, log_vars = single.parse_losses(single(**data, mode='loss'))
        expected.append({k: v.detach() for k, v in log_vars.items()})
    keys = list(expected[0])
    assert keys[0] == 'loss' and 'loss_semseg' in keys and 'raw_depth' in keys
    for r in ranks:
        assert list(r['logged']) == keys
        for key in keys:
            # every rank logs the mean over the ranks: of their own values exactly, and of the
            # single-process values
            assert r['logged'][key] == (ranks[0]['own'][key] + ranks[1]['own'][key]) / 2, key
            torch.testing.assert_close(r['logged'][key],
                                       (expected[0][key] + expected[1][key]) / 2,
                                       rtol=1e-5, atol=1e-6)
        # before, each rank logged its own batch's values
        for key in keys:
            assert torch.equal(r['logged_before'][key], r['own'][key])
        # the back-propagated loss is still the rank's own: bit-identical gradients
        assert len(r['grads']) == len(r['grads_before']) > 0
        for g, g_before in zip(r['grads'], r['grads_before']):
            assert torch.equal(g, g_before)
    # the ranks' own values differ (different data), so the mean is not either's
    assert not torch.equal(ranks[0]['own']['loss'], ranks[1]['own']['loss'])
    torch.testing.assert_close(ranks[0]['own']['loss'], expected[0]['loss'], rtol=1e-5,
                               atol=1e-6)
