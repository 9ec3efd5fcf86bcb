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
