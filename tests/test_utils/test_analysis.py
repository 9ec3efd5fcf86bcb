"""Scan-backend names of the benchmark tools (mmmt.utils.analysis)."""
import os
import os.path as osp

import pytest

from mmmt.utils.analysis import (forced_scan_backend, scan_backend_env, scan_backend_names,
                                 select_scan_backends)

DEMO_CONFIG = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
                       'demo', 'mtmamba-tiny_synthetic-nyud.py')


def test_backend_names_expand_triton_per_kernel_pair():
    assert scan_backend_names(['torch', 'cpp']) == ['torch', 'cpp']
    # the default pair first
    assert scan_backend_names(['torch', 'triton', 'cuda']) == [
        'torch', 'triton-runs', 'triton-statewise', 'triton-tile', 'cuda']


def test_backend_env():
    assert scan_backend_env('cpp') == {'MMMT_SCAN_BACKEND': 'cpp'}
    assert scan_backend_env('triton') == {'MMMT_SCAN_BACKEND': 'triton'}
    assert scan_backend_env('triton-tile') == {'MMMT_SCAN_BACKEND': 'triton',
                                               'MMMT_TRITON_SCAN_KERNEL': 'tile'}
    assert scan_backend_env('triton-statewise:256:512:2') == {
        'MMMT_SCAN_BACKEND': 'triton', 'MMMT_TRITON_SCAN_KERNEL': 'statewise:256:512:2'}
    for bad in ('triton-fast', 'cuda-tile', 'triton-tile:64:3:2', 'triton-tile:64'):
        with pytest.raises(ValueError, match=bad):
            scan_backend_env(bad)


def test_forced_backend_is_put_back(monkeypatch):
    monkeypatch.setenv('MMMT_SCAN_BACKEND', 'cpp')
    monkeypatch.delenv('MMMT_TRITON_SCAN_KERNEL', raising=False)
    with pytest.raises(RuntimeError):
        with forced_scan_backend('triton-tile'):
            assert os.environ['MMMT_SCAN_BACKEND'] == 'triton'
            assert os.environ['MMMT_TRITON_SCAN_KERNEL'] == 'tile'
            raise RuntimeError
    assert os.environ['MMMT_SCAN_BACKEND'] == 'cpp'
    assert 'MMMT_TRITON_SCAN_KERNEL' not in os.environ


def test_backend_selection():
    available = ['torch', 'triton-statewise', 'triton-tile']
    assert select_scan_backends(available, ['triton']) == ['triton-statewise', 'triton-tile']
    assert select_scan_backends(available, ['triton-tile', 'torch', 'cpp']) == [
        'triton-tile', 'torch']
    # other launch sizes, where Triton is available at all
    assert select_scan_backends(available, ['triton-statewise:128:256:1']) == [
        'triton-statewise:128:256:1']
    assert select_scan_backends(['torch', 'cpp'], ['triton-statewise:128:256:1']) == []
    with pytest.raises(ValueError, match='triton-statewise:128:256'):
        select_scan_backends(available, ['triton-statewise:128:256'])


def test_build_model_registers_the_tasks_of_the_config(tmp_path):
    # get_flops, benchmark and the converters build models through build_model: a task the
    # config defines (custom_tasks) must be known to them as to train.py
    from mmmt.structures import TASKS
    from mmmt.utils.analysis import build_model
    cfg_file = tmp_path / 'cfg.py'
    cfg_file.write_text(
        f"_base_ = [{DEMO_CONFIG!r}]\n"
        "custom_tasks = [dict(name='albedo', gt_channels=3, out_channels=3,\n"
        "                     loss=dict(type='NormalsL1Loss'), draw='normals')]\n"
        "model = dict(decode_head=dict(tasks=dict(albedo=3)))\n")
    try:
        model = build_model(str(cfg_file))
        assert model.decode_head.tasks == ['semseg', 'depth', 'normals', 'edge', 'albedo']
        assert model.decode_head.task_channels['albedo'] == 3
    finally:
        TASKS.unregister('albedo')
