"""The boundary-evaluation benchmark script runs and reports a throughput."""
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_benchmark_script_small_run():
    script = osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark_edge_eval.py')
    out = subprocess.run(
        [sys.executable, script, '--num', '2', '--size', '48', '64', '--thresholds', '9'],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert 'images/s' in out.stdout and 'odsF' in out.stdout
