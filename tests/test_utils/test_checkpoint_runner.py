"""The safe loader on a genuine mmengine checkpoint: a real ``Runner`` trains a toy model for
one iteration and saves; its file (message hub with ``HistoryBuffer`` logs, numpy RNG state,
optimizer state) must load without trusting pickles, through the public loader and through a
``--resume``-style second Runner."""
import logging

import pytest
import torch
import torch.nn as nn
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader

from mmmt.utils import TRUST_ENV, load_checkpoint_file


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, targets=None, mode='tensor'):
        out = self.linear(torch.stack(inputs) if isinstance(inputs, list) else inputs)
        if mode == 'loss':
            target = torch.stack(targets) if isinstance(targets, list) else targets
            return dict(loss=((out - target)**2).mean())
        return out


class ToyDataset(torch.utils.data.Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([float(i), 1.0]), targets=torch.tensor([float(i)]))


def make_runner(work_dir, max_iters, **kwargs):
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=ToyDataset(), sampler=dict(type='InfiniteSampler'),
                              batch_size=2, num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        # the Runner makes its scope the current one for later tests: keep it mmmt's
        default_scope='mmmt',
        log_level=logging.WARNING,
        experiment_name=f'toy_{max_iters}',
        **kwargs)


@pytest.fixture(scope='module')
def runner_checkpoint(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('toy_run')
    make_runner(work_dir, max_iters=1).train()
    return work_dir, str(work_dir / 'iter_1.pth')


def test_public_loaders_read_a_runner_checkpoint_untrusted(runner_checkpoint, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    _, path = runner_checkpoint
    for ckpt in (load_checkpoint_file(path), CheckpointLoader.load_checkpoint(path)):
        logs = ckpt['message_hub']['log_scalars']
        assert isinstance(logs['train/loss'], HistoryBuffer)  # the object that needs getattr
        assert ckpt['meta']['iter'] == 1
        assert set(ckpt['state_dict']) == {'linear.weight', 'linear.bias'}
        assert 'state' in ckpt['optimizer']


def test_resume_from_a_runner_checkpoint_untrusted(runner_checkpoint, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    work_dir, path = runner_checkpoint
    first = torch.load(path, weights_only=False)['state_dict']
    runner = make_runner(work_dir / 'resumed', max_iters=2, load_from=path, resume=True)
    runner.train()
    assert runner.iter == 2
    # the second run continued from the saved weights and optimizer state (one more step)
    second = torch.load(work_dir / 'resumed' / 'iter_2.pth', weights_only=False)['state_dict']
    assert not torch.equal(first['linear.weight'], second['linear.weight'])
    delta = (second['linear.weight'] - first['linear.weight']).abs().max().item()
    assert delta <= 0.01 * 1.01  # a single AdamW step moves a weight by at most ~lr
