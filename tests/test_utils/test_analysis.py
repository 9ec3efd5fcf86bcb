"""Scan-backend names of the benchmark tools (mmmt.utils.analysis)."""
import os

import pytest

from mmmt.utils.analysis import (forced_scan_backend, scan_backend_env, scan_backend_names,
                                 select_scan_backends)


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
