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


def test_random_labels_follow_each_tasks_definition():
    # a config's own task (a 3-channel albedo) gets 3-channel labels; it got a 1-channel
    # binary map, which its loss broadcast
    import types

    import torch

    from mmmt.structures import TASKS, register_task
    bench = load_tool('tools', 'analysis_tools', 'benchmark_balancers')
    try:
        register_task(name='albedo', gt_channels=3, loss=dict(type='NormalsL1Loss'))
        model = types.SimpleNamespace(
            tasks=['semseg', 'depth', 'normals', 'edge', 'albedo'],
            decode_head=types.SimpleNamespace(task_channels=dict(semseg=5)))
        sample = bench.random_samples(model, 1, 4, 6, torch.device('cpu'))[0]
        shapes = {t: tuple(sample.get(f'gt_{t}').data.shape) for t in model.tasks}
        assert shapes == dict(semseg=(1, 4, 6), depth=(1, 4, 6), normals=(3, 4, 6),
                              edge=(1, 4, 6), albedo=(3, 4, 6))
        semseg = sample.gt_semseg.data
        assert semseg.dtype == torch.int64 and 0 <= semseg.min() and semseg.max() < 5
        assert set(sample.gt_edge.data.unique().tolist()) <= {0.0, 1.0}
        torch.testing.assert_close(sample.gt_normals.data.norm(dim=0), torch.ones(4, 6))
    finally:
        TASKS.unregister('albedo')
