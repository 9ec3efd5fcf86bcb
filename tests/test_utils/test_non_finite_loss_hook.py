import types

import pytest
import torch
from mmengine.structures import BaseDataElement

from mmmt.engine.hooks import NonFiniteLossHook


def batch(*paths):
    return dict(inputs=[], data_samples=[BaseDataElement(metainfo=dict(img_path=p))
                                         for p in paths])


def runner_with(data_list):
    dataset = types.SimpleNamespace(dataset=types.SimpleNamespace(data_list=data_list))
    return types.SimpleNamespace(iter=6, train_dataloader=types.SimpleNamespace(dataset=dataset))


def test_finite_losses_pass():
    NonFiniteLossHook().after_train_iter(
        runner_with([]), 0, batch('a.png'), dict(loss=torch.tensor(1.0), raw_depth=0.5))


def test_non_finite_loss_names_iteration_task_and_files():
    runner = runner_with([
        dict(img_path='img/a.png', ann_info=dict(depth=dict(path='depth/a.npy'))),
        dict(img_path='img/b.png', ann_info=dict(depth=dict(path='depth/b.npy'))),
        dict(img_path='img/c.png', ann_info=dict(depth=dict(path='depth/c.npy')))])
    outputs = dict(loss=torch.tensor(float('nan')), loss_semseg=torch.tensor(2.0),
                   loss_depth=torch.tensor(float('nan')), raw_depth=torch.tensor(float('inf')))
    with pytest.raises(FloatingPointError) as info:
        NonFiniteLossHook().after_train_iter(runner, 6, batch('img/a.png', 'img/b.png'), outputs)
    message = str(info.value)
    assert message.startswith('Non-finite loss at iteration 7 (loss=nan, loss_depth=nan, '
                              'raw_depth=inf); task(s): depth; images of the batch: '
                              'img/a.png, img/b.png; their annotations of those tasks: '
                              'depth/a.npy, depth/b.npy.')
    assert 'loss_semseg' not in message


def test_runs_before_the_checkpoint_hook():
    from mmengine.hooks import CheckpointHook
    from mmengine.runner.priority import get_priority
    assert get_priority(NonFiniteLossHook.priority) < get_priority(CheckpointHook.priority)


def test_the_batch_of_the_rank_whose_loss_is_not_finite_is_named():
    """In DDP the segmentor logs the mean over the ranks: one rank's NaN is every rank's logged
    NaN. The healthy rank, whose own values (``rank_log_vars``) are finite, stops too but
    does not name its own images as the culprits."""
    runner = runner_with([])
    runner.model = types.SimpleNamespace(rank_log_vars=dict(loss=torch.tensor(1.0),
                                                            loss_depth=torch.tensor(0.5)))
    logged = dict(loss=torch.tensor(float('nan')), loss_depth=torch.tensor(float('nan')))
    with pytest.raises(FloatingPointError, match='^Non-finite loss on another rank at '
                       r'iteration 7; training stopped \(that rank names the files\)$'):
        NonFiniteLossHook().after_train_iter(runner, 6, batch('img/a.png'), logged)
    # the rank whose own loss is not finite names its batch
    runner.model.rank_log_vars['loss_depth'] = torch.tensor(float('inf'))
    with pytest.raises(FloatingPointError, match=r'\(loss_depth=inf\); task\(s\): depth; '
                       'images of the batch: img/a.png'):
        NonFiniteLossHook().after_train_iter(runner, 6, batch('img/a.png'), logged)


def test_a_non_finite_python_float_is_caught():
    # log_vars may hold plain floats (raw_depth) next to tensors
    with pytest.raises(FloatingPointError, match=r'^Non-finite loss at iteration 7 '
                       r'\(raw_depth=nan\); task\(s\): depth; images of the batch: a\.png\.'):
        NonFiniteLossHook().after_train_iter(
            runner_with([]), 6, batch('a.png'), dict(loss=torch.tensor(1.0),
                                                     raw_depth=float('nan')))


def test_annotations_are_found_through_nested_dataset_wrappers():
    # e.g. a RepeatDataset of a ClassBalancedDataset of the dataset
    runner = runner_with([dict(img_path='img/a.png', ann_info=dict(depth=dict(path='d/a.npy')))])
    runner.train_dataloader.dataset = types.SimpleNamespace(dataset=runner.train_dataloader.dataset)
    with pytest.raises(FloatingPointError, match='their annotations of those tasks: d/a.npy.'):
        NonFiniteLossHook().after_train_iter(
            runner, 6, batch('img/a.png'), dict(loss_depth=torch.tensor(float('inf'))))
