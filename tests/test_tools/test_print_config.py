"""tools/misc/print_config.py: the merged config it prints and saves is the one the tools use."""
import json
import os

import pytest
from mmengine.config import Config

from ..tool_loader import load_tool
from .conftest import DEMO_CONFIG, cli


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools', 'misc', 'print_config')


@pytest.mark.parametrize('ext', ['.py', '.json', '.yaml'])
def test_saved_config_reads_back_as_the_merged_one(tool, tmp_path, capsys, ext):
    path = tmp_path / f'merged{ext}'
    text = tool.main([DEMO_CONFIG, '--cfg-options', 'train_cfg.max_iters=7',
                      'model.decode_head.head_channels=8', '--data-root', str(tmp_path / 'd'),
                      '--save-path', str(path)])
    assert capsys.readouterr().out.startswith(text)
    expected = Config.fromfile(DEMO_CONFIG)
    expected.merge_from_dict({'train_cfg.max_iters': 7, 'model.decode_head.head_channels': 8})
    saved = Config.fromfile(str(path)).to_dict()
    expected = expected.to_dict()
    if ext == '.json':  # (JSON has lists, not tuples)
        expected = json.loads(json.dumps(expected))
    assert saved['train_cfg'] == expected['train_cfg']
    assert saved['model']['decode_head'] == expected['model']['decode_head']
    # --data-root reaches every dataset, as train.py's does
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert saved[loader]['dataset']['data_root'] == str(tmp_path / 'd'), loader
    assert saved['train_dataloader']['dataset']['pipeline'] == \
        expected['train_dataloader']['dataset']['pipeline']
    if ext == '.json':
        assert json.loads(path.read_text())['train_cfg']['max_iters'] == 7
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary file left


def test_an_existing_file_is_kept_unless_forced(tool, tmp_path, capsys):
    path = tmp_path / 'merged.py'
    path.write_text('# mine\n')
    status, _, err = cli(tool, [DEMO_CONFIG, '--save-path', path], capsys,
                         prog='print_config.py')
    assert status == 2 and err == (f'print_config.py: error: --save-path {path} exists; choose '
                                   'another name or pass --force to replace it\n')
    assert path.read_text() == '# mine\n'
    tool.main([DEMO_CONFIG, '--save-path', str(path), '--force'])
    assert Config.fromfile(str(path)).train_cfg.max_iters == Config.fromfile(
        DEMO_CONFIG).train_cfg.max_iters


@pytest.mark.parametrize('args, message', [
    (['missing.py'], 'config file not found: missing.py'),
    ([DEMO_CONFIG, '--save-path', 'merged.txt'], 'give a file ending in one of .py, .json'),
])
def test_bad_input_is_one_line(tool, capsys, args, message):
    status, out, err = cli(tool, args, capsys, prog='print_config.py')
    assert status == 2 and out == '' and len(err.splitlines()) == 1 and message in err
