"""tools/analysis_tools/eval_metric.py: saved predictions evaluated offline give the run's
metrics, and bad prediction files are refused in one line."""
import json
import pickle
import re

import numpy as np
import pytest

from ..tool_loader import load_tool
from .conftest import cli

TOOL = load_tool('tools', 'analysis_tools', 'eval_metric')


def run(tool, args, capsys):
    return cli(tool, args, capsys, prog='eval_metric.py')


def test_gives_the_metrics_of_the_run_that_wrote_them(tiny_predictions, tmp_path, capsys):
    cfg, preds, expected = tiny_predictions
    assert {'semseg/mIoU', 'depth/rmse', 'normals/mean', 'edge/odsF'} <= set(expected)
    out = tmp_path / 'metrics.json'
    status, stdout, _ = run(TOOL, [cfg, str(preds), '--out', str(out)], capsys)
    assert status == 0
    with open(out) as f:
        (line, ) = f.read().splitlines()
    got = json.loads(line)
    assert set(expected) <= set(got)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    assert re.search(rf'^semseg/mIoU +{got["semseg/mIoU"]:.4f}$', stdout, re.M), stdout
    # --out is never replaced unless asked
    status, _, err = run(TOOL, [cfg, str(preds), '--out', str(out)], capsys)
    assert status == 2 and f'--out {out} exists' in err
    assert json.loads(out.read_text()) == got


def test_predictions_change_the_metrics(tiny_predictions, tmp_path, capsys):
    """The tool evaluates what the file holds (not, say, a fresh model run): zeroed depth
    predictions change depth's metrics and nothing else."""
    cfg, preds, expected = tiny_predictions
    with open(preds, 'rb') as f:
        records = pickle.load(f)  # our own file
    for record in records:
        record['pred']['depth'][:] = 0
    edited = tmp_path / 'edited.pkl'
    edited.write_bytes(pickle.dumps(records))
    out = tmp_path / 'm.json'
    # with the documented example option (another boundary protocol), in a config whose
    # evaluator has per-task options as the shipped NYUD configs
    child = tmp_path / 'child.py'
    child.write_text(f'_base_ = [{cfg!r}]\n'
                     'test_evaluator = dict(_delete_=True, type="MultiTaskMetric", '
                     'delta_m_baselines=None, '
                     'tasks=dict(semseg=None, depth=None, normals=None, edge=dict('
                     'max_dist=0.011, protocol="seism")))\n')
    assert run(TOOL, [child, str(edited), '--out', str(out), '--cfg-options',
                      'test_evaluator.tasks.edge.protocol=seism-2016-01'], capsys)[0] == 0
    got = json.loads(out.read_text())
    assert got['semseg/mIoU'] == pytest.approx(expected['semseg/mIoU'], rel=1e-6)
    assert got['depth/rmse'] != pytest.approx(expected['depth/rmse'], rel=1e-3)
    assert got['depth/delta1'] == 0
    assert got['normals/mean'] == pytest.approx(expected['normals/mean'], rel=1e-6)


def test_a_crafted_pickle_is_refused_without_running(tiny_predictions, tmp_path, capsys):
    cfg, _, _ = tiny_predictions
    marker = tmp_path / 'ran'

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), 'w'))

    crafted = tmp_path / 'crafted.pkl'
    crafted.write_bytes(pickle.dumps([{'img_id': 'x', 'pred': {'semseg': Payload()}}]))
    status, _, err = run(TOOL, [cfg, str(crafted)], capsys)
    assert status == 2
    assert f'{crafted} names io.open' in err or f'{crafted} names builtins.open' in err
    assert 'refused without running it' in err
    assert not marker.exists()


def _evaluate_edited(tiny_predictions, tmp_path, capsys, edit):
    """Run the tool on the run's predictions edited by ``edit``: (status, stderr, the edited
    file, the original records)."""
    cfg, preds, _ = tiny_predictions
    with open(preds, 'rb') as f:
        records = pickle.load(f)
    bad = tmp_path / 'bad.pkl'
    bad.write_bytes(pickle.dumps(edit(pickle.loads(pickle.dumps(records)))))
    status, _, err = run(TOOL, [cfg, str(bad)], capsys)
    return status, err, bad, records


@pytest.mark.parametrize('edit,message', [
    (lambda r: r[:-1], 'has no prediction of 1 of the 2 test images'),
    (lambda r: r + [dict(r[0], img_id='elsewhere')], 'not in the test split (elsewhere)'),
    (lambda r: r + [r[0]], 'two predictions of img_id'),
    (lambda r: {'pred': r}, 'expected a list of dicts'),
], ids=['missing', 'extra', 'duplicate', 'layout'])
def test_predictions_that_do_not_fit_the_split(tiny_predictions, tmp_path, capsys, edit,
                                               message):
    status, err, _, _ = _evaluate_edited(tiny_predictions, tmp_path, capsys, edit)
    assert status == 2 and message in err, err


def _crop_depth(r):
    r[0]['pred']['depth'] = r[0]['pred']['depth'][:-2]
    return r


def _drop_edge(r):
    del r[0]['pred']['edge']
    return r


def _flat_semseg(r):
    r[0]['pred']['semseg'] = r[0]['pred']['semseg'].ravel()
    return r


def _two_channel_normals(r):
    r[0]['pred']['normals'] = r[0]['pred']['normals'][..., :2]
    return r


@pytest.mark.parametrize('edit,message', [
    (_crop_depth, 'depth: prediction'),
    (_drop_edge, 'has gt_edge but no pred_edge'),
    (_flat_semseg, 'semseg: a prediction array is (H, W) or (H, W, C)'),
    (_two_channel_normals, 'normals'),
], ids=['size', 'missing-task', '1-d', 'channels'])
def test_predictions_that_do_not_fit_an_image_are_one_line(
        tiny_predictions, tmp_path, capsys, edit, message):
    # each was a traceback (exit 1) from inside the metric
    status, err, bad, records = _evaluate_edited(tiny_predictions, tmp_path, capsys, edit)
    assert status == 2, err
    assert f"{bad}: image {records[0]['img_id']!r}" in err and message in err, err
    assert 'Traceback' not in err


def test_not_a_pickle(tmp_path, tiny_training, capsys):
    bad = tmp_path / 'preds.pkl'
    bad.write_bytes(b'\x80\x05not really')
    status, _, err = run(TOOL, [tiny_training.config, str(bad)], capsys)
    assert status == 2 and f'{bad} is not a readable pickle' in err
    status, _, err = run(TOOL, [tiny_training.config, str(tmp_path / 'none.pkl')], capsys)
    assert status == 2 and 'predictions file not found' in err


def test_a_relative_out_of_test_py_is_named_under_the_work_dir(
        tiny_predictions, tmp_path, monkeypatch, capsys):
    """``tools/test.py CONFIG CKPT --out preds.pkl`` writes ``work_dirs/<config>/preds.pkl``;
    ``eval_metric.py CONFIG preds.pkl`` in the same folder then names that file."""
    import os.path as osp
    import shutil
    cfg, preds, _ = tiny_predictions
    monkeypatch.chdir(tmp_path)
    status, _, err = run(TOOL, [cfg, 'preds.pkl'], capsys)
    stem = osp.splitext(osp.basename(cfg))[0]
    expected = osp.join('work_dirs', stem, 'preds.pkl')
    assert status == 2 and 'predictions file not found: preds.pkl' in err, err
    assert f'under its work dir: {expected} for this config' in err, err
    (tmp_path / 'work_dirs' / stem).mkdir(parents=True)
    shutil.copy(preds, expected)
    status, _, err = run(TOOL, [cfg, 'preds.pkl'], capsys)
    assert status == 2 and f'did you mean {expected}?' in err, err
    assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
    status, stdout, _ = run(TOOL, [cfg, expected], capsys)
    assert status == 0 and 'semseg/mIoU' in stdout


def test_load_predictions_reads_every_protocol_and_array_kind(tmp_path):
    import torch

    from mmmt.evaluation import load_predictions
    from mmmt.structures import array_to_pred, pred_to_array
    records = [{'img_id': 'a', 'img_path': 'x/a.png', 'ori_shape': (2, 3), 'flip': False,
                'pred': {'semseg': np.arange(6, dtype=np.uint8).reshape(2, 3),
                         'normals': np.random.rand(3, 2, 3).astype(np.float32).transpose(1, 2, 0),
                         'score': np.float32(0.5) * np.ones((2, 3), np.float32)}}]
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f'p{protocol}.pkl'
        path.write_bytes(pickle.dumps(records, protocol=protocol))
        (got, ) = load_predictions(str(path))
        assert got.keys() == records[0].keys() and got['ori_shape'] == (2, 3)
        for task, arr in records[0]['pred'].items():
            np.testing.assert_array_equal(got['pred'][task], arr)
            assert got['pred'][task].dtype == arr.dtype
    # array_to_pred is pred_to_array's inverse
    semseg = torch.tensor([[[0, 4, 2]]])
    normals = torch.randn(3, 1, 3)
    assert torch.equal(array_to_pred(pred_to_array(semseg)), semseg)
    assert torch.equal(array_to_pred(pred_to_array(normals)), normals)
    with pytest.raises(ValueError, match=r'\(H, W\) or \(H, W, C\)'):
        array_to_pred(np.zeros(3))
