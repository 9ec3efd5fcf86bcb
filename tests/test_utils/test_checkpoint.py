import collections

import numpy as np
import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader

from mmmt.utils import TRUST_ENV, UntrustedCheckpointError, load_checkpoint_file


class NotAllowed:
    pass


def test_mmengine_routes_local_and_http_files_through_the_safe_loaders():
    # mmengine logs the loader's name after 'load_from_' as the backend
    assert CheckpointLoader._get_checkpoint_loader('work/iter_1.pth').__name__ == \
        'load_from_local_safe'
    assert CheckpointLoader._get_checkpoint_loader('https://x/y.pth').__name__ == \
        'load_from_http_safe'


def test_allow_listed_content_loads_and_anything_else_needs_trust(tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    ok = tmp_path / 'ok.pth'
    torch.save(dict(state_dict=collections.OrderedDict(w=torch.ones(2)),
                    meta=dict(seed=np.int64(3), hist=np.zeros(2))), ok)
    loaded = CheckpointLoader.load_checkpoint(str(ok))
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))
    assert loaded['meta']['seed'] == 3
    bad = tmp_path / 'bad.pth'
    torch.save(dict(state_dict={}, obj=NotAllowed()), bad)
    with pytest.raises(UntrustedCheckpointError, match='bad.pth'):
        load_checkpoint_file(str(bad))
    monkeypatch.setenv(TRUST_ENV, '1')
    assert isinstance(load_checkpoint_file(str(bad))['obj'], NotAllowed)


def small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))


def test_weights_that_fit_are_loaded_strictly():
    from mmmt.utils import load_model_weights
    source, target = small_model(), torch.nn.Sequential(torch.nn.Linear(3, 4),
                                                        torch.nn.LayerNorm(4))
    ddp_names = {f'module.{k}': v for k, v in source.state_dict().items()}  # saved from DDP
    meta = load_model_weights(target, dict(state_dict=ddp_names, meta=dict(iter=3)), 'a.pth')
    assert meta == dict(iter=3)
    assert torch.equal(target[0].weight, source[0].weight)


def test_mismatches_are_named():
    from mmmt.utils import CheckpointMismatchError, check_model_weights
    model = small_model()
    state = dict(model.state_dict())
    state.pop('1.bias')
    state['2.weight'] = torch.zeros(1)
    state['0.weight'] = torch.zeros(5, 3)
    with pytest.raises(CheckpointMismatchError) as info:
        check_model_weights(model, dict(state_dict=state), 'b.pth')
    message = str(info.value)
    assert message.startswith('b.pth does not fit the model of this config')
    assert '1 weights of the model are not in it (1.bias)' in message
    assert '1 of its weights are not in the model (2.weight)' in message
    assert '0.weight (5, 3) vs (4, 3)' in message
    # only shapes differ: probably another dataset's heads
    shapes_only = dict(model.state_dict(), **{'0.weight': torch.zeros(5, 3)})
    with pytest.raises(CheckpointMismatchError, match='another dataset'):
        check_model_weights(model, shapes_only, 'c.pth')


def test_reference_checkpoints_point_to_the_converter():
    from mmmt.utils import CheckpointMismatchError, check_model_weights
    reference = {'model': {'module.decoder.expand_layers.semseg_0.expand.weight': torch.zeros(1)}}
    with pytest.raises(CheckpointMismatchError, match='mtmamba2mmmt.py'):
        check_model_weights(small_model(), reference, 'checkpoint.pth.tar')
