"""Every tool that loads a checkpoint refuses the crafted getattr payloads and never runs a
config string stored in a checkpoint unless checkpoints are trusted."""
import os.path as osp
import sys

import pytest
import torch

from mmmt.utils import TRUST_ENV, UntrustedCheckpointError
from tests.checkpoint_payloads import PAYLOADS, write_payload
from tests.tool_loader import load_tool
from .conftest import write_tiny_config

NO_VAL = 'val_cfg = None\nval_dataloader = None\nval_evaluator = None\n'


@pytest.fixture(params=PAYLOADS)
def payload(request, tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    marker = tmp_path / f'marker_{request.param}'
    path = write_payload(request.param, tmp_path / 'payload.pth', marker)
    yield path
    assert not marker.exists(), 'the payload ran'


@pytest.fixture
def cfg(tmp_path, synthetic_nyud):
    return write_tiny_config(tmp_path / 'cfg.py', synthetic_nyud, max_iters=1, val_interval=1,
                             extra=NO_VAL)


def refused(call):
    with pytest.raises((SystemExit, UntrustedCheckpointError)) as info:
        call()
    assert 'refused getattr' in str(info.value), str(info.value)


def test_test_py(payload, cfg, tmp_path):
    refused(lambda: load_tool('tools', 'test').main([cfg, payload, '--work-dir',
                                                     str(tmp_path / 'w')]))


@pytest.mark.parametrize('how', ['resume', 'load_from', 'pretrained'])
def test_train_py(payload, cfg, tmp_path, how):
    options = dict(resume=['--resume', payload],
                   load_from=['--cfg-options', f'load_from={payload}'],
                   pretrained=['--cfg-options', 'model.backbone.init_cfg.type=Pretrained',
                               f'model.backbone.init_cfg.checkpoint={payload}'])[how]
    refused(lambda: load_tool('tools', 'train').main([cfg, '--work-dir', str(tmp_path / 'w'),
                                                      *options]))
    assert not osp.exists(tmp_path / 'w' / 'iter_1.pth')


def test_image_demo(payload, cfg, tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image
    image = tmp_path / 'room.png'  # a real input: the checkpoint is what is refused
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    monkeypatch.setattr(sys, 'argv', ['image_demo.py', str(image), cfg, payload, '--out-dir',
                                      str(tmp_path / 'out'), '--device', 'cpu'])
    refused(load_tool('demo', 'image_demo').main)


def test_inferencer(payload, cfg):
    from mmmt.apis import MultiTaskInferencer
    refused(lambda: MultiTaskInferencer(cfg, payload, device='cpu'))


@pytest.mark.parametrize('tool', ['publish_model', 'mtmamba2mmmt', 'swin2mmpretrain'])
def test_converters(payload, tmp_path, tool):
    refused(lambda: load_tool('tools', 'model_converters', tool).main(
        [payload, str(tmp_path / 'out.pth')]))
    assert not osp.exists(tmp_path / 'out.pth')


# ------------------------------------------------------------ config strings in checkpoints
def genuine_checkpoint(config_file, path, extra=None, **meta):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmmt.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmmt'):
        model = MODELS.build(Config.fromfile(config_file).model)
    torch.save(dict(state_dict=model.state_dict(), meta=meta, **(extra or {})), path)
    return str(path)


def test_inferencer_never_runs_the_stored_config_untrusted(cfg, tmp_path, monkeypatch):
    from mmmt.apis import MultiTaskInferencer
    monkeypatch.delenv(TRUST_ENV, raising=False)
    marker = tmp_path / 'marker'
    code = f'open({str(marker)!r}, "w").close()\n'
    ckpt = genuine_checkpoint(cfg, tmp_path / 'c.pth', cfg=code, extra=dict(
        message_hub=dict(runtime_info=dict(cfg=code))))
    with pytest.raises(UntrustedCheckpointError, match='Python code'):
        MultiTaskInferencer(None, ckpt, device='cpu')
    assert not marker.exists()
    # with the model's config given, the same file is fine
    assert MultiTaskInferencer(cfg, ckpt, device='cpu', show_progress=False).tasks


def test_resume_never_runs_meta_config_untrusted(cfg, tmp_path, monkeypatch, capsys):
    from mmengine.logging import MessageHub
    monkeypatch.delenv(TRUST_ENV, raising=False)
    marker = tmp_path / 'marker'
    hub = MessageHub.get_instance('mmmt_test_resume_hub').state_dict()
    ckpt = genuine_checkpoint(cfg, tmp_path / 'iter_1.pth', extra=dict(message_hub=hub),
                              epoch=0, iter=1, config=f'open({str(marker)!r}, "w").close()\n')
    # iter 1 of max_iters 2: resumes, then trains one iteration
    load_tool('tools', 'train').main([cfg, '--work-dir', str(tmp_path / 'w'), '--resume', ckpt,
                                      '--cfg-options', 'train_cfg.max_iters=2'])
    assert not marker.exists()
    log = capsys.readouterr().out
    assert 'meta.config (Python code) is not executed' in log
    assert 'holds no optimizer state' in log  # and the optimizer starts fresh
