"""The boundary-evaluation benchmark script runs, reports a throughput and compares protocols."""
import os.path as osp
import re
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


def test_benchmark_script_splits_the_time_into_stages(monkeypatch, capsys):
    from mmmt.evaluation.functional import boundary
    before = (boundary.seism_nms, boundary.edge_nms, boundary.thin_binary,
              boundary.BoundaryMatcher.match)
    out = _run(monkeypatch, capsys, '--stages', '--thresholds', '9')
    stages = re.search(r'\[seism\] stages, CPU per image over 2 image\(s\) in this process: '
                       r'suppression (\d+) ms \(\d+ %\), thinning (\d+) ms \(\d+ %\), '
                       r'matching (\d+) ms \(\d+ %\), the rest (-?\d+) ms, in all (\d+) ms', out)
    assert stages, out
    *parts, whole = map(int, stages.groups())
    assert abs(sum(parts) - whole) <= 2  # each printed part rounds to whole ms
    assert parts[1] > 0 and parts[2] > 0  # every image is thinned and matched
    # the shipped thinning is the reference algorithm's output, pixel for pixel
    assert re.search(r'\[seism\] thinning of the same maps: mmmt [\d.]+ s CPU, '
                     r'skimage\.morphology\.thin [\d.]+ s CPU \([\d.]+x\); identical output',
                     out), out
    # the evaluation's own functions are back in place afterwards
    assert before == (boundary.seism_nms, boundary.edge_nms, boundary.thin_binary,
                      boundary.BoundaryMatcher.match)
