import argparse
import os
import os.path as osp

import pytest

from mmmt.utils import TRUST_ENV, add_runner_args, load_runner_config, parse_runner_args

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(REPO, 'configs', 'demo', 'mtmamba-tiny_synthetic-nyud.py')


def make_parser():
    parser = argparse.ArgumentParser()
    parser.add_argument('config')
    add_runner_args(parser, trust_help='trust')
    return parser


def test_defaults_follow_mmseg_tools(monkeypatch):
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    args = parse_runner_args(make_parser(), [DEMO_CONFIG, '--local-rank', '3'])
    assert os.environ['LOCAL_RANK'] == '3'  # torch.distributed.launch passes only the flag
    cfg = load_runner_config(args)
    assert cfg.work_dir == osp.join('./work_dirs', 'mtmamba-tiny_synthetic-nyud')
    assert cfg.launcher == 'none'
    assert TRUST_ENV not in os.environ


def test_options_are_folded_in(monkeypatch, tmp_path):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    args = parse_runner_args(make_parser(), [
        DEMO_CONFIG, '--work-dir', str(tmp_path), '--trust-checkpoint', '--launcher', 'pytorch',
        '--cfg-options', 'train_cfg.max_iters=7', 'model.decode_head.num_stm_blocks=2'
    ])
    cfg = load_runner_config(args)
    assert cfg.work_dir == str(tmp_path)
    assert cfg.launcher == 'pytorch'
    assert cfg.train_cfg.max_iters == 7
    assert cfg.model.decode_head.num_stm_blocks == 2
    assert os.environ[TRUST_ENV] == '1'


def test_missing_config_names_the_file(tmp_path):
    missing = str(tmp_path / 'nope.py')
    args = parse_runner_args(make_parser(), [missing])
    with pytest.raises(SystemExit, match='nope.py'):
        load_runner_config(args)


def dataset_roots(cfg):
    return [cfg[f'{split}_dataloader'].dataset.data_root for split in ('train', 'val', 'test')]


@pytest.mark.parametrize('how', ['--data-root', '--cfg-options'])
def test_data_root_reaches_every_dataloader(tmp_path, how):
    # the config's `data_root` variable was substituted when the file was read: merging it
    # as a plain option would leave every dataloader on the old folder
    argv = [DEMO_CONFIG, '--data-root', 'elsewhere/nyud'] if how == '--data-root' else [
        DEMO_CONFIG, '--cfg-options', 'data_root=elsewhere/nyud', 'train_cfg.max_iters=3']
    cfg = load_runner_config(parse_runner_args(make_parser(), argv))
    assert dataset_roots(cfg) == ['elsewhere/nyud'] * 3
    assert cfg.data_root == 'elsewhere/nyud'
    if how == '--cfg-options':
        assert cfg.train_cfg.max_iters == 3  # the other options still apply


def test_data_root_through_dataset_wrappers():
    from mmengine.config import Config

    from mmmt.utils import set_data_root
    cfg = Config(dict(
        train_dataloader=dict(dataset=dict(type='RepeatDataset', times=2, dataset=dict(
            type='ConcatDataset', datasets=[dict(data_root='a'), dict(data_root='b')]))),
        test_dataloader=dict(dataset=dict(data_root='c'))))
    assert set_data_root(cfg, 'new') == 3
    inner = cfg.train_dataloader.dataset.dataset.datasets
    assert [d.data_root for d in inner] == ['new', 'new']
    assert cfg.test_dataloader.dataset.data_root == 'new'
    with pytest.raises(SystemExit, match='no dataloader'):
        set_data_root(Config(dict(model=dict())), 'new')


@pytest.mark.parametrize('level', ['INFO', 'DEBUG'])
def test_startup_log_is_short_unless_debug(tmp_path, level):
    from mmmt.utils import build_runner
    args = parse_runner_args(make_parser(), [
        DEMO_CONFIG, '--work-dir', str(tmp_path), '--cfg-options', f'log_level={level}'])
    runner = build_runner(load_runner_config(args), 'training')  # builds the model only
    log = open(runner.logger.handlers[-1].baseFilename).read()  # the run's log file
    if level == 'INFO':
        assert 'Config: not shown' in log and 'Hooks: the order is shown' in log
        assert 'train_pipeline' not in log and 'before_train_iter' not in log
        assert len(log.splitlines()) < 80
    else:
        assert 'train_pipeline' in log and 'before_train_iter' in log
