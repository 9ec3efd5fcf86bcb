import json

import cv2
import pytest

from tests.tool_loader import load_tool


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools', 'analysis_tools', 'analyze_logs')


def write_log(path, n=5):
    records = []
    for i in range(1, n + 1):
        records.append(dict(iter=10 * i, loss=1.0 / i, raw_depth=2.0 / i, time=0.5 + 0.1 * i))
        if i % 2 == 0:
            records.append({'semseg/mIoU': 5.0 * i, 'step': 10 * i})
    path.write_text('\n'.join(json.dumps(r) for r in records) + '\n')
    return str(path)


def test_plot_two_logs(tool, tmp_path, capsys):
    a, b = write_log(tmp_path / 'a.json'), write_log(tmp_path / 'b.json', n=3)
    out = tmp_path / 'curves.png'
    tool.main(['plot_curve', a, b, '--keys', 'loss', 'semseg/mIoU', '--legend', 'a', 'b',
               '--out', str(out)])
    picture = cv2.imread(str(out))
    assert picture.shape == (600, 800, 3)  # 2 panels of 8 x 3 inches at 100 dpi
    assert 'plotted to' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='exists'):
        tool.main(['plot_curve', a, '--out', str(out)])
    tool.main(['plot_curve', a, '--out', str(out), '--force'])


def test_series_uses_iter_for_training_and_step_for_validation(tool, tmp_path):
    records = tool.load_log(write_log(tmp_path / 'a.json'))
    loss = tool.series(records, 'loss', 'a.json')
    assert loss['x'].tolist() == [10, 20, 30, 40, 50]
    miou = tool.series(records, 'semseg/mIoU', 'a.json')
    assert miou['x'].tolist() == [20, 40] and miou['y'].tolist() == [10.0, 20.0]
    with pytest.raises(SystemExit, match="no 'nope'.*raw_depth"):
        tool.series(records, 'nope', 'a.json')


def test_train_time(tool, tmp_path, capsys):
    log = write_log(tmp_path / 'a.json')  # times 0.6 .. 1.0; the first is skipped
    tool.main(['cal_train_time', log])
    out = capsys.readouterr().out
    assert 'average 0.8500 s/iter' in out and 'over 4 logged intervals' in out
    assert 'slowest at iter 50: 1.0000 s' in out and 'fastest at iter 20: 0.7000 s' in out


def test_plot_keeps_what_exists_and_names_what_is_missing(tool, tmp_path, capsys):
    a = write_log(tmp_path / 'a.json')
    b = tmp_path / 'b.json'  # a run without validation: no semseg/mIoU
    b.write_text('\n'.join(json.dumps(dict(iter=10 * i, loss=1.0 / i)) for i in (1, 2)) + '\n')
    out = tmp_path / 'curves.png'
    tool.main(['plot_curve', a, str(b), '--keys', 'loss', 'semseg/mIoU', 'nope',
               '--out', str(out)])
    assert cv2.imread(str(out)).shape == (600, 800, 3)  # loss and mIoU; 'nope' is nowhere
    captured = capsys.readouterr()
    assert f"'semseg/mIoU' is not in {b}" in captured.err
    assert "'nope' is not in" in captured.err and 'it has: loss' in captured.err
    assert 'loss, semseg/mIoU of 2 log(s)' in captured.out
    with pytest.raises(SystemExit, match='none of nope'):
        tool.main(['plot_curve', str(b), '--keys', 'nope', '--out', str(tmp_path / 'x.png')])


def test_a_picture_that_appears_while_plotting_is_kept(tool, tmp_path, monkeypatch):
    log = write_log(tmp_path / 'a.json')
    out = tmp_path / 'curves.png'
    load_log = tool.load_log

    def meanwhile(path):  # after the start-up check: e.g. another plot to the same name
        out.write_bytes(b'the other picture')
        return load_log(path)

    monkeypatch.setattr(tool, 'load_log', meanwhile)
    with pytest.raises(SystemExit, match=f'{out} exists; pass --force'):
        tool.main(['plot_curve', log, '--keys', 'loss', '--out', str(out)])
    assert out.read_bytes() == b'the other picture'
    tool.main(['plot_curve', log, '--keys', 'loss', '--out', str(out), '--force'])
    assert cv2.imread(str(out)).shape == (300, 800, 3)
