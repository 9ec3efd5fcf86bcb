import pytest
import torch

from ..test_tools.conftest import write_tiny_config


@pytest.fixture(scope='session')
def tiny_config(tmp_path_factory):
    """The demo config with a tiny Swin/decoder (no data needed for inference)."""
    root = tmp_path_factory.mktemp('tiny_cfg')
    return write_tiny_config(root / 'cfg.py', str(root / 'no_data'))


@pytest.fixture(scope='session')
def tiny_checkpoint(tiny_config, tmp_path_factory):
    """A checkpoint of the tiny model (random weights, fixed seed), as mmengine saves it."""
    from mmengine import DefaultScope
    from mmengine.config import Config

    from mmmt.registry import MODELS
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmmt'):
        model = MODELS.build(Config.fromfile(tiny_config).model)
    path = tmp_path_factory.mktemp('tiny_ckpt') / 'tiny.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=[f'c{i}' for i in range(40)]))), path)
    return str(path)


@pytest.fixture(scope='session')
def inferencer(tiny_config, tiny_checkpoint):
    from mmmt.apis import MultiTaskInferencer
    return MultiTaskInferencer(tiny_config, tiny_checkpoint, device='cpu', show_progress=False)
