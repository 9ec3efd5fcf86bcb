"""The CPU DDP wrapper of ``setup_cpu_distributed`` is the one mmengine builds on GPUs."""
import os

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from mmengine.registry import MODEL_WRAPPERS

from mmmt.utils import setup_cpu_distributed
from tests.gloo import spawn_ranks


class OneHeadUnused(BaseModel):
    """Two heads, only the first in the loss: DDP needs ``find_unused_parameters``."""

    def __init__(self):
        super().__init__()
        self.used = nn.Linear(2, 1)
        self.unused = nn.Linear(2, 1)

    def forward(self, inputs, mode='loss'):
        return dict(loss=self.used(inputs).pow(2).mean())


def _worker(rank, port, find_unused, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE='2')
    cfg = Config(dict(model=dict(), find_unused_parameters=find_unused))
    setup_cpu_distributed(cfg, 'pytorch')
    torch.manual_seed(0)
    model = OneHeadUnused()
    # what mmengine's Runner.wrap_model does with a model_wrapper_cfg
    wrapper = MODEL_WRAPPERS.build(dict(cfg.model_wrapper_cfg), default_args=dict(module=model))
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    error = None
    try:
        for step in range(2):
            wrapper.train_step(dict(inputs=torch.full((2, 2), float(rank + step + 1))), optim)
    except RuntimeError as e:
        error = str(e)
    torch.save(dict(cfg=dict(cfg.model_wrapper_cfg), error=error,
                    weight=model.used.weight.detach().clone()),
               os.path.join(out_dir, f'{rank}.pth'))
    torch.distributed.destroy_process_group()


@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU setup only applies without CUDA')
def test_config_find_unused_parameters_and_buffers_as_on_gpus(tmp_path):
    spawn_ranks(_worker, True, str(tmp_path))
    ranks = [torch.load(tmp_path / f'{r}.pth') for r in range(2)]
    for r in ranks:
        assert r['error'] is None  # two steps trained with an unused head
        # mmengine's own default wrapper (Runner.wrap_model without model_wrapper_cfg)
        assert r['cfg'] == dict(type='MMDistributedDataParallel', device_ids=None,
                                broadcast_buffers=False, find_unused_parameters=True)
    assert torch.equal(ranks[0]['weight'], ranks[1]['weight'])
