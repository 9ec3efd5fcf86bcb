import json
import re

import pytest

from tests.tool_loader import load_tool


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools', 'analysis_tools', 'compare_with_paper')


def better_rows(out):
    """The metrics the table marks better than published (the footer also says 'better')."""
    return [line.split()[0] for line in out.splitlines() if line.endswith(' better')]


def write_run(work_dir, stamp, metrics):
    folder = work_dir / stamp
    folder.mkdir(parents=True)
    (folder / f'{stamp}.json').write_text(json.dumps(metrics) + '\n')


def test_newest_test_run_against_the_paper(tool, tmp_path, capsys):
    work_dir = tmp_path / 'work_dirs' / 'mtmamba_swin-l_nyud'
    write_run(work_dir, '20260101_000000', {'semseg/mIoU': 1.0})  # an older run
    ours = {'semseg/mIoU': 56.82, 'depth/rmse': 0.5066, 'normals/mean': 18.63,
            'edge/odsF': 78.7, 'multi_task/delta_m': 3.0, 'depth/abs_rel': 0.1}
    write_run(work_dir, '20260102_000000', ours)
    # training logs next to it are not test results
    (work_dir / '20260102_000000' / 'vis_data').mkdir()
    (work_dir / '20260102_000000' / 'vis_data' / 'scalars.json').write_text('{"loss": 1}\n')

    relative = tool.main([str(work_dir)])
    # only semseg differs: +1 mIoU point over 55.82, averaged over the 4 tasks
    assert relative == pytest.approx(100 * (1 / 55.82) / 4)
    out = capsys.readouterr().out
    assert '20260102_000000.json' in out
    assert 'semseg/mIoU' in out and '55.82' in out and '56.82' in out
    assert better_rows(out) == ['semseg/mIoU', 'multi_task/delta_m']
    assert 'depth/abs_rel' not in out  # the paper does not report it


def test_exact_reproduction_is_not_called_better(tool, tmp_path, capsys):
    """The paper's own numbers give delta_m +2.3819, which it prints truncated as 2.38."""
    run = tmp_path / 'paper.json'
    run.write_text(json.dumps({'semseg/mIoU': 55.82, 'depth/rmse': 0.5066, 'normals/mean': 18.63,
                               'edge/odsF': 78.7, 'multi_task/delta_m': 2.3819}) + '\n')
    assert tool.main([str(run), '--model', 'mtmamba_swin-l_nyud']) == pytest.approx(0)
    out = capsys.readouterr().out
    assert 'multi_task/delta_m' in out and '+0.0019' in out and better_rows(out) == []
    run.write_text(json.dumps({'semseg/mIoU': 55.82, 'multi_task/delta_m': 2.39}) + '\n')
    tool.main([str(run), '--model', 'mtmamba_swin-l_nyud'])
    assert better_rows(capsys.readouterr().out) == ['multi_task/delta_m']


def test_last_validation_of_a_training_log_and_explicit_model(tool, tmp_path, capsys):
    log = tmp_path / 'scalars.json'
    lines = [{'loss': 2.0, 'iter': 10},
             {'semseg/mIoU': 70.0, 'human_parts/mIoU': 60.0, 'sal/maxF': 80.0,
              'normals/mean': 15.0, 'edge/odsF': 70.0, 'step': 10},
             {'loss': 1.0, 'iter': 20},
             {'semseg/mIoU': 81.11, 'human_parts/mIoU': 72.62, 'sal/maxF': 84.14,
              'normals/mean': 14.14, 'edge/odsF': 78.8, 'step': 20}]
    log.write_text('\n'.join(json.dumps(x) for x in lines) + '\n')
    assert tool.main([str(log), '--model', 'mtmamba_swin-l_pascal']) == pytest.approx(0)
    assert 'human_parts/mIoU' in capsys.readouterr().out


def test_unknown_model_and_missing_results(tool, tmp_path):
    write_run(tmp_path / 'my_run', '20260101_000000', {'semseg/mIoU': 1.0})
    with pytest.raises(SystemExit, match='pass --model'):
        tool.main([str(tmp_path / 'my_run')])
    with pytest.raises(SystemExit, match='no test metrics'):
        tool.main([str(tmp_path), '--model', 'mtmamba_swin-l_nyud'])


def test_a_metric_that_is_not_a_number_is_named(tool, tmp_path):
    run = tmp_path / 'results.json'
    for value, shown in ((None, 'None'), ('55.8', "'55.8'"), (True, 'True')):
        run.write_text(json.dumps({'semseg/mIoU': value, 'depth/rmse': 0.5}) + '\n')
        with pytest.raises(SystemExit, match=rf"results\.json: metric 'semseg/mIoU' is "
                           rf"{re.escape(shown)}, expected a number"):
            tool.main([str(run), '--model', 'mtmamba_swin-l_nyud'])


def test_unmapped_work_dir_is_named(tool, tmp_path):
    run = tmp_path / 'my_run'
    run.mkdir()
    with pytest.raises(SystemExit, match=r'no folder on the path .*my_run is named after a '
                       r'model.*pass --model, one of \[.*mtmamba_swin-l_nyud'):
        tool.main([str(run)])
    with pytest.raises(SystemExit, match="--model 'nope' is not in"):
        tool.main([str(run), '--model', 'nope'])


def test_fractions_of_one_are_refused_with_the_fix(tool, tmp_path):
    work_dir = tmp_path / 'mtmamba_swin-l_nyud'
    write_run(work_dir, '20260102_000000', {'semseg/mIoU': 0.5582, 'depth/rmse': 0.5066,
                                            'normals/mean': 18.63, 'edge/odsF': 0.787})
    with pytest.raises(SystemExit, match=r'20260102_000000\.json: semseg/mIoU 0\.5582 \(paper '
                       r'55\.82\), edge/odsF 0\.787 \(paper 78\.7\): these look like '
                       r'fractions of one.*multiply them by 100'):
        tool.main([str(work_dir)])


def test_one_failed_task_in_percent_is_compared(tool, tmp_path, capsys):
    """A semseg mIoU of 0.9% next to an odsF in percent is a bad model, not a unit slip."""
    work_dir = tmp_path / 'mtmamba_swin-l_nyud'
    write_run(work_dir, '20260102_000000', {'semseg/mIoU': 0.9, 'depth/rmse': 0.5066,
                                            'normals/mean': 18.63, 'edge/odsF': 78.7})
    relative = tool.main([str(work_dir)])
    assert relative == pytest.approx(100 * (0.9 - 55.82) / 55.82 / 4)
