"""The boundary-evaluation benchmark script runs, reports a throughput and compares protocols."""
import os.path as osp
import runpy
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark_edge_eval.py')


def _run(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, 'argv', [SCRIPT, '--num', '2', '--size', '48', '64', *args])
    runpy.run_path(SCRIPT, run_name='__main__')
    return capsys.readouterr().out


def test_benchmark_script_small_run(monkeypatch, capsys):
    out = _run(monkeypatch, capsys, '--thresholds', '9')
    assert 'images/s' in out and 'odsF' in out
    assert '[seism] per image' in out and '9 thresholds, nms seism' in out


def test_benchmark_script_compares_the_settings(monkeypatch, capsys):
    out = _run(monkeypatch, capsys, '--compare')
    for name in ('[seism]', '[seism, no NMS]', '[seism, 99 thresholds]', '[seism-2016-01]'):
        assert f'{name} odsF' in out
    assert '101 thresholds, nms seism, gt seg2bmap_thin' in out
    assert '99 thresholds, nms False, gt thin' in out
