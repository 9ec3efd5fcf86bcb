"""Smoke test of tools/analysis_tools/benchmark_balancers.py on the tiny demo model."""
import json
import os
import os.path as osp

from tests.tool_loader import REPO, load_tool


def test_benchmark_balancers_reports_ratios_to_the_plain_wrapper(capsys, tmp_path):
    bench = load_tool('tools', 'analysis_tools', 'benchmark_balancers')
    out = tmp_path / 'not_yet' / 'balancers.json'  # its folder is made
    res = bench.main([osp.join(REPO, 'configs', 'demo', 'mtmamba-tiny_synthetic-nyud.py'),
                      '--shape', '32', '64', '--rounds', '1', '--balancers', 'PCGrad', 'MGDAUB',
                      '--json', str(out)])
    assert json.loads(out.read_text()) == res
    assert os.listdir(out.parent) == ['balancers.json']
    assert list(res['ratio']) == ['OptimWrapper', 'PCGrad', 'MGDAUB']
    assert res['ratio']['OptimWrapper'] == 1.0
    assert all(s > 0 for s in res['step_s'].values())
    assert res['tasks'] == ['semseg', 'depth', 'normals', 'edge']
    assert 'x plain' in capsys.readouterr().out
