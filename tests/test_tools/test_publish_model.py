import hashlib
import os
import os.path as osp

import pytest
import torch
from mmengine.logging import HistoryBuffer

from tests.tool_loader import load_tool


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools', 'model_converters', 'publish_model')


def training_checkpoint(path):
    weights = {'decode_head.w': torch.randn(8, 4), 'backbone.b': torch.arange(3.),
               'backbone.relative_position_index': torch.arange(5)}  # an integer buffer
    torch.save(dict(
        state_dict=weights,
        meta=dict(iter=50000, dataset_meta=dict(classes=['wall', 'floor'])),
        optimizer=dict(state={0: dict(exp_avg=torch.randn(8, 4))}, param_groups=[]),
        message_hub=dict(log_scalars={'train/loss': HistoryBuffer([1.0, 0.5], [1, 1])}),
        param_schedulers=[dict(last_step=50000)]), path)
    return weights


def test_release_holds_weights_and_meta_under_its_hash(tool, tmp_path, capsys):
    src = str(tmp_path / 'iter_50000.pth')
    weights = training_checkpoint(src)
    final = tool.main([src, str(tmp_path / 'model.pth')])
    with open(final, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert final == str(tmp_path / f'model-{digest[:8]}.pth')
    release = torch.load(final, weights_only=True)
    assert sorted(release) == ['meta', 'state_dict']
    assert release['meta']['iter'] == 50000
    for k, v in weights.items():
        assert torch.equal(release['state_dict'][k], v)
    out = capsys.readouterr().out
    assert 'dropped: message_hub, optimizer, param_schedulers' in out
    assert ': 35 weights, ' in out  # 8 x 4 + 3; the integer buffer is not a weight
    assert sorted(os.listdir(tmp_path)) == sorted(['iter_50000.pth', osp.basename(final)])
    # the same release again: refused, the existing file untouched
    with pytest.raises(SystemExit, match='exists'):
        tool.main([src, str(tmp_path / 'model.pth')])
    assert tool.main([src, str(tmp_path / 'model.pth'), '--force']) == final


def test_rejects_files_without_a_state_dict(tool, tmp_path):
    src = str(tmp_path / 'raw.pth')
    torch.save({'w': torch.ones(1)}, src)
    with pytest.raises(SystemExit, match='raw.pth'):
        tool.main([src, str(tmp_path / 'out.pth')])


@pytest.mark.parametrize('force', [False, True], ids=['plain', 'force'])
def test_files_beside_the_release_are_never_touched(tool, tmp_path, force, monkeypatch):
    """The release is first written under a hidden unique name: a user's file named like the
    old fixed temporary (<stem>.unhashed.pth) was replaced, then deleted, with --force."""
    import mmmt.utils.fileio as fileio
    synced = []
    sync = fileio.fsync_directory
    monkeypatch.setattr(fileio, 'fsync_directory',
                        lambda d: (synced.append((d, sorted(os.listdir(d)))), sync(d)))
    src = str(tmp_path / 'iter_50000.pth')
    training_checkpoint(src)
    mine = tmp_path / 'model.unhashed.pth'
    mine.write_bytes(b'my own file')
    final = tool.main([src, str(tmp_path / 'model.pth')] + (['--force'] if force else []))
    # the folder is synced after the release's rename (its final state), also with --force
    assert synced[-1] == (str(tmp_path), sorted(os.listdir(tmp_path)))
    assert mine.read_bytes() == b'my own file'
    assert sorted(os.listdir(tmp_path)) == sorted(
        ['iter_50000.pth', 'model.unhashed.pth', osp.basename(final)])


def test_a_killed_runs_temporary_is_removed_and_named(tool, tmp_path, capsys):
    # SIGKILL while writing left .model.unhashed.pth.<8>.tmp (a release's size) for good
    from mmmt.utils.fileio import _create_temporary
    src = str(tmp_path / 'iter_50000.pth')
    training_checkpoint(src)
    fd, left = _create_temporary(str(tmp_path), 'model.unhashed.pth')
    os.write(fd, b'half a release')
    os.close(fd)  # as a killed process leaves it: no lock held
    (tmp_path / '.notes.tmp').write_text('mine')  # not a temporary of mmmt's
    final = tool.main([src, str(tmp_path / 'model.pth')])
    assert (f'Removed 1 temporary file(s) left by an interrupted write: {left} (0.0 MiB)'
            in capsys.readouterr().out)
    assert sorted(os.listdir(tmp_path)) == sorted(['.notes.tmp', 'iter_50000.pth',
                                                   osp.basename(final)])
