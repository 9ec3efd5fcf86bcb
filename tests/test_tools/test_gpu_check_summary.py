"""The GPU check's summary against the Triton scan's targets, on result files written here in
the shapes gpu_check.sh's steps write them."""
import json

import pytest

from mmmt.utils import UserInputError
from tests.tool_loader import load_tool


def _write(path, obj):
    path.write_text(json.dumps(obj))


def _scan_row(impl, fwd_s, train_s, fwd_vs_roofline=None, shape='swin-l stage 3'):
    return dict(shape=shape, impl=impl, fwd_s=fwd_s, train_s=train_s,
                fwd_vs_roofline=fwd_vs_roofline)


def test_targets_from_the_result_files(tmp_path, capsys):
    tool = load_tool('tools', 'analysis_tools', 'gpu_check_summary')
    with pytest.raises(UserInputError, match='no results of gpu_check.sh'):  # nothing there yet
        tool.main([str(tmp_path)])
    _write(tmp_path / 'parity.json', dict(ok=True, rows=[
        dict(shape='swin-l stage 3', cuda='torch', gpu_fwd_bwd_s=4.0),
        dict(shape='swin-l stage 2', cuda='torch', gpu_fwd_bwd_s=1.0)]))
    # --quick left the PyTorch scan's forward+backward untimed: the parity step's time is used
    _write(tmp_path / 'benchmark_scan.json', dict(rows=[
        _scan_row('torch', 1.2, None), _scan_row('triton-runs', 4e-4, 0.05, 3.5),
        _scan_row('triton-tile', 1e-3, 0.2, 9.0),
        _scan_row('triton-runs', 1e-4, 0.01, 2.0, shape='swin-l stage 1')]))
    _write(tmp_path / 'benchmark_swin-l_nyud_triton_fp32.json',
           dict(train_scan_share=0.2, train_s=0.5, train_peak_mem=3e10))
    _write(tmp_path / 'triton_sweep.json', dict(rows=[
        _scan_row('triton-statewise:128:1024:4', 4e-4, 0.05),
        _scan_row('triton-statewise:128:256:1', 3e-4, 0.04),
        _scan_row('triton-runs:512:512:1:prefetch', 1.5e-4, 0.045, 2.4),
        _scan_row('triton-tile:16:2048:4', 9e-4, None)]))
    assert tool.main([str(tmp_path)]) == 0
    res = json.loads((tmp_path / 'summary.json').read_text())
    speed = res['stage3_fwd_bwd_speedup_vs_torch']
    assert speed['value'] == 4.0 / 0.05 and speed['ok'] is True
    assert 'parity.json' in speed['source']
    assert res['stage3_fwd_vs_roofline']['value'] == 3.5
    assert res['stage3_fwd_vs_roofline']['ok'] is False
    assert res['train_scan_share_fp32']['ok'] is True
    assert res['train_scan_share_bf16']['ok'] is None  # that step wrote nothing
    assert res['parity']['ok'] is True
    assert res['sweep_fastest']['value'] == 'triton-statewise:128:256:1'
    # the forward target is met by a size that is not the default: shown with its multiple
    fwd = res['sweep_fastest_forward']
    assert (fwd['value'], fwd['fwd_vs_roofline']) == ('triton-runs:512:512:1:prefetch', 2.4)
    table = (tmp_path / 'summary.md').read_text()
    assert ('| sweep_fastest_forward | triton-runs:512:512:1:prefetch: fwd 0.00015 s (2.4x '
            'the roofline), fwd+bwd 0.045 s |  |  | triton_sweep.json |') in table
    assert '| stage3_fwd_vs_roofline | 3.5 | 3 | NOT met |' in table
    assert '| train_scan_share_bf16 | missing | 0.25 | unknown |' in table
    # the timed fwd+bwd of the PyTorch scan, where there is one, comes first
    _write(tmp_path / 'benchmark_scan.json', dict(rows=[
        _scan_row('torch', 1.2, 2.0), _scan_row('triton-runs', 4e-4, 0.05, 2.5)]))
    res = tool.summarise(str(tmp_path))
    assert res['stage3_fwd_bwd_speedup_vs_torch']['value'] == 2.0 / 0.05
    assert res['stage3_fwd_vs_roofline']['ok'] is True
