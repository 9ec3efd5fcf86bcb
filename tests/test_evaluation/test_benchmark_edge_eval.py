"""The boundary-evaluation benchmark script runs and reports a throughput."""
import os.path as osp
import runpy
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_benchmark_script_small_run(monkeypatch, capsys):
    script = osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark_edge_eval.py')
    monkeypatch.setattr(sys, 'argv',
                        [script, '--num', '2', '--size', '48', '64', '--thresholds', '9'])
    runpy.run_path(script, run_name='__main__')
    out = capsys.readouterr().out
    assert 'images/s' in out and 'odsF' in out
